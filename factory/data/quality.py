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

from factory.data.schema import (
    BAR_COLUMNS,
    PRICE_COLUMNS,
    DataQualityError,
    QualityFailure,
    rows_fail,
)

ROW_NUMBER_NOTE = "row numbers are 0-based positions in the frame as given"

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
            ex.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing"
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
    ``low <= open, close``; ``volume >= 0``; prices ``> 0``; ``(symbol, ts)`` unique.

    Parameters
    ----------
    df
        Bars with the canonical columns (see ``schema.normalise_bars``); row order is kept,
        so reported row numbers are 0-based positions in ``df`` as given.
    source
        The file or label the data came from, named in the error.

    Raises
    ------
    DataQualityError
        Listing each failing check with file, column(s), number of offending rows and up to
        five example row numbers; ``source``/``column``/``rows`` describe the first failure.
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataQualityError(
            [QualityFailure(source, c, df.height, "missing (required column)") for c in missing]
        )
    frame = df.select(BAR_COLUMNS).to_pandas()
    with _lock:
        validator = _validator()
        batch = validator.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(validator.suite, result_format="COMPLETE")
    by_id = {r.expectation_config.id: r for r in outcome.results}
    failures = [
        _failure(check, by_id[check.expectation.id], source, df.height)
        for check in validator.checks
        if not by_id[check.expectation.id].success
    ]
    if failures:
        preamble = f"{source}: {len(failures)} data quality check(s) failed ({ROW_NUMBER_NOTE}):"
        raise DataQualityError(failures, preamble=preamble)


def _failure(check: _Check, result: Any, source: str, height: int) -> QualityFailure:
    """Describe one failed GX expectation result."""
    error = result.exception_info
    if error.get("raised_exception"):
        problem = f"check '{check.rule}' could not run: {error['exception_message']}"
        return QualityFailure(source, check.column, height, problem)
    rows = sorted(result.result.get("unexpected_index_list") or [])
    count = result.result.get("unexpected_count", len(rows))
    return QualityFailure(source, check.column, count, rows_fail(count, check.rule, rows))
