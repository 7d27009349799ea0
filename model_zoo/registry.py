"""Architecture name -> implementing class, imported lazily.

The table below is all ``grid.expand`` needs: ``capabilities(name)`` reads
:data:`CAPABILITIES` and imports nothing, so expanding the grid never loads torch,
LightGBM or statsmodels. ``get_model_class`` imports an architecture's module only when a
model is actually built or loaded; a missing optional dependency raises an ``ImportError``
that names the extra to install (rule 5: never swallowed).

Adding an architecture: one line in :data:`ARCHITECTURES`, one in :data:`CAPABILITIES`,
and the class sets ``capabilities = CAPABILITIES["<name>"]`` (the same object).

The module also holds the few helpers every implementation shares (hyperparameter
validation, config (de)serialisation) so that they live in one place and import nothing
heavy.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_zoo.base import Capabilities, Model, ModelConfig

ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "lstm": ("model_zoo.nets.lstm", "LSTMModel", "nets"),
    "lightgbm": ("model_zoo.trees.lightgbm_model", "LightGBMModel", "trees"),
    "arima": ("model_zoo.econometric.arima", "ARIMAModel", "econometric"),
}
"""name -> (module, class name, pip extra that provides the module's dependencies)."""

CAPABILITIES: dict[str, Capabilities] = {
    "lstm": Capabilities(family="net", sequence=True, gpu=True),
    "lightgbm": Capabilities(family="tree"),
    "arima": Capabilities(
        family="econometric", sequence=False, univariate=True, uses_lookback=False
    ),
}
"""name -> capabilities; each model class references the very same object."""


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
    return CAPABILITIES[name]


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
    module_name, class_name, extra = ARCHITECTURES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if error.name is not None and error.name.split(".")[0] == "model_zoo":
            raise
        raise ImportError(
            f"architecture {name!r} cannot import {error.name or 'a dependency'!r} ({error}); "
            f"install it with: pip install model-factory[{extra}]"
        ) from error
    model_class = getattr(module, class_name)
    if model_class.capabilities != CAPABILITIES[name]:
        raise TypeError(
            f"{module_name}.{class_name}.capabilities differs from the registry's entry "
            f"for {name!r}: reference CAPABILITIES[{name!r}] in the class"
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
