"""The ingest flow, for runs triggered from the Prefect UI: the same core function as
``factory ingest`` (read, check, then one atomic Delta commit under the writer lock).

Runs are named ``ingest-<n>-sources`` and log what they read and committed at INFO."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from factory.data.ingest import IngestOptions, ingest_sources
from factory.paths import configure_environment
from tasks.results import JSON_RESULTS

DEFAULT_SOURCES = ["demo", "bokeh"]


def ingest_run_name() -> str:
    """``ingest-<n>-sources``, from the run's ``sources`` parameter."""
    return f"ingest-{len(flow_run.parameters.get('sources') or DEFAULT_SOURCES)}-sources"


@flow(name="ingest", flow_run_name=ingest_run_name, persist_result=False,
      result_serializer=JSON_RESULTS)
def ingest_flow(sources: list[str] | None = None, symbols: list[str] | None = None,
                on_duplicate: str = "reject", align_daily_bars: bool = False) -> dict:
    """Validate then commit ``sources`` to the bars table; returns what was added."""
    log = get_run_logger()
    sources = sources or DEFAULT_SOURCES
    log.info("ingesting %d source(s): %s", len(sources), ", ".join(sources))
    options = IngestOptions(symbols=tuple(symbols or ()), on_duplicate=on_duplicate,
                            align_daily_bars=align_daily_bars)
    report = ingest_sources(configure_environment(), sources, options)
    result = report.result
    log.info("lake version %s: %d rows added, %d corrected, %d unchanged, %d duplicates "
             "dropped", result.version, result.rows_added, result.rows_corrected,
             result.rows_unchanged, report.dropped_duplicates)
    for name, frequency in sorted(report.frequencies.items()):
        log.info("%s: %s", name, frequency.describe())
    return {"version": result.version, "rows_added": result.rows_added,
            "rows_unchanged": result.rows_unchanged, "rows_corrected": result.rows_corrected,
            "duplicates_dropped": report.dropped_duplicates}
