"""Validate bars with great-expectations before anything is stored.

One ephemeral GX context, data source, batch definition and expectation suite are built
lazily, once per process (building them is slow); each call then only hands a new dataframe
to the cached batch definition. Every failed expectation is collected into one
``DataQualityError`` that names the file, the column(s), the number of offending rows and
example row numbers.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import polars as pl

from factory.data.provenance import ROW_NUMBER_NOTE, Locator
from factory.data.schema import (
    BAR_COLUMNS,
    NUMERIC_COLUMNS,
    PRICE_COLUMNS,
    DataQualityError,
    QualityFailure,
    rows_fail,
)

__all__ = ["MAX_PRICE", "MAX_VOLUME", "ROW_NUMBER_NOTE", "validate_bars"]

# Bounds beyond which a number is a unit or parsing mistake, never a real bar. The dearest
# traded instruments (Berkshire A, bitcoin) cost ~1e6 in their quote currency, so a price
# above 1e9 is a timestamp, a volume or an overflow in the wrong column (a few hyper-inflated
# currencies would need this raised). Volume is counted in units traded: even tokens with
# quadrillions in circulation trade below 1e18 a bar. NaN and infinities fail both bounds.
MAX_PRICE = 1e9
MAX_VOLUME = 1e18

# (column A, column B) pairs that must satisfy A >= B on every bar.
_ORDERED_PAIRS: tuple[tuple[str, str], ...] = (
    ("high", "low"),
    ("high", "open"),
    ("high", "close"),
    ("open", "low"),
    ("close", "low"),
)

_lock = threading.Lock()


@dataclass(frozen=True)
class _Check:
    """One expectation with the column label and rule text used in error messages."""

    expectation: Any
    column: str
    rule: str


@dataclass(frozen=True)
class _Validator:
    """The cached GX objects: a batch definition to feed frames to, a suite, its checks."""

    batch_definition: Any
    suite: Any
    checks: tuple[_Check, ...]


def _short(bound: float) -> str:
    """Write a power-of-ten bound as ``1e9``."""
    mantissa, exponent = f"{bound:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _plausible(column: str) -> str:
    """Name of the copy of a price column that is null where the price is not plausible.

    Price-order checks compare these copies, so that a NaN, infinite or absurd price is
    reported once, by its own bound check, and not again by every comparison it touches.
    """
    return f"plausible_{column}"


def _gx_frame(df: pl.DataFrame) -> Any:
    """The pandas frame GX checks: NaN becomes +inf (pandas would call it null) and every
    price gets its plausible copy (see ``_plausible``)."""
    return df.select(
        *(c for c in BAR_COLUMNS if c not in NUMERIC_COLUMNS),
        pl.col(NUMERIC_COLUMNS).fill_nan(float("inf")),
        *(
            pl.when(pl.col(c).is_between(0, MAX_PRICE, closed="right"))
            .then(pl.col(c))
            .alias(_plausible(c))
            for c in PRICE_COLUMNS
        ),
    ).to_pandas()


def _bar_checks() -> tuple[_Check, ...]:
    """Build the bar expectations, in the order their failures are reported."""
    import great_expectations as gx

    ex = gx.expectations
    checks = [
        _Check(ex.ExpectColumnValuesToNotBeNull(column=c), c, f"{c} is not null")
        for c in BAR_COLUMNS
    ]
    checks += [
        _Check(
            ex.ExpectColumnPairValuesAToBeGreaterThanB(  # among plausible prices only
                column_A=_plausible(a),
                column_B=_plausible(b),
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            # Name the column that is out of place: high for high >= x, low for x >= low.
            a if a == "high" else b,
            f"{a} >= {b}" if a == "high" else f"{b} <= {a}",
        )
        for a, b in _ORDERED_PAIRS
    ]
    checks.append(
        _Check(
            ex.ExpectColumnValuesToBeBetween(column="volume", min_value=0), "volume", "volume >= 0"
        )
    )
    checks += [
        _Check(
            ex.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True), c, f"{c} > 0"
        )
        for c in PRICE_COLUMNS
    ]
    checks.append(
        _Check(
            ex.ExpectColumnValuesToBeBetween(column="volume", max_value=MAX_VOLUME),
            "volume",
            f"volume is finite and <= {_short(MAX_VOLUME)}",
        )
    )
    checks += [
        _Check(
            ex.ExpectColumnValuesToBeBetween(column=c, max_value=MAX_PRICE),
            c,
            f"{c} is finite and <= {_short(MAX_PRICE)}",
        )
        for c in PRICE_COLUMNS
    ]
    checks.append(
        _Check(
            ex.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "ts"]),
            "symbol, ts",
            "(symbol, ts) is unique",
        )
    )
    return tuple(checks)


@cache
def _validator() -> _Validator:
    """Create the process-wide GX context and suite on first use."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX pins some of its child loggers to INFO itself; quiet them all.
    for name in ["great_expectations", *logging.root.manager.loggerDict]:
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("factory_bars").add_dataframe_asset("bars")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    suite = context.suites.add(gx.ExpectationSuite(name="bars"))
    # The suite hands back the stored expectation (with its id): keep that one.
    checks = tuple(
        replace(check, expectation=suite.add_expectation(check.expectation))
        for check in _bar_checks()
    )
    return _Validator(batch_definition, suite, checks)


def validate_bars(df: pl.DataFrame, source: str) -> None:
    """Check bars with great-expectations and raise one error listing every failure.

    Checks: no nulls in any of ``BAR_COLUMNS``; ``high >= low, open, close`` and
    ``low <= open, close``; volume finite and in ``[0, MAX_VOLUME]``; prices finite and in
    ``(0, MAX_PRICE]``; ``(symbol, ts)`` unique.

    Parameters
    ----------
    df
        Bars with the canonical columns (see ``schema.normalise_bars``). With the
        ``PROVENANCE_COLUMNS`` (as ``read_bar_file`` gives), rows are quoted as the user's
        file numbers them ("line 57", "a.csv line 5"); without, as 0-based positions in
        ``df`` as given.
    source
        The file or label the data came from, named in the error.

    Raises
    ------
    DataQualityError
        Listing each failing check with file, column(s), number of offending rows and up to
        five example rows; ``source``/``column``/``rows`` describe the first failure.
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataQualityError(
            [QualityFailure(source, c, df.height, "missing (required column)") for c in missing]
        )
    frame = _gx_frame(df)
    with _lock:
        validator = _validator()
        batch = validator.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(validator.suite, result_format="COMPLETE")
    by_id = {r.expectation_config.id: r for r in outcome.results}
    locate = Locator(df, source)
    failures = [
        _failure(check, by_id[check.expectation.id], locate, df.height)
        for check in validator.checks
        if not by_id[check.expectation.id].success
    ]
    if failures:
        preamble = f"{source}: {len(failures)} data quality check(s) failed ({locate.note()}):"
        raise DataQualityError(failures, preamble=preamble)


def _failure(check: _Check, result: Any, locate: Locator, height: int) -> QualityFailure:
    """Describe one failed GX expectation result."""
    error = result.exception_info
    if error.get("raised_exception"):
        problem = f"check '{check.rule}' could not run: {error['exception_message']}"
        return QualityFailure(locate.source, check.column, height, problem)
    rows = result.result.get("unexpected_index_list") or []
    count = result.result.get("unexpected_count", len(rows))
    problem = rows_fail(count, check.rule, where=locate.where(rows))
    return QualityFailure(locate.source, check.column, count, problem)
