"""Which symbols a factory run trains on, and the one bar frequency they must share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from factory.config import FactoryConfig
from factory.data.frequency import BarFrequency
from factory.data.lake import Lake
from factory.data.span import clip_to_span

DEMO_SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT", "NASDAQ", "SP500")
"""The demo universe: the packaged ``demo`` indices and ``bokeh`` stocks (README: Data)."""


class MissingSymbolsError(LookupError):
    """The run needs symbols the lake does not hold; the message says what to ingest."""


class MixedFrequencyError(ValueError):
    """The universe's symbols do not share one bar frequency; the message lists each one's."""


def resolve_symbols(config: FactoryConfig, lake: Lake) -> tuple[str, ...]:
    """The universe: configured symbols, the demo's six, or every symbol in the lake.

    Raises
    ------
    MissingSymbolsError
        When a wanted symbol is not in the lake (or the lake is empty).
    MixedFrequencyError
        When the symbols differ in bar frequency or calendar (see `universe_frequency`).
    """
    available = set(lake.symbols())
    wanted = config.data.symbols or (DEMO_SYMBOLS if config.data.source == "demo"
                                     else tuple(sorted(available)))
    missing = sorted(set(wanted) - available)
    if missing or not wanted:
        hint = ("--source demo --source bokeh" if config.data.source == "demo"
                else "--source PATH")
        raise MissingSymbolsError(
            f"symbols {missing or '(any)'} are not in the lake at {lake.root}: "
            f"run `factory ingest {hint}` first")
    symbols = tuple(sorted(wanted))
    universe_frequency(lake.bar_frequencies(symbols), symbols)
    return symbols


def universe_frequency(
    frequencies: Mapping[str, BarFrequency], symbols: Sequence[str]
) -> BarFrequency:
    """The one bar frequency every symbol of a universe shares.

    The portfolio return of a bar is the mean of its assets' returns at that timestamp, and
    it is annualised once, so the symbols must share bar size, calendar, bars per year (an
    equity session's length) and, for daily bars, the time of day they are stamped at.

    Parameters
    ----------
    frequencies
        Stored frequency per symbol (``Lake.bar_frequencies``).
    symbols
        The universe.

    Returns
    -------
    BarFrequency
        The shared frequency.

    Raises
    ------
    MixedFrequencyError
        Listing ``symbol -> frequency`` for every symbol, when they differ or one has no
        known frequency.
    """
    unknown = [s for s in symbols if s not in frequencies]
    if unknown:
        raise MixedFrequencyError(
            f"no bar frequency is known for {', '.join(unknown)} (a single bar?): ingest more "
            "bars or leave them out of data.symbols")
    shared = {frequencies[s] for s in symbols}
    if len(shared) > 1:
        listing = "; ".join(f"{s} -> {frequencies[s].describe()}" for s in symbols)
        raise MixedFrequencyError(
            f"the universe mixes bar frequencies or calendars, and the portfolio averages its "
            f"symbols bar by bar: {listing}. Train each frequency in its own run (data.symbols)"
            ", or ingest daily bars with --align-daily-bars to stamp them alike")
    return shared.pop()


@dataclass(frozen=True)
class UniverseReport:
    """What a run will train on, printed before it starts.

    Attributes
    ----------
    symbols
        The universe, sorted.
    frequency
        The bar frequency they share.
    lake_version
        The lake version the run reads.
    spans
        Per symbol: ``(first bar, last bar, bars)``.
    oos_start
        About where the out-of-sample test blocks begin on the universe's timeline.
    bounds
        ``data.start`` and ``data.end`` as configured (a date, ``common`` or None): ``spans``
        are inside them.
    """

    symbols: tuple[str, ...]
    frequency: BarFrequency
    lake_version: int
    spans: dict[str, tuple[datetime, datetime, int]]
    oos_start: datetime
    bounds: tuple[str | None, str | None] = (None, None)

    def without_oos_bars(self) -> list[str]:
        """Symbols whose last bar comes before the out-of-sample period: never tested."""
        return [s for s, (_, last, _) in self.spans.items() if last < self.oos_start]

    def lines(self) -> list[str]:
        """The report as short lines of text."""
        start, end = self.bounds
        within = (f" (data.start {start or 'any'}, data.end {end or 'any'})"
                  if start or end else "")
        out = [f"universe: {len(self.symbols)} symbol(s) from lake v{self.lake_version}{within}, "
               f"{self.frequency.describe()}; out-of-sample from about {self.oos_start:%Y-%m-%d}"]
        out += [f"  {s}: {n} bars {first:%Y-%m-%d} .. {last:%Y-%m-%d}"
                for s, (first, last, n) in self.spans.items()]
        untested = self.without_oos_bars()
        if untested:
            out.append(f"warning: {', '.join(untested)} end(s) before the out-of-sample period: "
                       "they are trained on but never tested (data.end: common ends every "
                       "symbol at the earliest last bar)")
        return out


def describe_universe(config: FactoryConfig, lake: Lake) -> UniverseReport:
    """Resolve the run's universe and say what it spans (see `UniverseReport`).

    Raises
    ------
    MissingSymbolsError, MixedFrequencyError
        As `resolve_symbols`.
    """
    symbols = resolve_symbols(config, lake)
    bounds = (config.data.start, config.data.end)
    bars = clip_to_span(lake.read_bars(symbols=list(symbols)).select("symbol", "ts"), *bounds)
    spans = {s: (one["ts"].min(), one["ts"].max(), one.height)
             for (s,), one in bars.group_by("symbol", maintain_order=True)}
    timeline = bars["ts"].unique().sort()
    test_bars = round(timeline.len() * config.evaluation.test_fraction)
    return UniverseReport(symbols, universe_frequency(lake.bar_frequencies(symbols), symbols),
                          lake.data_version(), dict(sorted(spans.items())),
                          timeline[timeline.len() - max(test_bars, 1)], bounds)
