"""Reading users' CSV/Parquet bar files never silently gives wrong data.

Every test writes a real file under ``tmp_path`` and reads it with ``read_bar_file``.
"""

from dataclasses import FrozenInstanceError
from datetime import datetime
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from factory.data.quality import validate_bars
from factory.data.schema import (
    BAR_COLUMNS,
    PROVENANCE_COLUMNS,
    DataQualityError,
    normalise_bars,
    safe_child,
)
from factory.data.sources import ReadOptions, read_bar_file

BAR = "1,2,0.5,1.5,10"
"""Open, high, low, close, volume of one valid bar."""


def _csv(tmp_path: Path, name: str, header: str, times: list[str], bar: str = BAR) -> Path:
    """Write a CSV whose time column (first) holds ``times`` and every bar is ``bar``."""
    path = tmp_path / name
    path.write_text("\n".join([header, *(f"{t},{bar}" for t in times)]) + "\n")
    return path


def _frame(ts: list, **columns) -> pl.DataFrame:
    """A user frame of len(ts) valid bars with ``ts`` as given; ``columns`` override."""
    n = len(ts)
    base = {
        "ts": ts,
        "open": [1.0] * n,
        "high": [2.0] * n,
        "low": [0.5] * n,
        "close": [1.5] * n,
        "volume": [10.0] * n,
    }
    return pl.DataFrame({**base, **columns}, strict=False)


def _error(path: Path, options: ReadOptions | None = None) -> DataQualityError:
    with pytest.raises(DataQualityError) as caught:
        read_bar_file(path, options or ReadOptions())
    return caught.value


# 1. Integer dates -------------------------------------------------------------------------


def test_yyyymmdd_integers_in_csv_are_dates(tmp_path):
    path = _csv(tmp_path, "spy.csv", "Date,open,high,low,close,volume", ["20210105", "20210104"])
    assert read_bar_file(path)["ts"].to_list() == [datetime(2021, 1, 4), datetime(2021, 1, 5)]


@pytest.mark.parametrize("dtype", [pl.Int32, pl.Int64, pl.UInt32, pl.Float64])
def test_yyyymmdd_numbers_in_parquet_are_dates(tmp_path, dtype):
    path = tmp_path / "spy.parquet"
    _frame(pl.Series([20210104, 18991231], dtype=dtype)).write_parquet(path)
    assert read_bar_file(path)["ts"].to_list() == [datetime(1899, 12, 31), datetime(2021, 1, 4)]


def test_excel_serial_days_are_refused_with_both_day_count_readings(tmp_path):
    path = _csv(tmp_path, "xl.csv", "Date,open,high,low,close,volume", ["44200", "44201"])
    error = _error(path)
    assert (error.source, error.column) == (str(path), "Date")
    message = str(error)
    assert "44200 is 2021-01-04 as Excel serial days" in message
    assert "--time-unit excel" in message and "--time-unit days" in message


@pytest.mark.parametrize(
    ("value", "unit", "name"),
    [
        (1_609_772_400, "s", "epoch seconds"),
        (1_609_772_400_000, "ms", "epoch milliseconds"),
        (1_609_772_400_000_000, "us", "epoch microseconds"),
        (1_609_772_400_000_000_000, "ns", "epoch nanoseconds"),
    ],
)
def test_epoch_numbers_are_refused_without_a_unit_and_read_with_it(tmp_path, value, unit, name):
    path = _csv(tmp_path, "btc.csv", "timestamp,open,high,low,close,volume", [str(value)])
    message = str(_error(path))
    assert f"{path}: column 'timestamp'" in message
    assert f"looks like {name}" in message and f"pass --time-unit {unit}" in message
    bars = read_bar_file(path, ReadOptions(time_unit=unit))
    assert bars["ts"].to_list() == [datetime(2021, 1, 4, 15, 0)]


