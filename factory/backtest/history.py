"""The bars a strategy has seen so far, and nothing after them.

`BarHistory` is filled only from the market events the strategy receives, so a scoring
function given it cannot see a bar after the current one, whatever the data source holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from factory.backtest.bars import VALUE_COLUMNS
from factory.backtest.events import MarketEvent

INITIAL_CAPACITY = 256


class BarHistory:
    """Dense arrays of the bars received so far (at most the last ``window``).

    Parameters
    ----------
    symbols : sequence of str
        The universe, in column order.
    window : int, optional
        Keep only the last ``window`` bars (bounds what a scoring function reads and its
        cost per bar); None keeps every bar.

    Attributes
    ----------
    symbols : tuple of str
    """

    def __init__(self, symbols: Sequence[str], window: int | None = None) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1 or None, got {window}")
        self.symbols = tuple(symbols)
        self.window = window
        capacity = 2 * window if window is not None else INITIAL_CAPACITY
        self._ts = np.empty(capacity, dtype="datetime64[us]")
        self._values = np.empty((len(VALUE_COLUMNS), capacity, len(self.symbols)))
        self._start = 0
        self._stop = 0

    def __len__(self) -> int:
        return self._stop - self._start

    def append(self, market: MarketEvent) -> None:
        """Add the bar of ``market`` (later than every bar held)."""
        if self._stop == len(self._ts):
            self._make_room()
        stop = self._stop
        self._ts[stop] = market.ts
        values = self._values
        values[0, stop], values[1, stop] = market._open, market._high
        values[2, stop], values[3, stop] = market._low, market._close
        values[4, stop] = market._volume
        self._stop = stop + 1
        if self.window is not None and self._stop - self._start > self.window:
            self._start += 1

    def _make_room(self) -> None:
        """Move the kept bars to the front (windowed) or double the storage."""
        kept = slice(self._start, self._stop)
        if self.window is not None:
            length = self._stop - self._start
            self._ts[:length] = self._ts[kept]
            self._values[:, :length] = self._values[:, kept]
        else:
            self._ts = np.concatenate((self._ts, np.empty_like(self._ts)))
            self._values = np.concatenate((self._values, np.empty_like(self._values)), axis=1)
        self._stop -= self._start
        self._start = 0

    def _view(self, array: np.ndarray) -> np.ndarray:
        view = array[self._start:self._stop]
        view.flags.writeable = False
        return view

    @property
    def ts(self) -> np.ndarray:
        """Timestamps held, oldest first, shape ``(n,)``; the last is the current bar."""
        return self._view(self._ts)

    @property
    def open(self) -> np.ndarray:
        """Opens, shape ``(n, S)``, NaN where a symbol had no bar."""
        return self._view(self._values[0])

    @property
    def high(self) -> np.ndarray:
        """Highs, shape ``(n, S)``."""
        return self._view(self._values[1])

    @property
    def low(self) -> np.ndarray:
        """Lows, shape ``(n, S)``."""
        return self._view(self._values[2])

    @property
    def close(self) -> np.ndarray:
        """Closes, shape ``(n, S)``."""
        return self._view(self._values[3])

    @property
    def volume(self) -> np.ndarray:
        """Volumes, shape ``(n, S)``."""
        return self._view(self._values[4])

    def to_frame(self) -> pl.DataFrame:
        """The bars held as the lake returns them: ``symbol, ts, open, high, low, close,
        volume``, sorted by symbol then time, without the (symbol, time) pairs that had no
        bar. This is what ``Predictor.predict_bars`` reads."""
        n, width = len(self), len(self.symbols)
        columns = {"symbol": np.repeat(np.asarray(self.symbols, dtype=object), n),
                   "ts": np.tile(self.ts, width)}
        for k, name in enumerate(VALUE_COLUMNS):
            columns[name] = self._values[k, self._start:self._stop].T.reshape(-1)
        frame = pl.DataFrame(columns, schema_overrides={"symbol": pl.Utf8})
        return frame.filter(pl.col("close").is_not_nan())
