"""The ingest flow: read each source, validate every file, then commit them in one atomic
Delta commit (a bad file leaves the lake exactly as it was)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from factory.data.lake import Lake
from factory.data.quality import validate_bars
from factory.data.sources import load_bokeh_stocks, load_demo_bars, read_bar_file
from factory.paths import configure_environment

DEMO = "demo"
PACKAGED = {DEMO: load_demo_bars, "bokeh": load_bokeh_stocks}
"""Real daily bars shipped inside PyPI packages: arch (S&P 500, Nasdaq), bokeh_sampledata."""


@task(name="read-and-validate", task_run_name="validate-{source}", cache_policy=NO_CACHE)
def read_and_validate(source: str, symbols: tuple[str, ...]) -> pl.DataFrame:
    """Read one source (a packaged name or a CSV/Parquet path) and validate it."""
    bars = PACKAGED[source]() if source in PACKAGED else read_bar_file(Path(source))
    if symbols:
        bars = bars.filter(pl.col("symbol").is_in(list(symbols)))
    validate_bars(bars, source)
    return bars


@flow(name="ingest")
def ingest_flow(sources: list[str] | None = None, symbols: list[str] | None = None) -> dict:
    """Validate then commit ``sources`` to the bars table; returns what was added."""
    paths = configure_environment()
    sources = sources or [DEMO]
    batches = [read_and_validate(s, tuple(symbols or ())) for s in sources]
    result = Lake(paths.lake).ingest_bars(pl.concat(batches), source=",".join(sources))
    return {"version": result.version, "rows_added": result.rows_added,
            "rows_unchanged": result.rows_unchanged, "rows_corrected": result.rows_corrected}
