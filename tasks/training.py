"""Prefect tasks around the training core: naming, retries, tags. No business logic."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from factory.grid import RunSpec
from factory.training.datasets import DatasetRef, cache_features
from factory.training.fit import SpecOutcome, run_chunk


@task(name="build-features", task_run_name="features-{feature_set}", retries=1, tags=["features"],
      cache_policy=NO_CACHE)
def build_features_task(ref: DatasetRef, feature_set: str, params: dict) -> list[Path]:
    """Build (or reuse) one feature set for every asset of a lake version."""
    return cache_features(ref, feature_set, params)


@task(name="train-chunk", task_run_name="train-{label}", tags=["training"],
      cache_policy=NO_CACHE)
def train_chunk_task(specs: list[RunSpec], ref: DatasetRef, runs_root: Path,
                     label: str) -> list[SpecOutcome]:
    """Train and evaluate a chunk of RunSpecs in a worker process (one thread per worker)."""
    import torch  # imported here: only training workers need it

    torch.set_num_threads(1)
    return run_chunk(specs, ref, runs_root)
