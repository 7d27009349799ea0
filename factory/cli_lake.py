"""``factory lake``: keep the lake's tiers in shape.

``maintain`` z-orders, compacts and vacuums the Delta tables (the weekly ``lake-maintenance``
deployment does the same); ``migrate`` moves old bars to the cold tier (``$FACTORY_COLD_URI``).
Both hold the FACTORY_HOME writer lock. ``factory.cli`` registers ``lake_app`` and imports
this module at its end, so the shared error handling, console and notices are looked up
when a command runs, never at import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta

import typer

from factory.paths import configure_environment

lake_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Maintain the lake: z-order, compact, vacuum; move old bars to "
                            "the cold tier.")


def _reported(command: Callable) -> Callable:
    """Report errors as every ``factory`` command does (``factory.cli.clean_errors``)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from factory.cli import clean_errors

        return clean_errors(command)(*args, **kwargs)

    return wrapper


@lake_app.command()
@_reported
def maintain(
    retention_days: float = typer.Option(
        None, help="keep every version of the last N days readable (default and minimum: "
        "$FACTORY_TIME_TRAVEL_DAYS, else 7)"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Z-order the bars by (symbol, ts), compact the other tables, vacuum old files."""
    from factory.cli import console, notice
    from factory.data.maintenance import maintain_home

    paths = configure_environment()
    retention = None if retention_days is None else timedelta(days=retention_days)
    summary = maintain_home(paths, retention, wait=wait, on_wait=notice)
    for line in summary.lines():
        console.print(line, soft_wrap=True)


@lake_app.command()
@_reported
def migrate(
    older_than: float = typer.Option(..., "--older-than", help="move bars older than N days"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Move bars older than N days (by bar time) to the cold tier; reads are unchanged."""
    from factory.cli import console, notice
    from factory.data.cold import migrate_to_cold

    paths = configure_environment()
    summary = migrate_to_cold(paths, timedelta(days=older_than), wait=wait, on_wait=notice)
    console.print(summary.line(), soft_wrap=True)
