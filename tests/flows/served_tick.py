"""A trivial flow served with a short interval schedule, for tests/flows/test_schedule.py.

Run as ``python tests/flows/served_tick.py SECONDS`` from the project root, with
``PREFECT_API_URL`` pointing at a Prefect server: the server's scheduler creates the runs and
this process executes them, exactly as ``factory serve`` does with ``selection-daily``.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from prefect import flow

DEPLOYMENT = "tick-every-few-seconds"


@flow(name="tick", persist_result=False)
def tick() -> int:
    """Do nothing worth a result: the test only needs the run to complete."""
    return 1


if __name__ == "__main__":
    tick.serve(name=DEPLOYMENT, interval=timedelta(seconds=float(sys.argv[1])),
               print_starting_message=False)
