"""Prefect tasks around the training core: naming, retries, cache keys, tags. No business logic.

The training task's persisted result is the list of its outcome directories, stored as JSON
by a serializer without an object decoder, so reading it back imports nothing and unpickles
nothing (rule 11); the outcomes themselves are JSON and Parquet files on disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from factory.grid import RunSpec
from factory.training.datasets import DatasetRef, cache_features
from factory.training.outcomes import train_to_disk
from tasks.results import JSON_RESULTS

CACHE_FORMAT = "outcome-dirs-2"
"""Part of the cache key: records written before outcomes moved to disk (pickled outcome
objects under the same spec ids, format 1) or before the saved model was refit on all history
(the last fold's model, format 2 and before) are never looked up again."""


@task(name="build-features", task_run_name="features-{feature_set}", retries=1, tags=["features"],
      cache_policy=NO_CACHE)
def build_features_task(ref: DatasetRef, feature_set: str, params: dict) -> list[Path]:
    """Build (or reuse) one feature set for every asset of a lake version."""
    return cache_features(ref, feature_set, params)


def chunk_cache_key(context, parameters: dict) -> str:
    """Rule 4: the RunSpec ids (with the lake version and feature cache they trained on)
    are the cache key, so a flow that stopped after training re-logs instead of retraining."""
    ref: DatasetRef = parameters["ref"]
    ids = ",".join(spec.id for spec in parameters["specs"])
    key = (f"{CACHE_FORMAT}|{ref.cache_root}|v{ref.lake_version}|{ref.periods_per_year}|"
           f"{ref.calendar}|{ref.side_versions}|{ids}")
    return hashlib.sha256(key.encode()).hexdigest()


# A cache key turns result persistence on; JSON_RESULTS keeps it free of pickles.
@task(name="train-chunk", task_run_name="train-{label}", tags=["training"],
      cache_key_fn=chunk_cache_key, result_serializer=JSON_RESULTS)
def train_chunk_task(specs: list[RunSpec], ref: DatasetRef, runs_root: Path,
                     label: str) -> list[str]:
    """Train and evaluate a chunk of RunSpecs in a worker process (one thread per worker).

    Returns
    -------
    list of str
        One outcome directory per spec (``factory.training.outcomes.load_outcomes`` reads
        them back).
    """
    import torch  # imported here: only training workers need it

    torch.set_num_threads(1)
    return [str(directory) for directory in train_to_disk(specs, ref, runs_root)]
