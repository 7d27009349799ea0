"""Polars expressions for technical indicators and range-based volatility estimators.

Every function takes and returns ``pl.Expr``, so a feature set computes all its columns in
one lazy query (``select_features``). Polars does not share sub-expressions that contain a
rolling or conditional step, so each indicator names its expensive parts once, and a series
several features read (the MACD line, the fast stochastic) is materialised first. Every
expression is causal: the value at row t reads rows ``<= t`` only, and rows before an
indicator's warm-up are null.

Conventions, chosen to agree with TA-Lib's C library (default compatibility, unstable
period 0) to floating-point rounding; ``tests/unit/test_indicators_talib.py`` checks it:

- ``sma``: mean of the last n values; first value at row n-1.
- ``ema``: alpha = 2 / (n + 1), seeded with the SMA of the first n values at row n-1 (TA-Lib's
  seed, not pandas' ``adjust=True`` weights), then ``y_t = y_{t-1} + alpha (x_t - y_{t-1})``.
- ``wilder`` (Wilder smoothing, RSI and ATR): the same recursion with alpha = 1 / n, seeded
  with the SMA of the first n values.
- ``wma``: weights 1..n, the newest value weighted n; first value at row n-1.
- ``macd_line`` / ``macd``: as TA-Lib, the fast EMA is seeded at row slow-1 with the SMA of the
  ``fast`` values ending there (so both EMAs start together), the signal is the EMA of the
  MACD line seeded with the SMA of its first ``signal`` values; all three outputs start at
  row slow + signal - 2.
- ``bollinger``: SMA middle band, population standard deviation (ddof=0) as TA-Lib.
- ``stochastic_fast_k`` / ``stochastic``: fast %K over ``fastk`` bars, slow %K its SMA over
  ``slowk``, slow %D the SMA of slow %K over ``slowd``; both outputs start at row
  fastk + slowk + slowd - 3 as TA-Lib.
- ``true_range`` starts at row 1, ``atr`` (Wilder-smoothed true range) at row n.

One deliberate departure, on degenerate windows only: where RSI's average gain and loss
are both 0, or the stochastic's high-low range is 0, TA-Lib returns 0 (an "oversold" reading
out of nothing) and these return the neutral 50.

Volatility estimators are per-bar standard deviations of log returns, NOT annualised
(annualising needs the bar frequency and calendar, which the factory applies elsewhere).
Close-to-close and the open/close parts of Yang-Zhang use sample variances (ddof=1);
Parkinson, Garman-Klass and Rogers-Satchell are means of per-bar range terms (no ddof).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping

import polars as pl

TINY = sys.float_info.min
"""Smallest normal float: a clipped denominator that turns 0 / 0 into 0."""


def as_window(name: str, value: int | float, minimum: int = 1) -> int:
    """A window length parameter as an int, refusing non-integral or too-small values.

    Parameters
    ----------
    name
        The parameter's name, quoted in the error.
    value
        The value from the feature set's parameters (YAML may give ``20`` or ``20.0``).
    minimum
        Smallest accepted value.

    Raises
    ------
    ValueError
        If ``value`` is not a whole number ``>= minimum``.
    """
    if isinstance(value, bool) or not float(value).is_integer() or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def select_features(
    bars: pl.DataFrame,
    features: Mapping[str, pl.Expr],
    intermediates: Mapping[str, pl.Expr] | None = None,
) -> pl.DataFrame:
    """``ts`` then every feature as Float64, NaN turned into null, in one lazy query.

    Parameters
    ----------
    bars
        One asset's bars sorted by ``ts``.
    features
        Output column name -> expression.
    intermediates
        Columns computed first and left out of the output, for a series several features
        read (a MACD line): polars does not share sub-expressions that hold a rolling or
        conditional step, so a feature reads such a series as ``pl.col(name)`` instead.
        (For the same reason NaN becomes null after the query: ``fill_nan`` on an
        expression evaluates it twice.)
    """
    columns = [expr.cast(pl.Float64).alias(name) for name, expr in features.items()]
    frame = bars.lazy().with_columns(**intermediates) if intermediates else bars.lazy()
    return finite_only(frame.select(pl.col("ts"), *columns).collect(engine="in-memory"))


def finite_only(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column but ``ts`` as Float64, with NaN and infinities turned into null."""
    value = pl.exclude("ts").cast(pl.Float64)
    return frame.with_columns(pl.when(value.is_finite()).then(value).name.keep())


