"""The search space of one architecture: what a trial draws, and the RunSpec a draw stands for.

A draw picks a lookback from ``grid.lookbacks``, a feature set from ``grid.feature_sets`` and
one value of every hyperparameter axis of the architecture's entry (``search.architectures``
where it names the architecture, else the grid's), each a categorical over its listed values;
fixed hyperparameters stay fixed. The RunSpec is built by ``factory.grid.expand`` itself, on a
copy of the configuration restricted to the architecture and to the drawn value of each axis,
so a trial is exactly the config the grid would train, and a draw the grid would drop (the
architecture's capabilities, inputs the universe lacks, the configured exclusion rules of the
kinds ``search.rule_kinds`` names: all by default) comes back with the grid's reason
instead. The space's size is the number of configs the grid keeps from the full product of
the axes (whatever ``design`` the grid uses to thin its own run).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from factory.config import ArchitectureGrid, FactoryConfig
from factory.grid import RunSpec, expand
from model_zoo.registry import ARCHITECTURES

LOOKBACK, FEATURE_SET, HPARAM_PREFIX = "lookback", "feature_set", "hp."
"""Names of a trial's parameters: ``lookback``, ``feature_set`` and ``hp.<axis>``."""


def _choice(value: Any) -> Any:
    """An axis value as an Optuna categorical choice: plain scalars as they are, lists and
    mappings (an ARIMA order, a bundle) as their JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class SearchSpace:
    """One architecture's space, and the configs the grid allows in it.

    Attributes
    ----------
    arch
        The architecture.
    config
        The configuration restricted to it (``grid.only``), with the searched axes as its
        entry, combined in full.
    symbols, missing_inputs
        The universe and the inputs it lacks (as ``expand`` takes them).
    allowed
        Every config the grid keeps from the full product, in ``expand``'s order.
    """

    arch: str
    config: FactoryConfig
    symbols: tuple[str, ...]
    missing_inputs: dict[str, str] | None = None
    allowed: tuple[RunSpec, ...] = ()

    @property
    def entry(self) -> ArchitectureGrid:
        """The architecture's axes and fixed hyperparameters as searched."""
        return self.config.grid.architectures[self.arch]

    @property
    def size(self) -> int:
        """How many configs a trial can train: the grid's kept configs of the full product."""
        return len(self.allowed)

    @property
    def product(self) -> int:
        """How many points a draw can land on (allowed or not)."""
        n = len(self.config.grid.lookbacks) * len(self.config.grid.feature_sets)
        for values in self.entry.hparams.values():
            n *= len(values)
        return n

    def choices(self) -> dict[str, list[Any]]:
        """Parameter name -> its categorical choices, in a fixed order."""
        grid = self.config.grid
        params: dict[str, list[Any]] = {LOOKBACK: list(grid.lookbacks),
                                        FEATURE_SET: list(grid.feature_sets)}
        for axis in sorted(self.entry.hparams):
            params[HPARAM_PREFIX + axis] = [_choice(v) for v in self.entry.hparams[axis]]
        return params

    def digest(self) -> str:
        """sha256 of the choices and the allowed configs' ids: the study's identity (the
        universe, evaluation and feature parameters are inside every spec id)."""
        text = json.dumps({"choices": self.choices(),
                           "allowed": sorted(spec.id for spec in self.allowed)},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def suggest(self, trial) -> dict[str, Any]:
        """Draw a point with an Optuna trial (``trial.suggest_categorical`` per parameter)."""
        return {name: trial.suggest_categorical(name, values)
                for name, values in self.choices().items()}

    def spec_for(self, point: dict[str, Any]) -> tuple[RunSpec | None, str]:
        """The RunSpec a drawn point stands for, or None and the grid's reason to drop it.

        Parameters
        ----------
        point
            Parameter name -> drawn choice (what :meth:`suggest` returns).
        """
        axes = {}
        for axis, values in self.entry.hparams.items():
            drawn = point[HPARAM_PREFIX + axis]
            axes[axis] = [next(v for v in values if _choice(v) == drawn)]
        config = _restricted(self.config, self.arch,
                             self.entry.model_copy(update={"hparams": axes}))
        expansion = expand(config, self.symbols, self.missing_inputs)
        lookback, feature_set = point[LOOKBACK], point[FEATURE_SET]
        for spec in expansion.specs:
            if spec.lookback == lookback and spec.feature_set == feature_set:
                return spec, ""
        reasons = [cell.reason for cell in expansion.excluded
                   if (cell.lookback, cell.feature_set) == (lookback, feature_set)]
        return None, reasons[0] if reasons else "the grid does not keep this config"


def _restricted(config: FactoryConfig, arch: str, entry: ArchitectureGrid) -> FactoryConfig:
    """``config`` with only ``arch`` in the grid, ``entry`` its axes, combined in full, and
    the exclusion rules of the kinds ``search.rule_kinds`` names."""
    if "design" in type(entry).model_fields:
        entry = entry.model_copy(update={"design": "full"})
    kinds = config.search.rule_kinds
    grid = config.grid.model_copy(update={
        "only": (arch,), "architectures": {**config.grid.architectures, arch: entry},
        "exclusions": tuple(r for r in config.grid.exclusions
                            if getattr(r, "kind", None) in kinds or not hasattr(r, "kind"))})
    return config.model_copy(update={"grid": grid})


def searched_architectures(config: FactoryConfig) -> list[str]:
    """``search.only``, else the grid's architectures (``grid.only`` where set).

    Raises
    ------
    ValueError
        An architecture the zoo lacks, or one with no axes in the grid or in
        ``search.architectures``.
    """
    grid, search = config.grid, config.search
    names = list(search.only or grid.only or grid.architectures)
    unknown = [a for a in [*names, *search.architectures] if a not in ARCHITECTURES]
    if unknown:
        raise ValueError(f"search (conf/search.yaml or the profile) names architectures the "
                         f"zoo lacks: {unknown}")
    unplaced = [a for a in names if a not in grid.architectures and a not in search.architectures]
    if unplaced:
        raise ValueError(f"search.only names architectures with no axes in the grid or in "
                         f"search.architectures: {unplaced}")
    return names


def build_space(config: FactoryConfig, arch: str, symbols: tuple[str, ...],
                missing_inputs: dict[str, str] | None = None) -> SearchSpace:
    """The search space of ``arch`` on a universe.

    Parameters
    ----------
    config
        The loaded configuration (profile merged).
    arch
        One of :func:`searched_architectures`.
    symbols, missing_inputs
        The universe and the inputs it lacks, as ``factory.grid.expand`` takes them.
    """
    entry = config.search.architectures.get(arch) or config.grid.architectures[arch]
    restricted = _restricted(config, arch, entry)
    allowed = tuple(expand(restricted, symbols, missing_inputs).specs)
    return SearchSpace(arch, restricted, tuple(symbols), missing_inputs, allowed)
