"""The search flow (``factory run --search optuna``): one Optuna study per architecture, run
in worker processes, its trials logged to MLflow as runs nested under the study's run.

Like the factory flow (flows/factory_flow.py, whose naming note applies), it holds
FACTORY_HOME's writer lock, caches the lake version's bars and features once, and only the
flow's process writes MLflow and the lake. Each mapped task runs one study in a worker
(``factory.search.run_study``; the studies share the Optuna database through its URL),
writes each trial's outcome to disk and returns a report; the flow then logs every trained
trial not yet logged (FINISHED, managed, so it counts in the deflated Sharpe's N; tagged
with its study, number and Optuna state), registers the refit models of the study's best
``top_k`` completed trials from their runs, and logs the study's figures on its run.

Resumable: the studies are named by what they search (``factory.search.study.study_name``)
and reloaded, so a rerun adds ``n_trials`` trained trials per study; a trial is logged once
(the study and trial number tags are its key), a trial run a killed command left RUNNING is
failed as an orphan first and logged again, and a registration checks the run's versions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner

from factory.config import load_config
from factory.data.lake import Lake
from factory.locking import writer_lock
from factory.paths import FactoryPaths, configure_environment
from factory.search import StudyReport, open_storage, plan_studies, redacted, storage_url
from factory.search.study import StudyPlan, trial_note
from factory.tracking import Tracker
from factory.training.datasets import universe_missing_inputs
from factory.training.outcomes import OutcomeMissingError, load_outcomes
from flows.factory_flow import git_commit, lake_run_name, prepare_dataset
from tasks.results import JSON_RESULTS
from tasks.search import log_trial_task, register_trial_task, run_study_task
from tasks.tracking import fail_orphaned_runs_task
from tasks.training import build_features_task


@dataclass
class StudySummary:
    """What one invocation did to one study."""

    study: str
    arch: str
    space_size: int
    new_trials: int = 0
    trials: int = 0
    pruned: int = 0
    logged: int = 0
    best_sharpe: float | None = None
    registered: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def search_run_name() -> str:
    """``search-<profile>-lake-v<version>``, from the run's parameters and FACTORY_HOME."""
    return lake_run_name("search")


@flow(name="search", flow_run_name=search_run_name,
      task_runner=ProcessPoolTaskRunner(max_workers=2),
      persist_result=False, result_serializer=JSON_RESULTS)
def search_flow(profile: str = "demo", trials: int | None = None, data: dict | None = None,
                lake_version: int | None = None,
                side_versions: dict[str, int] | None = None) -> dict:
    """Search every architecture of ``profile`` with Optuna on one version of the lake.

    Parameters
    ----------
    profile : str
        conf/profiles/<profile>.yaml merged over conf/ (its ``search`` section).
    trials : int, optional
        Trained trials per architecture (default: ``search.n_trials``).
    data, lake_version, side_versions
        As for the factory flow.
    """
    paths = configure_environment()
    with writer_lock(paths, f"search flow --profile {profile}"):
        return _search_and_log(paths, profile, trials, data, lake_version, side_versions)


def _search_and_log(paths: FactoryPaths, profile: str, trials: int | None, data: dict | None,
                    lake_version: int | None, side_versions: dict[str, int] | None) -> dict:
    """The search flow's body, run with the writer lock held."""
    started, log = time.perf_counter(), get_run_logger()
    config, lake, ref = prepare_dataset(paths, profile, data, lake_version, side_versions)
    symbols, version = ref.symbols, ref.lake_version
    storage = storage_url(config.search, paths.mlflow)
    open_storage(storage)  # its tables, once, before the workers share it
    plans = plan_studies(config, symbols, universe_missing_inputs(ref), version,
                         dict(ref.side_versions), storage, trials)
    for plan in (p for p in plans if not p.space.size):
        log.info("%s: the grid keeps no config of its space on this universe", plan.space.arch)
    plans = [p for p in plans if p.space.size]
    log.info("profile %s, lake version %s: %d studies in %s (%s)", profile, version, len(plans),
             redacted(storage), ", ".join(f"{p.space.arch}: {p.space.size} configs" for p in plans))
    tracker = Tracker(paths)
    orphans = fail_orphaned_runs_task(tracker)
    if orphans:
        log.info("failed %d run(s) a killed command left RUNNING: %s", len(orphans),
                 ", ".join(orphans))
    for feature_set in sorted({s.feature_set for p in plans for s in p.space.allowed}):
        build_features_task(ref, feature_set, config.features[feature_set].params)
    registered = [[n for n, (_, done) in tracker.study_trial_runs(p.name).items() if done]
                  for p in plans]
    futures = run_study_task.map(plans, ref=unmapped(ref), runs_root=unmapped(paths.runs),
                                 registered=registered)
    by_name = {p.name: p for p in plans}
    summaries, commit = [], git_commit()
    for future in as_completed(futures):
        report = StudyReport.from_dict(future.result())
        summary = _log_study(tracker, lake, report, by_name[report.study], paths, version,
                             commit, profile, dict(ref.side_versions))
        log.info("%s: %d new trials (%d trained in all, %d pruned), best Sharpe %s, "
                 "registered %s", summary.study, summary.new_trials, summary.trials,
                 summary.pruned, _fmt(summary.best_sharpe), ", ".join(summary.registered) or "-")
        for problem in summary.problems:
            log.warning("%s: %s", summary.study, problem)
        summaries.append(summary)
    result = {"profile": profile, "lake_version": version, "storage": redacted(storage),
              "orphaned_runs_failed": orphans, "studies": [vars(s) for s in summaries],
              "seconds": time.perf_counter() - started}
    create_markdown_artifact(markdown=_markdown(result), key="search-run-summary",
                             description="What this search run trained, pruned and registered")
    return result


