"""The temporary Prefect API of a command: it serves a real flow, stops with the command,
and dies with it when the command is killed (no orphaned uvicorn)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from prefect import flow

from flows.runtime import shared_prefect_api

pytestmark = __import__("pytest").mark.slow

HOLD_SERVER = """
from flows.runtime import shared_prefect_api
with shared_prefect_api() as url:
    print(url, flush=True)
    input()
"""


@flow
def _add(a: int, b: int) -> int:
    return a + b


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _server_pids(url: str) -> list[int]:
    port = url.split(":")[-1].split("/")[0]
    found = subprocess.run(["pgrep", "-f", f"uvicorn.*--port {port}"], capture_output=True,
                           text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def _gone(pids: list[int], within: float = 120.0) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_flow_runs_against_the_temporary_api_which_stops_afterwards(tmp_path):
    os.environ.pop("PREFECT_API_URL", None)
    with shared_prefect_api() as url:
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        assert os.environ["PREFECT_API_URL"] == url
        assert _add(2, 3) == 5
        pids = _server_pids(url)
        assert pids
    assert "PREFECT_API_URL" not in os.environ
    assert _gone(pids)


def test_killing_the_command_kills_its_prefect_server():
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    command = subprocess.Popen([sys.executable, "-c", HOLD_SERVER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    url = command.stdout.readline().strip()
    pids = _server_pids(url)
    assert pids, f"no server process found for {url}"
    command.send_signal(signal.SIGKILL)
    command.wait()
    assert _gone(pids), f"uvicorn {pids} outlived the command that started it"
