"""Great-expectations suites for feature sets and for the sentiment and on-chain tables.

A feature set's suite is built from its ``BOUNDS`` (column regex -> inclusive bounds) and the
columns it produced: after the warm-up (from the first row where every feature is non-null)
every value must be non-null and finite, and each column in which a regex is found
(``re.search``, so anchor it with ``^``/``$``; several matches intersect) must lie within its
bounds, give or take ``ROUNDING``. Side tables get fixed suites from their
`side_tables.SideSchema`. A suite is prepared as a `PreparedSuite` (checks plus the
frame GX reads), so the same suite runs in the cached in-memory context here (`validate`,
raising one ``DataQualityError``) and in the file-backed context of ``data_docs``.

Frames are sliced past the warm-up in polars before GX sees them, and NaN is handed to GX as
+inf (pandas would call it null), so one batch per suite answers every check.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from factory.data.errors import DataQualityError, QualityFailure
from factory.data.provenance import Locator
from factory.data.quality import (
    GX_LOCK,
    Check,
    RowNamer,
    bar_checks,
    bars_gx_frame,
    ephemeral_context,
    failures_in,
)
from factory.data.side_tables import side_schema

__all__ = ["PreparedSuite", "after_warm_up", "bars_suite", "feature_checks", "feature_suite",
           "side_table_suite", "validate", "validate_features", "validate_side_table",
           "warm_up_gap"]

Bounds = dict[str, tuple[float | None, float | None]]
_LARGEST = sys.float_info.max
ROUNDING = 1e-9
"""Relative slack on bounds for floating-point rounding: an RSI of 100 computed as
100.00000000000001 is at its bound, not past it."""
_NOT_FEATURES = ("symbol", "ts")
_suites: dict[tuple, tuple[Any, Any]] = {}


@dataclass(frozen=True)
class PreparedSuite:
    """A suite ready to run: its checks, the pandas frame GX reads and how to name rows.

    Attributes
    ----------
    name
        The suite's name (``bars``, ``features.technical``, ``sentiment``, ...).
    checks
        The expectations, labelled with the column and rule their failures report.
    frame
        What GX validates (one batch).
    locate
        Names rows of ``frame`` by position, the way the user sees them.
    height
        Rows in ``frame``.
    """

    name: str
    checks: tuple[Check, ...]
    frame: Any
    locate: RowNamer
    height: int

    @property
    def signature(self) -> tuple:
        """What identifies the suite's expectations (for caching the GX objects)."""
        return (self.name, tuple((c.column, c.rule, str(c.expectation.row_condition))
                                 for c in self.checks))

    def error(self, outcome: Any) -> DataQualityError | None:
        """The error describing a GX result's failures, or ``None`` when it passed."""
        failures = failures_in(outcome, self.locate, self.height)
        if not failures:
            return None
        count = f"{len(failures)} data quality check(s) failed"
        return DataQualityError(failures, preamble=f"{self.locate.source}: {count} "
                                                   f"({self.locate.note()}):")


class _BarTimes:
    """Names feature rows by symbol and bar time (``AAA at 2020-03-02``)."""

    def __init__(self, frame: pl.DataFrame, source: str) -> None:
        self.source = source
        fmt = pl.col("ts").dt.to_string("%Y-%m-%d %H:%M:%S").str.strip_suffix(" 00:00:00")
        symbol = pl.col("symbol") if "symbol" in frame.columns else pl.lit("")
        self._labels = frame.select(pl.concat_str(symbol, pl.lit(" at "), fmt)
                                    .str.strip_prefix(" at ").alias("at"))["at"]

    def where(self, positions: Sequence[int]) -> str:
        """``"AAA at 2020-03-02, AAA at 2020-03-03"`` for up to five positions."""
        shown = sorted(positions)[:5]
        return ", ".join(self._labels.gather(shown).to_list())

    def note(self) -> str:
        """How rows are named."""
        return "rows named by symbol and bar time, after the warm-up"


def _rule(column: str, low: float | None, high: float | None) -> str:
    """``"rsi in [0, 100]"``, ``"vol >= 0"`` or ``"x <= 1"``."""
    if low is not None and high is not None:
        return f"{column} in [{low:g}, {high:g}]"
    return f"{column} >= {low:g}" if low is not None else f"{column} <= {high:g}"


def _bounded(column: str) -> str:
    """The copy of a column that is null where the value is not finite (bounds read it), so
    a NaN or infinity is reported once, by the finiteness check."""
    return f"finite::{column}"


def _provided(column: str) -> str:
    """The flag column that says on which rows an asset provides ``column`` at all."""
    return f"provided::{column}"


