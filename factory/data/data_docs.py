"""Run every data-quality suite and publish the results as great-expectations Data Docs.

What is checked: the lake's bars, its ``sentiment`` and ``onchain`` tables when present, every
feature set built from the lake's bars, and the same for the packaged data sets (``demo``: the
S&P 500 and Nasdaq of ``arch``; ``bokeh``: the stocks of ``bokeh_sampledata``). Each table is
one batch for its suite (features of all of a table's symbols together), so a run costs one GX
round trip per suite. A feature set whose inputs the data lacks (a panel for one symbol, an
on-chain table) is reported as skipped with the reason; one that cannot be built fails.

The results live in a file-backed GX project under ``<FACTORY_HOME>/data/quality/gx`` (suites,
validation definitions and results, kept from run to run) and the HTML site under
``<FACTORY_HOME>/data/quality/docs``; its index lists the latest ``INDEX_LIMIT`` results.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import polars as pl

from factory.data.feature_quality import (
    PreparedSuite,
    bars_suite,
    feature_suite,
    side_table_suite,
    warm_up_gap,
)
from factory.data.lake import Lake
from factory.data.quality import GX_LOCK, quiet_great_expectations
from factory.data.side_tables import SIDE_KINDS, read_side_table
from factory.paths import FactoryPaths

__all__ = ["INDEX_LIMIT", "QualityReport", "SuiteResult", "quality_dir", "run_quality_checks"]

INDEX_LIMIT = 500
"""Validation results listed on the Data Docs index (older pages stay on disk)."""
SITE = "factory"
_DATASOURCE = "factory"
_BATCH = "whole_table"
Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class SuiteResult:
    """How one suite fared on one table.

    Attributes
    ----------
    name
        The validation's name: the table and the suite (``lake.bars``,
        ``demo.features.technical``).
    status
        ``passed``, ``failed`` or ``skipped``.
    detail
        Rows checked, the failures (file or feature set, column, rows), or why it was skipped.
    """

    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class QualityReport:
    """The outcome of `run_quality_checks`: Data Docs' index and one result per suite."""

    index: Path
    results: tuple[SuiteResult, ...]

    @property
    def failed(self) -> tuple[SuiteResult, ...]:
        """The suites that failed (a non-zero exit for ``factory check-data``)."""
        return tuple(r for r in self.results if r.status == "failed")


@dataclass(frozen=True)
class _Planned:
    """A suite to run under a validation name, with notes for its summary line."""

    name: str
    suite: PreparedSuite
    notes: str = ""


def quality_dir(paths: FactoryPaths) -> Path:
    """Where the GX project and Data Docs of a FACTORY_HOME live."""
    return paths.home / "data" / "quality"


def run_quality_checks(paths: FactoryPaths, *, lake: bool = True, packaged: bool = True,
                       params: Mapping[str, Mapping[str, float]] | None = None,
                       ) -> QualityReport:
    """Validate the lake and/or the packaged data sets and build Data Docs.

    Parameters
    ----------
    paths
        The FACTORY_HOME whose lake is checked and under which Data Docs are written.
    lake
        Check the lake (bars, side tables, feature sets built from them).
    packaged
        Check the packaged data sets (bars and feature sets).
    params
        Feature set name -> its parameters (conf/features.yaml); default: each set's own.

    Returns
    -------
    QualityReport
        The path of Data Docs' ``index.html`` and one `SuiteResult` per suite, in order.

    Raises
    ------
    LookupError
        When the lake is to be checked but holds no bars.
    ValueError
        When neither the lake nor the packaged data is to be checked.
    """
    if not (lake or packaged):
        raise ValueError("nothing to check: both the lake and the packaged data are off "
                         "(drop --no-lake or --no-packaged, or name files to check)")
    planned: list[_Planned | SuiteResult] = []
    if lake:
        planned += _lake_suites(paths.lake, params or {})
    if packaged:
        planned += _packaged_suites(params or {})
    with GX_LOCK:
        return _run(quality_dir(paths), planned)


