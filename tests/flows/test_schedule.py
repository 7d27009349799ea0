"""Served deployments against a real ``prefect server start``: the server's scheduler creates
runs of an interval schedule that the serving process completes, the ``prefect`` CLI lists
deployments and flow runs, and ``factory serve`` stops cleanly on SIGTERM and Ctrl-C (one
line, no traceback, the run in flight CANCELLED and its processes gone).

Each fails on a broken stack seen here: SQLAlchemy 2.1 breaks the scheduler ("Can't evaluate
bulk DML statement", no run is ever created); fastapi 0.151+ answers Prefect's own client
with HTTP 422 (``limit``/``sort`` sent as null).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from live_server import (
    BIN,
    DEADLINE,
    PrefectServer,
    alive,
    descendants,
    log_tail,
    running_prefect_server,
    start_in_own_group,
    stop_group,
    wait_for,
)
from served_tick import DEPLOYMENT

from factory.locking import writer_lock
from factory.paths import FactoryPaths

pytestmark = pytest.mark.slow

INTERVAL_SECONDS = 5


@pytest.fixture(scope="module")
def served_tick(prefect_server: PrefectServer, tmp_path_factory) -> Iterator[dict]:
    """The tick flow served with a 5 s interval schedule; yields its deployment."""
    log = tmp_path_factory.mktemp("served_tick") / "serve.log"
    process = start_in_own_group(
        [sys.executable, "tests/flows/served_tick.py", str(INTERVAL_SECONDS)],
        prefect_server.client_env(), log)
    try:
        deployment = wait_for(lambda: prefect_server.deployment(DEPLOYMENT),
                              f"deployment {DEPLOYMENT} registered", process=process, log=log)
        yield {"deployment": deployment, "process": process, "log": log}
    finally:
        stop_group(process)


def test_the_scheduler_creates_runs_that_the_served_deployment_completes(prefect_server,
                                                                        served_tick):
    deployment = served_tick["deployment"]
    assert deployment["schedules"], "the deployment was registered without its schedule"

    def completed_scheduled_runs() -> list[dict]:
        return [run for run in prefect_server.flow_runs(deployment["id"])
                if run["auto_scheduled"] and run["state_type"] == "COMPLETED"]

    runs = wait_for(completed_scheduled_runs, "a scheduled run completed",
                    process=served_tick["process"],
                    log=prefect_server.log)
    assert runs[0]["deployment_id"] == deployment["id"]


def test_prefect_cli_lists_deployments_and_flow_runs(prefect_server, served_tick):
    listed = {}
    for command in ("deployment", "flow-run"):
        done = subprocess.run([str(BIN / "prefect"), command, "ls"], capture_output=True,
                              text=True, env=prefect_server.client_env(), timeout=DEADLINE,
                              check=False)
        assert done.returncode == 0, f"prefect {command} ls:\n{done.stdout}{done.stderr}"
        listed[command] = done.stdout
    assert "tick" in listed["deployment"]


@pytest.mark.parametrize(("sig", "to_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM", "Ctrl-C"])
def test_factory_serve_stops_cleanly_cancelling_the_run_in_flight(tmp_path, sig, to_group):
    """A factory run waits on the home's lock (held here) when serving is told to stop."""
    home = FactoryPaths(tmp_path / "home")
    log = tmp_path / "factory-serve.log"
    with running_prefect_server(tmp_path / "server") as server, \
            writer_lock(home, "the test, so that the served factory run waits"):
        env = server.client_env(FACTORY_HOME=str(home.home))
        env.pop("PREFECT_HOME")  # factory serve puts it under FACTORY_HOME
        process = start_in_own_group([sys.executable, "-m", "factory.cli", "serve",
                                      "--profile", "smoke"], env, log)
        try:
            factory = wait_for(lambda: server.deployment("factory"), "deployment registered",
                               process=process, log=log)
            wait_for(lambda: server.deployment("selection-daily"), "deployment registered",
                     process=process, log=log)
            run = server.run_deployment(factory["id"])
            wait_for(lambda: server.flow_run(run["id"])["state_type"] == "RUNNING",
                     "the factory run started", process=process, log=log)
            below = descendants(process.pid)
            assert below, "the served run has no process of its own"
            if to_group:  # Ctrl-C signals the terminal's whole foreground process group
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
            try:
                code = process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                pytest.fail(f"factory serve ignored {sig.name}\n{log_tail(log)}")
            output = log.read_text(errors="replace")
            assert code in (0, 128 + sig), f"exit code {code}\n{output}"
            assert "Traceback" not in output and "never awaited" not in output, output
            assert f"stopped serving ({sig.name})" in output, output
            wait_for(lambda: not alive(below), "the served run's processes gone", log=log)

            def settled() -> str | None:
                state = server.flow_run(run["id"])["state_type"]
                return None if state in ("PENDING", "RUNNING", "CANCELLING") else state

            assert wait_for(settled, "the run in flight settled") == "CANCELLED"
        finally:
            stop_group(process)
