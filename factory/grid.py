"""Expand the factory grid into RunSpecs, dropping impossible or pointless cells with reasons.

A RunSpec is frozen configuration. Its id is the sha256 of its canonical JSON: the same id
is the MLflow run tag, the Prefect cache key and the artifact path, so one configuration can
be followed through every system. Its readable label, ``<arch>-L<lookback>-<feature set>-<first
10 hex digits of the id>``, is the MLflow run name and the registered model's name.

Labels are unique by construction only with high probability: two specs of the same arch,
lookback and feature set share a label when their ids share the first 40 bits (for n such
specs, about n**2 / 2**41: 1e-7 for the 486 of the full grid). That is checked rather than
assumed: :func:`expand` refuses a grid whose labels collide, and the registry refuses to add a
version to a model name whose ``spec_id`` tag names another spec.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from factory.config import ConfigPattern, EvaluationConfig, ExclusionRule, FactoryConfig
from factory.grid_design import combinations
from factory.training.feature_inputs import missing_panel
from feature_sets import feature_set as registered_feature_set
from model_zoo.registry import capabilities

_LATER_FIELDS = ("normaliser", "data_start", "data_end")


class RunSpec(BaseModel):
    """One cell of the grid: everything that determines a trained model and its evaluation.

    The lake version is deliberately not part of it: training the same RunSpec on newer data
    makes a new version of the same registered model. The span of history is part of it as
    configured (``data_start``, ``data_end``: a date or ``common``, see
    ``factory.data.span``), so ``common`` keeps its id as the lake grows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: str
    lookback: int
    feature_set: str
    feature_params: dict[str, int | float]
    hparams: dict[str, Any]
    evaluation: EvaluationConfig
    symbols: tuple[str, ...]
    seed: int
    normaliser: str = "zscore"
    data_start: str | None = None
    data_end: str | None = None

    def canonical_json(self) -> str:
        """JSON with sorted keys and no whitespace: the input of the id.

        Fields added after ids were first issued (``normaliser``, the span) enter it only when they
        differ from their default, so the ids of earlier configurations stay valid.
        """
        fields = self.model_dump(mode="json")
        for name in _LATER_FIELDS:
            if fields[name] == type(self).model_fields[name].default:
                del fields[name]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        """sha256 hex digest of the canonical JSON."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def short_id(self) -> str:
        """First 10 hex digits, for display only."""
        return self.id[:10]

    @property
    def model_name(self) -> str:
        """Registered model name: the readable :attr:`label` (the full id is a tag)."""
        return self.label

    @property
    def label(self) -> str:
        """Short readable name: ``<arch>-L<lookback>-<feature set>-<short id>``."""
        return f"{self.arch}-L{self.lookback}-{self.feature_set}-{self.short_id}"

    def describe(self) -> str:
        """One human line: arch, lookback, feature set and hyperparameters."""
        hp = ",".join(f"{k}={v}" for k, v in sorted(self.hparams.items()))
        return f"{self.arch} L={self.lookback} {self.feature_set} {hp}"


@dataclass(frozen=True)
class ExcludedCell:
    """Configurations of one grid cell that a rule dropped, and why.

    Attributes
    ----------
    arch, lookback, feature_set
        The cell.
    reason, rule, kind
        The rule's reason, name and ground (``capability``, ``feasibility``,
        ``prior_performance``, or ``inputs`` for what the universe's data lacks).
    configs
        How many of the cell's hyperparameter combinations it dropped.
    """

    arch: str
    lookback: int
    feature_set: str
    reason: str
    rule: str = ""
    kind: str = "capability"
    configs: int = 1


@dataclass(frozen=True)
class GridExpansion:
    """The kept RunSpecs and the excluded cells of one expansion."""

    specs: list[RunSpec]
    excluded: list[ExcludedCell]

    def kept_by(self, field: str) -> dict[Any, int]:
        """Kept configurations per value of a RunSpec field (``arch``, ``lookback``,
        ``feature_set``), in first-seen order."""
        counts: dict[Any, int] = {}
        for spec in self.specs:
            key = getattr(spec, field)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def dropped_by_rule(self, config: FactoryConfig) -> dict[str, tuple[str, str, int]]:
        """Rule name -> (ground, reason, configurations dropped) for every rule of
        ``config`` (the built-in ones first, then the grid's in their order), zero where a
        rule dropped nothing."""
        dropped = {name: (kind, reason, 0) for name, (kind, reason) in BUILT_IN_RULES.items()}
        dropped |= {r.name: (r.kind, r.reason, 0) for r in config.grid.exclusions}
        for cell in self.excluded:
            kind, reason, count = dropped[cell.rule]
            dropped[cell.rule] = (kind, reason, count + cell.configs)
        return dropped


class LabelCollisionError(ValueError):
    """Two different RunSpecs share a label, hence a registered model name."""


def check_unique_labels(specs: list[RunSpec]) -> None:
    """Refuse specs whose labels collide (same arch, lookback, feature set and short id).

    Raises
    ------
    LabelCollisionError
        Naming the label and both spec ids. Identical specs (same id) are not a collision.
    """
    seen: dict[str, str] = {}
    for spec in specs:
        other = seen.setdefault(spec.label, spec.id)
        if other != spec.id:
            raise LabelCollisionError(
                f"specs {other} and {spec.id} share the label {spec.label!r} (their ids agree in "
                "the first 10 hex digits), which would make them one registered model; change "
                "the seed of one of them")


BUILT_IN_RULES: dict[str, tuple[str, str]] = {
    "inputs-missing": ("inputs", "the feature set needs an input (a panel of assets, a "
                       "sentiment or on-chain table) the universe's data lacks"),
    "panel-needs-two-assets": ("inputs", "a panel model (VAR, the graph net) needs two assets "
                               "or more"),
    "univariate-one-feature-set": ("capability", "a univariate model uses only ret_1, which "
                                   "every feature set carries: one feature set is kept, the "
                                   "others would duplicate it"),
    "whole-history-one-lookback": ("capability", "a model that filters the whole history uses "
                                   "the lookback only as its warm-up: one lookback is kept, "
                                   "the others would duplicate it"),
}
"""The rules :func:`expand` applies before the configured ones: name -> (ground, reason in
general; each excluded cell carries its own, naming the architecture)."""


def _capability_rule(arch: str, lookback: int, feature_set: str, config: FactoryConfig,
                     symbols: tuple[str, ...], missing: dict[str, str]) -> tuple[str, str, str]:
    """(rule, kind, reason) of the built-in rule that drops the cell, or empty strings."""
    caps = capabilities(arch)
    grid = config.grid
    lacking = [k for k in registered_feature_set(feature_set).needs if k in missing]
    if lacking:
        return ("inputs-missing", "inputs",
                f"feature set {feature_set!r} needs {', '.join(lacking)}: "
                + "; ".join(missing[k] for k in lacking))
    if caps.panel and len(symbols) == 1:
        return ("panel-needs-two-assets", "inputs",
                f"{arch} models a panel of assets together: the universe has one symbol "
                f"({symbols[0]})")
    if caps.univariate and feature_set != grid.feature_sets[0]:
        return ("univariate-one-feature-set", "capability",
                f"{arch} is univariate (uses only ret_1, which every feature set carries): "
                f"only feature set {grid.feature_sets[0]!r} is kept, the others would "
                "duplicate it")
    if not caps.uses_lookback and lookback != min(grid.lookbacks):
        return ("whole-history-one-lookback", "capability",
                f"{arch} filters the whole history, the lookback only sets its warm-up: "
                f"only lookback {min(grid.lookbacks)} is kept, the others would duplicate it")
    return "", "", ""


def _pattern_matches(pattern: ConfigPattern, arch: str, lookback: int, feature_set: str,
                     hparams: dict[str, Any], reference: bool) -> bool:
    return (
        (pattern.reference is None or pattern.reference == reference)
        and (not pattern.architectures or arch in pattern.architectures)
        and (not pattern.families or capabilities(arch).family in pattern.families)
        and (not pattern.lookbacks or lookback in pattern.lookbacks)
        and (not pattern.feature_sets or feature_set in pattern.feature_sets)
        and all(name in hparams and hparams[name] in values
                for name, values in pattern.hparams.items())
    )


def rule_matches(rule: ExclusionRule, arch: str, lookback: int, feature_set: str,
                 hparams: dict[str, Any], reference: bool = False) -> bool:
    """Whether ``rule`` drops this configuration: ``where`` matches and no pattern of
    ``unless`` does. ``reference``: whether ``hparams`` is the architecture's reference row
    (the first value of every axis)."""
    def matches(pattern: ConfigPattern) -> bool:
        return _pattern_matches(pattern, arch, lookback, feature_set, hparams, reference)

    return matches(rule.where) and not any(matches(pattern) for pattern in rule.unless)


def expand(config: FactoryConfig, symbols: tuple[str, ...] = (),
           missing_inputs: dict[str, str] | None = None) -> GridExpansion:
    """Expand ``config.grid`` into RunSpecs.

    Parameters
    ----------
    config : FactoryConfig
        The loaded configuration (a profile already merged in).
    symbols : tuple of str
        The universe the specs train on (part of each spec's identity).
    missing_inputs : dict of str to str, optional
        Input kind -> why the universe lacks it (``factory.training.feature_inputs.
        missing_inputs``); cells whose feature set needs one are excluded with that reason.
        Default: only a one-symbol universe's missing panel is known.

    Returns
    -------
    GridExpansion
        Kept specs in a deterministic order, and every excluded cell with its reason.

    Raises
    ------
    LabelCollisionError
        Two different specs would share a label (see :func:`check_unique_labels`).
    """
    specs: list[RunSpec] = []
    excluded: list[ExcludedCell] = []
    grid = config.grid
    if missing_inputs is None:
        missing_inputs = missing_panel(symbols)
    for arch in (a for a in grid.architectures if not grid.only or a in grid.only):
        axes = grid.architectures[arch]
        combos = combinations(axes.hparams, axes.fixed, axes.design)
        for lookback, feature_set in itertools.product(grid.lookbacks, grid.feature_sets):
            rule, kind, reason = _capability_rule(arch, lookback, feature_set, config, symbols,
                                                  missing_inputs)
            if rule:
                excluded.append(ExcludedCell(arch, lookback, feature_set, reason, rule, kind,
                                             len(combos)))
                continue
            dropped: Counter[int] = Counter()
            for hparams in combos:
                reference = hparams == combos[0]
                matched = next((i for i, r in enumerate(grid.exclusions)
                                if rule_matches(r, arch, lookback, feature_set, hparams,
                                                reference)), None)
                if matched is not None:
                    dropped[matched] += 1
                    continue
                specs.append(RunSpec(
                    arch=arch, lookback=lookback, feature_set=feature_set,
                    feature_params=config.features[feature_set].params,
                    normaliser=config.features[feature_set].normaliser,
                    hparams=hparams, evaluation=config.evaluation, symbols=symbols,
                    seed=grid.seed, data_start=config.data.start, data_end=config.data.end))
            excluded.extend(
                ExcludedCell(arch, lookback, feature_set, grid.exclusions[i].reason,
                             grid.exclusions[i].name, grid.exclusions[i].kind, n)
                for i, n in sorted(dropped.items()))
    check_unique_labels(specs)
    return GridExpansion(specs=specs, excluded=excluded)
