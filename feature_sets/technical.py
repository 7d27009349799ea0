"""Classic technical indicators and calendar features, in polars, agreeing with TA-Lib.

Indicators (definitions and seeding in ``feature_sets.indicators``; EMA and Wilder smoothing
are SMA-seeded exactly as TA-Lib) are made scale-free so one model can pool assets and
decades: moving averages as ``MA / close - 1`` (``sma_rel``, ``ema_rel``, ``wma_rel``),
``macd``, ``macd_signal``, ``macd_hist`` and ``atr_rel`` divided by the close, Bollinger bands
as %B (``bb_pct_b``: 0 at the lower band, 1 at the upper, 0.5 if flat) and bandwidth (``bb_width``:
``(upper - lower) / middle``, population std, ddof=0). Oscillators stay raw: ``rsi`` and the
slow stochastic ``stoch_k`` / ``stoch_d`` in [0, 100].

Calendar features read the bar's timestamp as stored (naive UTC): time of day, day of week
and month as sine/cosine pairs (``tod_*``, ``dow_*``, ``month_*``), so 23:59 sits next to 00:00
and December next to January; daily bars have a constant time of day. Holiday flags:
``pre_holiday`` is 1 when the next weekday after the bar's date is an exchange holiday (the
next session comes after a holiday gap), ``post_holiday`` when the previous weekday was one.
Both use only the exchange's REGULAR, rule-based holidays (``exchange_calendars``: XNYS for
``calendar="equity"``), published years ahead and so known at bar t; ad-hoc closures (9/11,
Hurricane Sandy, days of mourning) are left out because they were not known in advance.
``calendar="fx"`` (an over-the-counter market with no exchange) and ``"crypto"`` (24/7)
have no exchange holidays: both flags are 0.

Every column at bar t reads bars ``<= t`` only; warm-up rows are null (the longest is MACD's,
``macd_slow + macd_signal - 2`` rows). Columns are Float64, NaN is null; nothing is annualised.
"""

from __future__ import annotations

import math
from functools import lru_cache

import exchange_calendars
import polars as pl

from feature_sets import indicators as ind
from feature_sets.inputs import FeatureInputs

HOLIDAY_EXCHANGES: dict[str, str | None] = {"equity": "XNYS", "fx": None, "crypto": None}
"""Calendar -> the exchange whose regular holidays the flags follow (None: no holidays)."""

BOUNDS: dict[str, tuple[float | None, float | None]] = {
    r"^(sma|ema|wma)_rel$": (-1.0, None),
    r"^rsi$": (0.0, 100.0),
    r"^stoch_[kd]$": (0.0, 100.0),
    r"^bb_width$": (0.0, None),
    r"^atr_rel$": (0.0, None),
    r"_(sin|cos)$": (-1.0, 1.0),
    r"^(pre|post)_holiday$": (0.0, 1.0),
}
"""Positive averages, bounded oscillators, non-negative widths, unit circle, 0/1 flags."""