@pytest.mark.parametrize(
    ("values", "unit", "expected"),
    [
        ([44200.5, 44201.75], "excel", [datetime(2021, 1, 4, 12), datetime(2021, 1, 5, 18)]),
        ([18631, 18632], "days", [datetime(2021, 1, 4), datetime(2021, 1, 5)]),
        (
            [1609772400.25, 1609772401.0],
            "s",
            [datetime(2021, 1, 4, 15, 0, 0, 250000), datetime(2021, 1, 4, 15, 0, 1)],
        ),
    ],
)
def test_day_counts_and_fractional_epochs_with_a_unit(tmp_path, values, unit, expected):
    path = tmp_path / "x.parquet"
    _frame(values).write_parquet(path)
    assert read_bar_file(path, ReadOptions(time_unit=unit))["ts"].to_list() == expected


def test_float_time_column_is_refused_without_a_unit(tmp_path):
    path = tmp_path / "x.parquet"
    _frame([1609772400.5]).write_parquet(path)
    assert "pass --time-unit s" in str(_error(path))


def test_a_wrong_unit_is_refused_with_the_rows_out_of_range(tmp_path):
    times = ["1609772400000", "1609772460000"]
    path = _csv(tmp_path, "btc.csv", "ts,open,high,low,close,volume", times)
    error = _error(path, ReadOptions(time_unit="s"))
    assert error.column == "ts" and error.rows == 2
    assert "between 1800 and 2200" in str(error) and "lines 2, 3" in str(error)


def test_mostly_yyyymmdd_with_an_invalid_date_names_the_line(tmp_path):
    times = ["20210104", "20210230", "20210105"]
    path = _csv(tmp_path, "spy.csv", "Date,open,high,low,close,volume", times)
    error = _error(path)
    assert error.rows == 1 and "YYYYMMDD" in str(error) and "line 3" in str(error)


# 2. Ambiguous day/month -------------------------------------------------------------------


def test_iso_variants_are_parsed_and_converted_to_utc(tmp_path):
    times = [
        "2021-01-04",
        "2021-01-04T13:00:00Z",
        "2021-01-04 13:00:00.25+05:30",
        "2021/01/05 09:30",
        "2021-01-05T10:00:00.123456789-0100",
    ]
    path = _csv(tmp_path, "iso.csv", "datetime,open,high,low,close,volume", times)
    assert read_bar_file(path)["ts"].to_list() == [
        datetime(2021, 1, 4),
        datetime(2021, 1, 4, 7, 30, 0, 250000),
        datetime(2021, 1, 4, 13),
        datetime(2021, 1, 5, 9, 30),
        datetime(2021, 1, 5, 11, 0, 0, 123456),
    ]


def test_ambiguous_day_month_is_refused_with_both_readings(tmp_path):
    times = ["04/01/2015", "05/01/2015", "06/01/2015"]
    path = _csv(tmp_path, "eu.csv", "Date,open,high,low,close,volume", times)
    error = _error(path)
    assert (error.source, error.column, error.rows) == (str(path), "Date", 3)
    message = str(error)
    assert "'04/01/2015' is 2015-01-04 day-first or 2015-04-01 month-first" in message
    assert "pass --time-format %d/%m/%Y or %m/%d/%Y" in message and "lines 2, 3, 4" in message


def test_one_day_first_value_decides_the_whole_column(tmp_path):
    times = ["4/1/2015", "13/1/2015", "14/1/2015 16:30"]
    path = _csv(tmp_path, "eu.csv", "Date,open,high,low,close,volume", times)
    assert read_bar_file(path)["ts"].to_list() == [
        datetime(2015, 1, 4),
        datetime(2015, 1, 13),
        datetime(2015, 1, 14, 16, 30),
    ]


def test_one_month_first_value_decides_the_whole_column(tmp_path):
    times = ["12/31/2015 09:30:00", "1/4/2016 09:30:00"]
    path = _csv(tmp_path, "us.csv", "Date,open,high,low,close,volume", times)
    assert read_bar_file(path)["ts"].to_list() == [
        datetime(2015, 12, 31, 9, 30),
        datetime(2016, 1, 4, 9, 30),
    ]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (["01/01/2015", "02/02/2015"], [datetime(2015, 1, 1), datetime(2015, 2, 2)]),
        (["24.12.2019", "27.12.2019"], [datetime(2019, 12, 24), datetime(2019, 12, 27)]),
        (
            ["24-12-2019 10:00", "27-12-2019 11:00"],
            [datetime(2019, 12, 24, 10), datetime(2019, 12, 27, 11)],
        ),
        (["13/01/15", "14/01/15"], [datetime(2015, 1, 13), datetime(2015, 1, 14)]),
        (
            ["20190104 10:00", "20190105 10:00"],
            [datetime(2019, 1, 4, 10), datetime(2019, 1, 5, 10)],
        ),
    ],
    ids=["day-equals-month", "dotted", "dashed-with-time", "two-digit-year", "compact"],
)
def test_unambiguous_or_agreeing_formats_are_read(tmp_path, times, expected):
    path = _csv(tmp_path, "x.csv", "Date,open,high,low,close,volume", times)
    assert read_bar_file(path)["ts"].to_list() == expected


