"""Which symbols a factory run trains on, and the one bar frequency they must share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from factory.config import FactoryConfig
from factory.data.frequency import BarFrequency
from factory.data.lake import Lake

DEMO_SYMBOLS = ("NASDAQ", "SP500")


class MissingSymbolsError(LookupError):
    """The run needs symbols the lake does not hold; the message says what to ingest."""


class MixedFrequencyError(ValueError):
    """The universe's symbols do not share one bar frequency; the message lists each one's."""


def resolve_symbols(config: FactoryConfig, lake: Lake) -> tuple[str, ...]:
    """The universe: configured symbols, the demo pair, or every symbol in the lake.

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
        hint = "--source demo" if config.data.source == "demo" else "--source PATH"
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
