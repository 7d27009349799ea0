"""Configuration as data: pydantic models for conf/*.yaml.

Every model is frozen and forbids unknown keys, so a typo in a YAML key is an error that
names the key and the file. A profile (conf/profiles/<name>.yaml) is a partial document
deep-merged over the base files: it changes the grid's size, never the code path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
BASE_FILES = ("data", "features", "grid", "evaluation", "selection", "execution")

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names the file and key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    """Which bars the factory trains on.

    ``source`` is ``demo`` (packaged S&P 500 and Nasdaq daily bars) or ``lake`` (whatever
    ``factory ingest`` committed); ``symbols`` restricts the universe (empty: all).
    """

    source: Literal["demo", "lake"] = "demo"
    symbols: tuple[str, ...] = ()


class FeatureSetConfig(_Frozen):
    """Parameters of one feature set (see feature_sets/) and the normaliser its features
    get, fitted on each training fold only (``factory.training.normalisers``)."""

    params: dict[str, int | float] = Field(default_factory=dict)
    normaliser: Literal["zscore", "rank_gauss"] = "zscore"


class ExclusionRule(_Frozen):
    """A grid cell pattern to drop, with the reason it is dropped.

    A cell is excluded when every given field matches (lists mean "any of").
    """

    reason: Annotated[str, Field(min_length=5)]
    architectures: tuple[str, ...] = ()
    lookbacks: tuple[PositiveInt, ...] = ()
    feature_sets: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _has_a_pattern(self) -> ExclusionRule:
        if not (self.architectures or self.lookbacks or self.feature_sets):
            raise ValueError("an exclusion rule must name architectures, lookbacks or feature_sets")
        return self


class ArchitectureGrid(_Frozen):
    """Hyperparameter axes of one architecture: each key lists the values to try."""

    hparams: dict[str, list[Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_empty_axis(self) -> ArchitectureGrid:
        empty = [k for k, v in self.hparams.items() if not v]
        if empty:
            raise ValueError(f"hyperparameter axes with no values: {empty}")
        overlap = set(self.hparams) & set(self.fixed)
        if overlap:
            raise ValueError(f"hyperparameters both searched and fixed: {sorted(overlap)}")
        return self


class GridConfig(_Frozen):
    """The factory grid: architectures x lookbacks x feature sets x hyperparameters."""

    architectures: dict[str, ArchitectureGrid]
    lookbacks: tuple[PositiveInt, ...]
    feature_sets: tuple[str, ...]
    exclusions: tuple[ExclusionRule, ...] = ()
    seed: int = 0
    only: tuple[str, ...] = ()
    """Train only these architectures (a profile's part of the zoo); empty: all of them."""

    @model_validator(mode="after")
    def _only_known(self) -> GridConfig:
        unknown = [name for name in self.only if name not in self.architectures]
        if unknown:
            raise ValueError(f"grid.only names architectures the grid lacks: {unknown}")
        return self


class EvaluationConfig(_Frozen):
    """Walk-forward evaluation and trading conventions (README: timing conventions)."""

    n_folds: PositiveInt = 3
    test_fraction: Fraction = 0.3
    valid_fraction: Fraction = 0.15
    embargo_bars: Annotated[int, Field(ge=0)] = 5
    max_train_bars: PositiveInt | None = None
    execution_price: Literal["close", "open"] = "close"
    cost_bps: Annotated[float, Field(ge=0)] = 2.0


class GateConfig(_Frozen):
    """What a configuration must clear to reach Production (README: the gates).

    ``min_obs``: out-of-sample bars (walk-forward plus live). ``min_deflated_sharpe``: the
    deflated Sharpe ratio (Bailey and Lopez de Prado 2014) with N = every trial ever run on
    the universe; None disables it. ``beat_buy_and_hold``: Sharpe above buy-and-hold's on the
    same bars after the same costs. ``min_live_psr``: once a version has ``min_live_bars``
    live (paper) bars, the probabilistic Sharpe ratio of its live record against 0 must be at
    least this (0.05: demoted when the live record shows a loss at 95% confidence; a short
    losing streak of a good model does not); None disables it.
    """

    min_obs: PositiveInt = 100
    min_deflated_sharpe: Annotated[float, Field(ge=0, le=1)] | None = 0.95
    beat_buy_and_hold: bool = False
    min_live_psr: Annotated[float, Field(ge=0, le=1)] | None = 0.05
    min_live_bars: PositiveInt = 20


class AllocationConfig(_Frozen):
    """How the Production models share capital: weights sum to 1, none above ``max_weight``.

    A model's raw weight is its risk-adjusted record, ``(1 - recent_weight) * sharpe +
    recent_weight * rolling_sharpe_30d`` floored at 0, so a configuration on the rise gains
    weight and a falling one loses it.
    """

    recent_weight: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_weight: Annotated[float, Field(gt=0, le=1)] = 0.25


class SelectionConfig(_Frozen):
    """How the daily selection gates, ranks, diversifies and stages candidates."""

    weights: dict[str, Annotated[float, Field(ge=0)]]
    top_k: PositiveInt = 12
    min_k: Annotated[int, Field(ge=0)] = 10
    staging_k: Annotated[int, Field(ge=0)] = 10
    max_correlation: Annotated[float, Field(gt=0, le=1)] = 0.9
    gates: GateConfig = GateConfig()
    allocation: AllocationConfig = AllocationConfig()
    pbo_partitions: Annotated[int, Field(ge=2, multiple_of=2)] = 16

    @model_validator(mode="after")
    def _k_order(self) -> SelectionConfig:
        if self.min_k > self.top_k:
            raise ValueError(f"min_k ({self.min_k}) exceeds top_k ({self.top_k})")
        return self


class ExecutionConfig(_Frozen):
    """How training fans out: process workers and RunSpecs per mapped task."""

    workers: PositiveInt = 2
    chunk_size: PositiveInt = 4


class FactoryConfig(_Frozen):
    """The whole configuration of one factory run."""

    profile: str
    data: DataConfig
    features: dict[str, FeatureSetConfig]
    grid: GridConfig
    evaluation: EvaluationConfig
    selection: SelectionConfig
    execution: ExecutionConfig

    @model_validator(mode="after")
    def _feature_sets_defined(self) -> FactoryConfig:
        missing = [f for f in self.grid.feature_sets if f not in self.features]
        if missing:
            raise ValueError(f"grid.feature_sets names undefined feature sets {missing}")
        return self


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    with path.open() as fh:
        loaded = yaml.safe_load(fh) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in; nested mappings merge, other values replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(profile: str = "demo", conf_dir: Path = CONF_DIR,
                data: dict[str, Any] | None = None) -> FactoryConfig:
    """Load conf/*.yaml and merge ``conf/profiles/<profile>.yaml`` over it.

    Parameters
    ----------
    profile
        conf/profiles/<profile>.yaml.
    conf_dir
        The configuration folder.
    data
        Overrides of the ``data`` section merged last (``factory run --source lake
        --symbols ...``); validated like the files.

    Raises
    ------
    ConfigError
        When a file is missing or a key is unknown or invalid; the message names the files.
    """
    document: dict[str, Any] = {"profile": profile}
    for name in BASE_FILES:
        document[name] = _read_yaml(conf_dir / f"{name}.yaml")
    profile_path = conf_dir / "profiles" / f"{profile}.yaml"
    document = deep_merge(document, _read_yaml(profile_path))
    document = deep_merge(document, {"data": data or {}})
    try:
        return FactoryConfig.model_validate(document)
    except ValidationError as err:
        where = ", ".join(str(conf_dir / f"{n}.yaml") for n in BASE_FILES)
        raise ConfigError(f"invalid configuration ({where} + {profile_path}):\n{err}") from err