def test_mixed_formats_are_refused_naming_lines_under_the_best_format(tmp_path):
    times = ["2015-01-02", "2015-01-05", "06/01/2015", "2015-01-07"]
    path = _csv(tmp_path, "mixed.csv", "Date,open,high,low,close,volume", times)
    error = _error(path)
    assert (error.column, error.rows) == ("Date", 1)
    assert "line 4" in str(error)


def test_explicit_time_format_overrides_and_is_strict(tmp_path):
    times = ["04/01/2015", "05/01/2015"]
    path = _csv(tmp_path, "us.csv", "Date,open,high,low,close,volume", times)
    bars = read_bar_file(path, ReadOptions(time_format="%m/%d/%Y"))
    assert bars["ts"].to_list() == [datetime(2015, 4, 1), datetime(2015, 5, 1)]
    path = _csv(tmp_path, "us.csv", "Date,open,high,low,close,volume", [*times, "2015-05-02"])
    error = _error(path, ReadOptions(time_format="%m/%d/%Y"))
    assert error.rows == 1 and "%m/%d/%Y" in str(error) and "line 4" in str(error)


# 3. Numbers -------------------------------------------------------------------------------


def test_boolean_price_column_is_refused(tmp_path):
    path = tmp_path / "x.parquet"
    _frame([datetime(2021, 1, 4)], close=[True]).write_parquet(path)
    error = _error(path)
    assert error.column == "close" and "Boolean" in str(error)


def test_text_prices_are_refused_naming_lines_beyond_schema_inference(tmp_path):
    times = [
        f"{(datetime(2000, 1, 1) + pd.Timedelta(minutes=i)).isoformat()}" for i in range(10_050)
    ]
    path = _csv(tmp_path, "late.csv", "ts,open,high,low,close,volume", times)
    lines = path.read_text().splitlines()
    lines[10_040] = lines[10_040].replace(",1.5,", ",N/A,")
    path.write_text("\n".join(lines) + "\n")
    error = _error(path)
    assert (error.column, error.rows) == ("close", 1)
    assert "String" in str(error) and "line 10041" in str(error)


def test_numbers_stored_as_text_in_parquet_are_refused_not_coerced(tmp_path):
    path = tmp_path / "x.parquet"
    _frame([datetime(2021, 1, 4)] * 2, volume=["10", "1,000"]).write_parquet(path)
    error = _error(path)
    assert error.column == "volume" and "String" in str(error) and "row 2" in str(error)


@pytest.mark.parametrize("bad", ["inf", "-inf", "NaN", "1e300"])
def test_non_finite_and_absurd_prices_in_a_file_are_caught_with_lines(tmp_path, bad):
    times = ["2021-01-04", "2021-01-05", "2021-01-06"]
    path = _csv(tmp_path, "x.csv", "ts,open,high,low,close,volume", times)
    path.write_text(path.read_text().replace("2021-01-05,1,", f"2021-01-05,{bad},"))
    bars = read_bar_file(path)
    with pytest.raises(DataQualityError) as caught:
        validate_bars(bars, str(path))
    opens = [f for f in caught.value.failures if f.column == "open"]
    assert opens and all("line 3" in f.problem for f in opens)


# 4. Row numbers as in the user's file -----------------------------------------------------


