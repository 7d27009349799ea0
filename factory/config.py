"""Configuration as data: pydantic models for conf/*.yaml.

Every model is frozen and forbids unknown keys, so a typo in a YAML key is an error that
names the key and the file. A profile (conf/profiles/<name>.yaml) is a partial document
deep-merged over the base files (an architecture it names replaces the base's entry whole):
it changes the grid's size, never the code path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from factory.data.span import COMMON, check_bound

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
BASE_FILES = ("data", "features", "grid", "evaluation", "selection", "execution", "search",
              "trading")

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names the file and key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    """Which bars the factory trains on.

    ``source`` is ``demo`` (the packaged S&P 500 and Nasdaq daily bars and four
    ``bokeh_sampledata`` stocks) or ``lake`` (whatever ``factory ingest`` committed);
    ``symbols`` restricts the universe (empty: all); ``start`` and ``end`` bound the history
    it trains and evaluates on: a date (``YYYY-MM-DD``, inclusive), ``common`` (the span
    every symbol covers, see ``factory.data.span``) or nothing (all of it). On the demo data
    ``end`` defaults to ``common``: the stocks end in March 2013, the indices in 2018.
    """

    source: Literal["demo", "lake"] = "demo"
    symbols: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _demo_ends_in_common(cls, document: Any) -> Any:
        if (isinstance(document, dict) and document.get("source", "demo") == "demo"
                and document.get("end") is None):
            return {**document, "end": COMMON}
        return document

    @model_validator(mode="after")
    def _bounds_are_dates(self) -> DataConfig:
        check_bound(self.start, "data.start")
        check_bound(self.end, "data.end")
        if (self.start not in (None, COMMON) and self.end not in (None, COMMON)
                and self.start > self.end):
            raise ValueError(f"data.start {self.start} is after data.end {self.end}")
        return self


class FeatureSetConfig(_Frozen):
    """Parameters of one feature set (see feature_sets/) and the normaliser its features
    get, fitted on each training fold only (``factory.training.normalisers``)."""

    params: dict[str, int | float] = Field(default_factory=dict)
    normaliser: Literal["zscore", "rank_gauss"] = "zscore"


Family = Literal["net", "tree", "linear", "econometric", "rl"]
RuleKind = Literal["capability", "feasibility", "prior_performance"]


class ConfigPattern(_Frozen):
    """Which grid configurations a rule names: every given field must match, and a list
    means "any of". ``families`` are the zoo's families (``factory models``); ``hparams``
    maps a hyperparameter to the values that match; ``reference`` matches an architecture's
    reference row (the first value of every axis) when true, every other row when false.
    """

    architectures: tuple[str, ...] = ()
    families: tuple[Family, ...] = ()
    lookbacks: tuple[PositiveInt, ...] = ()
    feature_sets: tuple[str, ...] = ()
    hparams: dict[str, list[Any]] = Field(default_factory=dict)
    reference: bool | None = None

    def is_empty(self) -> bool:
        """True when the pattern names nothing (it would match every configuration)."""
        return not (self.architectures or self.families or self.lookbacks
                    or self.feature_sets or self.hparams or self.reference is not None)


class ExclusionRule(_Frozen):
    """A named rule that drops the configurations ``where`` matches, except those any pattern
    of ``unless`` matches, and says why.

    ``kind`` is the rule's ground: ``capability`` (the model cannot use the cell, or would
    duplicate another), ``feasibility`` (the compute it would cost) or ``prior_performance``
    (measured earlier to add nothing). ``factory run --dry-run`` counts what each rule drops.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=60)]
    kind: RuleKind
    reason: Annotated[str, Field(min_length=5)]
    where: ConfigPattern
    unless: tuple[ConfigPattern, ...] = ()

    @model_validator(mode="after")
    def _has_a_pattern(self) -> ExclusionRule:
        if self.where.is_empty():
            raise ValueError(f"exclusion rule {self.name!r}: `where` must name architectures, "
                             "families, lookbacks, feature_sets or hparams")
        return self


