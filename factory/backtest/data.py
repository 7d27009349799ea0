"""Data handlers: where the engine's market events come from.

`HistoricBars` replays a frame of bars already stored (the backtest); `ReplayFeed` hands out
bars as they arrive (the paper trader): from a lazy source such as a generator polling the
lake, and from `ReplayFeed.append` calls made while the trader runs. Both validate with
`check_bars`, lay the bars out with `to_block` and make their events with the `BarBlock`
(`BarBlock.events`, `BarBlock.event`), so the same bars give the same market events, array
for array.

A data handler is any object with a ``symbols`` tuple (the universe, in column order) that
iterates over `MarketEvent` in strictly increasing time.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np
import polars as pl

from factory.backtest.bars import ROW, BarBlock, check_bars, refuse_rows, to_block
from factory.backtest.events import MarketEvent


class DataHandler(Protocol):
    """What the engine reads bars from."""

    symbols: tuple[str, ...]

    def __iter__(self) -> Iterator[MarketEvent]: ...


def checked_bars(bars: pl.DataFrame,
                 symbols: Sequence[str] | None) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """`check_bars` of ``bars`` and the universe: ``symbols`` as given (`check_universe`),
    else the frame's symbols, sorted."""
    given = check_universe(symbols) if symbols is not None else None
    checked = check_bars(bars, given)
    if given is not None:
        return checked, given
    return checked, tuple(sorted(checked["symbol"].unique().to_list()))


def check_universe(symbols: Sequence[str]) -> tuple[str, ...]:
    """``symbols`` as a tuple of names, refusing an empty or repeating universe."""
    if isinstance(symbols, str):
        raise ValueError(f"symbols must be a sequence of names, got the string {symbols!r}")
    universe = tuple(str(s) for s in symbols)
    if not universe:
        raise ValueError("the universe is empty: pass at least one symbol")
    repeated = sorted(s for s, n in Counter(universe).items() if n > 1)
    if repeated:
        raise ValueError(f"the universe names {repeated} more than once")
    return universe


class HistoricBars:
    """Stored bars, replayed one timestamp at a time.

    Parameters
    ----------
    bars : polars.DataFrame
        ``symbol, ts, open, high, low, close, volume`` (see `check_bars` for what is refused).
        Symbols may start and end at different times: a symbol without a bar at a timestamp
        has NaN there.
    symbols : sequence of str, optional
        The universe and its column order; by default the frame's symbols, sorted.

    Raises
    ------
    ValueError
        On bad bars, naming the column, symbol and rows.
    """

    def __init__(self, bars: pl.DataFrame, symbols: Sequence[str] | None = None) -> None:
        checked, self.symbols = checked_bars(bars, symbols)
        self.block: BarBlock = to_block(checked, self.symbols)

    @property
    def timeline(self) -> np.ndarray:
        """Every timestamp, in order (``datetime64[us]``)."""
        return self.block.ts

    def __len__(self) -> int:
        return len(self.block)

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.block.events()


class ReplayFeed:
    """Bars handed out as they arrive: the paper trader's data source.

    New bars come from two places: ``source``, an iterable of frames pulled lazily (one frame
    only when every bar received before has been handed out, so a generator can poll the
    lake or sleep until the next bar), and `append`, which any code may call while the feed
    runs. A frame may hold one timestamp or many; all bars of one timestamp arrive in the
    same frame (as ingest and ``factory replay`` deliver them), and every frame's bars are
    later than every bar received before.

    Iterating yields every bar available now and stops when none is; iterating again after
    more bars arrived goes on where it stopped.

    Parameters
    ----------
    symbols : sequence of str
        The universe and its column order (a live feed cannot infer it from the first bars).
    source : iterable of polars.DataFrame, optional
        Frames of bars in arrival order.
    """

    def __init__(self, symbols: Sequence[str],
                 source: Iterable[pl.DataFrame] | None = None) -> None:
        self.symbols = check_universe(symbols)
        self._source = iter(source) if source is not None else iter(())
        self._blocks: deque[BarBlock] = deque()
        self._row = 0
        self._last_ts: np.datetime64 | None = None

    @classmethod
    def from_frame(cls, bars: pl.DataFrame, symbols: Sequence[str] | None = None,
                   timestamps_per_frame: int = 1) -> ReplayFeed:
        """Replay a stored frame in time order, ``timestamps_per_frame`` timestamps at a time.

        Each piece goes through the same checks as bars from a live source.
        """
        if timestamps_per_frame < 1:
            raise ValueError(f"timestamps_per_frame must be at least 1, got "
                             f"{timestamps_per_frame}")
        checked, universe = checked_bars(bars, symbols)
        keyed = checked.with_columns(
            ((pl.col("ts").rank("dense") - 1) // timestamps_per_frame).alias("_piece"))
        pieces = keyed.partition_by("_piece", as_dict=True, include_key=False)
        ordered = (pieces[key] for key in sorted(pieces))
        return cls(universe, source=ordered)

    def append(self, bars: pl.DataFrame) -> None:
        """Receive new bars (later than any received before); an empty frame is no news.

        Raises
        ------
        ValueError
            On bad bars, or bars at or before the latest time already received (naming the
            symbol and rows).
        """
        if isinstance(bars, pl.DataFrame) and bars.height == 0:
            return
        checked = check_bars(bars, self.symbols, what="new bars")
        if self._last_ts is not None:
            refuse_rows(checked.with_row_index(ROW), pl.col("ts") <= self._last_ts, "new bars",
                        f"at or before {self._last_ts}, the latest bar already received (bars "
                        "arrive in time order, each timestamp once)")
        block = to_block(checked, self.symbols)
        self._blocks.append(block)
        self._last_ts = block.ts[-1]

    def pending(self) -> int:
        """Timestamps received and not handed out yet (without pulling from the source)."""
        return sum(len(block) for block in self._blocks) - self._row

    def next_event(self) -> MarketEvent | None:
        """The next bar, pulling one frame from the source when nothing is pending; None
        when nothing is available."""
        while not self._blocks or self._row >= len(self._blocks[0]):
            if self._blocks:
                self._blocks.popleft()
                self._row = 0
                continue
            frame = next(self._source, None)
            if frame is None:
                return None
            self.append(frame)
        event = self._blocks[0].event(self._row)
        self._row += 1
        return event

    def __iter__(self) -> Iterator[MarketEvent]:
        while (event := self.next_event()) is not None:
            yield event
