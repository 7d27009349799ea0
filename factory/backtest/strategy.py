"""Strategies: each market event becomes a signal of target weights decided at that bar's close.

A target weight is the signed share of equity wanted in a symbol (0.5: long half the equity's
worth; -0.2: short a fifth). What a strategy decides at bar ``t``'s close trades at bar
``t + 1`` (the execution handler's price), the house's timing convention.

Two strategies cover the production uses:

- `TargetWeightStrategy` reads a precomputed table, e.g. the production models' positions
  combined with their allocation, or an optimiser's target weights.
- `PredictorStrategy` calls a scoring function on the bars seen so far, so a served model
  (``factory.training.predictor.Predictor``) trades bar by bar exactly as it would live.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from factory.backtest.bars import ROW, canonical_ts, refuse_rows
from factory.backtest.data import check_universe
from factory.backtest.events import MarketEvent, SignalEvent
from factory.backtest.history import BarHistory

WEIGHT_COLUMNS = ("symbol", "ts", "weight")


class Strategy(ABC):
    """Turns each market event into a signal; ``symbols`` is its universe, in column order."""

    symbols: tuple[str, ...]

    @abstractmethod
    def on_market(self, market: MarketEvent) -> SignalEvent:
        """Target weights decided at ``market``'s close, one per symbol, finite."""


class TargetWeightStrategy(Strategy):
    """Target weights read from a table, as of each bar.

    At a bar at time ``ts`` the signal is the table's latest row at or before ``ts`` (so a
    daily table drives intraday bars, and a bar between two table times keeps the earlier
    weights); before the table's first time, every weight is 0. A symbol without a row at a
    table time is flat (0) at that time.

    Parameters
    ----------
    weights : polars.DataFrame
        Long format: ``symbol``, ``ts`` (the decision time), ``weight`` (finite).
    symbols : sequence of str
        The universe (the data handler's ``symbols``), in column order.

    Raises
    ------
    ValueError
        On a missing column, a weight that is null or not finite, a symbol outside the
        universe, or two weights of a symbol at one time; the message names symbol and rows.
    """

    def __init__(self, weights: pl.DataFrame, symbols: Sequence[str]) -> None:
        self.symbols = check_universe(symbols)
        checked = _check_weights(weights, self.symbols)
        times, row_of = np.unique(checked["ts"].to_numpy(), return_inverse=True)
        column_of = {symbol: j for j, symbol in enumerate(self.symbols)}
        columns = checked["symbol"].replace_strict(column_of, return_dtype=pl.Int64).to_numpy()
        table = np.zeros((len(times), len(self.symbols)))
        table[row_of, columns] = checked["weight"].to_numpy()
        table.flags.writeable = False
        self._stamps = times.astype("datetime64[us]").view(np.int64).tolist()
        if len(self.symbols) == 1:  # floats: the one-symbol path (factory.backtest.scalar)
            self._rows: np.ndarray | list[float] = table[:, 0].tolist()
            self._flat: np.ndarray | float = 0.0
        else:
            self._rows = table
            self._flat = np.zeros(len(self.symbols))
            self._flat.flags.writeable = False
        self._next_row = 0

    def on_market(self, market: MarketEvent) -> SignalEvent:
        """The table's weights as of ``market.ts``."""
        stamps, row, stamp = self._stamps, self._next_row, market.stamp
        while row < len(stamps) and stamps[row] <= stamp:
            row += 1
        self._next_row = row
        return SignalEvent(market.ts, self._rows[row - 1] if row else self._flat)


def _check_weights(weights: pl.DataFrame, symbols: tuple[str, ...]) -> pl.DataFrame:
    """The weight table with canonical types, refusing what `TargetWeightStrategy` cannot use."""
    if not isinstance(weights, pl.DataFrame):
        raise ValueError(f"weights must be a polars DataFrame, got {type(weights).__name__}")
    missing = [c for c in WEIGHT_COLUMNS if c not in weights.columns]
    if missing:
        raise ValueError(f"weights lack the columns {missing}; they need {list(WEIGHT_COLUMNS)}")
    if not isinstance(weights.schema["ts"], pl.Datetime | pl.Date):
        raise ValueError(f"weights: column 'ts' must be Datetime or Date, got "
                         f"{weights.schema['ts']}")
    if not weights.schema["weight"].is_numeric():
        raise ValueError(f"weights: column 'weight' must be numeric, got "
                         f"{weights.schema['weight']}")
    frame = weights.select(pl.col("symbol").cast(pl.Utf8), canonical_ts(weights.schema["ts"]),
                           pl.col("weight").cast(pl.Float64)).with_row_index(ROW)
    for column in WEIGHT_COLUMNS:
        refuse_rows(frame, pl.col(column).is_null(), "weights", f"column {column!r} is null")
    refuse_rows(frame, ~pl.col("weight").is_finite(), "weights",
                "column 'weight' is not finite")
    refuse_rows(frame, ~pl.col("symbol").is_in(list(symbols)), "weights",
                f"the symbol is not in the universe {list(symbols)[:10]}")
    refuse_rows(frame, pl.struct("symbol", "ts").is_duplicated(), "weights",
                "two or more weights of the symbol share a ts")
    return frame.drop(ROW)


WeightFunction = Callable[[BarHistory], np.ndarray]
"""Maps the bars seen so far (the last one is the current bar) to one target weight per
symbol for the current bar; NaN means no view, traded as 0."""


class PredictorStrategy(Strategy):
    """Target weights from a scoring function of the bars seen so far.

    The function gets a `BarHistory` filled only from the market events this strategy
    received, so it cannot read a bar after the current one. To trade a served model::

        def weights(history):
            scored = predictor.predict_bars(history.to_frame())  # rows: symbol, then ts
            ...  # each symbol's position at history.ts[-1], times its allocation

    Parameters
    ----------
    weights_of : callable
        `WeightFunction`: history -> array of one weight per symbol (NaN: flat).
    symbols : sequence of str
        The universe, in column order.
    window : int, optional
        Hand the function at most the last ``window`` bars (a model needs its ``min_bars``;
        indicators with a long memory want more); None hands it every bar.

    Raises
    ------
    ValueError
        From `on_market`, when the function returns the wrong number of weights or an
        infinite one.
    """

    def __init__(self, weights_of: WeightFunction, symbols: Sequence[str],
                 window: int | None = None) -> None:
        self.symbols = check_universe(symbols)
        self.weights_of = weights_of
        self.history = BarHistory(self.symbols, window)

    def on_market(self, market: MarketEvent) -> SignalEvent:
        """Add the bar to the history and ask the function for the weights."""
        self.history.append(market)
        weights = np.array(self.weights_of(self.history), dtype=np.float64).reshape(-1)
        if weights.shape != (len(self.symbols),):
            raise ValueError(f"the weight function returned {weights.size} weights at "
                             f"{market.ts}; the universe has {len(self.symbols)} symbols")
        if np.isinf(weights).any():
            bad = [self.symbols[j] for j in np.flatnonzero(np.isinf(weights))]
            raise ValueError(f"the weight function returned infinite weights for {bad} at "
                             f"{market.ts}")
        weights[np.isnan(weights)] = 0.0
        return SignalEvent(market.ts, weights)
