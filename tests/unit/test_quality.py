"""Great-expectations validation of bars: every failure named by file, column and rows."""

import pickle

import polars as pl
import pytest

from factory.data.quality import MAX_PRICE, MAX_VOLUME, _validator, validate_bars
from factory.data.schema import DataQualityError
from factory.data.sources import load_bokeh_stocks, load_demo_bars, synthetic_bars


def _set(frame: pl.DataFrame, column: str, rows: list[int], value: float | None) -> pl.DataFrame:
    row = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(row.is_in(rows)).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    return synthetic_bars(("AAA", "BBB"), n_bars=40, seed=1)


def test_clean_frame_passes_and_the_gx_context_is_built_once():
    # Speed lives in bench/: here only that repeated calls reuse the one cached context.
    bars = synthetic_bars(("AAA", "BBB"), n_bars=5000, seed=2)
    validate_bars(bars, "synthetic")
    built = _validator.cache_info().currsize
    validate_bars(bars, "synthetic")
    assert _validator.cache_info().currsize == built == 1


def test_every_failure_is_reported_with_file_column_and_row_count(clean):
    bad = _set(clean, "close", [5, 6], None)  # 2 nulls
    bad = _set(bad, "high", [10, 11, 12], 1.0)  # high < low on 3 rows (prices are ~100)
    bad = _set(bad, "volume", [20], -5.0)  # 1 negative volume
    bad = pl.concat([bad, bad.slice(30, 2)])  # rows 30, 31 repeated as rows 80, 81
    with pytest.raises(DataQualityError) as caught:
        validate_bars(bad, "data/x.csv")
    error = caught.value
    message = str(error)
    assert "0-based" in message
    assert "data/x.csv: column 'close': 2 rows fail 'close is not null' (e.g. rows 5, 6)" in message
    assert "data/x.csv: column 'high': 3 rows fail 'high >= low' (e.g. rows 10, 11, 12)" in message
    assert "column 'volume': 1 row fails 'volume >= 0' (e.g. row 20)" in message
    assert "column 'symbol, ts': 4 rows fail '(symbol, ts) is unique'" in message
    assert "rows 30, 31, 80, 81" in message
    assert (error.source, error.column, error.rows) == ("data/x.csv", "close", 2)
    # Exactly these checks fail: a null close is reported once, as a null, and not again by
    # the price-order checks that compare close with high and low.
    assert [(f.column, f.rows, f.problem.split("'")[1]) for f in error.failures] == [
        ("close", 2, "close is not null"),
        ("high", 3, "high >= low"),
        ("high", 3, "high >= open"),
        ("high", 3, "high >= close"),
        ("volume", 1, "volume >= 0"),
        ("symbol, ts", 4, "(symbol, ts) is unique"),
    ]


def test_row_numbers_are_positions_in_the_frame_as_given(clean):
    shuffled = clean.reverse()
    bad = _set(shuffled, "low", [3], -1.0)
    with pytest.raises(DataQualityError) as caught:
        validate_bars(bad, "reversed.parquet")
    assert {f.problem for f in caught.value.failures} == {"1 row fails 'low > 0' (e.g. row 3)"}


def test_low_above_open_and_zero_prices_are_caught(clean):
    bad = _set(clean, "low", [7], 10_000.0)
    bad = _set(bad, "open", [9], 0.0)
    with pytest.raises(DataQualityError) as caught:
        validate_bars(bad, "feed")
    rules = {f.problem.split("'")[1] for f in caught.value.failures}
    assert {"low <= open", "low <= close", "high >= low", "open > 0"} <= rules


@pytest.mark.parametrize("column", ["close", "volume"])
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), 1e300])
def test_non_finite_and_absurd_values_are_caught_once_with_rows(clean, column, bad):
    with pytest.raises(DataQualityError) as caught:
        validate_bars(_set(clean, column, [7], bad), "feed")
    failures = caught.value.failures
    assert all(f.column == column for f in failures)  # not again by the price-order checks
    rule = failures[0].problem.split("'")[1]
    assert len(failures) == 1 and failures[0].problem.endswith("(e.g. row 7)")
    assert rule in {
        f"{column} > 0",
        "volume >= 0",
        f"{column} is finite and <= 1e9",
        "volume is finite and <= 1e18",
    }  # a NaN is not reported as missing


def test_bounds_are_inclusive_and_named():
    assert (MAX_PRICE, MAX_VOLUME) == (1e9, 1e18)
    edge = synthetic_bars(n_bars=3).with_columns(
        open=pl.lit(MAX_PRICE / 2),
        high=pl.lit(MAX_PRICE),
        low=pl.lit(1e-9),
        close=pl.lit(1.0),
        volume=pl.Series([0.0, MAX_VOLUME, 1.0]),
    )
    validate_bars(edge, "edge")
    with pytest.raises(DataQualityError, match="'high is finite and <= 1e9' \\(e.g. row 1\\)"):
        validate_bars(_set(edge, "high", [1], MAX_PRICE * 1.001), "edge")


def test_rows_are_named_by_file_and_line_when_provenance_is_given(clean):
    bad = _set(clean, "low", [3], -1.0).with_columns(
        file=pl.lit("x.parquet"), line=pl.int_range(pl.len(), dtype=pl.Int64) + 101
    )
    with pytest.raises(DataQualityError) as caught:
        validate_bars(bad, "x.parquet")
    assert caught.value.failures[0].problem == "1 row fails 'low > 0' (e.g. row 104)"
    assert "0-based" not in str(caught.value) and "rows count from 1" in str(caught.value)


def test_examples_are_capped_at_five(clean):
    bad = _set(clean, "volume", list(range(12)), -1.0)
    with pytest.raises(DataQualityError, match=r"12 rows fail .* \(e\.g\. rows 0, 1, 2, 3, 4\)$"):
        validate_bars(bad, "feed")


def test_missing_column_raises_before_validation(clean):
    with pytest.raises(DataQualityError, match="column 'volume': missing") as caught:
        validate_bars(clean.drop("volume"), "no_volume.csv")
    assert caught.value.source == "no_volume.csv"


def test_error_survives_pickling(clean):
    with pytest.raises(DataQualityError) as caught:
        validate_bars(_set(clean, "high", [1], None), "feed")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert (copy.source, copy.column, copy.rows) == ("feed", "high", 1)


@pytest.mark.parametrize(
    "load", [load_demo_bars, load_bokeh_stocks], ids=["arch-sp500-nasdaq", "bokeh-stocks"]
)
def test_packaged_real_data_passes_the_suite(load):
    validate_bars(load(), load.__name__)
