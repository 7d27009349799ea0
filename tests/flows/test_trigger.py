"""The portfolio deployment runs after each daily selection, on a real ``prefect server
start``: the trigger ``factory serve`` gives ``portfolio-after-selection`` becomes a server
automation, a completed run of ``selection-daily`` sets it off, the served process runs the
portfolio, and a run of another deployment of the same flow does not set it off."""

from __future__ import annotations

import sys

import pytest
from live_server import PrefectServer, start_in_own_group, stop_group, wait_for
from served_after_selection import OTHER_DEPLOYMENT

from flows.serve import PORTFOLIO_DEPLOYMENT, SELECTION_DEPLOYMENT

pytestmark = pytest.mark.slow


def _completed(server: PrefectServer, deployment_id: str) -> list[dict]:
    return [run for run in server.flow_runs(deployment_id) if run["state_type"] == "COMPLETED"]


def test_a_completed_selection_run_sets_off_one_portfolio_run(prefect_server, tmp_path):
    log = tmp_path / "serve.log"
    process = start_in_own_group([sys.executable, "tests/flows/served_after_selection.py"],
                                 prefect_server.client_env(), log)
    try:
        found = {name: wait_for(lambda name=name: prefect_server.deployment(name),
                                f"deployment {name} registered", process=process, log=log)
                 for name in (SELECTION_DEPLOYMENT, OTHER_DEPLOYMENT, PORTFOLIO_DEPLOYMENT)}
        portfolio_id = found[PORTFOLIO_DEPLOYMENT]["id"]
        other = prefect_server.run_deployment(found[OTHER_DEPLOYMENT]["id"])
        wait_for(lambda: prefect_server.flow_run(other["id"])["state_type"] == "COMPLETED",
                 "the other deployment's run completed", process=process, log=log)
        selection = prefect_server.run_deployment(found[SELECTION_DEPLOYMENT]["id"])
        wait_for(lambda: prefect_server.flow_run(selection["id"])["state_type"] == "COMPLETED",
                 "the selection run completed", process=process, log=log)
        (run,) = wait_for(lambda: _completed(prefect_server, portfolio_id),
                          "a portfolio run completed after the selection's",
                          process=process, log=prefect_server.log)
        assert not run["auto_scheduled"]
        # Set off by the selection's run: created after it completed, not after the other's.
        finished = prefect_server.flow_run(selection["id"])["end_time"]
        assert run["created"] >= finished
        assert len(prefect_server.flow_runs(portfolio_id)) == 1
    finally:
        stop_group(process)