def _lake_suites(root: Path, params: Mapping[str, Mapping[str, float]],
                 ) -> Iterator[_Planned | SuiteResult]:
    """The lake's bars, side tables and feature sets (LookupError when it holds no bars)."""
    store = Lake(root)
    version = store.version()
    if version is None:
        raise LookupError(f"the lake at {root} is empty: nothing to check (run `factory "
                          "ingest` first, or pass --no-lake to check the packaged data only)")
    bars = store.read_bars()
    yield _Planned("lake.bars", bars_suite(bars, f"lake {root} v{version}"))
    side = {}
    for kind in SIDE_KINDS:
        table_version = store.version(kind)
        if table_version is not None:
            side[kind] = read_side_table(store, kind)
            label = f"lake {kind} table v{table_version}"
            yield _Planned(f"lake.{kind}", side_table_suite(kind, side[kind], label))
    calendars = {s: f.calendar for s, f in store.bar_frequencies().items()}
    yield from _feature_suites("lake", f"lake v{version}", bars, calendars, side, params)


def _packaged_suites(params: Mapping[str, Mapping[str, float]],
                     ) -> Iterator[_Planned | SuiteResult]:
    """Each packaged data set's bars and feature sets (US equities: equity calendar)."""
    from factory.data.ingest import PACKAGED

    for name, load in PACKAGED.items():
        bars = load()
        yield _Planned(f"{name}.bars", bars_suite(bars, f"packaged {name}"))
        calendars = dict.fromkeys(bars["symbol"].unique().to_list(), "equity")
        yield from _feature_suites(name, f"packaged {name}", bars, calendars, {}, params)


def _feature_suites(prefix: str, source: str, bars: pl.DataFrame, calendars: Mapping[str, str],
                    side: Mapping[str, pl.DataFrame],
                    params: Mapping[str, Mapping[str, float]],
                    ) -> Iterator[_Planned | SuiteResult]:
    """One suite per feature set over every symbol of ``bars`` that can build it."""
    from feature_sets import FEATURE_SETS

    for name in FEATURE_SETS:
        try:
            yield _one_feature_suite(name, f"{prefix}.features.{name}", source, bars,
                                     calendars, side, params.get(name, {}))
        except Exception as error:  # noqa: BLE001 - a set that cannot be built fails its suite
            yield SuiteResult(f"{prefix}.features.{name}", "failed",
                              f"feature set '{name}' on {source} could not be built: "
                              f"{type(error).__name__}: {error}")


def _one_feature_suite(name: str, validation: str, source: str, bars: pl.DataFrame,
                       calendars: Mapping[str, str], side: Mapping[str, pl.DataFrame],
                       params: Mapping[str, float]) -> _Planned | SuiteResult:
    """Build feature set ``name`` per symbol and prepare its suite, or say why it is skipped.

    A column that is null on every row of a symbol (a VIX proxy outside the VIX's years, a
    window longer than the history) is not provided by that symbol: it is checked on the
    other symbols' rows only, and named in the suite's notes.
    """
    from factory.training.feature_inputs import inputs_for, missing_inputs
    from feature_sets import INPUT_KINDS, build_features, feature_set

    needs = feature_set(name).needs
    symbols = bars["symbol"].unique(maintain_order=True).to_list()
    calendar = calendars.get(symbols[0], "equity") if symbols else "equity"
    universe = missing_inputs(tuple(symbols), calendar, bars, side)
    lacking = [k for k in needs if k in universe]
    if lacking:  # as the grid would drop it for this universe
        return SuiteResult(validation, "skipped", "; ".join(
            f"needs {k}: {universe[k]}" for k in lacking))
    frames, absent, skipped = [], {}, {}
    for (symbol,), one in bars.group_by("symbol", maintain_order=True):
        inputs = inputs_for(symbol, name, calendars.get(symbol, "equity"), bars, side)
        lacking = [k for k in needs if inputs.lacks(k)]
        frame = None if lacking else build_features(name, one, params, inputs)
        never = [] if frame is None else [c for c in frame.columns if c != "ts"
                                          and frame[c].null_count() == frame.height]
        why = ("; ".join(f"needs {k}: {INPUT_KINDS[k]}" for k in lacking) if lacking
               else warm_up_gap(frame, never) or None)
        if why:
            skipped.setdefault(why, []).append(symbol)
            continue
        frames.append(frame.with_columns(symbol=pl.lit(symbol)))
        if never:
            absent[symbol] = never
    notes = [f"{', '.join(symbols)} skipped ({why})" for why, symbols in skipped.items()]
    if not frames:
        return SuiteResult(validation, "skipped", "; ".join(notes))
    unchecked: dict[str, list[str]] = {}
    for symbol, columns in absent.items():
        unchecked.setdefault(", ".join(columns), []).append(symbol)
    notes += [f"{', '.join(symbols)} not checked on {columns} (null on every row)"
              for columns, symbols in unchecked.items()]
    suite = feature_suite(name, pl.concat(frames, how="diagonal_relaxed"), source,
                          absent=absent)
    return _Planned(validation, suite, "; ".join(notes))


