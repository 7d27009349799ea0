"""Test-wide settings, applied before any test module imports Prefect or MLflow.

Every test runs against a throwaway FACTORY_HOME and PREFECT_HOME, so the suite never writes
into the project's own lake, registry or Prefect home. Prefect sends no analytics and ships no
logs to an API server that a test harness has already stopped (it would only print
connection errors at exit).
"""

import os
import signal
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="factory-tests-")
os.environ["FACTORY_HOME"] = _HOME
os.environ["PREFECT_HOME"] = os.path.join(_HOME, ".prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
for inherited in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
    os.environ.pop(inherited, None)


def _descendants(root: int) -> list[tuple[int, str]]:
    """Live (non-zombie) processes below ``root``, with their command lines."""
    parents, commands = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)], commands[int(entry)] = int(fields[1]), command
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += [(pid, commands[pid]) for pid in children]
        frontier += children
    return found


@pytest.fixture(scope="session", autouse=True)
def no_server_left_behind():
    """The suite leaves no Prefect or MLflow server running (one outlived a run by hours)."""
    yield
    servers = [(pid, cmd) for pid, cmd in _descendants(os.getpid())
               if "uvicorn" in cmd or "prefect" in cmd or "mlflow" in cmd]
    for pid, _ in servers:
        os.kill(pid, signal.SIGKILL)
    assert not servers, f"the tests left servers running: {servers}"


@pytest.fixture()
def postgres_url():
    """The plain URL (``postgresql://postgres@127.0.0.1:5432/<name>``) of a fresh, empty
    PostgreSQL database of this test's own, dropped afterwards; skipped, saying why, where no
    PostgreSQL answers. ``tests.pg.sqlalchemy_url(url, "psycopg" | "asyncpg")`` gives the
    SQLAlchemy form."""
    from tests.pg import fresh_database

    with fresh_database() as url:
        yield url
