"""The shared servers on PostgreSQL: `make ui PREFECT_DATABASE_URL=... MLFLOW_DATABASE_URL=...`
starts a real ``prefect server start`` and ``mlflow server``, each on a database of its own on
the real PostgreSQL (127.0.0.1:5432, trust auth); a factory flow run from the CLI against them is
recorded in PostgreSQL, not in a sqlite file; `make ui-stop` stops both process groups.

Skipped, saying why, where no PostgreSQL answers or ``make`` is not installed. The servers start
once for the module (generous deadline, no fixed sleeps) and are stopped, also on failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from live_server import BIN, REPO, answers, group_members, log_tail, wait_for

from flows.runtime import free_port
from tests.pg import fresh_database

psycopg = pytest.importorskip("psycopg", reason="psycopg (dev extra) is not installed")
pytestmark = pytest.mark.slow
MAKE = shutil.which("make")


def _make(*arguments: str) -> str:
    """Run a Makefile target (never its install step); its output."""
    done = subprocess.run([MAKE, "--no-print-directory", "-o", ".venv/.installed", *arguments],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute(query).fetchall()


def _answering(url: str, pgid: int, log: Path) -> bool:
    """Whether ``url`` answers; fails at once if the server's process group has exited."""
    if answers(url):
        return True
    if not group_members(pgid):
        pytest.fail(f"the server behind {url} exited\n{log_tail(log)}")
    return False


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """`make ui` on two fresh PostgreSQL databases, in a throwaway FACTORY_HOME, on free ports."""
    if MAKE is None:
        pytest.skip("make is not installed")
    root = tmp_path_factory.mktemp("postgres_servers")
    state = root / "ui"
    with fresh_database("prefect") as prefect_db, fresh_database("mlflow") as mlflow_db:
        ports = {"prefect": free_port(), "mlflow": free_port()}
        settings = [f"FACTORY_HOME={root / 'home'}", f"UI_STATE={state}", f"BIN={BIN}",
                    f"PREFECT_PORT={ports['prefect']}", f"MLFLOW_PORT={ports['mlflow']}",
                    f"PREFECT_DATABASE_URL={prefect_db}", f"MLFLOW_DATABASE_URL={mlflow_db}"]
        groups = {}
        try:
            shown = _make("ui", *settings)
            groups = {name: int((state / f"{name}.pid").read_text()) for name in ports}
            urls = {"prefect": f"http://127.0.0.1:{ports['prefect']}/api",
                    "mlflow": f"http://127.0.0.1:{ports['mlflow']}"}
            for name, health in (("prefect", "/health"), ("mlflow", "/health")):
                wait_for(lambda n=name, h=health: _answering(
                    urls[n] + h, groups[n], state / f"{n}.log"), f"{name} server {health}")
            yield {"home": root / "home", "state": state, "settings": settings, "shown": shown,
                   "urls": urls, "groups": groups, "prefect_db": prefect_db,
                   "mlflow_db": mlflow_db}
        finally:
            _make("ui-stop", f"UI_STATE={state}")
            for pgid in groups.values():  # ui-stop escalates to SIGKILL; this only backs it up
                for pid in group_members(pgid):
                    os.kill(pid, signal.SIGKILL)


def test_make_ui_keeps_each_store_in_its_own_postgresql_database(servers):
    assert answers(f"{servers['urls']['prefect']}/health")
    assert answers(f"{servers['urls']['mlflow']}/health")
    for name in ("prefect_db", "mlflow_db"):
        assert f"PostgreSQL database {servers[name].rsplit('/', 1)[1]}" in servers["shown"]
    [prefect_revision] = _rows(servers["prefect_db"], "SELECT version_num FROM alembic_version")
    [mlflow_revision] = _rows(servers["mlflow_db"], "SELECT version_num FROM alembic_version")
    assert prefect_revision != mlflow_revision  # one alembic_version table each: two databases
    assert _rows(servers["prefect_db"], "SELECT to_regclass('flow_run') IS NOT NULL") == [(True,)]
    assert ("Default",) in _rows(servers["mlflow_db"], "SELECT name FROM experiments")
    home = servers["home"]
    assert not (home / "mlflow" / "mlflow.db").exists()
    assert not list((home / ".prefect").glob("*.db"))


def test_a_factory_flow_from_the_cli_is_recorded_in_postgresql(servers, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_"))}
    env |= {"FACTORY_HOME": str(servers["home"]), "PREFECT_HOME": str(tmp_path / "client"),
            "PREFECT_API_URL": servers["urls"]["prefect"],
            "MLFLOW_TRACKING_URI": servers["urls"]["mlflow"], "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-m", "factory.cli", "snapshot"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _rows(servers["prefect_db"], "SELECT f.name, r.state_type FROM flow_run r "
                                        "JOIN flow f ON f.id = r.flow_id")
    assert runs == [("snapshot", "COMPLETED")]
    experiments = {name for (name,) in _rows(servers["mlflow_db"], "SELECT name FROM experiments")}
    assert "model-factory" in experiments, experiments


def test_make_ui_stop_stops_both_servers(servers):
    _make("ui-stop", f"UI_STATE={servers['state']}")
    assert {name: group_members(pgid) for name, pgid in servers["groups"].items()} == {
        "prefect": [], "mlflow": []}
    assert not answers(f"{servers['urls']['prefect']}/health")
    assert not list(servers["state"].glob("*.pid"))
