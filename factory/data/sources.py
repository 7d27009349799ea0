"""Where bars come from: real packaged data, user files, and seeded synthetic markets.

Every loader returns the canonical frame of ``schema.normalise_bars`` so that ingest treats
all sources the same way.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from factory.data.schema import DataQualityError, normalise_bars

TIME_ALIASES: tuple[str, ...] = ("ts", "timestamp", "datetime", "date", "time")
SYMBOL_ALIASES: tuple[str, ...] = ("symbol", "ticker")
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")


def _from_pandas_ohlcv(frame: pd.DataFrame, symbol: str, label: str) -> pl.DataFrame:
    """Turn an arch-style pandas frame (Date index, capitalised OHLCV columns) into bars."""
    bars = pl.DataFrame(
        {
            "symbol": symbol,
            "ts": frame.index.to_numpy(),
            **{c.lower(): frame[c].to_numpy() for c in ("Open", "High", "Low", "Close", "Volume")},
        }
    )
    return normalise_bars(bars, label)


def load_demo_bars() -> pl.DataFrame:
    """Load the real daily bars packaged with ``arch``: S&P 500 and NASDAQ, 1999-2018.

    Open, high, low, close and volume are used as traded (not the adjusted close).

    Returns
    -------
    pl.DataFrame
        Canonical bars for symbols ``"SP500"`` and ``"NASDAQ"`` (5031 daily bars each).
    """
    from arch.data import nasdaq, sp500

    return pl.concat(
        [
            _from_pandas_ohlcv(sp500.load(), "SP500", "arch.data.sp500"),
            _from_pandas_ohlcv(nasdaq.load(), "NASDAQ", "arch.data.nasdaq"),
        ]
    ).sort(["symbol", "ts"])


def load_bokeh_stocks(symbols: Sequence[str] = ("AAPL", "GOOG", "IBM", "MSFT")) -> pl.DataFrame:
    """Load the daily stock bars packaged with ``bokeh_sampledata`` (Quandl WIKI, 2000-2013).

    Parameters
    ----------
    symbols
        Tickers to keep; the package holds AAPL, FB, GOOG, IBM and MSFT (unadjusted OHLCV).

    Returns
    -------
    pl.DataFrame
        Canonical bars for the requested symbols.

    Raises
    ------
    ValueError
        If a requested symbol is not in the package.
    """
    from bokeh_sampledata import stocks

    frame = pl.from_pandas(stocks.data)
    unknown = sorted(set(symbols) - set(frame["ticker"].unique().to_list()))
    if unknown:
        raise ValueError(f"bokeh_sampledata.stocks has no symbol(s) {unknown}")
    frame = frame.filter(pl.col("ticker").is_in(list(symbols)))
    return normalise_bars(
        frame.rename({"ticker": "symbol", "date": "ts"}), "bokeh_sampledata.stocks"
    )


def read_bar_file(path: Path, symbol: str | None = None) -> pl.DataFrame:
    """Read a CSV or Parquet file of OHLCV bars of any frequency and asset class.

    Column names are matched case-insensitively. The time column may be called ``ts``,
    ``timestamp``, ``datetime``, ``date`` or ``time`` (first match wins; separate ``date`` and
    ``time`` columns are joined); the symbol column
    ``symbol`` or ``ticker``. Without a symbol column, every row gets ``symbol`` or, failing
    that, the file's stem upper-cased (``btc-usd.csv`` -> ``"BTC-USD"``).

    Parameters
    ----------
    path
        A ``.csv``/``.txt`` or ``.parquet``/``.pq`` file.
    symbol
        Symbol for files without a symbol column.

    Returns
    -------
    pl.DataFrame
        Canonical bars, sorted by ``(symbol, ts)``.

    Raises
    ------
    DataQualityError
        If a required column is missing or timestamps/prices cannot be parsed; the message
        names the file, the column and the offending rows.
    ValueError
        If the file extension is not a supported format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        raw = pl.read_csv(path, infer_schema_length=10_000)
    elif suffix in PARQUET_SUFFIXES:
        raw = pl.read_parquet(path)
    else:
        raise ValueError(f"{path}: unsupported bar file type {suffix!r} (use CSV or Parquet)")
    raw, headers = _canonical_columns(raw)
    if "symbol" not in raw.columns:
        raw = raw.with_columns(symbol=pl.lit(symbol or path.stem.upper()))
    try:
        return normalise_bars(raw, str(path))
    except DataQualityError as error:  # name the columns as the file spells them
        failures = [replace(f, column=headers.get(f.column, f.column)) for f in error.failures]
        raise DataQualityError(failures, error.preamble) from None


