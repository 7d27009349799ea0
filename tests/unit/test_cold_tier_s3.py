"""The cold tier on S3, through deltalake's object store, against a local S3-compatible
server (moto) that the tests start: old bars move there and every read stays the same.

The server runs in a child process: deltalake holds the GIL while it waits on the network,
so a server thread in this process would never answer it.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import polars as pl
import pytest

from factory.data.cold import migrate_to_cold
from factory.data.lake import COLD_URI_ENV, Lake
from factory.data.maintenance import maintain
from factory.data.sources import synthetic_bars
from factory.paths import FactoryPaths
from tests.unit.test_tiers import NOW, _assert_same, _fill, _reads

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

BUCKET = "factory-cold"
START_UP_SECONDS = 120
SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A moto S3 server on a free port with one bucket; yields deltalake storage options."""
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "w") as errors:
        server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        ready, _, _ = select.select([server.stdout], [], [], START_UP_SECONDS)
        line = server.stdout.readline() if ready else ""
        assert line.strip().isdigit(), f"moto did not start: {log.read_text()[-2000:]}"
        options = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{line.strip()}",
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        _client(options).create_bucket(Bucket=BUCKET)
        yield options
    finally:
        server.kill()
        server.wait()


def _client(options: dict[str, str]):
    return boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"],
                        aws_access_key_id=options["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"],
                        region_name=options["AWS_REGION"])


def _keys(options: dict[str, str], prefix: str) -> list[str]:
    listed = _client(options).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_bars(("AAA", "BBB"), n_bars=100, seed=4, start="2020-01-01")


def test_bars_migrated_to_s3_read_back_through_the_tiers(tmp_path, s3, bars):
    paths = FactoryPaths(tmp_path)
    lake = Lake(paths.lake, cold_root=f"s3://{BUCKET}/cold", cold_storage_options=s3)
    moments = _fill(lake, bars)
    before = _reads(lake, moments)
    summary = migrate_to_cold(paths, timedelta(days=90), lake=lake, now=NOW)
    assert summary.rows_copied == summary.rows_deleted == 61
    assert summary.cold_version == 0
    keys = _keys(s3, "cold/bars/")
    assert "cold/bars/_delta_log/00000000000000000000.json" in keys
    assert any(key.endswith(".parquet") for key in keys)
    cold = pl.read_delta(lake.cold_uri(), storage_options=s3)
    assert cold.height == 61 and cold["ts"].max() < summary.cutoff
    _assert_same(before, _reads(lake, moments))
    again = migrate_to_cold(paths, timedelta(days=90), lake=lake, now=NOW)
    assert (again.rows_copied, again.rows_deleted, again.cold_version) == (0, 0, 0)
    maintain(lake)
    _assert_same(before, _reads(lake, moments))


def test_the_environment_alone_puts_the_homes_cold_tier_on_s3(tmp_path, s3, bars, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    monkeypatch.setenv(COLD_URI_ENV, f"s3://{BUCKET}/from-env")
    for name, value in s3.items():
        monkeypatch.setenv(name, value)
    paths = FactoryPaths(tmp_path)
    moments = _fill(Lake(paths.lake), bars)
    before = _reads(Lake(paths.lake), moments)
    summary = migrate_to_cold(paths, timedelta(days=90), now=NOW)
    assert summary.rows_deleted == 61 and _keys(s3, "from-env/bars/_delta_log/")
    lake = Lake(paths.lake)
    assert lake.cold_uri() == f"s3://{BUCKET}/from-env/bars"
    _assert_same(before, _reads(lake, moments))
