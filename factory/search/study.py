"""One architecture's Optuna study: TPE draws, trials pruned fold by fold, the best refit.

A trial trains the RunSpec its draw stands for (``factory.search.space``) with the factory's
own walk-forward evaluation (purged folds, after costs) and no refit; after each fold it
reports the running out-of-sample Sharpe, and the MedianPruner may stop it there. Its outcome
(pruned ones too, covering the folds done) is written under ``<runs>/search/<study>/`` and
its path kept in the trial's user attributes, so the flow process logs it to MLflow later:
a pruned trial's out-of-sample result was looked at, so it is a trial of the deflated
Sharpe's N like any other. A draw the grid excludes is pruned untrained (user attribute
``excluded``: the reason), and a draw of a config the study already evaluated is answered
with that trial's result, untrained (``duplicate_of``); neither counts as a trial.

Studies are resumable. The name says what is searched, not who asked (:func:`study_name`),
and the study is loaded if it exists, so each invocation adds up to ``n_trials`` trained
trials to it. A trial a killed worker left RUNNING is closed as it was recorded (its result
is saved before it is told) or failed. The best ``top_k`` completed trials of the whole
study are refit on all history (``factory.training.fit.refit_spec``), except those the caller
says are registered already.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from factory.config import MedianPrunerConfig
from factory.grid import RunSpec
from factory.search.space import SearchSpace
from factory.search.storage import open_storage, redacted
from factory.training.datasets import DatasetRef
from factory.training.fit import EVALUATED, SpecOutcome, evaluate_spec, refit_spec
from factory.training.outcomes import OutcomeMissingError, load_outcome, save_outcome

SEARCH_DIR = "search"
"""Trial outcomes and refit models live under ``<runs>/search/<study name>/``."""
OUTCOME_ATTR, PLANNED_ATTR, VALUE_ATTR = "outcome", "planned_state", "sharpe"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class StudyPlan:
    """What a worker needs to run one architecture's study."""

    space: SearchSpace
    name: str
    storage: str
    n_trials: int
    top_k: int
    seed: int
    startup_trials: int
    pruner: MedianPrunerConfig

    @property
    def max_draws(self) -> int:
        """Draws allowed per invocation: excluded and repeated draws train nothing, but TPE
        may keep proposing them once it has converged."""
        return 5 * self.n_trials + 10


@dataclass
class TrialRecord:
    """One trained trial: its Optuna state and value, its config and its outcome's path
    (relative to the runs folder)."""

    number: int
    state: str
    value: float | None
    spec_id: str
    label: str
    outcome: str
    folds: int


@dataclass
class TrialRefit:
    """A best trial refit on all history: its FINISHED outcome's path, or why it failed."""

    number: int
    outcome: str | None = None
    error: str | None = None


@dataclass
class StudyReport:
    """What a worker's study holds after this invocation (plain data: crosses processes)."""

    study: str
    arch: str
    storage: str
    space_size: int
    n_trials_total: int
    draws: int
    trials: list[TrialRecord] = field(default_factory=list)
    """Every trained trial of the study, this invocation's and earlier ones'."""
    new: list[int] = field(default_factory=list)
    """Numbers of the trials trained by this invocation."""
    best: list[int] = field(default_factory=list)
    """The study's best ``top_k`` completed trials, best first."""
    refits: list[TrialRefit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists (what the Prefect task returns)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyReport:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "trials": [TrialRecord(**t) for t in data["trials"]],
                      "refits": [TrialRefit(**r) for r in data["refits"]]})


def study_name(space: SearchSpace, lake_version: int,
               side_versions: dict[str, int] | None = None) -> str:
    """``<arch>-lake-v<version>-<12 hex digits>``: the same for every profile, command or
    machine that searches the same space on the same data.

    The digits hash the space (choices and allowed spec ids: universe, evaluation, feature
    parameters, seed) and the side tables' versions; the lake version is in clear. Another
    lake version, or another space, is another study; the trials of all of them count in N.
    """
    text = json.dumps({"space": space.digest(), "side": sorted((side_versions or {}).items())})
    return f"{space.arch}-lake-v{lake_version}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def trial_dir(runs_root: Path, study: str, number: int, part: str = "") -> Path:
    """``<runs>/search/<study>/trial-<number>[-<part>]``: a trial's outcome (no part), its
    refit model (``model``) and the refit's FINISHED outcome (``refit``)."""
    return Path(runs_root) / SEARCH_DIR / study / (f"trial-{number}" + (f"-{part}" if part else ""))