def _value_checks(column: str, low: float | None, high: float | None, not_null: bool,
                  conditional: bool = False) -> list[Check]:
    """Not null (if asked), finite, and within ``[low, high]`` when a bound is given.

    ``conditional`` checks only the rows whose `_provided` flag is set.
    """
    ex = _expectations()
    where = ({"row_condition": f"`{_provided(column)}` == True", "condition_parser": "pandas"}
             if conditional else {})
    checks = [Check(ex.ExpectColumnValuesToNotBeNull(column=column, **where), column,
                    f"{column} is not null")] if not_null else []
    checks.append(Check(ex.ExpectColumnValuesToBeBetween(
        column=column, min_value=-_LARGEST, max_value=_LARGEST, **where), column,
        f"{column} is finite (no NaN or infinity)"))
    if low is not None or high is not None:
        checks.append(Check(ex.ExpectColumnValuesToBeBetween(
            column=_bounded(column), min_value=_slack(low, -1), max_value=_slack(high, 1),
            **where), column, _rule(column, low, high)))
    return checks


def _slack(bound: float | None, side: int) -> float | None:
    """Move a bound outwards by ``ROUNDING`` (relative, at least absolute)."""
    return None if bound is None else bound + side * ROUNDING * max(1.0, abs(bound))


def _expectations() -> Any:
    import great_expectations as gx

    return gx.expectations


def _column_bounds(column: str, bounds: Bounds) -> tuple[float | None, float | None]:
    """Intersect the bounds of every regex found in ``column`` (``re.search``)."""
    matched = [b for pattern, b in bounds.items() if re.search(pattern, column)]
    lows = [low for low, _ in matched if low is not None]
    highs = [high for _, high in matched if high is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def feature_checks(columns: Sequence[str], bounds: Bounds,
                   conditional: Collection[str] = ()) -> tuple[Check, ...]:
    """The checks of a feature set's columns: not null, finite, within matching bounds.

    Columns in ``conditional`` are checked only where their `_provided` flag is set.
    """
    features = [c for c in columns if c not in _NOT_FEATURES]
    return tuple(check for c in features
                 for check in _value_checks(c, *_column_bounds(c, bounds), not_null=True,
                                            conditional=c in conditional))


def _gx_frame(frame: pl.DataFrame, numeric: Sequence[str]) -> Any:
    """The pandas frame GX checks: NaN as +inf, plus each numeric column's finite copy."""
    is_finite = [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(_bounded(c))
                 for c in numeric]
    return frame.with_columns(pl.col(numeric).cast(pl.Float64).fill_nan(float("inf")),
                              *is_finite).to_pandas()


def _first_complete(frame: pl.DataFrame, ignore: Collection[str] = ()) -> int | None:
    """The position of the first row whose features (but ``ignore``) are non-null, if any."""
    features = [c for c in frame.columns if c not in (*_NOT_FEATURES, *ignore)]
    if not features:
        return None
    complete = frame.select(pl.all_horizontal(pl.col(features).is_not_null())).to_series()
    found = complete.arg_true()
    return int(found[0]) if found.len() else None


def warm_up_gap(frame: pl.DataFrame, ignore: Collection[str] = ()) -> str | None:
    """Why a built feature frame has no row past the warm-up, or ``None`` when it has one.

    Columns in ``ignore`` are not waited for.
    """
    features = [c for c in frame.columns if c not in (*_NOT_FEATURES, *ignore)]
    if not features:
        return f"every feature is null on each of the {frame.height} rows"
    if _first_complete(frame, ignore) is not None:
        return None
    never = [c for c in features if frame[c].null_count() == frame.height]
    columns = f"; null on every row: {', '.join(never)}" if never else ""
    return f"no row of the {frame.height} has every feature (the warm-up is longer){columns}"


def after_warm_up(frame: pl.DataFrame,
                  absent: Mapping[str, Collection[str]] | None = None) -> pl.DataFrame:
    """The rows from the first where every feature is non-null (per symbol, if a column).

    ``absent`` maps a symbol to the columns it does not provide (left out of its warm-up).
    """
    if "symbol" in frame.columns:
        cut = []
        for part in frame.partition_by("symbol", maintain_order=True):
            symbol = part["symbol"][0]
            start = _first_complete(part, (absent or {}).get(symbol, ()))
            cut.append(part.slice(start) if start is not None else part.clear())
        return pl.concat(cut) if cut else frame
    start = _first_complete(frame)
    return frame.slice(start) if start is not None else frame.clear()


def feature_suite(name: str, frame: pl.DataFrame, source: str, bounds: Bounds | None = None,
                  absent: Mapping[str, Collection[str]] | None = None) -> PreparedSuite:
    """Prepare the suite of feature set ``name`` for built features.

    Parameters
    ----------
    name
        The feature set (a key of ``feature_sets.FEATURE_SETS``).
    frame
        Built features: ``ts`` and feature columns, for one asset or several (with a
        ``symbol`` column); the warm-up of each asset is cut off here.
    source
        Where the bars came from (``"lake v3"``), named in errors with the feature set.
    bounds
        The set's ``BOUNDS`` (default: ``feature_sets.feature_bounds(name)``).
    absent
        Symbol -> columns it does not provide at all (a VIX proxy outside the VIX's years):
        they are checked on the other symbols' rows only.
    """
    if bounds is None:
        from feature_sets import feature_bounds

        bounds = feature_bounds(name)
    absent = absent or {}
    rows = after_warm_up(frame, absent)
    conditional = sorted({c for columns in absent.values() for c in columns})
    checks = feature_checks(rows.columns, bounds, conditional)
    numeric = [c for c in rows.columns if c not in _NOT_FEATURES]
    flags = [~pl.col("symbol").is_in([s for s, cols in absent.items() if c in cols])
             .alias(_provided(c)) for c in conditional]
    label = f"feature set '{name}' on {source}"
    return PreparedSuite(f"features.{name}", checks,
                         _gx_frame(rows.with_columns(flags), numeric),
                         _BarTimes(rows, label), rows.height)


def side_table_suite(kind: str, df: pl.DataFrame, source: str) -> PreparedSuite:
    """Prepare the suite of a sentiment or on-chain table (``side_tables.SideSchema``).

    Required columns are non-null; every metric is finite and within its bounds (optional
    metrics may be null); ``(symbol, ts)`` is unique. ``df`` has the canonical columns
    (``side_tables.normalise_side_table``), with ``file``/``line`` provenance if read from
    a file.
    """
    schema = side_schema(kind)
    ex = _expectations()
    checks = [Check(ex.ExpectColumnValuesToNotBeNull(column=c), c, f"{c} is not null")
              for c in ("symbol", "ts")]
    for column in schema.metrics:
        checks += _value_checks(column, *schema.bounds[column],
                                not_null=column in schema.required)
    checks.append(Check(ex.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "ts"]),
                        "symbol, ts", "(symbol, ts) is unique"))
    frame = _gx_frame(df.select(schema.columns), schema.metrics)
    return PreparedSuite(kind, tuple(checks), frame, Locator(df, source), df.height)


