"""Where bars come from: real packaged data, user files, and seeded synthetic markets.

Every loader returns the canonical frame of ``schema.normalise_bars`` so that ingest treats
all sources the same way.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from factory.data.errors import WHOLE_FILE, refuse
from factory.data.names import SYMBOL_RULE, check_symbol, is_valid_symbol
from factory.data.provenance import CSV_SUFFIXES, PROVENANCE_COLUMNS, Locator
from factory.data.schema import DataQualityError, normalise_bars
from factory.data.timeparse import TIME_UNITS, TimeUnit

TIME_ALIASES: tuple[str, ...] = ("ts", "timestamp", "datetime", "date", "time")
SYMBOL_ALIASES: tuple[str, ...] = ("symbol", "ticker")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
INDEX_NAMES: tuple[str, ...] = ("__index_level_0__",)
"""Names pandas gives an unnamed index it saves to Parquet: a time column without a name."""


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


@dataclass(frozen=True)
class ReadOptions:
    """What a bar file's columns cannot say for themselves (the CLI's ``--`` options).

    Parameters
    ----------
    symbol
        Symbol of a single-asset file; overrides the file-name fallback. If the file has a
        symbol column, every row must carry exactly this symbol.
    time_column
        Name of the time column when it is none of ``TIME_ALIASES`` (case-insensitive).
    time_unit
        Unit of a numeric time column that is not ``YYYYMMDD`` (see ``timeparse.TimeUnit``):
        ``s``, ``ms``, ``us``, ``ns`` since the epoch, ``days`` since 1970-01-01, or
        ``excel`` serial days.
    time_format
        A strptime format for the time column; overrides every other rule, applied strictly.

    Raises
    ------
    ValueError
        If ``symbol`` is not a valid symbol or ``time_unit`` is not a known unit.
    """

    symbol: str | None = None
    time_column: str | None = None
    time_unit: TimeUnit | None = None
    time_format: str | None = None

    def __post_init__(self) -> None:
        if self.symbol is not None:
            check_symbol(self.symbol)
        if self.time_unit is not None and self.time_unit not in TIME_UNITS:
            raise ValueError(
                f"time_unit must be one of {', '.join(TIME_UNITS)}; got {self.time_unit!r}"
            )
        if self.time_column is not None and not self.time_column.strip():
            raise ValueError("time_column must be a non-blank column name")


def read_bar_file(path: Path, options: ReadOptions = ReadOptions()) -> pl.DataFrame:  # noqa: B008
    """Read a CSV or Parquet file of OHLCV bars of any frequency and asset class.

    Column names are matched case-insensitively. The time column is ``options.time_column``,
    else the first of ``ts``, ``timestamp``, ``datetime``, ``date``, ``time`` (separate
    ``date`` and ``time`` columns are joined), else an unnamed first column (a pandas index
    saved with ``to_csv``). The symbol column is ``symbol`` or ``ticker``; without one, every
    row gets ``options.symbol`` or, failing that, the file's stem upper-cased
    (``btc-usd.csv`` -> ``"BTC-USD"``). Times are read by the rules of ``timeparse``: what
    would have to be guessed (epoch units, day/month order) is refused instead. Blank CSV
    lines are skipped.

    Parameters
    ----------
    path
        A ``.csv``/``.txt`` or ``.parquet``/``.pq`` file.
    options
        Symbol, time column, time unit and time format, where the file does not say.

    Returns
    -------
    pl.DataFrame
        Canonical bars sorted by ``(symbol, ts)``, plus ``PROVENANCE_COLUMNS``: ``file``
        (``str(path)``) and ``line`` (the CSV line, header = line 1; the Parquet row from 1).

    Raises
    ------
    DataQualityError
        If the file is empty, a column is missing, or values cannot be read safely; the
        message names the file, the column as the file spells it and the lines.
    ValueError
        If the file extension is not a supported format.
    """
    path = Path(path)
    label = str(path)
    raw = read_rows(path, label)
    raw, headers = canonical_columns(raw, options.time_column, label)
    raw = with_symbol(raw, options.symbol, path, headers, label)
    try:
        bars = normalise_bars(
            raw, label, time_unit=options.time_unit, time_format=options.time_format
        )
    except DataQualityError as error:  # name the columns as the file spells them
        failures = [replace(f, column=headers.get(f.column, f.column)) for f in error.failures]
        raise DataQualityError(failures, error.preamble) from None
    if bars.is_empty():
        raise refuse(label, WHOLE_FILE, 0, "no bars: the file has no rows")
    return bars


def read_rows(path: Path, label: str) -> pl.DataFrame:
    """Read a file's rows with ``file``/``line`` provenance; refuse empty or unreadable files.

    Columns of the file named like a provenance column are dropped (they would be shadowed).
    """
    suffix = path.suffix.lower()
    if suffix not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        raise ValueError(f"{path}: unsupported bar file type {suffix!r} (use CSV or Parquet)")
    if path.stat().st_size == 0:
        raise refuse(label, WHOLE_FILE, 0, "no bars: the file is empty")
    is_csv = suffix in CSV_SUFFIXES
    try:
        raw = pl.read_csv(path, infer_schema_length=None) if is_csv else pl.read_parquet(path)
    except pl.exceptions.NoDataError:
        raise refuse(label, WHOLE_FILE, 0, "no bars: the file is empty") from None
    except pl.exceptions.PolarsError as error:
        kind = "CSV" if is_csv else "Parquet"
        problem = f"cannot be read as {kind}: {str(error).strip().splitlines()[0]}"
        ragged = _ragged_line(path) if is_csv else ""
        raise refuse(label, WHOLE_FILE, 0, f"{problem}{ragged}") from None
    own = [c for c in raw.columns if c.strip().lower() in PROVENANCE_COLUMNS]
    raw = raw.drop(own)
    lines = _csv_line_numbers(path, raw.height) if is_csv else pl.int_range(1, raw.height + 1)
    if is_csv and raw.width:  # a blank line reads as a row of nulls: skip it
        raw = raw.with_columns(line=lines).filter(~pl.all_horizontal(pl.exclude("line").is_null()))
    else:
        raw = raw.with_columns(line=lines)
    if raw.is_empty():
        layout = "a header" if is_csv else "columns"
        raise refuse(label, WHOLE_FILE, 0, f"no bars: the file has {layout} but no rows")
    return raw.with_columns(file=pl.lit(label), line=pl.col("line").cast(pl.Int64))


def canonical_columns(
    raw: pl.DataFrame, time_column: str | None, label: str
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Rename a file's columns to the canonical lower-case names.

    Returns the renamed frame and, for each canonical column, the header the file used.
    """
    names = {c: c.strip().lower() for c in raw.columns}
    clashes = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if clashes:
        same = ", ".join(repr(c) for c in raw.columns if names[c] in clashes)
        raise refuse(label, same, raw.height, "columns differ only in case or spaces")
    headers = {new: old for old, new in names.items()}
    raw = raw.rename(names)
    time = _time_column(raw, time_column, headers, label)
    if time is None:  # separate date and time-of-day columns, as in many broker exports
        raw = raw.with_columns(ts=pl.concat_str("date", "time", separator=" ")).drop("date", "time")
        headers["ts"] = f"{headers['date']} + {headers['time']}"
    else:
        if time != "ts" and "ts" in raw.columns:  # --time-column named another column
            raw = raw.drop("ts")
        raw = raw.rename({time: "ts"})
        headers["ts"] = headers[time] if headers[time].strip() else "(unnamed first column)"
    found = next((c for c in SYMBOL_ALIASES if c in raw.columns), None)
    if found is not None:
        raw = raw.rename({found: "symbol"})
        headers["symbol"] = headers[found]
    return raw, headers


