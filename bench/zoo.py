"""Fit and predict time of every architecture of the zoo on the demo data, on the device it ran.

Each architecture trains at the ``ci`` profile's sizes (the first value of each of its grid
axes, with its fixed settings) on the packaged S&P 500 and Nasdaq daily bars, feature set
``raw_ohlcv``, lookback 14: the first 70% of the timeline trains, the next 15% validates
(early stopping), the last 15% is scored out of sample. One torch thread, as in the factory's
workers. The baseline, measured in the same run on the same windows, is an ordinary least
squares fit of the label on the flattened window (numpy); each fit time is also shown as a
multiple of it.

Target (issue 8): a net trains in seconds on one CPU thread at the ci profile's sizes; the
table marks fits over 10 s. Where CUDA is present, nets train and predict on the GPU (the
shared loop picks it) and the output says so.

Usage: ``python bench/zoo.py [--profile ci] [--only lstm,tcn]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from factory.config import load_config
from factory.data.sources import load_demo_bars
from factory.grid import expand
from factory.training.datasets import DatasetRef, cache_features
from factory.training.fit import Panel, build_panel
from factory.training.windows import FeatureScaler
from model_zoo.base import ModelConfig, SupervisedData
from model_zoo.registry import ARCHITECTURES, build_model

LOOKBACK, FEATURE_SET, SLOW_SECONDS = 14, "raw_ohlcv", 10.0


def _panel(root: Path, profile: str) -> tuple[Panel, dict[str, object]]:
    """The demo bars' windows, and one spec per architecture at the profile's sizes."""
    bars = load_demo_bars()
    symbols = tuple(sorted(bars["symbol"].unique().to_list()))
    ref = DatasetRef(root, 0, symbols, 252.0, "1d")
    ref.bars_path().parent.mkdir(parents=True, exist_ok=True)
    bars.write_parquet(ref.bars_path())
    config = load_config(profile)
    cache_features(ref, FEATURE_SET, config.features[FEATURE_SET].params)
    specs = {}
    for spec in expand(config, symbols).specs:
        if spec.feature_set == FEATURE_SET:
            specs.setdefault(spec.arch, spec)
    any_spec = next(iter(specs.values())).model_copy(update={"lookback": LOOKBACK})
    return build_panel(any_spec, ref), specs


def _split(panel: Panel) -> dict[str, SupervisedData]:
    """70/15/15 of the timeline, scaled with the training rows' statistics."""
    cut_valid, cut_test = np.quantile(panel.times, [0.70, 0.85])
    parts = {"train": panel.times < cut_valid,
             "valid": (panel.times >= cut_valid + 2) & (panel.times < cut_test),
             "test": panel.times >= cut_test + 2}
    scaler = FeatureScaler.fit(panel.X[parts["train"]][:, -1, :])
    return {name: SupervisedData(X=scaler.transform(panel.X[rows]).astype(np.float32),
                                 y=panel.y[rows], groups=panel.groups[rows],
                                 times=panel.times[rows]) for name, rows in parts.items()}


def _ols_seconds(data: dict[str, SupervisedData]) -> float:
    """The baseline: least squares of the label on the flattened window."""
    started = time.perf_counter()
    X = data["train"].X.reshape(len(data["train"].X), -1)
    np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), data["train"].y, rcond=None)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--only", default="", help="comma-separated architectures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = (f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available()
              else "cpu, 1 torch thread")
    with tempfile.TemporaryDirectory() as tmp:
        panel, specs = _panel(Path(tmp), args.profile)
    data = _split(panel)
    baseline = min(_ols_seconds(data) for _ in range(3))
    wanted = [a for a in ARCHITECTURES if not args.only or a in args.only.split(",")]
    print(f"device: {device}; demo data {', '.join(panel.symbols)}, {len(data['train'].y)} "
          f"train / {len(data['test'].y)} test windows of {LOOKBACK} bars; "
          f"profile {args.profile}; baseline OLS fit {baseline * 1e3:.1f} ms")
    print(f"{'architecture':22} {'family':12} {'device':6} {'fit s':>8} {'x OLS':>8} "
          f"{'predict ms/1k':>14} {'OOS corr':>9}")
    for name in wanted:
        spec = specs.get(name)
        if spec is None:
            print(f"{name:22} not in profile {args.profile}")
            continue
        caps = ARCHITECTURES[name].capabilities
        config = ModelConfig(hparams=spec.hparams, feature_names=panel.feature_names,
                             lookback=LOOKBACK, seed=spec.seed)
        started = time.perf_counter()
        model = build_model(name, config).fit(data["train"], data["valid"])
        fit_seconds = time.perf_counter() - started
        test = data["test"]
        started = time.perf_counter()
        pred = model.predict(test.X, test.groups, test.times)
        predict_ms = (time.perf_counter() - started) * 1e6 / len(test.y)
        corr = float(np.corrcoef(pred, test.y)[0, 1]) if np.std(pred) > 0 else float("nan")
        ran_on = "cuda" if caps.gpu and torch.cuda.is_available() else "cpu"
        slow = "  (over 10 s)" if fit_seconds > SLOW_SECONDS else ""
        print(f"{name:22} {caps.family:12} {ran_on:6} {fit_seconds:8.2f} "
              f"{fit_seconds / baseline:8.0f} {predict_ms:14.2f} {corr:9.3f}{slow}")


if __name__ == "__main__":
    main()