@cache
def _context(project: Path) -> Any:
    """The file-backed GX context of a quality folder, with its one Data Docs site."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    quiet_great_expectations()
    context = gx.get_context(mode="file", project_root_dir=str(project))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    sites = context.get_config().data_docs_sites or {}
    for name in [s for s in sites if s != SITE]:
        context.delete_data_docs_site(name)  # the default uncommitted/ site: one place only
    if SITE not in sites:
        context.add_data_docs_site(SITE, {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": "../docs/"},  # relative: the home may move
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                   "validation_results_limit": INDEX_LIMIT},
        })
    try:
        context.data_sources.get(_DATASOURCE)
    except KeyError:
        context.data_sources.add_pandas(_DATASOURCE)
    return context


def _batch_definition(context: Any, name: str) -> Any:
    """The whole-frame batch definition of data asset ``name`` (created on first use)."""
    source = context.data_sources.get(_DATASOURCE)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        return asset.get_batch_definition(_BATCH)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(_BATCH)


def _validate(context: Any, plan: _Planned, run_id: Any) -> SuiteResult:
    """Store ``plan``'s suite and validation definition, run it once and judge the result."""
    import great_expectations as gx

    expectations = [c.labelled(i) for i, c in enumerate(plan.suite.checks)]
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=plan.name,
                                                             expectations=expectations))
    definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(
        name=plan.name, data=_batch_definition(context, plan.name), suite=suite))
    outcome = definition.run(batch_parameters={"dataframe": plan.suite.frame},
                             result_format="COMPLETE", run_id=run_id)
    error = plan.suite.error(outcome)
    if error is not None:
        return SuiteResult(plan.name, "failed", str(error))
    checked = f"{plan.suite.height} rows"
    return SuiteResult(plan.name, "passed", f"{checked}; {plan.notes}" if plan.notes else checked)


def _run(folder: Path, planned: list[_Planned | SuiteResult]) -> QualityReport:
    """Run the planned suites in the folder's GX project and rebuild Data Docs for them."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    folder.mkdir(parents=True, exist_ok=True)
    context = _context(folder)
    now = datetime.now(UTC)
    run_id = RunIdentifier(run_name=f"check-data-{now:%Y%m%dT%H%M%S.%fZ}", run_time=now)
    results = [_validate(context, item, run_id) if isinstance(item, _Planned) else item
               for item in planned]
    ran = [item.name for item in planned if isinstance(item, _Planned)]
    stored = [key for key in context.validation_results_store.list_keys()
              if key.run_id.run_name == run_id.run_name]
    suites = [ExpectationSuiteIdentifier(name=name) for name in ran]
    context.build_data_docs(site_names=[SITE], resource_identifiers=[*stored, *suites])
    return QualityReport(folder / "docs" / "index.html", tuple(results))