def test_provenance_columns_are_added_and_kept(tmp_path):
    path = _csv(
        tmp_path,
        "spy.csv",
        "Date,open,high,low,close,volume",
        ["2021-01-06", "2021-01-04", "2021-01-05"],
    )
    bars = read_bar_file(path)
    assert PROVENANCE_COLUMNS == ("file", "line")
    assert bars.columns == [*BAR_COLUMNS, *PROVENANCE_COLUMNS]
    assert bars["line"].dtype == pl.Int64 and bars["line"].to_list() == [3, 4, 2]
    assert bars["file"].unique().to_list() == [str(path)]
    unsorted = normalise_bars(bars.reverse(), "again", sort=False)
    assert unsorted.columns == [*BAR_COLUMNS, *PROVENANCE_COLUMNS]
    parquet = tmp_path / "spy.parquet"
    _frame([datetime(2021, 1, 5), datetime(2021, 1, 4)]).write_parquet(parquet)
    assert read_bar_file(parquet)["line"].to_list() == [2, 1]


def test_a_bad_row_out_of_time_order_gets_its_true_line(tmp_path):
    times = ["2021-01-08", "2021-01-07", "2021-01-06", "2021-01-05", "2021-01-04"]
    path = _csv(tmp_path, "rev.csv", "Date,open,high,low,close,volume", times)
    path.write_text(path.read_text().replace("2021-01-07,1,2,", "2021-01-07,1,0.1,"))
    with pytest.raises(DataQualityError) as caught:
        validate_bars(read_bar_file(path), str(path))
    problems = {f.problem for f in caught.value.failures}
    assert "1 row fails 'high >= low' (e.g. line 3)" in problems
    assert "0-based" not in str(caught.value)


def test_read_errors_quote_lines_and_concatenated_files_quote_the_file(tmp_path):
    good = _csv(tmp_path, "a.csv", "Date,open,high,low,close,volume", ["2021-01-04", "2021-01-05"])
    bad = _csv(
        tmp_path,
        "b.csv",
        "Date,open,high,low,close,volume",
        ["2021-01-04", "2021-01-05"],
        bar="1,2,3,1.5,10",
    )
    both = pl.concat([read_bar_file(good), read_bar_file(bad)])
    with pytest.raises(DataQualityError) as caught:
        validate_bars(both, "a.csv,b.csv")
    assert f"{bad} lines 2, 3" in str(caught.value)


