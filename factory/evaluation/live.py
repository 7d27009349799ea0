"""Live (paper-trading) evaluation: a model's returns on bars that reached the lake after it
was trained, and running statistics that turn them into metrics incrementally.

Every few minutes the snapshot flow reads a tail of each universe's bars, scores it with
every model in evaluation mode (`live_returns`), and folds only the new decisions into the
model's `LiveStats`; nothing is recomputed from the start of the live period. The timing
conventions are the evaluation's (``factory.training.splits``): decide at bar ``t``'s close,
trade at ``t + 1`` at the execution price, ``label_t = p[t + 2] / p[t + 1] - 1``, costs
``cost_bps / 1e4 * |position_t - position_{t-1}|``, and a bar's portfolio return is the
equal-weighted mean over the assets (``factory.training.fit``). The metrics follow
``factory.evaluation.metrics.trading_metrics`` exactly, prefixed ``live_``; the rolling
Sharpe ratios cover windows of 30, 60 and 90 trading days rather than bars.

Rolling windows are sized as ``factory.evaluation.rating_engine.rate_returns`` sizes them
(`rolling_window_bars`), so live and out-of-sample rolling Sharpe ratios compare.

Numerical note: the variance is kept as a running mean and sum of squared deviations,
merged chunk by chunk (Chan et al.), not as raw sums of ``r`` and ``r**2``: the raw sums
would also do for ~1e5 bars of returns ~1e-2 in float64 (relative error ~1e-13), but the
merge stays exact to rounding whatever the ratio of mean to volatility. Equity compounds in
the same order as ``numpy.cumprod`` over the whole series, so drawdown and recovery match
``trading_metrics`` to the last bit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from factory.data.frequency import TRADING_DAYS, BarFrequency
from factory.evaluation.rating_engine import METRIC_CAP, ROLLING_DAYS
from factory.evaluation.signals import strategy_returns
from factory.training.fit import LABEL_HORIZON
from factory.training.predictor import BAR_COLUMNS, Predictor
from factory.training.splits import label_forward_returns

EXECUTION_PRICES = ("close", "open")
ZERO_STD = 1e-12
"""Standard deviations at or below this count as zero, as in ``trading_metrics``."""
METRIC_NAMES = (
    "live_n_obs", "live_sharpe", "live_sortino", "live_total_return", "live_max_drawdown",
    "live_recovery_bars", "live_win_rate", "live_profit_factor",
    *(f"live_rolling_sharpe_{days}d" for days in ROLLING_DAYS),
)
"""Keys of `LiveStats.metrics`, in order."""
ROW_SCHEMA: dict[str, pl.DataType] = {
    "window_bars": pl.Int64(), "n_obs": pl.Int64(), "mean": pl.Float64(),
    "sq_dev": pl.Float64(), "down_sq": pl.Float64(), "n_wins": pl.Int64(),
    "n_nonzero": pl.Int64(), "gains": pl.Float64(), "losses": pl.Float64(),
    "equity": pl.Float64(), "peak": pl.Float64(), "max_drawdown": pl.Float64(),
    "underwater_bars": pl.Int64(), "longest_recovery": pl.Int64(),
    "last_ts": pl.Datetime("us"), "recent": pl.Utf8(),
}
"""Polars types of `LiveStats.to_row`: pass as ``schema_overrides`` when building a frame,
so that a row of an empty `LiveStats` (``last_ts`` None) still has a Delta-storable type."""


def live_returns(
    predictor: Predictor,
    bars: pl.DataFrame,
    *,
    after: datetime | None,
    cost_bps: float,
    execution_price: str = "close",
    side_tables: Mapping[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """The model's paper-trading portfolio return for each new decision bar with a known label.

    Positions come from ``predictor.predict_bars`` over all of ``bars``; rows are cut to
    ``ts > after`` only afterwards, so the cost of the first new decision is charged against
    the position of the decision bar before it and a series built in several calls equals
    the one built in one call. Before an asset's first complete window its position is flat
    (0) for costs, and it has no return.

    A decision bar ``t`` counts once its label is known: the asset has bars ``t + 1`` and
    ``t + 2``. So that a later call never has to add an asset to a bar already returned,
    bars are only returned up to the latest one labelled for every asset in ``bars``: bars of
    all assets should reach the lake together (ingest and replay do so), and an asset whose
    bars stop coming holds the series back until the caller leaves it out of ``bars``.

    Parameters
    ----------
    predictor : Predictor
        The served model (its feature set, scaler and position rule).
    bars : pl.DataFrame
        ``symbol``, ``ts``, ``open``, ``high``, ``low``, ``close``, ``volume`` of the model's
        universe, any row order: a tail of history. Pass, per asset, every bar after
        ``after`` plus at least ``predictor.min_bars`` bars at or before it (so the decision
        at ``after`` has its position); indicators that smooth over the whole past (the
        ``technical`` set, ARIMA's filter) only converge to the evaluated scores with more,
        so pass a generous tail (several hundred bars) for them.
    after : datetime or None
        Return only decision bars after this time (the ``last_ts`` of the model's
        `LiveStats`); None returns every labelled decision bar. Naive means UTC.
    cost_bps : float
        Cost per unit of turnover in basis points (the spec's ``evaluation.cost_bps``).
    execution_price : {"close", "open"}
        The price trades execute at (the spec's ``evaluation.execution_price``).
    side_tables : mapping of str to pl.DataFrame, optional
        The ``sentiment`` / ``onchain`` rows of the universe, for a model whose feature set
        reads them (``Predictor.predict_bars``).

    Returns
    -------
    pl.DataFrame
        ``ts`` (decision bar), ``ret`` (Float64, the mean over the assets with a return at
        that bar) and ``n_assets`` (Int64), sorted by ``ts``; empty when nothing is new.

    Raises
    ------
    ValueError
        If ``bars`` lack a column, an asset has fewer than ``predictor.min_bars`` bars (or two
        bars share a ``ts``), the execution price is unknown or the cost negative.
    """
    columns = ("symbol", *BAR_COLUMNS)
    missing = [c for c in columns if c not in bars.columns]
    if missing:
        raise ValueError(f"live_returns: the bars lack the columns {missing}; they need "
                         f"{list(columns)}")
    if execution_price not in EXECUTION_PRICES:
        raise ValueError(f"execution_price must be one of {EXECUTION_PRICES}, "
                         f"got {execution_price!r}")
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be >= 0, got {cost_bps}")
    ordered = bars.select(columns).sort("symbol", "ts")
    _check_history(ordered, predictor.min_bars)
    rows = ordered.select("symbol", "ts").with_columns(
        ret=_asset_returns(ordered, predictor, cost_bps, execution_price, side_tables))
    frontier = (rows.filter(pl.col("ret").is_not_nan()).group_by("symbol")
                .agg(pl.col("ts").max()))
    if frontier["symbol"].n_unique() < ordered["symbol"].n_unique():
        return _empty_returns(ordered)
    keep = pl.col("ret").is_not_nan() & (pl.col("ts") <= frontier["ts"].min())
    if after is not None:
        keep &= pl.col("ts") > _naive_utc(after)
    return (rows.filter(keep).group_by("ts")
            .agg(pl.col("ret").mean(), pl.len().cast(pl.Int64).alias("n_assets")).sort("ts"))


def _check_history(ordered: pl.DataFrame, min_bars: int) -> None:
    """Refuse an asset with fewer bars than the model needs for one score."""
    short = ordered.group_by("symbol").len().filter(pl.col("len") < min_bars).sort("symbol")
    if short.height:
        found = ", ".join(f"{s!r}: {n}" for s, n in short.iter_rows())
        raise ValueError(f"live_returns: too few bars ({found}); the model needs at least "
                         f"{min_bars} per asset, plus the new bars")


def _asset_returns(ordered: pl.DataFrame, predictor: Predictor, cost_bps: float,
                   execution_price: str,
                   side_tables: Mapping[str, pl.DataFrame] | None) -> np.ndarray:
    """Net return of every row of ``ordered`` (sorted by symbol, ts); NaN without one."""
    positions = predictor.predict_bars(ordered, side_tables)["position"].to_numpy()
    prices = ordered[execution_price].to_numpy()
    out = np.full(ordered.height, np.nan)
    start = 0
    for length in ordered.group_by("symbol", maintain_order=True).len()["len"].to_list():
        part = slice(start, start + length)
        labels = label_forward_returns(prices[part], horizon=LABEL_HORIZON)
        held = np.nan_to_num(positions[part], nan=0.0)  # no window yet: flat
        net = strategy_returns(held, labels, cost_bps)
        net[np.isnan(positions[part])] = np.nan
        out[part] = net
        start += length
    return out


def _empty_returns(ordered: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(schema={"ts": ordered.schema["ts"], "ret": pl.Float64(),
                                "n_assets": pl.Int64()})


def _naive_utc(moment: datetime) -> datetime:
    """A datetime as naive UTC, the lake's clock (naive input is UTC already)."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def rolling_window_bars(days: float, bars_per_day: float) -> int:
    """Bars in a rolling window of ``days`` trading days: ``max(2, round(days * bars_per_day))``."""
    return max(2, round(days * bars_per_day))


def bars_per_day(frequency: BarFrequency) -> float:
    """Bars per trading day of a stored frequency: its periods per year over its calendar's
    trading days (1 for daily bars; 7 for hourly bars of a 6.5 h equity session)."""
    return frequency.periods_per_year / TRADING_DAYS[frequency.calendar]


@dataclass(frozen=True)
class LiveStats:
    """Running sufficient statistics of a live return series (immutable; `update` copies).

    Attributes
    ----------
    window_bars : int
        Capacity of ``recent``: the longest rolling window, in bars, metrics will ask for.
    n_obs : int
        Finite returns seen.
    mean, sq_dev : float
        Their mean and sum of squared deviations from it (variance ``sq_dev / (n - 1)``).
    down_sq : float
        Sum of ``min(r, 0) ** 2`` (Sortino's downside deviation).
    n_wins, n_nonzero : int
        Positive and nonzero returns.
    gains, losses : float
        Sum of the positive returns, and minus the sum of the negative ones.
    equity, peak : float
        Compounded equity (starting capital 1) and its running peak (at least 1).
    max_drawdown : float
        Largest ``1 - equity / peak`` so far.
    underwater_bars : int
        Bars since equity was last at its peak (0 when at the peak).
    longest_recovery : int
        Longest completed peak-to-recovery span, in bars.
    last_ts : datetime or None
        The last decision bar fed in; the next `live_returns` call starts after it.
    recent : tuple of float
        The last ``window_bars`` finite returns, oldest first.
    """

    window_bars: int
    n_obs: int = 0
    mean: float = 0.0
    sq_dev: float = 0.0
    down_sq: float = 0.0
    n_wins: int = 0
    n_nonzero: int = 0
    gains: float = 0.0
    losses: float = 0.0
    equity: float = 1.0
    peak: float = 1.0
    max_drawdown: float = 0.0
    underwater_bars: int = 0
    longest_recovery: int = 0
    last_ts: datetime | None = None
    recent: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.window_bars < 2:
            raise ValueError(f"window_bars must be at least 2, got {self.window_bars}")

    @classmethod
    def empty(cls, window_bars: int) -> LiveStats:
        """Statistics of no returns, keeping the last ``window_bars`` returns for rolling
        metrics (``rolling_window_bars(max(ROLLING_DAYS), bars_per_day)``)."""
        return cls(window_bars=window_bars)

    def update(self, returns: np.ndarray, last_ts: datetime | None) -> LiveStats:
        """Statistics with ``returns`` (in time order, NaN skipped) appended.

        Parameters
        ----------
        returns : numpy.ndarray
            New per-bar portfolio returns (``live_returns(...)["ret"]``).
        last_ts : datetime or None
            The decision bar of the last of them; required when a return is finite.

        Returns
        -------
        LiveStats
            A new object; ``self`` is unchanged.

        Raises
        ------
        ValueError
            If ``last_ts`` is missing for new returns or not after the stored ``last_ts``
            (the same bars would count twice), or goes back in time.
        """
        r = np.asarray(returns, dtype=np.float64).ravel()
        r = r[np.isfinite(r)]
        self._check_time(last_ts, bool(r.size))
        if not r.size:
            return replace(self, last_ts=last_ts if last_ts is not None else self.last_ts)
        n = self.n_obs + r.size
        chunk_mean = float(r.mean())
        delta = chunk_mean - self.mean
        equity = np.cumprod(np.concatenate(([self.equity], 1.0 + r)))[1:]
        peak = np.maximum.accumulate(np.concatenate(([self.peak], equity)))[1:]
        underwater, longest = self._recovery(equity >= peak)
        return replace(
            self,
            n_obs=n,
            mean=self.mean + delta * r.size / n,
            sq_dev=(self.sq_dev + float(np.sum((r - chunk_mean) ** 2))
                    + delta**2 * self.n_obs * r.size / n),
            down_sq=self.down_sq + float(np.sum(np.minimum(r, 0.0) ** 2)),
            n_wins=self.n_wins + int(np.sum(r > 0)),
            n_nonzero=self.n_nonzero + int(np.count_nonzero(r)),
            gains=self.gains + float(r[r > 0].sum()),
            losses=self.losses - float(r[r < 0].sum()),
            equity=float(equity[-1]),
            peak=float(peak[-1]),
            max_drawdown=max(self.max_drawdown, float(np.max(1.0 - equity / peak))),
            underwater_bars=underwater,
            longest_recovery=longest,
            last_ts=last_ts,
            recent=tuple(np.concatenate((self.recent, r))[-self.window_bars:].tolist()),
        )

    def _check_time(self, last_ts: datetime | None, has_returns: bool) -> None:
        if last_ts is None:
            if has_returns:
                raise ValueError("update: last_ts (the decision bar of the last return) is "
                                 "required with new returns")
            return
        if self.last_ts is not None and (last_ts < self.last_ts
                                         or (has_returns and last_ts == self.last_ts)):
            raise ValueError(f"update: last_ts {last_ts} is not after the stored {self.last_ts};"
                             " these returns were counted already")

    def _recovery(self, at_peak_after: np.ndarray) -> tuple[int, int]:
        """Underwater bars at the end and longest completed recovery, continuing the state.

        Mirrors ``metrics._longest_recovery``: position 0 is the state before the new bars,
        whose last peak lies ``underwater_bars`` bars back.
        """
        at_peak = np.concatenate(([self.underwater_bars == 0], at_peak_after))
        marks = np.where(at_peak, np.arange(at_peak.size), np.iinfo(np.int64).min)
        marks[0] = -self.underwater_bars
        last_peak = np.maximum.accumulate(marks)
        recovered = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1
        spans = recovered - last_peak[recovered - 1]
        longest = max(self.longest_recovery, int(spans.max()) if spans.size else 0)
        return int(at_peak.size - 1 - last_peak[-1]), longest

    def metrics(self, periods_per_year: float, bars_per_day: float) -> dict[str, float]:
        """The live metrics, as ``trading_metrics`` would compute them on every return so far.

        Parameters
        ----------
        periods_per_year : float
            Bars per year of the stored frequency (``BarFrequency.periods_per_year``).
        bars_per_day : float
            Bars per trading day (`bars_per_day`), sizing the 30/60/90-day rolling windows.

        Returns
        -------
        dict of str to float
            The keys of `METRIC_NAMES`; all NaN but ``live_n_obs`` (0) with no returns, and a
            rolling Sharpe is NaN while there are fewer returns than its window.

        Raises
        ------
        ValueError
            If an argument is not positive, or a rolling window exceeds ``window_bars``.
        """
        if not (periods_per_year > 0 and bars_per_day > 0):
            raise ValueError(f"periods_per_year ({periods_per_year}) and bars_per_day "
                             f"({bars_per_day}) must be positive")
        if not self.n_obs:
            return {**dict.fromkeys(METRIC_NAMES, math.nan), "live_n_obs": 0.0}
        std = math.sqrt(self.sq_dev / (self.n_obs - 1)) if self.n_obs > 1 else 0.0
        downside = math.sqrt(self.down_sq / self.n_obs)
        if downside > ZERO_STD:
            sortino = self.mean / downside * math.sqrt(periods_per_year)
        else:
            sortino = METRIC_CAP if self.mean > 0 else 0.0
        if self.losses > 0:
            profit_factor = min(self.gains / self.losses, METRIC_CAP)
        else:
            profit_factor = METRIC_CAP if self.gains > 0 else 0.0
        out = {
            "live_n_obs": float(self.n_obs),
            "live_sharpe": _sharpe(self.mean, std, periods_per_year),
            "live_sortino": float(sortino),
            "live_total_return": self.equity - 1.0,
            "live_max_drawdown": self.max_drawdown,
            "live_recovery_bars": float(max(self.longest_recovery, self.underwater_bars)),
            "live_win_rate": self.n_wins / self.n_nonzero if self.n_nonzero else 0.0,
            "live_profit_factor": float(profit_factor),
        }
        for days in ROLLING_DAYS:
            out[f"live_rolling_sharpe_{days}d"] = self._rolling_sharpe(
                rolling_window_bars(days, bars_per_day), periods_per_year)
        return out

    def _rolling_sharpe(self, window: int, periods_per_year: float) -> float:
        """Sharpe of the last ``window`` returns; NaN while there are fewer."""
        if self.n_obs < window:
            return math.nan
        if window > self.window_bars:
            raise ValueError(f"a rolling window of {window} bars exceeds the {self.window_bars} "
                             "returns kept; start from LiveStats.empty with a larger window")
        last = np.asarray(self.recent[-window:])
        return _sharpe(float(last.mean()), float(last.std(ddof=1)), periods_per_year)

    def to_row(self) -> dict[str, Any]:
        """A flat row for a lake table (types in `ROW_SCHEMA`); ``recent`` as JSON text."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**row, "recent": json.dumps(list(self.recent))}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LiveStats:
        """Rebuild from `to_row`'s row, as read back from a table (other keys are ignored).

        Raises
        ------
        ValueError
            If a key of `ROW_SCHEMA` is missing.
        """
        missing = [name for name in ROW_SCHEMA if name not in row]
        if missing:
            raise ValueError(f"a LiveStats row lacks {missing}")
        values: dict[str, Any] = {}
        for name, dtype in ROW_SCHEMA.items():
            value = row[name]
            if name == "recent":
                value = tuple(float(v) for v in json.loads(value))
            elif name == "last_ts" and value is not None:
                moment = datetime.fromisoformat(value) if isinstance(value, str) else value
                value = _naive_utc(moment)
            elif name != "last_ts":
                value = int(value) if dtype == pl.Int64() else float(value)
            values[name] = value
        return cls(**values)


def _sharpe(mean: float, std: float, periods_per_year: float) -> float:
    """Annualised mean / std, 0 where std is numerically zero."""
    return mean / std * math.sqrt(periods_per_year) if std > ZERO_STD else 0.0