def run_study(plan: StudyPlan, ref: DatasetRef, runs_root: Path,
              registered: frozenset[int] | set[int] = frozenset(),
              pruner: optuna.pruners.BasePruner | None = None) -> StudyReport:
    """Run up to ``plan.n_trials`` new trained trials, then refit the best unregistered ones.

    Parameters
    ----------
    plan
        The study (see :func:`factory.search.plan.plan_studies`).
    ref
        The cached data every trial trains on.
    runs_root
        The runs folder; trial outcomes go under ``search/<study>/``.
    registered
        Trial numbers whose refit model is registered already (not refit again).
    pruner
        Replaces the plan's MedianPruner (tests force pruning with it).

    Returns
    -------
    StudyReport
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            storage=open_storage(plan.storage), study_name=plan.name, direction="maximize",
            load_if_exists=True, pruner=pruner or optuna.pruners.MedianPruner(
                n_startup_trials=plan.pruner.n_startup_trials,
                n_warmup_steps=plan.pruner.n_warmup_steps))
        _close_interrupted(study)
        # Seeded by the study's length, so a resumed study does not replay its first draws.
        study.sampler = optuna.samplers.TPESampler(
            seed=plan.seed + len(study.trials), n_startup_trials=plan.startup_trials)
        trained = {t.user_attrs["spec_id"]: t for t in _trained(study)}
        new, draws = [], 0
        while (len(new) < plan.n_trials and draws < plan.max_draws
               and len(trained) < plan.space.size):
            draws += 1
            trial = study.ask()
            spec, reason = plan.space.spec_for(plan.space.suggest(trial))
            if spec is None:
                trial.set_user_attr("excluded", reason)
                study.tell(trial, state=TrialState.PRUNED)
            elif spec.id in trained:
                _repeat(study, trial, trained[spec.id])
            else:
                trained[spec.id] = _train(study, trial, spec, plan, ref, runs_root)
                new.append(trial.number)
    records = [_record(t) for t in _trained(study)]
    best = _best(study, plan.top_k)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    refits = [_refit(by_number[n], plan, ref, runs_root) for n in best if n not in registered]
    return StudyReport(plan.name, plan.space.arch, redacted(plan.storage), plan.space.size,
                       len(study.trials), draws, records, new, best, refits)


def _close_interrupted(study: optuna.Study) -> None:
    """Close the trials a killed worker left RUNNING: as recorded where their outcome was
    saved (it is, before the trial is told), else FAIL. Only this study's worker runs it,
    under FACTORY_HOME's writer lock, so no RUNNING trial is alive."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        planned = trial.user_attrs.get(PLANNED_ATTR)
        if planned == TrialState.COMPLETE.name:
            study.tell(trial.number, trial.user_attrs[VALUE_ATTR])
        elif planned in (TrialState.PRUNED.name, TrialState.FAIL.name):
            study.tell(trial.number, state=TrialState[planned])
        else:
            study.tell(trial.number, state=TrialState.FAIL)