class ArchitectureGrid(_Frozen):
    """Hyperparameter axes of one architecture: each key lists the values to try.

    The first value of every axis is the architecture's reference setting (exclusion rules
    can keep only that row away from the cell where the whole design runs). An axis whose
    values are mappings is a bundle: each value sets the hyperparameters it
    names (``regularisation: [{l1: 1e-5}, {l2: 1e-4}, {l1: 1e-5, l2: 1e-4}]``) and the
    axis name itself is not one. ``design`` combines the axes: ``full`` (every combination)
    or ``orthogonal`` (a strength-2 orthogonal array: every pair of levels of any two axes
    appears equally often, in s**2 rows for s levels instead of s**k; see
    ``factory.grid_design``).
    """

    hparams: dict[str, list[Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    design: Literal["full", "orthogonal"] = "full"

    @model_validator(mode="after")
    def _no_empty_axis(self) -> ArchitectureGrid:
        from factory.grid_design import check_axes

        empty = [k for k, v in self.hparams.items() if not v]
        if empty:
            raise ValueError(f"hyperparameter axes with no values: {empty}")
        check_axes(self.hparams, self.fixed, self.design)
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
        names = [rule.name for rule in self.exclusions]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"exclusion rules share a name: {repeated}")
        for rule in self.exclusions:
            named = set(rule.where.architectures).union(
                *(pattern.architectures for pattern in rule.unless))
            if named - set(self.architectures):
                raise ValueError(f"exclusion rule {rule.name!r} names architectures the grid "
                                 f"lacks: {sorted(named - set(self.architectures))}")
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
    """How training fans out: process workers and RunSpecs per mapped task.

    ``dask_address``: the scheduler of a Dask cluster (``tcp://host:port`` or
    ``tls://host:port``) to train on instead of local processes; ``workers`` is then unused
    (the cluster has its own). See ``flows.executors``.
    """

    workers: PositiveInt = 2
    chunk_size: PositiveInt = 4
    dask_address: str | None = None

    @model_validator(mode="after")
    def _dask_address_form(self) -> ExecutionConfig:
        if self.dask_address is not None:
            self.valid_dask_address(self.dask_address)
        return self

    @staticmethod
    def valid_dask_address(address: str) -> str:
        """Return ``address`` if it reads ``tcp://HOST:PORT`` or ``tls://HOST:PORT``.

        Raises
        ------
        ValueError
            Otherwise, quoting the address and the expected form.
        """
        scheme, _, rest = address.partition("://")
        host, _, port = rest.rpartition(":")
        if (scheme in ("tcp", "tls") and host and port.isdigit() and 0 < int(port) < 65536
                and not any(c.isspace() or c in "/?#@" for c in host)):
            return address
        raise ValueError(f"Dask scheduler address {address!r}: expected tcp://HOST:PORT or "
                         "tls://HOST:PORT, e.g. tcp://10.0.0.5:8786")


class MedianPrunerConfig(_Frozen):
    """Optuna's MedianPruner: a trial stops after a walk-forward fold where its running Sharpe
    is below the median of earlier trials' at that fold. ``n_startup_trials``: trials that
    finish every fold before any is pruned; ``n_warmup_steps``: folds every trial completes
    before it can be pruned."""

    n_startup_trials: Annotated[int, Field(ge=0)] = 5
    n_warmup_steps: Annotated[int, Field(ge=0)] = 0


class SearchConfig(_Frozen):
    """``factory run --search optuna``: a TPE search per architecture instead of the grid.

    ``n_trials``: configurations trained per architecture and invocation (a draw the grid
    excludes, or one already evaluated in the study, is answered without training and does
    not count); ``top_k``: the best completed trials of each study, refit on all history and
    registered as candidates; ``sampler_seed``, ``startup_trials``: TPE's seed and its random
    trials before it models; ``storage``: the studies' database URL (default: sqlite
    ``optuna.db`` beside the MLflow db; the environment's FACTORY_OPTUNA_STORAGE wins);
    ``only``: the architectures searched (default: the grid's); ``architectures``: axes
    searched instead of the grid's for the architectures named (finer than a grid affords);
    ``rule_kinds``: the kinds of ``grid.exclusions`` a draw obeys (what the grid's code
    drops, an architecture's capabilities and the universe's inputs, it always obeys): leave
    out ``feasibility`` to let the search reach configs the grid thins out for cost.
    """

    n_trials: PositiveInt = 20
    top_k: PositiveInt = 3
    sampler_seed: int = 0
    startup_trials: PositiveInt = 10
    pruner: MedianPrunerConfig = MedianPrunerConfig()
    storage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9+]*://")] | None = None
    only: tuple[str, ...] = ()
    architectures: dict[str, ArchitectureGrid] = Field(default_factory=dict)
    rule_kinds: tuple[RuleKind, ...] = ("capability", "feasibility", "prior_performance")


