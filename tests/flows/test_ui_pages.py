"""What a user sees: the Prefect leaderboard artifact and MLflow's registered-models page,
rendered by a real headless Chromium against a real `prefect server` and `mlflow server`,
show the Production models. Skipped where Chromium is not installed (`apt-get install
chromium`); the home is the serving tests' (trained and promoted without Prefect)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from live_server import BIN, answers, start_in_own_group, stop_group, wait_for
from test_serving import served  # noqa: F401 - the module fixture this test reuses

from factory.tracking import Tracker
from flows.runtime import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]


def _rendered(url: str) -> str:
    """The page's DOM after its scripts ran (headless Chromium)."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000",
         "--dump-dom", url], capture_output=True, text=True, timeout=300, check=False)
    return done.stdout


def _shows_all(url: str, names: list[str]) -> bool:
    page = _rendered(url)
    return all(name in page for name in names) and "production" in page.lower()


def test_both_uis_show_the_production_models(served, prefect_server, tmp_path):  # noqa: F811
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.selection import selection_flow

    paths = served["paths"]
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        chosen = selection_flow(profile="smoke")["chosen"]
    assert chosen and sorted(chosen) == Tracker(paths).production_models()
    [artifact] = prefect_server.post("/artifacts/filter", {
        "artifacts": {"key": {"any_": ["leaderboard"]}}, "limit": 5, "offset": 0,
        "sort": "CREATED_DESC"})[:1]
    ui = prefect_server.api_url.removesuffix("/api")
    wait_for(lambda: _shows_all(f"{ui}/artifacts/artifact/{artifact['id']}", chosen),
             "the Prefect UI showing the leaderboard artifact with every Production model")

    port, log = free_port(), tmp_path / "mlflow.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    server = start_in_own_group(
        [str(Path(BIN) / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", paths.tracking_uri,
         "--default-artifact-root", str(paths.artifact_root)], env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{url}/health"), "the MLflow server", process=server, log=log)
        wait_for(lambda: _shows_all(f"{url}/#/models", chosen),
                 "the MLflow UI listing every Production model with its alias",
                 process=server, log=log)
    finally:
        stop_group(server)

