"""What the classical models share: windows flattened to rows, and safe scikit-learn files.

The classical family (the ``classical`` extra: scikit-learn, skops, xgboost) sees each window
``(lookback, n_features)`` as one row of ``lookback * n_features`` columns named
``<feature>__lag<k>`` (``k = 0`` is the window's last bar), as LightGBM does.

scikit-learn estimators are saved with skops, never pickle (house rule 11: nothing executes
what it did not write). Loading checks every type the file names against the model's own
explicit list before skops builds anything, and skops is then told to trust exactly that
list. The first check matters: skops trusts every scikit-learn estimator by default, so a
file holding an estimator this model never writes would otherwise load. skops is imported
only to save or load: its import walks every scikit-learn module (about a second).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo.base import ModelConfig

SCHEMA_FILE = "schema.json"
"""The member of a skops archive that describes every object it holds."""


def flatten_windows(X: np.ndarray, config: ModelConfig, owner: str) -> np.ndarray:
    """Windows ``(n, lookback, n_features)`` as float32 rows ``(n, lookback * n_features)``.

    Parameters
    ----------
    X : np.ndarray
        The windows; their shape must match ``config``.
    config : ModelConfig
        The model's config (``lookback`` and ``feature_names`` fix the expected shape).
    owner : str
        The model class's name, for the message.

    Raises
    ------
    ValueError
        ``X`` does not have the shape the model was built for.
    """
    expected = (config.lookback, len(config.feature_names))
    if X.ndim != 3 or X.shape[1:] != expected:
        raise ValueError(
            f"{owner} expects X of shape (n, {expected[0]}, {expected[1]}) "
            f"(lookback, features {list(config.feature_names)}); got {X.shape}"
        )
    return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


def column_names(config: ModelConfig) -> list[str]:
    """Names of the flattened columns, in order: ``<feature>__lag<k>``.

    Characters other than letters, digits and ``_`` become ``_`` (tree libraries reject
    brackets and JSON punctuation in feature names).
    """
    lookback = config.lookback
    safe_names = [re.sub(r"[^\w]", "_", feature) for feature in config.feature_names]
    return [
        f"{feature}__lag{lookback - 1 - step}"
        for step in range(lookback)
        for feature in safe_names
    ]


def save_estimator(estimator: Any, path: Path) -> None:
    """Write a fitted scikit-learn estimator to ``path`` in the skops format (no pickle)."""
    import skops.io

    skops.io.dump(estimator, Path(path))


def load_estimator(path: Path, trusted: Iterable[str], expected: type, owner: str) -> Any:
    """Read an estimator :func:`save_estimator` wrote, refusing any type not in ``trusted``.

    Parameters
    ----------
    path : Path
        The ``.skops`` file.
    trusted : Iterable[str]
        Every type name (``module.Class``) the model's file may hold: the exact list the
        model writes, builtins and ``numpy.ndarray`` included.
    expected : type
        The class of the top-level object (the estimator the model saved).
    owner : str
        The model class's name, for messages.

    Raises
    ------
    ValueError
        The file is not a skops archive, names a type outside ``trusted`` (the message
        lists them), or holds something other than an ``expected``.
    """
    path = Path(path)
    trusted = sorted(set(trusted))
    unexpected = sorted(stored_type_names(path) - set(trusted))
    if unexpected:
        raise ValueError(
            f"{owner}: {path} holds types this model never writes: {unexpected}; refusing to "
            f"load it (trusted: {trusted})"
        )
    import skops.io

    estimator = skops.io.load(path, trusted=trusted)
    if not isinstance(estimator, expected):
        raise ValueError(f"{owner}: {path} holds a {type(estimator).__name__}, "
                         f"not a {expected.__name__}")
    return estimator


def stored_type_names(path: Path) -> set[str]:
    """Every type (``module.Class``) a skops archive names, found by walking its schema.

    Raises
    ------
    ValueError
        ``path`` is not a skops archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read(SCHEMA_FILE))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a skops file ({error})") from error
    names: set[str] = set()
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                names.add(f"{node['__module__']}.{node['__class__']}")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return names
