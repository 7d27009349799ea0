"""Validate bars with great-expectations before anything is stored.

One ephemeral GX context, data source, batch definition and expectation suite are built
lazily, once per process (building them is slow); each call then only hands a new dataframe
to the cached batch definition. Every failed expectation is collected into one
``DataQualityError`` that names the file, the column(s), the number of offending rows and
example row numbers.

The helpers that make that possible are shared with ``feature_quality`` (feature, sentiment and
on-chain suites) and ``data_docs`` (the same suites in a file-backed context): `Check` labels
an expectation with the column and rule its failures are reported under, and `failures_in`
turns a GX validation result back into `QualityFailure` lines in the order of the checks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

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

__all__ = [
    "MAX_PRICE",
    "MAX_VOLUME",
    "ROW_NUMBER_NOTE",
    "GX_LOCK",
    "Check",
    "RowNamer",
    "bar_checks",
    "bars_gx_frame",
    "ephemeral_context",
    "failures_in",
    "quiet_great_expectations",
    "validate_bars",
]

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

GX_LOCK = threading.Lock()
"""One great-expectations call at a time per process: its contexts are not thread-safe."""


class RowNamer(Protocol):
    """Names rows of a validated frame for messages (`provenance.Locator` is one)."""

    source: str

    def where(self, positions: Sequence[int]) -> str:
        """Phrase up to a few 0-based ``positions`` (``"lines 3, 5"``)."""
        ...

    def note(self) -> str:
        """Say how the row numbers in messages count."""
        ...


@dataclass(frozen=True)
class Check:
    """One expectation with the column label and rule text used in error messages."""

    expectation: Any
    column: str
    rule: str

    def labelled(self, order: int) -> Any:
        """The expectation, carrying its label, rule and position in ``meta``.

        Results name their expectation's configuration, so a failure can be described from
        the result alone, in any GX context, and reported in the order the checks were given.
        """
        self.expectation.meta = {"column": self.column, "rule": self.rule, "order": order}
        return self.expectation


@dataclass(frozen=True)
class _Validator:
    """The cached GX objects: a batch definition to feed frames to, and a suite."""

    batch_definition: Any
    suite: Any


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


def bars_gx_frame(df: pl.DataFrame) -> Any:
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


def bar_checks() -> tuple[Check, ...]:
    """Build the bar expectations, in the order their failures are reported."""
    import great_expectations as gx

    ex = gx.expectations
    checks = [
        Check(ex.ExpectColumnValuesToNotBeNull(column=c), c, f"{c} is not null")
        for c in BAR_COLUMNS
    ]
    checks += [
        Check(
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
        Check(
            ex.ExpectColumnValuesToBeBetween(column="volume", min_value=0), "volume", "volume >= 0"
        )
    )
    checks += [
        Check(
            ex.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True), c, f"{c} > 0"
        )
        for c in PRICE_COLUMNS
    ]
    checks.append(
        Check(
            ex.ExpectColumnValuesToBeBetween(column="volume", max_value=MAX_VOLUME),
            "volume",
            f"volume is finite and <= {_short(MAX_VOLUME)}",
        )
    )
    checks += [
        Check(
            ex.ExpectColumnValuesToBeBetween(column=c, max_value=MAX_PRICE),
            c,
            f"{c} is finite and <= {_short(MAX_PRICE)}",
        )
        for c in PRICE_COLUMNS
    ]
    checks.append(
        Check(
            ex.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "ts"]),
            "symbol, ts",
            "(symbol, ts) is unique",
        )
    )
    return tuple(checks)


def quiet_great_expectations() -> None:
    """Silence GX's loggers (it pins some of its child loggers to INFO itself)."""
    for name in ["great_expectations", *logging.root.manager.loggerDict]:
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.ERROR)


@cache
def ephemeral_context() -> Any:
    """The process-wide in-memory GX context, quiet and without progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    quiet_great_expectations()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@cache
def _validator() -> _Validator:
    """Create the process-wide bars suite and batch definition on first use."""
    import great_expectations as gx

    context = ephemeral_context()
    asset = context.data_sources.add_pandas("factory_bars").add_dataframe_asset("bars")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    checks = bar_checks()
    expectations = [check.labelled(i) for i, check in enumerate(checks)]
    suite = context.suites.add(gx.ExpectationSuite(name="bars", expectations=expectations))
    return _Validator(batch_definition, suite)


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
    frame = bars_gx_frame(df)
    with GX_LOCK:
        validator = _validator()
        batch = validator.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(validator.suite, result_format="COMPLETE")
    locate = Locator(df, source)
    failures = failures_in(outcome, locate, df.height)
    if failures:
        preamble = f"{source}: {len(failures)} data quality check(s) failed ({locate.note()}):"
        raise DataQualityError(failures, preamble=preamble)


def failures_in(outcome: Any, locate: RowNamer, height: int) -> list[QualityFailure]:
    """Describe every failed expectation of a GX suite result, in the order of its checks.

    Parameters
    ----------
    outcome
        The suite's validation result (``result_format="COMPLETE"``), whose expectations
        were labelled by `Check.labelled`.
    locate
        Names the rows of the validated frame, by position.
    height
        Rows in the validated frame (the count when a check could not run at all).
    """
    failed = [r for r in outcome.results if not r.success]
    failed.sort(key=lambda r: r.expectation_config.meta["order"])
    return [_failure(result, locate, height) for result in failed]


def _failure(result: Any, locate: RowNamer, height: int) -> QualityFailure:
    """Describe one failed GX expectation result."""
    label = result.expectation_config.meta
    column, rule = label["column"], label["rule"]
    error = result.exception_info
    if error.get("raised_exception"):
        problem = f"check '{rule}' could not run: {error['exception_message']}"
        return QualityFailure(locate.source, column, height, problem)
    rows = result.result.get("unexpected_index_list") or []
    count = result.result.get("unexpected_count", len(rows))
    problem = rows_fail(count, rule, where=locate.where(rows))
    return QualityFailure(locate.source, column, count, problem)
