"""Architecture name -> implementing class, imported lazily: one declaration each.

:data:`ARCHITECTURES` is all ``grid.expand`` and ``factory models`` need:
``capabilities(name)`` reads it and imports nothing, so expanding the grid never loads torch,
LightGBM or statsmodels. ``get_model_class`` imports an architecture's module only when a
model is actually built or loaded; a missing optional dependency raises an ``ImportError``
that names the extra to install (rule 5: never swallowed).

Adding an architecture: one :class:`Architecture` in :data:`ARCHITECTURES`, and the class
sets ``capabilities = ARCHITECTURES["<name>"].capabilities`` (the same object).

Hyperparameters that mean the same thing share a name across families, so the grid names
them once: ``learning_rate``, ``hidden_size``, ``num_layers``, ``dropout``, ``l1`` and ``l2``
(regularisation: L1, L2 or both), ``n_estimators``, ``max_depth``, ``max_epochs``,
``batch_size``.

The module also holds the few helpers every implementation shares (hyperparameter
validation, config (de)serialisation) so that they live in one place and import nothing
heavy.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_zoo.base import Capabilities, Model, ModelConfig

SHARED_HPARAMS = ("learning_rate", "hidden_size", "num_layers", "dropout", "l1", "l2",
                  "n_estimators", "max_depth", "max_epochs", "batch_size")
"""Names every family uses for the same meaning (see the module docstring)."""


@dataclass(frozen=True)
class Architecture:
    """One architecture of the zoo: where it lives, what it needs, what it can consume.

    Attributes
    ----------
    name : str
        Registry name (the grid's key, the first part of a registered model's name).
    module, class_name : str
        The implementing class, imported lazily.
    extras : tuple of str
        The pip extras of ``model-factory`` that provide its libraries.
    library : str
        The well-kept library it stands on (for ``factory models`` and the README).
    capabilities : Capabilities
        What it consumes; the class holds the very same object.
    summary : str
        What it is, in a line.
    """

    name: str
    module: str
    class_name: str
    extras: tuple[str, ...]
    library: str
    capabilities: Capabilities
    summary: str


_NET = Capabilities(family="net", sequence=True, gpu=True)
_TABULAR_NET = Capabilities(family="net", gpu=True)
_TREE = Capabilities(family="tree")
_LINEAR = Capabilities(family="linear")
_RL = Capabilities(family="rl")  # the MLP policy reads the flattened window
_UNIVARIATE = Capabilities(family="econometric", univariate=True, uses_lookback=False,
                           min_history=30)


def _declare(*architectures: Architecture) -> dict[str, Architecture]:
    return {a.name: a for a in architectures}


ARCHITECTURES: dict[str, Architecture] = _declare(
    Architecture("lstm", "model_zoo.nets.lstm", "LSTMModel", ("nets",), "torch + lightning",
                 _NET, "stacked LSTM, linear head on the last step"),
    Architecture("bilstm", "model_zoo.nets.bilstm", "BiLSTMModel", ("nets",),
                 "torch + lightning", _NET, "bidirectional LSTM"),
    Architecture("gru_lstm", "model_zoo.nets.gru_lstm", "GRULSTMModel", ("nets",),
                 "torch + lightning", _NET, "GRU layers feeding LSTM layers"),
    Architecture("lstm_attention", "model_zoo.nets.lstm_attention", "LSTMAttentionModel",
                 ("nets",), "torch + lightning", _NET,
                 "LSTM, multi-head self-attention, MLP head"),
    Architecture("transformer", "model_zoo.nets.transformer", "TransformerModel", ("nets",),
                 "torch + lightning", _NET,
                 "linear embedding, positional encoding, encoder, MLP head"),
    Architecture("time2vec_transformer", "model_zoo.nets.time2vec_transformer",
                 "Time2VecTransformerModel", ("nets",), "torch + lightning", _NET,
                 "transformer encoder with a Time2Vec time encoding"),
    Architecture("tcn", "model_zoo.nets.tcn", "TCNModel", ("nets",), "torch + lightning", _NET,
                 "dilated causal convolutions with residual blocks"),
    Architecture("tft", "model_zoo.nets.tft", "TFTModel", ("nets",), "torch + lightning", _NET,
                 "Temporal Fusion Transformer: variable selection, gated residual networks, "
                 "LSTM encoder, interpretable multi-head attention"),
    Architecture("cnn1d", "model_zoo.nets.cnn1d", "CNN1DModel", ("nets",), "torch + lightning",
                 _NET, "parallel 1-D convolutions (kernels 3/5/7), global max pooling"),
    Architecture("ensemble", "model_zoo.nets.ensemble", "EnsembleModel", ("nets",),
                 "torch + lightning", _NET,
                 "transformer + LSTM-attention + CNN, aggregated by a learned layer"),
    Architecture("resnet_mlp", "model_zoo.nets.resnet_mlp", "ResNetMLPModel", ("nets",),
                 "torch + lightning", _TABULAR_NET, "residual MLP on the flattened window"),
    Architecture("tabnet", "model_zoo.nets.tabnet", "TabNetModel", ("nets",),
                 "torch + lightning", _TABULAR_NET,
                 "TabNet: sequential attentive feature selection (sparsemax masks)"),
    Architecture("gnn", "model_zoo.nets.gnn", "GNNModel", ("nets",), "torch + lightning",
                 Capabilities(family="net", sequence=True, gpu=True, panel=True),
                 "assets as nodes, edges from rolling return correlation known at t, "
                 "graph convolution"),
    Architecture("dae_lgbm", "model_zoo.nets.dae_lgbm", "DAELightGBMModel", ("nets", "trees"),
                 "torch + lightning, lightgbm", _TABULAR_NET,
                 "rank-gauss inputs, denoising autoencoder (64-d bottleneck), LightGBM head"),
    Architecture("random_forest", "model_zoo.trees.random_forest", "RandomForestModel",
                 ("classical",), "scikit-learn (skops persistence)", _TREE,
                 "random forest regressor"),
    Architecture("xgboost", "model_zoo.trees.xgboost_model", "XGBoostModel", ("classical",),
                 "xgboost", _TREE, "gradient-boosted trees, early stopping on validation"),
    Architecture("lightgbm", "model_zoo.trees.lightgbm_model", "LightGBMModel", ("trees",),
                 "lightgbm", _TREE, "gradient-boosted trees, early stopping on validation"),
    Architecture("svm", "model_zoo.linear.svm", "SVMModel", ("classical",),
                 "scikit-learn (skops persistence)", _LINEAR, "support vector regression"),
    Architecture("logistic_regression", "model_zoo.linear.logistic_regression",
                 "LogisticRegressionModel", ("classical",), "scikit-learn (skops persistence)",
                 _LINEAR, "probability of an up move, as a signed score"),
    Architecture("arima", "model_zoo.econometric.arima", "ARIMAModel", ("econometric",),
                 "statsmodels", _UNIVARIATE, "ARIMA(p, d, q) two-step forecast"),
    Architecture("garch", "model_zoo.econometric.garch", "GARCHModel", ("econometric",),
                 "arch", Capabilities(family="econometric", univariate=True,
                                      uses_lookback=False, min_history=100),
                 "AR mean with GARCH(1,1) volatility: mean forecast over volatility forecast"),
    Architecture("holt_winters", "model_zoo.econometric.holt_winters", "HoltWintersModel",
                 ("econometric",), "statsmodels", _UNIVARIATE,
                 "exponential smoothing of the price level"),
    Architecture("var", "model_zoo.econometric.var", "VARModel", ("econometric",),
                 "statsmodels", Capabilities(family="econometric", univariate=True,
                                             uses_lookback=False, panel=True, min_history=30),
                 "vector autoregression over the asset panel"),
    Architecture("dqn", "model_zoo.rl.dqn", "DQNModel", ("rl",),
                 "stable-baselines3 + gymnasium", _RL, "deep Q-network over discrete positions"),
    Architecture("ppo", "model_zoo.rl.ppo", "PPOModel", ("rl",),
                 "stable-baselines3 + gymnasium", _RL, "proximal policy optimisation"),
    Architecture("a2c", "model_zoo.rl.a2c", "A2CModel", ("rl",),
                 "stable-baselines3 + gymnasium", _RL,
                 "advantage actor-critic (synchronous A3C: no maintained asynchronous one)"),
)
"""name -> its one declaration; each model class references its ``capabilities`` object."""


def _check_known(name: str) -> None:
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {name!r}; known architectures: {known}")


def capabilities(name: str) -> Capabilities:
    """What architecture ``name`` can consume, without importing its module.

    Raises
    ------
    KeyError
        ``name`` is not registered (the message lists the known names).
    """
    _check_known(name)
    return ARCHITECTURES[name].capabilities


def get_model_class(name: str) -> type[Model]:
    """Import and return the class that implements architecture ``name``.

    Raises
    ------
    KeyError
        ``name`` is not registered.
    ImportError
        A dependency of the architecture is missing; the message says which
        ``pip install model-factory[<extra>]`` provides it.
    """
    _check_known(name)
    declared = ARCHITECTURES[name]
    module_name, class_name = declared.module, declared.class_name
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if error.name is not None and error.name.split(".")[0] == "model_zoo":
            raise
        raise ImportError(
            f"architecture {name!r} cannot import {error.name or 'a dependency'!r} ({error}); "
            f"install it with: pip install model-factory[{','.join(declared.extras)}]"
        ) from error
    model_class = getattr(module, class_name)
    if model_class.capabilities != declared.capabilities:
        raise TypeError(
            f"{module_name}.{class_name}.capabilities differs from the registry's entry "
            f"for {name!r}: reference ARCHITECTURES[{name!r}].capabilities in the class"
        )
    return model_class


def build_model(name: str, config: ModelConfig) -> Model:
    """Construct an unfitted model of architecture ``name``."""
    return get_model_class(name)(config)


def load_model(name: str, directory: str | Path) -> Model:
    """Rebuild a fitted model of architecture ``name`` that ``save`` wrote to ``directory``."""
    return get_model_class(name).load(Path(directory))


def resolve_hparams(
    given: Mapping[str, Any], defaults: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Fill ``given`` from ``defaults`` and coerce each value to its default's type.

    Parameters
    ----------
    given : Mapping[str, Any]
        Hyperparameters from the grid (a subset of ``defaults``' keys).
    defaults : Mapping[str, Any]
        Every accepted hyperparameter with its default value.
    owner : str
        Name used in error messages (the model class).

    Raises
    ------
    ValueError
        An unknown name, or a value that does not fit the default's type.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"{owner}: unknown hyperparameters {unknown}; accepted: {sorted(defaults)}"
        )
    resolved = dict(defaults)
    for key, value in given.items():
        resolved[key] = _coerce(value, defaults[key], f"{owner}: hyperparameter {key!r}")
    return resolved


def _coerce(value: Any, default: Any, where: str) -> Any:
    wrong = ValueError(f"{where} must be like {default!r}; got {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        if isinstance(value, float) and not value.is_integer():
            raise wrong
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise wrong
        return value
    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise wrong
        pairs = zip(value, default, strict=True)
        return [_coerce(item, item_default, where) for item, item_default in pairs]
    return value


MODEL_META_FILE = "model.json"


def write_model_meta(directory: Path, config: ModelConfig, hparams: Mapping[str, Any],
                     **extra: Any) -> Path:
    """Create ``directory`` and write ``model.json``: ``config`` with its resolved hparams
    (defaults filled in) plus the model's own fitted state in ``extra`` (JSON-ready)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"config": {"hparams": dict(hparams), "feature_names": list(config.feature_names),
                       "lookback": config.lookback, "seed": config.seed}, **extra}
    (directory / MODEL_META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def read_model_meta(directory: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Read what :func:`write_model_meta` wrote: the config and the extra state."""
    meta = json.loads((Path(directory) / MODEL_META_FILE).read_text())
    data = meta.pop("config")
    config = ModelConfig(hparams=dict(data["hparams"]), feature_names=tuple(data["feature_names"]),
                         lookback=int(data["lookback"]), seed=int(data["seed"]))
    return config, meta