def _trained(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trained trials (finished, with a saved outcome), by number."""
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED_STATES)
            if OUTCOME_ATTR in t.user_attrs]


def _repeat(study: optuna.Study, trial: optuna.Trial, earlier: FrozenTrial) -> None:
    """Answer a draw of an already trained config with the earlier trial's result."""
    trial.set_user_attr("duplicate_of", earlier.number)
    for step, value in sorted(earlier.intermediate_values.items()):
        trial.report(value, step)
    if earlier.state == TrialState.COMPLETE:
        study.tell(trial, earlier.value)
    else:
        study.tell(trial, state=earlier.state)


def _train(study: optuna.Study, trial: optuna.Trial, spec: RunSpec, plan: StudyPlan,
           ref: DatasetRef, runs_root: Path) -> FrozenTrial:
    """Evaluate ``spec`` walk-forward (no refit), reporting each fold's running Sharpe and
    stopping where the pruner says; save the outcome, record it on the trial, tell it."""
    last_fold = spec.evaluation.n_folds - 1

    def on_fold(index: int, running: dict[str, float]) -> bool:
        sharpe = float(running.get("sharpe", math.nan))
        if math.isfinite(sharpe):
            trial.report(sharpe, index)
        return index < last_fold and trial.should_prune()

    started = time.perf_counter()
    try:
        outcome = evaluate_spec(spec, ref, None, on_fold=on_fold, refit=False)
    except Exception:  # noqa: BLE001 - a failing config is a FAILED trial; the study goes on
        outcome = SpecOutcome(spec=spec, status="FAILED", error=traceback.format_exc())
    outcome.seconds = time.perf_counter() - started
    directory = save_outcome(outcome, trial_dir(runs_root, plan.name, trial.number),
                             ref.lake_version)
    value = float(outcome.metrics.get("sharpe", math.nan))
    if outcome.status != EVALUATED or not math.isfinite(value):
        state = TrialState.FAIL
    elif len(outcome.fold_metrics) < spec.evaluation.n_folds:
        state = TrialState.PRUNED
    else:
        state = TrialState.COMPLETE
    trial.set_user_attr("spec_id", spec.id)
    trial.set_user_attr("label", spec.label)
    trial.set_user_attr("folds", len(outcome.fold_metrics))
    trial.set_user_attr("walk_forward", _plain(outcome.walk_forward))
    trial.set_user_attr(VALUE_ATTR, value if math.isfinite(value) else None)
    trial.set_user_attr(OUTCOME_ATTR, str(directory.relative_to(runs_root)))
    trial.set_user_attr(PLANNED_ATTR, state.name)
    if state == TrialState.COMPLETE:
        return study.tell(trial, value)
    return study.tell(trial, state=state)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as JSON types (NumPy scalars become Python numbers): a user attribute."""
    return json.loads(json.dumps(record, default=lambda value: value.item()))


def _record(trial: FrozenTrial) -> TrialRecord:
    attrs = trial.user_attrs
    value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
    return TrialRecord(trial.number, trial.state.name, value, attrs["spec_id"], attrs["label"],
                       attrs[OUTCOME_ATTR], int(attrs["folds"]))


def _best(study: optuna.Study, top_k: int) -> list[int]:
    """The numbers of the ``top_k`` completed trained trials of highest Sharpe (ties: the
    earlier trial first)."""
    complete = [t for t in _trained(study) if t.state == TrialState.COMPLETE]
    complete.sort(key=lambda t: (-t.value, t.number))
    return [t.number for t in complete[:top_k]]


def _refit(trial: FrozenTrial, plan: StudyPlan, ref: DatasetRef, runs_root: Path) -> TrialRefit:
    """Refit a best trial's spec on all history and save its FINISHED outcome beside the
    trial's (reusing one a killed earlier invocation saved whole)."""
    runs_root = Path(runs_root)
    target = trial_dir(runs_root, plan.name, trial.number, "refit")
    try:
        if load_outcome(target).status == "FINISHED":
            return TrialRefit(trial.number, str(target.relative_to(runs_root)))
    except (OutcomeMissingError, ValueError):
        pass
    try:
        evaluated = load_outcome(runs_root / trial.user_attrs[OUTCOME_ATTR])
        model_dir = trial_dir(runs_root, plan.name, trial.number, "model")
        shutil.rmtree(model_dir, ignore_errors=True)  # a killed earlier refit's leftovers
        started = time.perf_counter()
        through = refit_spec(evaluated.spec, ref, model_dir, trial.user_attrs["walk_forward"])
        finished = replace(evaluated, status="FINISHED", model_dir=str(model_dir),
                           trained_through=through,
                           seconds=evaluated.seconds + time.perf_counter() - started)
        save_outcome(finished, target, ref.lake_version)
    except Exception as err:  # noqa: BLE001 - reported; the study's other trials go on
        return TrialRefit(trial.number, error=f"{type(err).__name__}: {err}")
    return TrialRefit(trial.number, str(target.relative_to(runs_root)))


def trial_note(record: TrialRecord, study: str, n_folds: int, top_k: int) -> str:
    """The paragraph a trial's MLflow run opens with: what it is, why its figures cover what
    they cover, and when it is registered."""
    state = {"PRUNED": f"pruned after {record.folds} of {n_folds} walk-forward folds (the "
                       "figures cover those folds)",
             "COMPLETE": f"completed all {n_folds} walk-forward folds",
             "FAIL": "failed"}.get(record.state, record.state.lower())
    return (f"Optuna trial {record.number} of study `{study}`: {state}. It counts as a trial "
            f"in the deflated Sharpe's N; its model is registered only if it is among the "
            f"study's best {top_k} completed trials (then refit on all history; tag "
            "`optuna.registered`).")
