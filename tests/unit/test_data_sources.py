"""Sources: packaged real bars, user files, synthetic markets, and the canonical schema."""

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from factory.data.schema import BAR_COLUMNS, PROVENANCE_COLUMNS, DataQualityError, normalise_bars
from factory.data.sources import (
    ReadOptions,
    load_bokeh_stocks,
    load_demo_bars,
    read_bar_file,
    synthetic_bars,
)

CANONICAL_SCHEMA = {
    "symbol": pl.Utf8,
    "ts": pl.Datetime("us"),
    **dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64),
}


def _lag_autocorrelation(bars: pl.DataFrame, lag: int) -> float:
    returns = np.diff(np.log(bars["close"].to_numpy()))
    return float(np.corrcoef(returns[:-lag], returns[lag:])[0, 1])


def _ohlc_consistent(bars: pl.DataFrame) -> bool:
    return bars.select(
        (pl.col("high") >= pl.max_horizontal("open", "close")).all()
        & (pl.col("low") <= pl.min_horizontal("open", "close")).all()
        & (pl.col("volume") > 0).all()
    ).item()


def test_demo_bars_are_the_real_packaged_indices():
    bars = load_demo_bars()
    assert dict(bars.schema) == CANONICAL_SCHEMA
    counts = dict(bars.group_by("symbol").len().iter_rows())
    assert set(counts) == {"SP500", "NASDAQ"}
    assert all(n > 5000 for n in counts.values())
    assert bars["ts"].min().year == 1999 and bars["ts"].max().year == 2018
    assert (bars["high"] >= bars["low"]).all()
    assert bars.equals(bars.sort("symbol", "ts"))
    first_sp500 = bars.filter(pl.col("symbol") == "SP500").row(0, named=True)
    assert first_sp500["ts"] == datetime(1999, 1, 4)
    assert first_sp500["close"] == pytest.approx(1228.099976)  # the close, not Adj Close


def test_bokeh_stocks_selects_requested_tickers():
    bars = load_bokeh_stocks(("AAPL", "GOOG"))
    assert set(bars["symbol"].unique()) == {"AAPL", "GOOG"}
    goog_start = bars.filter(pl.col("symbol") == "GOOG")["ts"].min()
    assert goog_start == datetime(2004, 8, 19)
    with pytest.raises(ValueError, match="NOPE"):
        load_bokeh_stocks(("AAPL", "NOPE"))


def test_read_csv_with_capitalised_headers_takes_symbol_from_file_stem(tmp_path):
    path = tmp_path / "spy.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-03,10.0,11.0,9.5,10.5,10.4,1000\n"
        "2020-01-02,9.0,10.2,8.8,10.0,9.9,1200\n"
    )
    bars = read_bar_file(path)
    assert bars.columns == [*BAR_COLUMNS, *PROVENANCE_COLUMNS]
    assert dict(bars.select(BAR_COLUMNS).schema) == CANONICAL_SCHEMA
    assert bars["symbol"].to_list() == ["SPY", "SPY"]
    assert bars["ts"].to_list() == [datetime(2020, 1, 2), datetime(2020, 1, 3)]
    assert bars["close"].to_list() == [10.0, 10.5]


def test_read_parquet_hourly_crypto_converts_timestamps_to_utc(tmp_path):
    start = datetime(2024, 3, 1, 9)
    hours = 48
    ts = pl.datetime_range(start, start + timedelta(hours=hours - 1), "1h", eager=True)
    close = 60_000 + np.arange(hours, dtype=float)
    pl.DataFrame(
        {
            "timestamp": ts.dt.replace_time_zone("Asia/Tokyo"),
            "open": close - 5,
            "high": close + 20,
            "low": close - 20,
            "close": close,
            "volume": np.full(hours, 3.5),
        }
    ).write_parquet(tmp_path / "btc-usd.parquet")
    bars = read_bar_file(tmp_path / "btc-usd.parquet")
    assert bars["symbol"].unique().to_list() == ["BTC-USD"]
    assert bars.height == hours
    assert bars["ts"].dtype == pl.Datetime("us")  # naive, UTC meaning
    assert bars["ts"][0] == start - timedelta(hours=9)  # 09:00 Tokyo is 00:00 UTC
    assert bars["ts"].diff().drop_nulls().unique().to_list() == [timedelta(hours=1)]


def test_read_file_symbol_from_ticker_column_or_argument(tmp_path):
    rows = "2021-05-01T00:00:00Z,1,2,0.5,1.5,10\n"
    (tmp_path / "mixed.csv").write_text("Ticker,datetime,open,high,low,close,volume\nETH," + rows)
    (tmp_path / "plain.csv").write_text("time,open,high,low,close,volume\n" + rows)
    assert read_bar_file(tmp_path / "mixed.csv")["symbol"].to_list() == ["ETH"]
    plain = read_bar_file(tmp_path / "plain.csv", ReadOptions(symbol="SOL"))
    assert plain["symbol"].to_list() == ["SOL"]


