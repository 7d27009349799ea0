"""Two trivial flows served as ``selection-daily`` and ``portfolio-after-selection``, the
second with the trigger ``factory serve`` gives the portfolio (``flows.serve.after_selection``),
and a third deployment that must not set it off; for tests/flows/test_trigger.py.

Run as ``python tests/flows/served_after_selection.py`` from the project root, with
``PREFECT_API_URL`` pointing at a Prefect server: the server's automation creates the
portfolio's run when a selection run completes, and this process executes it.
"""

from __future__ import annotations

from prefect import flow, serve

from flows.serve import PORTFOLIO_DEPLOYMENT, SELECTION_DEPLOYMENT, after_selection

OTHER_DEPLOYMENT = "not-the-selection"


@flow(name="stand-in-selection", persist_result=False)
def selection() -> int:
    """Stands for the daily selection: the test only needs its run to complete."""
    return 1


@flow(name="stand-in-portfolio", persist_result=False)
def portfolio() -> int:
    """Stands for the portfolio flow."""
    return 2


if __name__ == "__main__":
    serve(selection.to_deployment(name=SELECTION_DEPLOYMENT),
          selection.to_deployment(name=OTHER_DEPLOYMENT),
          portfolio.to_deployment(name=PORTFOLIO_DEPLOYMENT, triggers=[after_selection()]),
          print_starting_message=False)
