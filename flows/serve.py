"""Deployments: the factory flow on demand (trigger it from the Prefect UI), the snapshot flow
every 5 minutes, the selection flow every 24 hours, the portfolio after each completed run
of that selection deployment (an event trigger), the backtest on demand, and lake
maintenance every 7 days.
``factory serve`` runs them against the server started by ``make ui``; ``--replay-bars N``
makes each snapshot release N held-back bars first (a compressed replay of history for a demo).

Serving stops the same way on SIGTERM as on Ctrl-C: runs in flight are cancelled (their
processes killed, their state CANCELLED), polling stops and the schedules are paused; then
``serve_deployments`` returns. Prefect 3.8's own SIGTERM handler does not: it calls the async
``Runner.stop`` without awaiting it and exits from inside the event loop, so asyncio prints
tracebacks and a run in flight stays RUNNING in the UI for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta
from typing import Any

from prefect.events import DeploymentEventTrigger
from prefect.runner import Runner

from flows.factory_flow import factory_flow
from flows.maintenance import maintenance_deployment
from flows.selection import selection_flow
from flows.snapshot import snapshot_flow
from flows.trading import backtest_flow, portfolio_flow

SELECTION_INTERVAL = timedelta(hours=24)
SNAPSHOT_INTERVAL = timedelta(minutes=5)


SELECTION_DEPLOYMENT = "selection-daily"
PORTFOLIO_DEPLOYMENT = "portfolio-after-selection"


def after_selection() -> DeploymentEventTrigger:
    """Run the deployment it is given to once a run of ``selection-daily`` completes."""
    return DeploymentEventTrigger(
        expect={"prefect.flow-run.Completed"},
        match_related={"prefect.resource.role": "deployment",
                       "prefect.resource.name": SELECTION_DEPLOYMENT})


def deployments(profile: str = "demo", replay_bars: int = 0) -> list:
    """The six deployments ``factory serve`` registers."""
    return [
        factory_flow.to_deployment(name="factory", parameters={"profile": profile},
                                   tags=["model-factory"]),
        snapshot_flow.to_deployment(name="snapshot-5min",
                                    parameters={"replay_bars": replay_bars},
                                    interval=SNAPSHOT_INTERVAL, tags=["model-factory"]),
        selection_flow.to_deployment(name=SELECTION_DEPLOYMENT, parameters={"profile": profile},
                                     interval=SELECTION_INTERVAL, tags=["model-factory"]),
        portfolio_flow.to_deployment(
            name=PORTFOLIO_DEPLOYMENT, parameters={"profile": profile},
            triggers=[after_selection()], tags=["model-factory"]),
        backtest_flow.to_deployment(name="backtest", parameters={"profile": profile},
                                    tags=["model-factory"]),
        maintenance_deployment(tags=["model-factory"]),
    ]


class StoppableRunner(Runner):
    """Prefect's runner, asked to stop by SIGTERM or SIGINT; a second signal stops it at once.

    ``Runner.start`` installs ``handle_sigterm`` itself; ``serve`` adds SIGINT.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stop_reason: str | None = None
        self._stop_requested: asyncio.Event | None = None
        self._serving: asyncio.Task | None = None

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        """SIGTERM: runs in the main thread between bytecodes, so hand over to the loop."""
        self._loop.call_soon_threadsafe(self.request_stop, "SIGTERM")

    def request_stop(self, reason: str) -> None:
        """First call: stop gracefully. Second: cancel serving without waiting for runs."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stop_requested.set()
        elif self._serving is not None:
            self._serving.cancel()

    async def serve(self) -> str:
        """Serve until asked to stop; returns the signal that stopped it."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop_requested = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        self._serving = asyncio.create_task(self.start())
        waiting = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({self._serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if self._serving.done():
                self._serving.result()  # raises whatever stopped the runner
                return "the runner stopped by itself"
            if self.started:
                await self.astop()
            else:  # still starting: nothing is in flight yet
                self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
            return self.stop_reason
        finally:
            waiting.cancel()
            loop.remove_signal_handler(signal.SIGINT)


def serve_deployments(profile: str = "demo", replay_bars: int = 0) -> str:
    """Register the deployments and serve them until SIGTERM or SIGINT.

    Returns
    -------
    str
        The signal that stopped serving (``"SIGTERM"`` or ``"SIGINT"``).
    """
    # Until the runner takes SIGTERM over, it interrupts registration like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    runner = StoppableRunner(pause_on_shutdown=True)
    for deployment in deployments(profile, replay_bars):
        runner.add_deployment(deployment)
    return asyncio.run(runner.serve())


def _interrupt(signum: int, frame: Any) -> None:
    """A signal handler that stops the main thread as Ctrl-C does."""
    raise KeyboardInterrupt
