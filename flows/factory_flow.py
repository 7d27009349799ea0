"""The factory flow: expand the grid, build features once, fan training out over processes,
log every outcome to MLflow and the OOS returns to the lake.

The file is not called flows/factory.py: a served deployment loads its flow by path with
flows/ on sys.path, where that name would shadow the ``factory`` package.

Training is mapped over chunks of RunSpecs (a mapped task costs milliseconds; a RunSpec
seconds to minutes). Workers write their outcomes to disk and return the directories; the
flow's process loads and logs them as chunks complete, so only one process writes the
sqlite tracking store and the Delta tables. Runs a killed earlier command left RUNNING are
failed first, so their specs count as not trained and are trained (or re-logged) again.
Prefect stores a failed flow's exception: as JSON here, never as a pickle (rule 11).

The run is named ``factory-<profile>-lake-v<version>``: the name is resolved when the run
starts, from the ``profile`` parameter and the lake version in FACTORY_HOME at that moment
(an ingest committing between then and the writer lock would make it one version behind).
What it does goes to the run's log at INFO (the Prefect UI's Logs tab; the CLI keeps the
terminal quiet), and a markdown artifact ``factory-run-summary`` sums it up.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass, field

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from factory.config import FactoryConfig, load_config
from factory.data.lake import Lake
from factory.data.universe import resolve_symbols
from factory.grid import RunSpec, expand
from factory.locking import writer_lock
from factory.paths import PROJECT_ROOT, FactoryPaths, configure_environment, factory_paths
from factory.tracking import Tracker
from factory.training.datasets import DatasetRef, cache_bars, universe_missing_inputs
from factory.training.feature_inputs import SIDE_TABLES
from factory.training.outcomes import load_outcomes
from flows.executors import check_dask_scheduler, task_runner
from tasks.results import JSON_RESULTS
from tasks.tracking import fail_orphaned_runs_task, log_outcome_task
from tasks.training import build_features_task, train_chunk_task


@dataclass
class FactoryRunSummary:
    """What one factory run did, and where its wall time went (bench/ reads the timings)."""

    profile: str
    lake_version: int
    n_specs: int
    n_skipped: int = 0
    orphaned_runs_failed: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    arch_seconds: dict[str, float] = field(default_factory=dict)
    """Worker seconds per architecture: where the training time went."""
    spec_seconds: dict[str, float] = field(default_factory=dict)
    """Worker seconds per spec id (bench/ compares them with an in-process baseline)."""


def git_commit() -> str:
    """The project's current commit, or 'unknown' outside a git checkout."""
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def _chunks(specs: list[RunSpec], size: int) -> list[list[RunSpec]]:
    return [specs[i:i + size] for i in range(0, len(specs), size)]


def factory_run_name() -> str:
    """``factory-<profile>-lake-v<version>``, from the run's parameters and FACTORY_HOME."""
    return lake_run_name("factory")


def lake_run_name(kind: str) -> str:
    """``<kind>-<profile>-lake-v<version>``, from the run's parameters and FACTORY_HOME."""
    profile = flow_run.parameters.get("profile", "demo")
    try:
        version = flow_run.parameters.get("lake_version")
        if version is None:
            version = Lake(factory_paths().lake).data_version()
    except Exception:  # noqa: BLE001 - a name is cosmetic: the flow itself reports the error
        version = "unknown"
    return f"{kind}-{profile}-lake-" + ("empty" if version is None else f"v{version}")