class RiskLimitsConfig(_Frozen):
    """What the backtest's and paper trader's risk manager enforces at every bar.

    ``max_position_weight``: largest ``|weight|`` of one asset; ``max_gross_leverage``:
    largest ``sum |weight|`` (scaled down in proportion); ``max_drawdown``: the kill switch,
    a fall of equity from its peak (0.25: 25%) after which every position is flattened and
    no new one opened; None disables it.
    """

    max_position_weight: Annotated[float, Field(gt=0)] = 1.0
    max_gross_leverage: Annotated[float, Field(gt=0)] = 2.0
    max_drawdown: Annotated[float, Field(gt=0, lt=1)] | None = 0.25


class PortfolioConfig(_Frozen):
    """Mean-variance construction of ``factory portfolio`` (``factory.portfolio``).

    ``risk_model``: ``pca`` (statistical factors of the trailing ``window`` daily returns;
    ``n_factors`` is capped at one fewer than the assets) or ``fama_french`` (the packaged
    monthly Fama-French factors, ``window_months``). ``risk_aversion``: lambda per unit of
    one-bar variance. ``transaction_cost_bps``: the optimiser's cost per unit of turnover.
    Constraints: ``max_gross`` (sum |w|), ``max_weight`` (|w_i|), ``dollar_neutral``,
    ``long_only``. ``rebalance_every``: bars between rebalances of the backtest.
    """

    risk_model: Literal["pca", "fama_french"] = "pca"
    n_factors: PositiveInt = 2
    window: PositiveInt = 252
    window_months: PositiveInt = 60
    risk_aversion: Annotated[float, Field(ge=0)] = 10.0
    transaction_cost_bps: Annotated[float, Field(ge=0)] = 2.0
    max_gross: Annotated[float, Field(gt=0)] = 2.0
    max_weight: Annotated[float, Field(gt=0)] = 0.05
    dollar_neutral: bool = False
    long_only: bool = False
    solver: Literal["CLARABEL", "ECOS"] = "CLARABEL"
    rebalance_every: PositiveInt = 1


class TradingConfig(_Frozen):
    """The simulated broker and account of ``factory backtest`` and ``factory paper``.

    Commission is charged on traded notional, slippage moves the fill price against the
    trader, and a fill trades at most ``max_volume_share`` of the bar's volume (the rest is
    cancelled; ``factory.backtest.execution``).
    """

    initial_cash: Annotated[float, Field(gt=0)] = 1_000_000.0
    commission_bps: Annotated[float, Field(ge=0)] = 2.0
    slippage_bps: Annotated[float, Field(ge=0)] = 1.0
    max_volume_share: Annotated[float, Field(gt=0, le=1)] | None = 0.1
    risk: RiskLimitsConfig = RiskLimitsConfig()
    portfolio: PortfolioConfig = PortfolioConfig()


class FactoryConfig(_Frozen):
    """The whole configuration of one factory run."""

    profile: str
    data: DataConfig
    features: dict[str, FeatureSetConfig]
    grid: GridConfig
    evaluation: EvaluationConfig
    selection: SelectionConfig
    execution: ExecutionConfig
    search: SearchConfig = SearchConfig()
    trading: TradingConfig = TradingConfig()

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


def merge_profile(document: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """Merge a profile over the base documents: deep, except that an architecture the
    profile's grid names replaces the base's entry whole, so a profile never trains an
    architecture on axes half its own and half the base's."""
    named = (profile.get("grid") or {}).get("architectures") or {}
    base_grid = dict(document.get("grid") or {})
    base_grid["architectures"] = {arch: entry for arch, entry
                                  in (base_grid.get("architectures") or {}).items()
                                  if arch not in named}
    return deep_merge({**document, "grid": base_grid}, profile)


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
    document = merge_profile(document, _read_yaml(profile_path))
    document = deep_merge(document, {"data": data or {}})
    try:
        return FactoryConfig.model_validate(document)
    except ValidationError as err:
        where = ", ".join(str(conf_dir / f"{n}.yaml") for n in BASE_FILES)
        raise ConfigError(f"invalid configuration ({where} + {profile_path}):\n{err}") from err