def _canonical_columns(raw: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str]]:
    """Rename a file's columns to the canonical lower-case names.

    Returns the renamed frame and, for each canonical column, the header the file used.
    """
    headers = {c.strip().lower(): c for c in raw.columns}
    raw = raw.rename({c: c.strip().lower() for c in raw.columns})
    if {"date", "time"} <= set(raw.columns) and not {"ts", "timestamp", "datetime"} & set(
        raw.columns
    ):  # separate date and time-of-day columns, as in many broker exports
        raw = raw.with_columns(ts=pl.concat_str("date", "time", separator=" ")).drop("date", "time")
        headers["ts"] = f"{headers['date']} + {headers['time']}"
    for canonical, aliases in (("ts", TIME_ALIASES), ("symbol", SYMBOL_ALIASES)):
        found = next((c for c in aliases if c in raw.columns), None)
        if found is not None:
            raw = raw.rename({found: canonical})
            headers[canonical] = headers[found]
    return raw, headers


def synthetic_bars(
    symbols: Sequence[str] = ("SYN",),
    n_bars: int = 1500,
    seed: int = 0,
    signal: float = 0.0,
    start: str = "2015-01-01",
    freq: str = "1d",
) -> pl.DataFrame:
    """Simulate seeded OHLCV bars with regime-switching GARCH volatility and a planted signal.

    Volatility follows a GARCH(1,1) whose long-run level switches between a calm and a
    volatile regime (a two-state Markov chain). Close-to-close log returns follow
    ``r_t = signal * r_{t-1} + eps_t``, so ``signal`` is a true AR(1) coefficient: with
    ``signal=0.5`` the correlation between ``r_t`` and ``r_{t+2}`` is about 0.25, which a model
    can learn; with ``signal=0`` returns are unpredictable from their past.

    Parameters
    ----------
    symbols
        One series per symbol; each symbol's random stream is derived from ``seed`` and its
        name, so a symbol's data does not depend on which other symbols are requested.
    n_bars
        Bars per symbol.
    seed
        Base seed; equal arguments give identical frames.
    signal
        AR(1) coefficient of log returns, in ``(-1, 1)``.
    start
        Timestamp of the first bar.
    freq
        Fixed bar spacing as a polars duration string (``"1d"``, ``"1h"``, ``"15m"``).

    Returns
    -------
    pl.DataFrame
        Canonical bars with consistent OHLC (``low <= open, close <= high``) and positive volume.
    """
    if not -1.0 < signal < 1.0:
        raise ValueError(f"signal must lie in (-1, 1) for a stationary series, got {signal}")
    origin = datetime(2000, 1, 1)
    step = pl.select(pl.lit(origin).dt.offset_by(freq)).item() - origin
    ts = np.datetime64(datetime.fromisoformat(start), "us") + np.arange(n_bars) * np.timedelta64(
        step
    ).astype("timedelta64[us]")
    frames = []
    for symbol in symbols:
        rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
        frames.append(pl.DataFrame({"symbol": symbol, "ts": ts, **_simulate(rng, n_bars, signal)}))
    return normalise_bars(pl.concat(frames), "synthetic")


def _simulate(rng: np.random.Generator, n: int, signal: float) -> dict[str, np.ndarray]:
    """Simulate one symbol's OHLCV arrays (see ``synthetic_bars``)."""
    alpha, beta = 0.08, 0.90
    regime_vol = np.array([0.008, 0.02])  # long-run daily vol: calm, volatile
    stay = np.array([0.985, 0.95])  # probability of staying in the regime for one more bar
    omega = regime_vol**2 * (1.0 - alpha - beta)
    regime_draws, z = rng.random(n), rng.standard_normal(n)
    returns, sigma = np.empty(n), np.empty(n)
    regime, var, eps_prev, r_prev = 0, regime_vol[0] ** 2, 0.0, 0.0
    for t in range(n):
        if regime_draws[t] > stay[regime]:
            regime = 1 - regime
        var = omega[regime] + alpha * eps_prev**2 + beta * var
        sigma[t] = np.sqrt(var)
        eps_prev = sigma[t] * z[t]
        r_prev = returns[t] = signal * r_prev + eps_prev
    close = 100.0 * np.exp(np.cumsum(returns))
    previous_close = np.concatenate([[100.0], close[:-1]])
    open_ = previous_close * np.exp(0.2 * sigma * rng.standard_normal(n))
    body_high, body_low = np.maximum(open_, close), np.minimum(open_, close)
    high = body_high * np.exp(np.abs(0.5 * sigma * rng.standard_normal(n)))
    low = body_low * np.exp(-np.abs(0.5 * sigma * rng.standard_normal(n)))
    volume = 1e6 * (sigma / regime_vol[0]) * np.exp(0.3 * rng.standard_normal(n))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
