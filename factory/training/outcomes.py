"""Training outcomes on disk, in plain formats: what a training worker hands to the logger.

A worker writes each :class:`SpecOutcome` to its own directory (``outcome.json``, with the
metrics of every fold, plus ``oos.parquet``, ``portfolio.parquet`` and the equity and
drawdown picture ``equity_drawdown.png``, drawn here so the logger in the flow's process
does not: it was half of the per-model logging time) and passes on only the
directory's path, so the
Prefect result cache stores a list of strings as JSON and never a pickle (rule 11). A
directory appears whole or not at all: it is written under a temporary name beside its
final place and renamed into it, so a killed worker leaves no half outcome, only a
temporary directory that the next save of the same outcome removes.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import polars as pl

from factory.grid import RunSpec
from factory.training.datasets import DatasetRef
from factory.training.fit import SpecOutcome, run_chunk
from factory.training.plots import equity_drawdown_png

OUTCOME_FILE = "outcome.json"
OOS_FILE = "oos.parquet"
PORTFOLIO_FILE = "portfolio.parquet"
PICTURE_FILE = "equity_drawdown.png"
FORMAT = 3
"""Format written; 2 added ``fold_metrics`` and ``bar_frequency``, 3 ``trained_through``."""
READABLE_FORMATS = (1, 2, 3)
"""Formats read: a format-1 outcome (cached before the upgrade) loads without fold metrics,
formats 1 and 2 without ``trained_through``."""


class OutcomeMissingError(FileNotFoundError):
    """A stored outcome (or the model it points to) is gone; retraining recreates it."""


def outcome_dir(runs_root: Path, spec: RunSpec, lake_version: int) -> Path:
    """Where the outcome of ``spec`` trained on ``lake_version`` lives.

    A sibling of the model directory ``<runs_root>/<spec id>/v<lake version>`` (not inside
    it: the model directory is copied whole into the MLflow model).
    """
    return runs_root / spec.id / f"v{lake_version}-outcome"


def _encode_float(value: float) -> float | str:
    """Finite floats as JSON numbers; NaN and infinities as strings (strict JSON has none)."""
    return value if math.isfinite(value) else str(value)


def _encode_metrics(metrics: dict[str, float]) -> dict[str, float | str]:
    return {k: _encode_float(float(v)) for k, v in metrics.items()}


def _decode_metrics(record: dict[str, float | str]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()}


def save_outcome(outcome: SpecOutcome, directory: Path, lake_version: int | None = None
                 ) -> Path:
    """Write ``outcome`` to ``directory`` atomically, replacing a previous outcome there.

    Parameters
    ----------
    outcome : SpecOutcome
        A FINISHED outcome (with ``oos`` and ``portfolio``) or a FAILED one (with ``error``).
    directory : Path
        The outcome's directory (see :func:`outcome_dir`).
    lake_version : int, optional
        The lake version it trained on, named in the picture's title.

    Returns
    -------
    Path
        ``directory``, now holding ``outcome.json`` and, for a FINISHED outcome, the two
        Parquet files.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    for leftover in directory.parent.glob(f".{directory.name}.*"):
        shutil.rmtree(leftover, ignore_errors=True)  # a killed earlier save of this outcome
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.new-", dir=directory.parent))
    try:
        _write(outcome, staging, lake_version)
        if directory.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
            directory.rename(stale / "outcome")
            staging.rename(directory)
            shutil.rmtree(stale)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _write(outcome: SpecOutcome, folder: Path, lake_version: int | None) -> None:
    record = {
        "format": FORMAT,
        "spec_id": outcome.spec.id,
        "spec": json.loads(outcome.spec.canonical_json()),
        "status": outcome.status,
        "metrics": _encode_metrics(outcome.metrics),
        "fold_metrics": [_encode_metrics(fold) for fold in outcome.fold_metrics],
        "bar_frequency": outcome.bar_frequency,
        "trained_through": outcome.trained_through,
        "error": outcome.error,
        "seconds": outcome.seconds,
        "model_dir": outcome.model_dir,
    }
    if outcome.oos is not None:
        outcome.oos.write_parquet(folder / OOS_FILE)
    if outcome.portfolio is not None:
        outcome.portfolio.write_parquet(folder / PORTFOLIO_FILE)
        lake = "" if lake_version is None else f", lake v{lake_version}"
        equity_drawdown_png(outcome.portfolio, folder / PICTURE_FILE,
                            title=f"{outcome.spec.label}{lake}: {outcome.spec.describe()}")
    (folder / OUTCOME_FILE).write_text(json.dumps(record, indent=1, allow_nan=False))


def load_outcome(directory: Path) -> SpecOutcome:
    """Read an outcome written by :func:`save_outcome`.

    Raises
    ------
    OutcomeMissingError
        The directory, or the model directory of a FINISHED outcome, no longer exists.
    ValueError
        ``outcome.json`` is of another format, or its spec does not hash to its spec id.
    """
    directory = Path(directory)
    record_path = directory / OUTCOME_FILE
    if not record_path.is_file():
        raise OutcomeMissingError(
            f"{directory}: this training outcome is gone, but a cached training result "
            "points to it; run again with --force to retrain")
    record = json.loads(record_path.read_text())
    if record.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{record_path}: unknown outcome format {record.get('format')!r}")
    spec = RunSpec.model_validate(record["spec"])
    if spec.id != record["spec_id"]:
        raise ValueError(f"{record_path}: the spec does not hash to its id {record['spec_id']}")
    model_dir = record["model_dir"]
    if record["status"] == "FINISHED" and not (model_dir and Path(model_dir).is_dir()):
        raise OutcomeMissingError(
            f"{model_dir}: the model of {spec.label} is gone, but a cached training result "
            "points to it; run again with --force to retrain")
    oos, portfolio, picture = (directory / OOS_FILE, directory / PORTFOLIO_FILE,
                               directory / PICTURE_FILE)
    return SpecOutcome(
        spec=spec, status=record["status"],
        metrics=_decode_metrics(record["metrics"]),
        oos=pl.read_parquet(oos) if oos.is_file() else None,
        portfolio=pl.read_parquet(portfolio) if portfolio.is_file() else None,
        model_dir=model_dir, error=record["error"], seconds=float(record["seconds"]),
        fold_metrics=[_decode_metrics(fold) for fold in record.get("fold_metrics", [])],
        bar_frequency=record.get("bar_frequency"),
        trained_through=record.get("trained_through"),
        picture=str(picture) if picture.is_file() else None,
    )


def load_outcomes(directories: list[str], runs_root: Path) -> list[SpecOutcome]:
    """Load stored outcomes, refusing any directory outside ``runs_root`` (rule 11)."""
    root = Path(runs_root).resolve()
    outcomes = []
    for name in directories:
        outcome = load_outcome(_inside(root, name))
        if outcome.model_dir is not None:
            _inside(root, outcome.model_dir)
        outcomes.append(outcome)
    return outcomes


def _inside(root: Path, name: str | Path) -> Path:
    path = Path(name).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{name}: a stored outcome path outside {root}")
    return path


def train_to_disk(specs: list[RunSpec], ref: DatasetRef, runs_root: Path) -> list[Path]:
    """Train each spec (see ``fit.run_chunk``) and save its outcome as soon as it is done.

    Returns
    -------
    list of Path
        One outcome directory per spec, in order.
    """
    directories = []
    for spec in specs:
        [outcome] = run_chunk([spec], ref, runs_root)
        directories.append(save_outcome(outcome, outcome_dir(runs_root, spec, ref.lake_version),
                                        ref.lake_version))
    return directories
