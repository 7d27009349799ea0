"""What the Prefect UI shows of a factory: readable flow-run names, INFO logs in each run's Logs
tab, and the ``factory-run-summary`` artifact; `factory run` keeps the terminal quiet while its
run's INFO logs still reach the server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from live_server import DEADLINE, wait_for
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from factory.data.sources import synthetic_bars

pytestmark = pytest.mark.slow

INFO = 20


def _runs(client, flow_name: str) -> list:
    return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def _messages(client, flow_run_id) -> list[str]:
    """The run's INFO (and above) log messages as the UI's Logs tab lists them."""
    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
        any_=[flow_run_id])), limit=200)
    return [log.message for log in logs if log.level >= INFO]


def _logged(client, flow_run_id, *fragments: str) -> list[str]:
    """Wait until the run's log holds every fragment (logs reach the API in batches)."""
    def found() -> list[str]:
        messages = _messages(client, flow_run_id)
        return messages if all(any(f in m for m in messages) for f in fragments) else []

    return wait_for(found, f"log lines {fragments}")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A one-symbol planted-signal home: ingested, the smoke factory run, one selection, all
    under ``prefect_test_harness`` with logs shipped to its API; yields what the API holds."""
    root = tmp_path_factory.mktemp("flow_logs_home")
    saved = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        os.environ.pop(key, None)
    os.environ["FACTORY_HOME"] = str(root)
    synthetic_bars(symbols=("AAA",), n_bars=500, seed=5, signal=0.5).write_csv(root / "bars.csv")
    try:
        with (prefect_test_harness(server_startup_timeout=DEADLINE),
              temporary_settings(updates={PREFECT_LOGGING_TO_API_ENABLED: True,
                                          "results.local_storage_path": root / "results"})):
            from flows.factory_flow import run_factory
            from flows.ingest import ingest_flow
            from flows.runtime import shared_prefect_api
            from flows.selection import selection_flow

            with shared_prefect_api():
                ingest = ingest_flow(sources=[str(root / "bars.csv")])
                summary = run_factory("smoke")
                selection_flow(profile="smoke")
                with get_client(sync_client=True) as client:
                    yield {"root": root, "client": client, "ingest": ingest, "summary": summary}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_each_flow_run_has_a_readable_name(home):
    client = home["client"]
    [factory] = _runs(client, "factory")
    assert factory.name == f"factory-smoke-lake-v{home['ingest']['version']}"
    [ingest] = _runs(client, "ingest")
    assert ingest.name == "ingest-1-sources"
    [selection] = _runs(client, "selection")
    assert re.fullmatch(r"selection-smoke-\d{8}-\d{4}", selection.name), selection.name


def test_the_factory_run_logs_what_it_does_at_info(home):
    client = home["client"]
    [factory] = _runs(client, "factory")
    messages = _logged(client, factory.id, "universe of 1 symbol(s) (AAA), 4 configs",
                       "4 configs to train, 0 skipped", "features built", " finished, OOS Sharpe",
                       "4 trained, 0 skipped, 0 failed, 0 orphaned runs failed")
    assert len(messages) >= 8


def test_ingest_and_selection_runs_log_what_they_do(home):
    client = home["client"]
    [ingest] = _runs(client, "ingest")
    _logged(client, ingest.id, "ingesting 1 source(s)", "rows added")
    [selection] = _runs(client, "selection")
    _logged(client, selection.id, "4 candidates; ", "Production: ", "registry changes")


def test_the_factory_run_publishes_its_summary_artifact(home):
    client = home["client"]
    [factory] = _runs(client, "factory")
    [artifact] = client.read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["factory-run-summary"])))
    assert artifact.flow_run_id == factory.id and artifact.type == "markdown"
    summary = home["summary"]
    for line in (f"lake version {home['ingest']['version']}", "profile `smoke`", "| trained | 4 |",
                 "| skipped (already trained on this lake version) | 0 |", "| failed | 0 |",
                 "| orphaned runs failed | 0 |", "| features |", "| total |"):
        assert line in artifact.data, (line, artifact.data)
    assert len(summary["finished"]) == 4


def test_factory_run_is_quiet_on_the_terminal_but_logs_to_the_server(home, prefect_server):
    """`factory run` without --verbose: no log lines on the terminal, INFO logs in the UI."""
    env = prefect_server.client_env(FACTORY_HOME=str(home["root"]))
    for key in ("PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_TO_API_ENABLED"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "factory.cli", "run", "--profile", "smoke"],
                          env=env, capture_output=True, text=True, timeout=DEADLINE,
                          check=False)
    terminal = done.stdout + done.stderr
    assert done.returncode == 0, terminal
    assert "4 already trained on this lake version" in terminal
    assert not re.search(r"\| (INFO|WARNING|ERROR) +\|", terminal), terminal
    with prefect_server.client() as client:
        [run] = _runs(client, "factory")
        assert run.name == f"factory-smoke-lake-v{home['ingest']['version']}"
        _logged(client, run.id, "0 configs to train, 4 skipped", "0 trained, 4 skipped")