def log_return(x: pl.Expr, k: int = 1) -> pl.Expr:
    """Log return over ``k`` rows: ``ln(x_t / x_{t-k})``."""
    return (x / x.shift(k)).log()


def sma(x: pl.Expr, n: int) -> pl.Expr:
    """Simple moving average over ``n`` rows."""
    return x.rolling_mean(n)


def wma(x: pl.Expr, n: int) -> pl.Expr:
    """Linearly weighted moving average over ``n`` rows (weights 1..n, newest heaviest)."""
    return x.rolling_mean(n, weights=[float(w) for w in range(1, n + 1)])


def _seeded(x: pl.Expr, n: int, seed_at: int | None = None) -> pl.Expr:
    """``x`` with nulls before its seed row, the SMA of its last ``n`` values at that row.

    The seed row is where the ``seed_at``-th (default ``n``-th) non-null value of ``x`` sits;
    ``ewm_mean(adjust=False)`` then starts from the seed exactly as TA-Lib's recursion does.
    """
    seen = x.is_not_null().cum_sum()
    seed_row = seed_at or n
    return pl.when(seen == seed_row).then(x.rolling_mean(n)).when(seen > seed_row).then(x)


def ema(x: pl.Expr, n: int, seed_at: int | None = None) -> pl.Expr:
    """Exponential moving average, alpha = 2/(n+1), SMA-seeded like TA-Lib.

    Parameters
    ----------
    x
        The series (may start with nulls, e.g. another indicator's warm-up).
    n
        Period.
    seed_at
        Seed at the ``seed_at``-th non-null value instead of the ``n``-th (MACD's fast EMA).
    """
    return _seeded(x, n, seed_at).ewm_mean(alpha=2.0 / (n + 1), adjust=False)


def wilder(x: pl.Expr, n: int) -> pl.Expr:
    """Wilder smoothing: alpha = 1/n, seeded with the SMA of the first ``n`` values."""
    return _seeded(x, n).ewm_mean(alpha=1.0 / n, adjust=False)


def rsi(close: pl.Expr, n: int) -> pl.Expr:
    """Wilder's relative strength index in [0, 100]; first value at row ``n``.

    ``100 G / (G + L)`` with G, L the Wilder-smoothed gains and losses; smoothing is linear, so
    ``G - L`` and ``G + L`` are the smoothed change and absolute change, and the index is
    ``50 (1 + W(change) / W(|change|))``: two smoothings instead of the four that naming G
    and L twice would cost. No move at all (0 / 0; the denominator is clipped at the
    smallest normal float) reads the neutral 50.
    """
    change = close.diff()
    return 50.0 * (1.0 + wilder(change, n) / wilder(change.abs(), n).clip(lower_bound=TINY))


def macd_line(close: pl.Expr, fast: int, slow: int) -> pl.Expr:
    """MACD line as ``talib.MACD`` before trimming: fast EMA (seeded at row slow-1) - slow EMA.

    Raises
    ------
    ValueError
        If ``fast >= slow``.
    """
    if fast >= slow:
        raise ValueError(f"MACD needs fast < slow, got fast={fast}, slow={slow}")
    return ema(close, fast, seed_at=slow) - ema(close, slow)


def macd(line: pl.Expr, signal: int) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """MACD line, signal line and histogram exactly as ``talib.MACD``, given ``macd_line``.

    Pass the line as a column (``select_features`` intermediates): it is read four times.
    The line is trimmed to start where the signal does, as TA-Lib's output.
    """
    signal_line = ema(line, signal)
    trimmed = pl.when(line.shift(signal - 1).is_not_null()).then(line)
    return trimmed, signal_line, trimmed - signal_line