def _time_column(
    raw: pl.DataFrame, time_column: str | None, headers: dict[str, str], label: str
) -> str | None:
    """Pick the (renamed) time column; ``None`` means "join the date and time columns"."""
    columns = raw.columns
    if time_column is not None:
        wanted = time_column.strip().lower()
        if wanted in columns:
            return wanted
        problem = f"no column {time_column!r} (from --time-column)"
    else:
        if {"date", "time"} <= set(columns) and not {"ts", "timestamp", "datetime"} & set(columns):
            return None
        found = next((c for c in TIME_ALIASES if c in columns), None)
        found = found or next((c for c in columns if c in INDEX_NAMES), None)
        if found is None and columns and columns[0] in ("", "unnamed: 0"):
            found = columns[0]
        if found is not None:
            return found
        problem = (
            f"no time column: accepted names are {', '.join(TIME_ALIASES)} (any case), or "
            "separate date and time columns; pass --time-column NAME"
        )
    shown = [headers[c] for c in columns if c not in PROVENANCE_COLUMNS]
    raise refuse(label, "ts", raw.height, f"{problem}; the file's columns: {', '.join(shown)}")


def with_symbol(
    raw: pl.DataFrame, symbol: str | None, path: Path, headers: dict[str, str], label: str
) -> pl.DataFrame:
    """Give every row its symbol: the file's column, ``symbol``, or the file name."""
    if "symbol" in raw.columns:
        if symbol is not None:
            differ = raw["symbol"].cast(pl.Utf8).ne_missing(symbol).arg_true()
            if differ.len():
                rule = f"symbol is {symbol} (as given by --symbol)"
                failure = Locator(raw, label).failure(headers["symbol"], differ.to_list(), rule)
                raise DataQualityError([failure])
        return raw
    name = symbol or path.stem.upper()
    if not is_valid_symbol(name):
        problem = (
            f"no symbol column, and the file name gives {name!r}, which is no valid symbol "
            f"({SYMBOL_RULE}): pass --symbol NAME"
        )
        raise refuse(label, "symbol", raw.height, problem)
    return raw.with_columns(symbol=pl.lit(name))


def _csv_line_numbers(path: Path, rows: int) -> pl.Series:
    """The line on which each of a CSV's ``rows`` records starts (header = line 1).

    Usually record ``i`` is on line ``i + 2``; a quoted field spanning several lines breaks
    that, so when the file's newline count disagrees, the records are counted with ``csv``.

    Parameters
    ----------
    path
        The CSV file.
    rows
        How many records (blank lines included) the file was read as, header excluded.

    Returns
    -------
    pl.Series
        ``rows`` Int64 line numbers.
    """
    count, ends_with_newline = _count_newlines(path)
    simple = pl.int_range(2, rows + 2, eager=True, dtype=pl.Int64)
    if count == rows + int(ends_with_newline):
        return simple
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        starts, previous = [], 0
        for _ in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    return pl.Series(starts[1:], dtype=pl.Int64) if len(starts) == rows + 1 else simple


def _ragged_line(path: Path) -> str:
    """Name the first CSV record whose field count differs from the header's, if any."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header, previous = next(reader, []), 1
        for record in reader:
            if record and len(record) != len(header):
                return f" (line {previous + 1} has {len(record)} fields, the header {len(header)})"
            previous = reader.line_num
    return ""


def _count_newlines(path: Path) -> tuple[int, bool]:
    """Count ``\\n`` in a file and say whether it ends with one (reads in 1 MiB chunks)."""
    count, last = 0, b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count, last == b"\n"


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
