"""The studies of one ``factory run --search optuna``: one per searched architecture."""

from __future__ import annotations

from factory.config import FactoryConfig
from factory.search.space import SearchSpace, build_space, searched_architectures
from factory.search.storage import redacted
from factory.search.study import StudyPlan, study_name


def plan_studies(config: FactoryConfig, symbols: tuple[str, ...],
                 missing_inputs: dict[str, str] | None, lake_version: int,
                 side_versions: dict[str, int] | None, storage: str,
                 n_trials: int | None = None) -> list[StudyPlan]:
    """One :class:`StudyPlan` per searched architecture, in the configuration's order.

    Parameters
    ----------
    config
        The loaded configuration; its ``search`` section sets the trials, top k, sampler
        and pruner.
    symbols, missing_inputs
        The universe and the inputs it lacks (as ``factory.grid.expand`` takes them).
    lake_version, side_versions
        The data the trials train on (part of each study's name).
    storage
        The studies' database URL (``factory.search.storage.storage_url``).
    n_trials
        Trained trials per architecture for this invocation (default: ``search.n_trials``).
    """
    search = config.search
    plans = []
    for arch in searched_architectures(config):
        space = build_space(config, arch, symbols, missing_inputs)
        plans.append(StudyPlan(
            space=space, name=study_name(space, lake_version, side_versions), storage=storage,
            n_trials=n_trials or search.n_trials, top_k=search.top_k, seed=search.sampler_seed,
            startup_trials=search.startup_trials, pruner=search.pruner))
    return plans


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def describe_space(space: SearchSpace) -> str:
    """One line: the space's size, the axes it is drawn from and what the grid drops."""
    axes = " x ".join(f"{len(values)} {name.removeprefix('hp.')}"
                      for name, values in space.choices().items())
    dropped = space.product - space.size
    return (f"{space.arch}: {_count(space.size, 'config')} in the space ({axes}"
            + (f"; {dropped} dropped by the grid's rules" if dropped else "") + ")")


def describe_search(config: FactoryConfig, symbols: tuple[str, ...],
                    missing_inputs: dict[str, str] | None, storage: str,
                    n_trials: int | None = None) -> list[str]:
    """What ``factory run --search optuna --dry-run`` prints: per architecture its space and
    the trials an invocation would train, then the storage."""
    search = config.search
    trials = n_trials or search.n_trials
    lines = []
    for arch in searched_architectures(config):
        space = build_space(config, arch, symbols, missing_inputs)
        would = min(trials, space.size)
        lines.append(f"{describe_space(space)}; up to {_count(would, 'trial')} per run, the "
                     f"best {min(search.top_k, space.size)} registered")
    lines.append(f"Optuna storage: {redacted(storage)}")
    return lines


def search_summary_lines(summary: dict) -> list[str]:
    """What ``factory run --search optuna`` prints of the search flow's result: a line per
    study, its problems, then the storage."""
    lines = []
    for study in summary["studies"]:
        best = study["best_sharpe"]
        lines.append(f"{study['study']}: {_count(study['new_trials'], 'new trial')}, "
                     f"{study['trials']} trained in all ({study['pruned']} pruned), best Sharpe "
                     f"{'n/a' if best is None else f'{best:.2f}'}; registered "
                     f"{', '.join(study['registered']) or 'nothing new'}")
        lines += [f"  {problem}" for problem in study["problems"]]
    lines.append(f"profile {summary['profile']}, lake version {summary['lake_version']}, "
                 f"Optuna storage {summary['storage']}")
    return lines
