"""The ingest flow, for runs triggered from the Prefect UI: the same core function as
``factory ingest`` (read, check, then one atomic Delta commit under the writer lock)."""

from __future__ import annotations

from prefect import flow

from factory.data.ingest import IngestOptions, ingest_sources
from factory.paths import configure_environment
from tasks.results import JSON_RESULTS


@flow(name="ingest", persist_result=False, result_serializer=JSON_RESULTS)
def ingest_flow(sources: list[str] | None = None, symbols: list[str] | None = None,
                on_duplicate: str = "reject", align_daily_bars: bool = False) -> dict:
    """Validate then commit ``sources`` to the bars table; returns what was added."""
    options = IngestOptions(symbols=tuple(symbols or ()), on_duplicate=on_duplicate,
                            align_daily_bars=align_daily_bars)
    report = ingest_sources(configure_environment(), sources or ["demo"], options)
    result = report.result
    return {"version": result.version, "rows_added": result.rows_added,
            "rows_unchanged": result.rows_unchanged, "rows_corrected": result.rows_corrected,
            "duplicates_dropped": report.dropped_duplicates}
