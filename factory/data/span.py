"""The span of history a run trains and evaluates on (``data.start`` / ``data.end``).

A universe whose symbols end at different dates has one walk-forward timeline: its test
blocks are the last bars of the *union* of timestamps, so a symbol that ends years before
the others (the packaged ``bokeh`` stocks end in March 2013, the ``arch`` indices in 2018) is
trained on but never tested, and a portfolio of the universe has signals for the indices
only. ``end: common`` cuts every symbol at the earliest last bar, ``start: common`` at the
latest first bar; a date cuts at that day.

The bounds are resolved from the bars themselves, so the same configuration on the same lake
version always reads the same rows: reproducible with ``--lake-version``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

COMMON = "common"
"""The bound every symbol of the universe shares: the latest first bar, the earliest last."""


def check_bound(value: str | None, name: str) -> str | None:
    """``value`` if it is None, ``common`` or an ISO date (``YYYY-MM-DD``).

    Raises
    ------
    ValueError
        Naming ``name`` and what it accepts.
    """
    if value is None or value == COMMON:
        return value
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is {value!r}: expected a date YYYY-MM-DD, 'common' or "
                         "nothing") from None
    return value


def span_bounds(bars: pl.DataFrame, start: str | None, end: str | None
                ) -> tuple[datetime | None, datetime | None]:
    """The first and last timestamps a run keeps, both inclusive (None: unbounded).

    Parameters
    ----------
    bars : pl.DataFrame
        The universe's bars (``symbol``, ``ts``).
    start, end : str or None
        ``data.start`` and ``data.end``: a date, ``common`` or None.

    Returns
    -------
    tuple
        ``(first, last)`` in the time zone of ``ts``; a date's end bound is its last
        microsecond.
    """
    firsts_lasts = bars.group_by("symbol").agg(pl.col("ts").min().alias("first"),
                                                pl.col("ts").max().alias("last"))
    zone = bars.schema["ts"].time_zone if isinstance(bars.schema["ts"], pl.Datetime) else None

    def at(day: str, shift: timedelta) -> datetime:
        moment = datetime.combine(date.fromisoformat(day), datetime.min.time()) + shift
        return pl.select(pl.lit(moment).dt.replace_time_zone(zone)).item() if zone else moment

    first = (firsts_lasts["first"].max() if start == COMMON else
             at(start, timedelta(0)) if start else None)
    last = (firsts_lasts["last"].min() if end == COMMON else
            at(end, timedelta(days=1, microseconds=-1)) if end else None)
    return first, last


def clip_to_span(bars: pl.DataFrame, start: str | None, end: str | None) -> pl.DataFrame:
    """The rows of ``bars`` inside ``span_bounds(bars, start, end)``.

    Raises
    ------
    ValueError
        When the span keeps no bar of some symbol (the message names them and the span).
    """
    if start is None and end is None:
        return bars
    first, last = span_bounds(bars, start, end)
    kept = bars
    if first is not None:
        kept = kept.filter(pl.col("ts") >= first)
    if last is not None:
        kept = kept.filter(pl.col("ts") <= last)
    emptied = sorted(set(bars["symbol"].unique()) - set(kept["symbol"].unique()))
    if emptied:
        raise ValueError(f"data.start {start!r} .. data.end {end!r} ({first} .. {last}) keeps "
                         f"no bar of {', '.join(emptied)}: widen the span or leave them out "
                         "of data.symbols")
    return kept


def span_tag(start: str | None, end: str | None) -> str:
    """A short, path-safe name of the span for cache paths (``""`` when unbounded)."""
    if start is None and end is None:
        return ""
    return f"-from{start or 'any'}-to{end or 'any'}"
