"""One writer per FACTORY_HOME: a real flock between real processes, and a real PostgreSQL
advisory lock where PostgreSQL runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from factory.locking import describe_holder, writer_lock
from factory.paths import FactoryPaths

TRY_LOCK = """
import sys
from pathlib import Path
from factory.locking import HomeBusyError, writer_lock
from factory.paths import FactoryPaths
try:
    with writer_lock(FactoryPaths(Path(sys.argv[1])), "probe", wait=False):
        print("acquired")
except HomeBusyError as err:
    print("busy:", err)
"""


def _probe(home, env=None) -> str:
    result = subprocess.run([sys.executable, "-c", TRY_LOCK, str(home)], capture_output=True,
                            text=True, check=True, env={**os.environ, **(env or {})})
    return result.stdout.strip()


def test_a_second_process_cannot_write_while_the_first_holds_the_lock(tmp_path):
    paths = FactoryPaths(tmp_path)
    with writer_lock(paths, "factory run --profile demo"):
        answer = _probe(tmp_path)
        assert answer.startswith("busy:")
        assert "factory run --profile demo" in answer and f"pid {os.getpid()}" in answer
    assert _probe(tmp_path) == "acquired"


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path):
    paths = FactoryPaths(tmp_path)
    with writer_lock(paths, "outer"), writer_lock(paths, "inner"):
        assert "outer" in describe_holder(tmp_path / ".factory.lock")
    assert _probe(tmp_path) == "acquired"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from factory.locking import writer_lock\nfrom factory.paths import FactoryPaths\n"
         "with writer_lock(FactoryPaths(Path(sys.argv[1])), 'doomed'):\n"
         "    print('held', flush=True)\n    sys.stdin.read()\n", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert _probe(tmp_path).startswith("busy:")
    holder.kill()
    holder.wait()
    assert _probe(tmp_path) == "acquired"


def test_no_wait_raises_and_wait_reports_whom_it_waits_for(tmp_path):
    paths = FactoryPaths(tmp_path)
    told = []
    with writer_lock(paths, "first"):
        script = TRY_LOCK.replace("wait=False", "wait=True, on_wait=print")
        waiter = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
        told.append(waiter.stdout.readline())
    told.append(waiter.communicate(timeout=120)[0])
    assert "in use by `first`" in told[0] and "waiting" in told[0]
    assert told[1].strip() == "acquired"


def _postgres_uri() -> str:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    uri = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test",
                        connect_timeout=5).close()
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 (trust auth, database test): {err}")
    return uri


def test_homes_sharing_a_postgres_registry_take_turns(tmp_path):
    uri = _postgres_uri()
    first, second = tmp_path / "a", tmp_path / "b"
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        with writer_lock(FactoryPaths(first), "first home"):
            answer = _probe(second, {"MLFLOW_TRACKING_URI": uri})
            assert answer.startswith("busy:") and "PostgreSQL" in answer
        assert _probe(second, {"MLFLOW_TRACKING_URI": uri}) == "acquired"
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
