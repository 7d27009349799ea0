"""Wall time of a factory profile, split into feature building, training, MLflow logging and
orchestration overhead, printed as shares of the total; and the factory's wall time against a
baseline measured in the same run: the same RunSpecs trained one after another in this
process by the bare core (no Prefect, no MLflow, no process pool).

Usage: ``python bench/demo_wall_time.py [--profile demo] [--workers 2]`` (``make bench``).
Runs in a temporary FACTORY_HOME; nothing of the project's own lake or registry is touched.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _factory_run(profile: str, workers: int) -> dict:
    from flows.factory_flow import run_factory
    from flows.ingest import ingest_flow
    from flows.runtime import shared_prefect_api

    with shared_prefect_api():
        ingest_flow(sources=["demo"])
        return run_factory(profile, workers=workers)


def _bare_core_seconds(profile: str) -> float:
    from factory.config import load_config
    from factory.data.lake import Lake
    from factory.data.universe import resolve_symbols
    from factory.grid import expand
    from factory.paths import factory_paths
    from factory.training.datasets import DatasetRef
    from factory.training.fit import run_chunk

    paths = factory_paths()
    lake = Lake(paths.lake)
    config = load_config(profile)
    symbols = resolve_symbols(config, lake)
    ref = DatasetRef.for_lake(paths.cache, lake, lake.version(), symbols)  # features already cached
    started = time.perf_counter()
    outcomes = run_chunk(expand(config, symbols).specs, ref, paths.runs / "baseline")
    assert all(o.status == "FINISHED" for o in outcomes), [o.error for o in outcomes]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as home:
        os.environ["FACTORY_HOME"] = home
        from factory.paths import configure_environment

        configure_environment()
        summary = _factory_run(args.profile, args.workers)
        import torch

        torch.set_num_threads(1)
        baseline = _bare_core_seconds(args.profile)
        print(f"home {Path(home)}: {summary['n_specs']} specs, profile {args.profile}")
    seconds = summary["seconds"]
    total = seconds["total"]
    shares = {
        "feature building": seconds["features"],
        "training (worker s / workers)": seconds["training_worker_total"] / args.workers,
        "MLflow logging after training": seconds["mlflow_logging_after_training"],
    }
    shares["orchestration overhead (rest)"] = total - sum(shares.values())
    print(f"factory wall time                    {total:8.1f} s   (100%)")
    for name, value in shares.items():
        print(f"  {name:34s} {value:8.1f} s   ({100 * value / total:5.1f}%)")
    print(f"MLflow logging in all (flow process) {seconds['mlflow_logging']:8.1f} s   "
          f"({100 * seconds['mlflow_logging'] / total:5.1f}% of wall; while workers train it "
          "overlaps them, and on 2 cores slows them, which lands in the rest)")
    print(f"baseline: bare core, sequential, in-process {baseline:8.1f} s")
    print(f"ratio factory wall / baseline               {total / baseline:8.2f}")

if __name__ == "__main__":
    main()