def test_line_numbers_survive_quoted_newlines_and_blank_lines(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text(
        "Date,open,high,low,close,volume,note\n"
        '2021-01-04,1,2,0.5,1.5,10,"two\nlines"\n'
        "\n"
        "2021-01-05,1,2,0.5,1.5,10,x\n"
        "2021-01-06,1,2,3,1.5,10,x\n"
    )
    bars = read_bar_file(path)
    assert bars["line"].to_list() == [2, 5, 6]
    with pytest.raises(DataQualityError, match="line 6"):
        validate_bars(bars, str(path))


# 5. Symbols -------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["..", "../x", "A B", "a/b", ".x", "x" * 65, "é"])
def test_bad_symbols_are_refused_naming_value_and_lines(tmp_path, symbol):
    path = tmp_path / "x.csv"
    path.write_text(
        f"symbol,Date,open,high,low,close,volume\nOK,2021-01-04,{BAR}\n"
        f'"{symbol}",2021-01-05,{BAR}\n'
    )
    error = _error(path)
    assert (error.column, error.rows) == ("symbol", 1)
    assert repr(symbol) in str(error) and "line 3" in str(error)


def test_empty_and_padded_symbols_in_a_frame_are_refused():
    frame = _frame([datetime(2021, 1, 4)] * 3, symbol=["", " AAPL", "AAPL"])
    with pytest.raises(DataQualityError) as caught:
        normalise_bars(frame, "mem")
    assert (caught.value.column, caught.value.rows) == ("symbol", 2)
    assert "rows 0, 1" in str(caught.value) and "' AAPL'" in str(caught.value)


@pytest.mark.parametrize("symbol", ["BTC-USD", "ES=F", "^GSPC", "EURUSD:FX", "BRK.B", "x" * 64])
def test_good_symbols_pass(symbol):
    bars = normalise_bars(_frame([datetime(2021, 1, 4)], symbol=[symbol]), "mem")
    assert bars["symbol"].to_list() == [symbol]


def test_a_file_name_that_is_no_symbol_asks_for_one(tmp_path):
    path = _csv(tmp_path, "my data.csv", "Date,open,high,low,close,volume", ["2021-01-04"])
    assert "--symbol" in str(_error(path))
    assert read_bar_file(path, ReadOptions(symbol="MINE"))["symbol"].to_list() == ["MINE"]


def test_safe_child_refuses_paths_that_escape_the_root(tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    assert safe_child(root, "models", "BTC-USD") == (root / "models" / "BTC-USD").resolve()
    for parts in [("..",), ("..", "x"), ("a", "../../x"), ("/etc",)]:
        with pytest.raises(ValueError, match="outside"):
            safe_child(root, *parts)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        safe_child(root, "link", "x")


# 6. Read options --------------------------------------------------------------------------


def test_read_options_are_frozen_and_checked():
    with pytest.raises(FrozenInstanceError):
        ReadOptions().symbol = "X"  # type: ignore[misc]
    with pytest.raises(ValueError, match="time_unit"):
        ReadOptions(time_unit="minutes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbol"):
        ReadOptions(symbol="../etc")


def test_symbol_option_must_match_a_symbol_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(
        f"Ticker,Date,open,high,low,close,volume\nBTC,2021-01-04,{BAR}\nETH,2021-01-05,{BAR}\n"
    )
    error = _error(path, ReadOptions(symbol="BTC"))
    assert (error.column, error.rows) == ("Ticker", 1) and "line 3" in str(error)
    path.write_text(path.read_text().replace("ETH", "BTC"))
    assert read_bar_file(path, ReadOptions(symbol="BTC"))["symbol"].unique().to_list() == ["BTC"]


def test_time_column_option_names_a_column_that_is_no_alias(tmp_path):
    path = tmp_path / "binance.csv"
    path.write_text(f"Open time,open,high,low,close,volume,Close time\n1609772400000,{BAR},0\n")
    bars = read_bar_file(path, ReadOptions(time_column="Open time", time_unit="ms"))
    assert bars["ts"].to_list() == [datetime(2021, 1, 4, 15)]


# 7. A time column without a header --------------------------------------------------------


def test_a_pandas_index_saved_to_csv_is_the_time_column(tmp_path):
    frame = _frame([0.0, 0.0]).drop("ts").to_pandas()
    frame.index = pd.to_datetime(["2021-01-04", "2021-01-05"])
    frame.to_csv(tmp_path / "spy.csv")
    assert read_bar_file(tmp_path / "spy.csv")["ts"].to_list() == [
        datetime(2021, 1, 4),
        datetime(2021, 1, 5),
    ]
    frame.to_parquet(tmp_path / "spy.parquet")
    assert read_bar_file(tmp_path / "spy.parquet")["ts"].len() == 2


def test_no_time_column_lists_accepted_names_and_the_files_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(f"When,open,high,low,close,volume\n2021-01-04,{BAR}\n")
    message = str(_error(path))
    assert "ts, timestamp, datetime, date, time" in message
    assert "--time-column NAME" in message and "When, open, high" in message


# 8. Empty files ---------------------------------------------------------------------------


def test_empty_files_are_refused(tmp_path):
    for name in ("zero.csv", "zero.parquet"):
        (tmp_path / name).write_bytes(b"")
        assert "no bars: the file is empty" in str(_error(tmp_path / name))
    header_only = tmp_path / "header.csv"
    header_only.write_text("Date,open,high,low,close,volume\n")
    error = _error(header_only)
    assert error.source == str(header_only) and "has a header but no rows" in str(error)
    no_rows = tmp_path / "none.parquet"
    _frame([datetime(2021, 1, 4)]).clear().write_parquet(no_rows)
    assert "no rows" in str(_error(no_rows))


def test_metatrader_exports_with_dotted_dates_and_a_time_column(tmp_path):
    path = tmp_path / "eurusd_mt4.csv"
    path.write_text("Date,Time,Open,High,Low,Close,Volume\n"
                    "2020.01.02,00:00,1.1,1.2,1.0,1.15,10\n"
                    "2020.01.02,01:00,1.15,1.2,1.1,1.12,12\n")
    bars = read_bar_file(path, ReadOptions(symbol="EURUSD"))
    assert bars["ts"].to_list() == [datetime(2020, 1, 2, 0), datetime(2020, 1, 2, 1)]