def summary_markdown(summary: FactoryRunSummary) -> str:
    """The ``factory-run-summary`` artifact: counts, then seconds per stage."""
    lines = [f"# Factory run: profile `{summary.profile}`, lake version {summary.lake_version}",
             "", "| configs | count |", "|---|---:|",
             f"| in the profile | {summary.n_specs} |",
             f"| trained | {len(summary.finished)} |",
             f"| skipped (already trained on this lake version) | {summary.n_skipped} |",
             f"| failed | {len(summary.failed)} |",
             f"| orphaned runs failed | {len(summary.orphaned_runs_failed)} |",
             "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in summary.seconds.items()]
    return "\n".join(lines) + "\n"


@flow(name="factory", flow_run_name=factory_run_name,
      task_runner=ProcessPoolTaskRunner(max_workers=2),
      persist_result=False, result_serializer=JSON_RESULTS)
def factory_flow(profile: str = "demo", force: bool = False, data: dict | None = None,
                 lake_version: int | None = None,
                 side_versions: dict[str, int] | None = None) -> dict:
    """Train, evaluate and log every RunSpec of ``profile`` on one version of the lake.

    Parameters
    ----------
    profile : str
        conf/profiles/<profile>.yaml merged over conf/.
    force : bool
        Retrain specs already trained on this lake version (otherwise they are skipped).
    data : dict, optional
        Overrides of the configuration's ``data`` section (``factory run --source/--symbols``).
    lake_version : int, optional
        The bars table's Delta version to read (time travel: reproduces an earlier run);
        default: the latest.
    side_versions : dict of str to int, optional
        Versions of side tables (``sentiment``, ``onchain``) to read; default: the latest.
    """
    paths = configure_environment()
    # One writer per home, also for runs triggered from the Prefect UI; failing RUNNING runs
    # as orphans below is only safe because no other writer can be logging right now.
    with writer_lock(paths, f"factory flow --profile {profile}"):
        return _train_and_log(paths, profile, force, data, lake_version, side_versions)


def _lake_version(lake: Lake, wanted: int | None) -> int:
    """The version to read: ``wanted`` if the bars table has it, else the latest data version
    (maintenance and cold-tier migrations add versions that change no row)."""
    latest = lake.version()
    if wanted is None or latest is None:
        return lake.data_version()
    if not 0 <= wanted <= latest:
        raise ValueError(f"the lake at {lake.root} has versions 0..{latest}, not {wanted}")
    return wanted


def _side_versions(lake: Lake, wanted: dict[str, int] | None) -> dict[str, int | None]:
    """Each side table's version to read: ``wanted``'s where given, else the latest."""
    chosen = {t: lake.version(t) for t in SIDE_TABLES}
    for table, version in (wanted or {}).items():
        if table not in chosen:
            raise ValueError(f"unknown side table {table!r}; known: {list(SIDE_TABLES)}")
        if chosen[table] is None or not 0 <= version <= chosen[table]:
            held = "none" if chosen[table] is None else f"0..{chosen[table]}"
            raise ValueError(f"the lake's {table} table has versions {held}, not {version}")
        chosen[table] = version
    return chosen


def prepare_dataset(paths: FactoryPaths, profile: str, data: dict | None,
                    lake_version: int | None, side_versions: dict[str, int] | None
                    ) -> tuple[FactoryConfig, Lake, DatasetRef]:
    """The profile's configuration, the lake, and the universe's bars at the chosen lake and
    side-table versions cached for the workers: what a factory or search run trains on."""
    config = load_config(profile, data=data)
    lake = Lake(paths.lake)
    symbols = resolve_symbols(config, lake)
    ref = DatasetRef.for_lake(paths.cache, lake, _lake_version(lake, lake_version), symbols,
                              _side_versions(lake, side_versions),
                              span=(config.data.start, config.data.end))
    cache_bars(lake, ref)
    return config, lake, ref


def _train_and_log(paths: FactoryPaths, profile: str, force: bool, data: dict | None,
                   lake_version: int | None, side_versions: dict[str, int] | None) -> dict:
    """The factory flow's body, run with the writer lock held."""
    started, log = time.perf_counter(), get_run_logger()
    config, lake, ref = prepare_dataset(paths, profile, data, lake_version, side_versions)
    symbols, version = ref.symbols, ref.lake_version
    specs = expand(config, symbols, universe_missing_inputs(ref)).specs
    log.info("profile %s, lake version %s: universe of %d symbol(s) (%s), %d configs",
             profile, version, len(symbols), ", ".join(symbols), len(specs))
    tracker = Tracker(paths)
    orphans = fail_orphaned_runs_task(tracker)
    if orphans:
        log.info("failed %d run(s) a killed command left RUNNING: %s", len(orphans),
                 ", ".join(orphans))
    done = set() if force else tracker.trained_spec_ids(version)
    todo = [s for s in specs if s.id not in done]
    summary = FactoryRunSummary(profile, version, len(specs), n_skipped=len(specs) - len(todo),
                                orphaned_runs_failed=orphans)
    log.info("%d configs to train, %d skipped (already trained on lake version %s)",
             len(todo), summary.n_skipped, version)

    feature_sets = sorted({s.feature_set for s in todo})
    for feature_set in feature_sets:
        build_features_task(ref, feature_set, config.features[feature_set].params)
    summary.seconds["features"] = time.perf_counter() - started
    log.info("features built for %d symbol(s): %s", len(symbols),
             ", ".join(feature_sets) or "none needed")

    chunks = _chunks(todo, config.execution.chunk_size)
    futures = train_chunk_task.with_options(refresh_cache=force).map(
        chunks, ref=unmapped(ref), runs_root=unmapped(paths.runs),
        label=[f"{len(c)}-specs-{c[0].short_id}" for c in chunks],
    )
    logging_seconds, chunk_logging, train_seconds, commit = 0.0, 0.0, 0.0, git_commit()
    columns = (TextColumn("[bold]training"), BarColumn(bar_width=20), MofNCompleteColumn(),
               TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns) as progress:
        bar = progress.add_task("", total=len(todo))
        for future in as_completed(futures):
            chunk_logging = 0.0
            for outcome in load_outcomes(future.result(), paths.runs):
                tick = time.perf_counter()
                log_outcome_task(tracker, lake, outcome, version, commit, profile,
                                 dict(ref.side_versions))
                chunk_logging += time.perf_counter() - tick
                train_seconds += outcome.seconds
                summary.arch_seconds[outcome.spec.arch] = (
                    summary.arch_seconds.get(outcome.spec.arch, 0.0) + outcome.seconds)
                summary.spec_seconds[outcome.spec.id] = outcome.seconds
                bucket = summary.finished if outcome.status == "FINISHED" else summary.failed
                bucket.append(outcome.spec.id)
                log.info("%s %s, OOS Sharpe %.2f", outcome.spec.label, outcome.status.lower(),
                         outcome.metrics.get("sharpe", float("nan")))
                progress.update(bar, advance=1, description=(
                    f"{outcome.spec.label[:-11]} {outcome.status.lower()} "
                    f"SR {outcome.metrics.get('sharpe', float('nan')):.2f}"))
            logging_seconds += chunk_logging
    summary.seconds |= {
        "training_worker_total": train_seconds,
        "mlflow_logging": logging_seconds,
        # logging of the last chunk happens after every worker is done: nothing hides it
        "mlflow_logging_after_training": chunk_logging,
        "total": time.perf_counter() - started,
    }
    log.info("%d trained, %d skipped, %d failed, %d orphaned runs failed in %.1f s",
             len(summary.finished), summary.n_skipped, len(summary.failed),
             len(summary.orphaned_runs_failed), summary.seconds["total"])
    create_markdown_artifact(markdown=summary_markdown(summary), key="factory-run-summary",
                             description="What this factory run trained, skipped and failed")
    return asdict(summary)


def run_factory(profile: str, workers: int | None = None, force: bool = False,
                data: dict | None = None, lake_version: int | None = None,
                side_versions: dict[str, int] | None = None,
                dask_address: str | None = None) -> dict:
    """Run the factory flow with ``workers`` processes (default: the profile's setting), or
    on the Dask cluster at ``dask_address`` (default: ``execution.dask_address``; see
    ``flows.executors``), whose scheduler must answer before anything starts."""
    execution = load_config(profile, data=data).execution
    address = dask_address or execution.dask_address
    if address:
        check_dask_scheduler(address)
    runner = task_runner(execution, workers, address)
    return factory_flow.with_options(task_runner=runner)(
        profile=profile, force=force, data=data, lake_version=lake_version,
        side_versions=side_versions)