def bollinger(
    close: pl.Expr, n: int, k_up: float = 2.0, k_down: float = 2.0
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Upper, middle and lower Bollinger bands: SMA +- k population standard deviations."""
    middle = close.rolling_mean(n)
    spread = close.rolling_std(n, ddof=0)
    return middle + k_up * spread, middle, middle - k_down * spread


def stochastic_fast_k(high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int) -> pl.Expr:
    """Fast stochastic %K in [0, 100]: where the close sits in the range of the last ``n`` bars.

    Written ``50 + 100 (close - mid) / (high - low)`` with ``mid`` the middle of the range,
    equal to TA-Lib's ``100 (close - low) / (high - low)``; a flat range (the denominator
    clipped at the smallest normal float) reads the neutral 50.
    """
    highest, lowest = high.rolling_max(n), low.rolling_min(n)
    span = (highest - lowest).clip(lower_bound=TINY)
    return 50.0 + 100.0 * (close - 0.5 * (highest + lowest)) / span


def stochastic(fast_k: pl.Expr, slowk: int, slowd: int) -> tuple[pl.Expr, pl.Expr]:
    """Slow %K and %D exactly as ``talib.STOCH`` (SMA smoothings), given the fast %K.

    Pass ``stochastic_fast_k`` as a column (``select_features`` intermediates): both outputs
    read it. Slow %K is trimmed to start where %D does, as TA-Lib's output.
    """
    slow_k = fast_k.rolling_mean(slowk)
    started = fast_k.shift(slowk + slowd - 2).is_not_null()
    return pl.when(started).then(slow_k), slow_k.rolling_mean(slowd)


def true_range(high: pl.Expr, low: pl.Expr, close: pl.Expr) -> pl.Expr:
    """True range: the largest of high-low, |high - prev close|, |low - prev close|."""
    prev = close.shift(1)
    widest = pl.max_horizontal(high - low, (high - prev).abs(), (low - prev).abs())
    return pl.when(prev.is_not_null()).then(widest)


def atr(high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int) -> pl.Expr:
    """Average true range: Wilder-smoothed true range; first value at row ``n``."""
    return wilder(true_range(high, low, close), n)


def close_to_close_vol(close: pl.Expr, n: int) -> pl.Expr:
    """Sample standard deviation (ddof=1) of the last ``n`` one-bar log returns."""
    return log_return(close).rolling_std(n, ddof=1)


def parkinson_vol(high: pl.Expr, low: pl.Expr, n: int) -> pl.Expr:
    """Parkinson (1980): ``sqrt(mean(ln(H/L)^2) / (4 ln 2))`` over ``n`` bars."""
    return ((high / low).log().pow(2).rolling_mean(n) / (4.0 * math.log(2.0))).sqrt()


def garman_klass_vol(
    open_: pl.Expr, high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int
) -> pl.Expr:
    """Garman-Klass (1980): ``sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2))``."""
    body = (2.0 * math.log(2.0) - 1.0) * (close / open_).log().pow(2)
    return (0.5 * (high / low).log().pow(2) - body).rolling_mean(n).sqrt()


def _rogers_satchell_term(open_: pl.Expr, high: pl.Expr, low: pl.Expr, close: pl.Expr) -> pl.Expr:
    return (high / close).log() * (high / open_).log() + (low / close).log() * (low / open_).log()


def rogers_satchell_vol(
    open_: pl.Expr, high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int
) -> pl.Expr:
    """Rogers-Satchell (1991): drift-free, ``sqrt(mean(ln(H/C) ln(H/O) + ln(L/C) ln(L/O)))``."""
    return _rogers_satchell_term(open_, high, low, close).rolling_mean(n).sqrt()


def yang_zhang_vol(
    open_: pl.Expr, high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int
) -> pl.Expr:
    """Yang-Zhang (2000): overnight + k open-to-close + (1-k) Rogers-Satchell variance.

    ``k = 0.34 / (1.34 + (n + 1) / (n - 1))``; the overnight (``ln(O_t / C_{t-1})``) and
    open-to-close (``ln(C_t / O_t)``) variances are sample variances (ddof=1) over ``n`` bars.

    Raises
    ------
    ValueError
        If ``n < 2``.
    """
    if n < 2:
        raise ValueError(f"Yang-Zhang volatility needs a window of at least 2 bars, got {n}")
    k = 0.34 / (1.34 + (n + 1) / (n - 1))
    overnight = (open_ / close.shift(1)).log().rolling_var(n, ddof=1)
    open_close = (close / open_).log().rolling_var(n, ddof=1)
    range_part = _rogers_satchell_term(open_, high, low, close).rolling_mean(n)
    return (overnight + k * open_close + (1.0 - k) * range_part).sqrt()
