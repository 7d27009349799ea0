"""One Prefect API for a command, its flow and its worker processes.

Without a configured API (``PREFECT_API_URL``), Prefect starts a temporary server per process:
each process-pool worker would start its own. ``shared_prefect_api`` starts one and exports
its address to the workers.

Why not Prefect's own temporary server: it gives up after 20 s (on a busy 2-core machine the
first command in a new home failed "Timed out while attempting to connect to ephemeral Prefect
API server" again and again), and a command killed while it waits leaves the uvicorn child
running, orphaned. This server waits as long as the server keeps making progress
(``FACTORY_PREFECT_STARTUP_TIMEOUT``, default 600 s, is only the last resort), lives in its own
process group that is stopped as a whole, and is told by the kernel to exit when the command
that started it dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STARTUP_TIMEOUT_ENV = "FACTORY_PREFECT_STARTUP_TIMEOUT"
DEFAULT_STARTUP_TIMEOUT = 600.0
SLOW_START_NOTICE_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1


class PrefectServerError(RuntimeError):
    """The temporary Prefect API did not start; the message quotes its log."""


def _die_with_parent() -> None:
    """In the child before exec: exit on SIGTERM when the parent process dies (Linux)."""
    with contextlib.suppress(OSError):  # not Linux: the group is still stopped on exit
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryPrefectServer:
    """A Prefect API server on a free local port for the lifetime of one command.

    Parameters
    ----------
    log_path
        Where the server's output goes (quoted in the error if it fails to start).
    startup_timeout
        Seconds to wait for ``/api/health`` before giving up.
    on_slow_start
        Called once with a sentence if start-up takes longer than a few seconds.
    """

    def __init__(self, log_path: Path, startup_timeout: float,
                 on_slow_start: Callable[[str], None] | None = None) -> None:
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.on_slow_start = on_slow_start
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> str:
        """Start the server and wait until it answers; returns its API URL."""
        from prefect.settings import get_current_settings

        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True),
               "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory",
                 "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent)
        self._wait_until_healthy()
        return self.api_url

    def _wait_until_healthy(self) -> None:
        started = time.monotonic()
        pause, noticed = 0.05, False
        with httpx.Client(timeout=10.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise PrefectServerError(
                        f"the temporary Prefect API exited with code {self.process.returncode} "
                        f"before it answered; its log: {self.log_path}\n{self._log_tail()}")
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                waited = time.monotonic() - started
                if waited > self.startup_timeout:
                    self.stop()
                    raise PrefectServerError(
                        f"the temporary Prefect API did not answer within "
                        f"{self.startup_timeout:.0f} s (set {STARTUP_TIMEOUT_ENV} to wait "
                        f"longer, or PREFECT_API_URL to use a running server); its log: "
                        f"{self.log_path}\n{self._log_tail()}")
                if waited > SLOW_START_NOTICE_SECONDS and not noticed and self.on_slow_start:
                    self.on_slow_start("the Prefect API is slow to start (busy machine?): "
                                       "still waiting")
                    noticed = True
                time.sleep(pause)
                pause = min(pause * 1.5, 1.0)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server's whole process group (uvicorn and anything it spawned)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


def _drain_prefect_workers() -> None:
    """Send Prefect's buffered logs and events before the server they go to stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.drain_all(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


def startup_timeout() -> float:
    """Seconds to wait for a temporary Prefect API (``FACTORY_PREFECT_STARTUP_TIMEOUT``)."""
    return float(os.environ.get(STARTUP_TIMEOUT_ENV, DEFAULT_STARTUP_TIMEOUT))


@contextmanager
def shared_prefect_api(on_slow_start: Callable[[str], None] | None = None) -> Iterator[str]:
    """Use the configured Prefect API, or start a temporary one; export it to child processes.

    Parameters
    ----------
    on_slow_start
        Told once when a temporary server takes long to start (e.g. to print a notice).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    exported = os.environ.get("PREFECT_API_URL")
    url = exported or PREFECT_API_URL.value()
    server = None
    if not url:
        home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
        server = TemporaryPrefectServer(home / "temporary-api.log", startup_timeout(),
                                        on_slow_start)
    try:
        if server is not None:
            url = server.start()
        os.environ["PREFECT_API_URL"] = url  # for worker processes
        with temporary_settings(updates={PREFECT_API_URL: url}):  # for this process
            yield url
            if server is not None:
                _drain_prefect_workers()
    finally:
        if exported is None:
            os.environ.pop("PREFECT_API_URL", None)
        if server is not None:
            server.stop()
