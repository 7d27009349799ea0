"""The weekly lake maintenance flow under a real (test-harness) Prefect: it z-orders and
vacuums the home's lake under the writer lock, and every read stays what it was."""

from __future__ import annotations

import os
from datetime import timedelta

import polars as pl
import pytest
from prefect.testing.utilities import prefect_test_harness

from factory.data.lake import COLD_URI_ENV, Lake
from factory.data.sources import synthetic_bars
from factory.paths import FactoryPaths
from flows.maintenance import lake_maintenance, maintenance_deployment


@pytest.fixture(scope="module")
def prefect_api():
    """One test-harness Prefect API for the module's flow runs."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def home(tmp_path):
    """FACTORY_HOME at ``tmp_path`` with three ingests in its lake; the environment restored."""
    saved = dict(os.environ)
    os.environ["FACTORY_HOME"] = str(tmp_path)
    os.environ.pop(COLD_URI_ENV, None)
    lake = Lake(FactoryPaths(tmp_path).lake)
    bars = synthetic_bars(("AAA", "BBB"), n_bars=90, seed=3)
    for part in range(3):
        lake.ingest_bars(bars.filter(pl.col("ts").dt.month() == part + 1), f"month-{part}")
    yield lake
    os.environ.clear()
    os.environ.update(saved)


def test_the_flow_z_orders_and_vacuums_and_no_read_changes(prefect_api, home):
    before = {v: home.read_bars(version=v) for v in range(3)}
    result = lake_maintenance()
    assert result["files_compacted"] == 3 and result["retention_hours"] == 7 * 24
    [bars] = [t for t in result["tables"] if t["uri"] == home.uri("bars")]
    assert (bars["operation"], bars["files_added"], bars["version"]) == (
        "z-order (symbol, ts)", 1, 3)
    assert all(home.read_bars(version=v).equals(frame) for v, frame in before.items())
    assert home.read_bars().equals(before[2])


def test_the_flow_refuses_a_retention_below_the_time_travel_window(prefect_api, home):
    with pytest.raises(ValueError, match="shorter than the time-travel window"):
        lake_maintenance(retention_days=1)
    assert home.version() == 2


def test_the_weekly_deployment_is_served_with_the_others():
    from flows.serve import deployments

    weekly = maintenance_deployment()
    assert weekly.name == "lake-maintenance-weekly"
    assert [s.schedule.interval for s in weekly.schedules] == [timedelta(days=7)]
    assert "lake-maintenance-weekly" in [d.name for d in deployments("demo")]