def _log_study(tracker: Tracker, lake: Lake, report: StudyReport, plan: StudyPlan,
               paths: FactoryPaths, version: int, commit: str, profile: str,
               side_versions: dict[str, int]) -> StudySummary:
    """Log a study's unlogged trials, register its best refits, update the study's run."""
    values = [t.value for t in report.trials if t.state == "COMPLETE" and t.value is not None]
    summary = StudySummary(report.study, report.arch, report.space_size, len(report.new),
                           len(report.trials),
                           sum(t.state == "PRUNED" for t in report.trials),
                           best_sharpe=max(values) if values else None)
    parent = tracker.study_run(report.study, {
        "arch": report.arch, "lake_version": str(version), "symbols": ",".join(plan.space.symbols),
        "optuna.storage": report.storage, "optuna.n_trials": str(report.n_trials_total),
        "optuna.space_size": str(report.space_size), "profile": profile})
    logged = tracker.study_trial_runs(report.study)
    n_folds = plan.space.config.evaluation.n_folds
    for record in report.trials:
        if record.number in logged:
            continue
        try:
            [outcome] = load_outcomes([str(paths.runs / record.outcome)], paths.runs)
        except OutcomeMissingError as err:
            summary.problems.append(f"trial {record.number} not logged: {err}")
            continue
        run_id = log_trial_task(tracker, lake, outcome, record, report.study, parent, version,
                                commit, profile, side_versions,
                                trial_note(record, report.study, n_folds, plan.top_k))
        logged[record.number] = (run_id, False)
        summary.logged += 1
    labels = {t.number: t.label for t in report.trials}
    for refit in report.refits:
        if refit.error or refit.number not in logged:
            summary.problems.append(f"trial {refit.number} not registered: "
                                    f"{refit.error or 'its run is not logged'}")
            continue
        [outcome] = load_outcomes([str(paths.runs / refit.outcome)], paths.runs)
        register_trial_task(tracker, logged[refit.number][0], outcome, version)
        summary.registered.append(labels[refit.number])
    tracker.close_study_run(parent, {
        "best_sharpe": summary.best_sharpe if summary.best_sharpe is not None else float("nan"),
        "n_trials": report.n_trials_total, "n_trained": summary.trials,
        "n_pruned": summary.pruned, "space_size": report.space_size},
        step=report.n_trials_total)
    return summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _markdown(result: dict) -> str:
    """The ``search-run-summary`` artifact: one row per study."""
    lines = [f"# Search run: profile `{result['profile']}`, lake version "
             f"{result['lake_version']}", "", f"Optuna storage: `{result['storage']}`", "",
             "| study | space | new trials | trained | pruned | best Sharpe | registered |",
             "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {s['study']} | {s['space_size']} | {s['new_trials']} | {s['trials']} | "
              f"{s['pruned']} | {_fmt(s['best_sharpe'])} | {', '.join(s['registered'])} |"
              for s in result["studies"]]
    return "\n".join(lines) + "\n"


def run_search(profile: str, workers: int | None = None, trials: int | None = None,
               data: dict | None = None, lake_version: int | None = None,
               side_versions: dict[str, int] | None = None) -> dict:
    """Run the search flow with ``workers`` processes (default: the profile's setting)."""
    workers = workers or load_config(profile, data=data).execution.workers
    return search_flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=workers))(
        profile=profile, trials=trials, data=data, lake_version=lake_version,
        side_versions=side_versions)