def test_unparseable_timestamps_name_file_column_and_rows(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2020-01-02,1,2,0.5,1.5,10\n"
        "not a date,1,2,0.5,1.5,10\n"
        "2020-01-04,1,2,0.5,1.5,10\n"
        "2020-13-45,1,2,0.5,1.5,10\n"
    )
    with pytest.raises(DataQualityError) as caught:
        read_bar_file(path)
    error = caught.value
    assert (error.source, error.column, error.rows) == (str(path), "Date", 2)
    # Lines as the file numbers them (header = line 1), not 0-based positions.
    assert str(path) in str(error) and "'Date'" in str(error) and "lines 3, 5" in str(error)


def test_missing_column_is_named():
    frame = pl.DataFrame({"symbol": ["X"], "ts": [datetime(2020, 1, 1)], "open": [1.0]})
    with pytest.raises(DataQualityError, match="prices.csv: column 'high': missing") as caught:
        normalise_bars(frame, "prices.csv")
    assert [f.column for f in caught.value.failures] == ["high", "low", "close", "volume"]


def test_normalise_reads_epoch_milliseconds_only_when_told_and_sorts():
    epoch_ms = [1_700_003_600_000, 1_700_000_000_000]
    frame = pl.DataFrame(
        {"symbol": ["B", "A"], "ts": epoch_ms, "open": [1, 1], "high": [2, 2], "low": [1, 1]}
    ).with_columns(close=pl.lit(1.5), volume=pl.lit(7))
    with pytest.raises(DataQualityError, match="looks like epoch milliseconds"):
        normalise_bars(frame, "epoch")  # the unit is never guessed from the magnitude
    bars = normalise_bars(frame, "epoch", time_unit="ms")
    assert dict(bars.schema) == CANONICAL_SCHEMA
    assert bars["symbol"].to_list() == ["A", "B"]
    assert bars["ts"].to_list() == [
        datetime(2023, 11, 14, 22, 13, 20),
        datetime(2023, 11, 14, 23, 13, 20),
    ]


def test_synthetic_bars_are_seeded_and_per_symbol():
    first = synthetic_bars(("AAA", "BBB"), n_bars=300, seed=7)
    assert first.equals(synthetic_bars(("AAA", "BBB"), n_bars=300, seed=7))
    assert not first.equals(synthetic_bars(("AAA", "BBB"), n_bars=300, seed=8))
    closes = first.partition_by("symbol", as_dict=True)
    assert not np.allclose(closes[("AAA",)]["close"], closes[("BBB",)]["close"])
    alone = synthetic_bars(("BBB",), n_bars=300, seed=7)
    assert alone.equals(closes[("BBB",)])  # a symbol's data ignores the other symbols
    assert _ohlc_consistent(first)


def test_synthetic_signal_is_a_learnable_lag_two_dependence():
    planted = synthetic_bars(n_bars=5000, seed=3, signal=0.5)
    noise = synthetic_bars(n_bars=5000, seed=3, signal=0.0)
    assert _lag_autocorrelation(planted, 2) > 0.1
    assert abs(_lag_autocorrelation(noise, 2)) < 0.05
    assert _ohlc_consistent(planted) and _ohlc_consistent(noise)


def test_synthetic_frequency_and_start():
    bars = synthetic_bars(n_bars=10, start="2024-01-01T06:00", freq="15m")
    assert bars["ts"][0] == datetime(2024, 1, 1, 6)
    assert bars["ts"][-1] == datetime(2024, 1, 1, 8, 15)
    with pytest.raises(ValueError, match="stationary"):
        synthetic_bars(signal=1.0)


def test_separate_date_and_time_columns_are_joined(tmp_path):
    path = tmp_path / "eurusd.csv"
    path.write_text(
        "Date,Time,Open,High,Low,Close,Volume\n"
        "2022-06-01,13:30:00,1.07,1.08,1.06,1.075,0\n"
        "2022-06-01,25:99:00,1.07,1.08,1.06,1.075,0\n"
    )
    with pytest.raises(DataQualityError, match="column 'Date \\+ Time': 1 row fails .* line 3"):
        read_bar_file(path)
    path.write_text(path.read_text().replace("25:99", "14:30"))
    assert read_bar_file(path)["ts"].to_list() == [
        datetime(2022, 6, 1, 13, 30),
        datetime(2022, 6, 1, 14, 30),
    ]
    with pytest.raises(ValueError, match="unsupported bar file type '.xlsx'"):
        read_bar_file(tmp_path / "bars.xlsx")