def bars_suite(df: pl.DataFrame, source: str) -> PreparedSuite:
    """Prepare the bars suite of ``quality.validate_bars`` (canonical bars, any provenance)."""
    return PreparedSuite("bars", bar_checks(), bars_gx_frame(df), Locator(df, source),
                         df.height)


def _ephemeral(prepared: PreparedSuite) -> tuple[Any, Any]:
    """The cached in-memory batch definition and suite for a prepared suite's checks."""
    import great_expectations as gx

    with GX_LOCK:
        if prepared.signature not in _suites:
            context = ephemeral_context()
            try:
                source = context.data_sources.get("factory_suites")
            except KeyError:
                source = context.data_sources.add_pandas("factory_suites")
            name = f"{prepared.name}#{len(_suites)}"
            asset = source.add_dataframe_asset(name)
            expectations = [c.labelled(i) for i, c in enumerate(prepared.checks)]
            suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
            _suites[prepared.signature] = (asset.add_batch_definition_whole_dataframe(name),
                                           suite)
        return _suites[prepared.signature]


def validate(prepared: PreparedSuite) -> None:
    """Run a prepared suite in the process-wide in-memory context (its objects cached).

    Raises
    ------
    DataQualityError
        Listing every failed check with its source, column, row count and example rows.
    """
    batch_definition, suite = _ephemeral(prepared)
    with GX_LOCK:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": prepared.frame})
        outcome = batch.validate(suite, result_format="COMPLETE")
    error = prepared.error(outcome)
    if error is not None:
        raise error


def validate_features(name: str, frame: pl.DataFrame, source: str,
                      bounds: Bounds | None = None) -> None:
    """Check built features against their set's suite (see `feature_suite`).

    Raises
    ------
    DataQualityError
        Naming the feature set, the column and the offending rows (symbol and time), or
        saying that no row is past the warm-up.
    """
    rows = after_warm_up(frame)
    if rows.is_empty():
        gap = warm_up_gap(frame.drop("symbol", strict=False))
        raise DataQualityError([QualityFailure(f"feature set '{name}' on {source}", "ts",
                                               frame.height, gap or "no rows")])
    validate(feature_suite(name, rows, source, bounds))


def validate_side_table(df: pl.DataFrame, kind: str, source: str) -> None:
    """Check sentiment or on-chain rows against their suite (see `side_table_suite`).

    Raises
    ------
    DataQualityError
        Naming the file, the column and the offending lines.
    """
    validate(side_table_suite(kind, df, source))