@lru_cache(maxsize=32)
def _regular_holidays(exchange: str, first_year: int, last_year: int) -> pl.Series:
    """The exchange's regular holidays (rule-based, no ad-hoc closures) in these years."""
    rules = exchange_calendars.get_calendar(exchange).regular_holidays
    days = rules.holidays(start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    return pl.Series("holiday", [day.date() for day in days], dtype=pl.Date)


def _holidays(bars: pl.DataFrame, calendar: str) -> pl.Series:
    """Regular holidays spanning the bars' dates (plus a year after) for ``calendar``."""
    if calendar not in HOLIDAY_EXCHANGES:
        raise ValueError(f"unknown calendar {calendar!r}; known: {sorted(HOLIDAY_EXCHANGES)}")
    exchange = HOLIDAY_EXCHANGES[calendar]
    if exchange is None or bars.height == 0:
        return pl.Series("holiday", [], dtype=pl.Date)
    first, last = bars["ts"].min(), bars["ts"].max()
    return _regular_holidays(exchange, first.year, last.year + 1)


def _cycle(name: str, phase: pl.Expr) -> dict[str, pl.Expr]:
    """``name_sin`` and ``name_cos`` of a phase in [0, 1)."""
    angle = 2.0 * math.pi * phase
    return {f"{name}_sin": angle.sin(), f"{name}_cos": angle.cos()}


def _calendar_features(holidays: pl.Series) -> dict[str, pl.Expr]:
    """Clock cycles of ``ts`` and the holiday flags (weekday: Monday 1 .. Sunday 7)."""
    ts = pl.col("ts")
    weekday = ts.dt.weekday()
    day = ts.dt.date()
    to_next = pl.when(weekday >= 5).then(8 - weekday).otherwise(1)
    to_prev = pl.when(weekday == 1).then(3).when(weekday == 7).then(2).otherwise(1)
    day_fraction = (ts - ts.dt.truncate("1d")).dt.total_microseconds() / 86_400e6
    return {
        **_cycle("tod", day_fraction),
        **_cycle("dow", (weekday - 1) / 7.0),
        **_cycle("month", (ts.dt.month() - 1) / 12.0),
        "pre_holiday": (day + pl.duration(days=to_next)).is_in(holidays.implode()),
        "post_holiday": (day - pl.duration(days=to_prev)).is_in(holidays.implode()),
    }


def build(
    bars: pl.DataFrame,
    inputs: FeatureInputs,
    sma_period: int = 20,
    ema_period: int = 20,
    wma_period: int = 20,
    rsi_period: int = 14,
    macd_fast: int = 12,
    macd_slow: int = 26,
    macd_signal: int = 9,
    bb_period: int = 20,
    bb_k: float = 2.0,
    stoch_fastk: int = 5,
    stoch_slowk: int = 3,
    stoch_slowd: int = 3,
    atr_period: int = 14,
) -> pl.DataFrame:
    """Technical indicators and calendar features for one asset.

    Parameters
    ----------
    bars
        One asset's OHLCV bars sorted by ``ts``.
    inputs
        Supplies ``calendar`` (``"equity"``, ``"fx"`` or ``"crypto"``) for the holiday flags.
    sma_period, ema_period, wma_period
        Moving-average periods (bars).
    rsi_period, atr_period
        Wilder smoothing periods (bars).
    macd_fast, macd_slow, macd_signal
        MACD EMA periods; ``macd_fast < macd_slow``.
    bb_period, bb_k
        Bollinger window (bars) and band width in standard deviations.
    stoch_fastk, stoch_slowk, stoch_slowd
        Stochastic look-back and its two SMA smoothings (bars).

    Returns
    -------
    pl.DataFrame
        ``ts``, ``ret_1``, the indicators and the calendar features (module docstring).

    Raises
    ------
    ValueError
        On a non-integral or non-positive period, ``bb_k <= 0``, ``macd_fast >= macd_slow``
        or an unknown calendar.
    """
    if not bb_k > 0:
        raise ValueError(f"bb_k must be > 0, got {bb_k!r}")
    high, low, close = pl.col("high"), pl.col("low"), pl.col("close")
    bands = ind.bollinger(close, ind.as_window("bb_period", bb_period, 2), bb_k, bb_k)
    intermediates = {
        "_macd_line": ind.macd_line(close, ind.as_window("macd_fast", macd_fast),
                                    ind.as_window("macd_slow", macd_slow)),
        "_fast_k": ind.stochastic_fast_k(high, low, close,
                                         ind.as_window("stoch_fastk", stoch_fastk)),
        **dict(zip(("_bb_upper", "_bb_middle", "_bb_lower"), bands, strict=True)),
    }
    macd, signal, hist = ind.macd(pl.col("_macd_line"), ind.as_window("macd_signal", macd_signal))
    stoch_k, stoch_d = ind.stochastic(pl.col("_fast_k"), ind.as_window("stoch_slowk", stoch_slowk),
                                      ind.as_window("stoch_slowd", stoch_slowd))
    middle, band = pl.col("_bb_middle"), pl.col("_bb_upper") - pl.col("_bb_lower")
    return ind.select_features(bars, {
        "ret_1": ind.log_return(close),
        "sma_rel": ind.sma(close, ind.as_window("sma_period", sma_period)) / close - 1.0,
        "ema_rel": ind.ema(close, ind.as_window("ema_period", ema_period)) / close - 1.0,
        "wma_rel": ind.wma(close, ind.as_window("wma_period", wma_period)) / close - 1.0,
        "rsi": ind.rsi(close, ind.as_window("rsi_period", rsi_period)),
        "macd": macd / close,
        "macd_signal": signal / close,
        "macd_hist": hist / close,
        "bb_pct_b": 0.5 + (close - middle) / band.clip(lower_bound=ind.TINY),
        "bb_width": band / middle,
        "stoch_k": stoch_k,
        "stoch_d": stoch_d,
        "atr_rel": ind.atr(high, low, close, ind.as_window("atr_period", atr_period)) / close,
        **_calendar_features(_holidays(bars, inputs.calendar)),
    }, intermediates=intermediates)

