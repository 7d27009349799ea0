"""A real ``prefect server start`` for the tests that need what only a server does (its
scheduler, the ``prefect`` CLI, served deployments), and helpers to wait on it; the
``prefect_server`` fixture in conftest.py starts one per test module.

Nothing here sleeps a fixed time before asserting: every wait polls until its condition holds
and fails only at a generous deadline. Every process started here runs in its own process
group and is stopped as a group in a ``finally``, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.runtime import free_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
DEADLINE = float(os.environ.get("LIVE_SERVER_DEADLINE", 600))
"""Seconds any wait may take before it fails (a busy 2-core machine is slow, never stuck)."""


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a process's log, for failure messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE,
             process: subprocess.Popen | None = None, log: Path | None = None) -> Any:
    """Poll ``condition`` until it returns something truthy; fail at the deadline, or at once
    if ``process`` (which the condition relies on) has exited."""
    started, pause = time.monotonic(), 0.1
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with code {process.returncode}\n"
                        f"{log_tail(log) if log else ''}")
        if time.monotonic() - started > deadline:
            pytest.fail(f"{what}: not within {deadline:.0f} s\n{log_tail(log) if log else ''}")
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)


def _processes() -> dict[int, tuple[int, int]]:
    """Every live (non-zombie) process: pid -> (parent pid, process group)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                state, ppid, group = stat.read().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if state != "Z":
            found[int(entry)] = (int(ppid), int(group))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    return [pid for pid, (_, group) in _processes().items() if group == pgid]


def descendants(root: int) -> list[int]:
    """Live processes below ``root`` (children in a session of their own included)."""
    parents = {pid: ppid for pid, (ppid, _) in _processes().items()}
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running."""
    return [pid for pid in pids if pid in _processes()]


def stop_group(process: subprocess.Popen, grace: float = 60.0) -> None:
    """Stop ``process`` and everything in its process group: SIGTERM, then SIGKILL; then
    kill whatever it started in a session of its own."""
    below = descendants(process.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        ended = time.monotonic() + grace
        while group_members(process.pid) and time.monotonic() < ended:
            time.sleep(0.2)
        if not group_members(process.pid):
            break
    for pid in alive(below):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start_in_own_group(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``command`` in a new session (its own process group), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


class PrefectServer:
    """A running ``prefect server start``: its API URL and an environment for its clients."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = root / "server.log"

    def client_env(self, **extra: str) -> dict[str, str]:
        """The test process's environment, pointed at this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
        return env | {"PREFECT_API_URL": self.api_url, "PREFECT_HOME": str(self.root / "client"),
                      "PREFECT_SERVER_ANALYTICS_ENABLED": "false"} | extra

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A synchronous Prefect client of this server (also inside another API's settings)."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (temporary_settings(updates={PREFECT_API_URL: self.api_url}),
              get_client(sync_client=True) as client):
            yield client

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        """Call the API; the decoded reply. A busy sqlite server answers 503 (Prefect's own
        client retries those too): retry until the deadline."""
        started = time.monotonic()
        while True:
            response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=60)
            if response.status_code != 503 or time.monotonic() - started > DEADLINE:
                response.raise_for_status()
                return response.json()
            time.sleep(1.0)

    def post(self, path: str, body: dict) -> Any:
        """POST a fully specified JSON body (no nulls) to the API; the decoded reply."""
        return self.request("POST", path, body)

    def deployment(self, name: str) -> dict | None:
        """The deployment called ``name``, if registered."""
        found = self.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}},
                                                  "limit": 10, "offset": 0, "sort": "NAME_ASC"})
        return found[0] if found else None

    def flow_run(self, flow_run_id: str) -> dict:
        """One flow run, with its current state."""
        return self.request("GET", f"/flow_runs/{flow_run_id}")

    def run_deployment(self, deployment_id: str) -> dict:
        """Create a flow run of a deployment now, as the UI's "Run" button does."""
        return self.post(f"/deployments/{deployment_id}/create_flow_run", {})

    def flow_runs(self, deployment_id: str) -> list[dict]:
        """The flow runs of one deployment."""
        return self.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [deployment_id]}}, "limit": 200, "offset": 0,
            "sort": "EXPECTED_START_TIME_DESC"})


@contextmanager
def running_prefect_server(root: Path) -> Iterator[PrefectServer]:
    """Start a Prefect server (sqlite, in ``root``) and stop its process group afterwards."""
    server = PrefectServer(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env |= {"PREFECT_HOME": str(root / "server"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": server.api_url, "PREFECT_LOGGING_LEVEL": "INFO"}
    process = start_in_own_group(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
         "--port", str(server.port)], env, server.log)
    try:
        wait_for(lambda: answers(f"{server.api_url}/health"), "prefect server /api/health",
                 process=process, log=server.log)
        yield server
    finally:
        stop_group(process)
