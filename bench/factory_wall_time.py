"""Throughput of a factory profile on the demo data: configurations per minute, the share of
the wall time each stage takes (feature building, training, MLflow logging, orchestration),
where the training time went per architecture, and the factory's wall time against a
baseline measured in the same run: RunSpecs trained one after another in this process by
the bare core (no Prefect, no MLflow, no process pool).

The baseline trains every RunSpec of the profile (``--baseline-sample 0``, the default for
small profiles) or a sample: the first RunSpec of every architecture, lookback and feature
set in the grid's order up to N of them, and one of every architecture the N missed, whose
in-process seconds are compared with the
seconds the same RunSpecs took inside the factory's workers. The full profile's sequential
baseline alone would take twice the factory's own wall time; the sample says the same at a
fraction of the cost, and the output names which baseline it measured.

Targets (issue 10): orchestration + tracking under 5% of the wall time; ``--profile full``
(486 configurations) under 2 hours on 2 cores.

Usage: ``python bench/factory_wall_time.py [--profile demo] [--workers 2]
[--baseline-sample N] [--home DIR]`` (``make bench`` runs the demo profile). Runs in a
temporary FACTORY_HOME unless ``--home`` names one (kept, so MLflow can show the run).
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


def _sample(specs: list, size: int) -> list:
    """Every spec (size 0), or one per (arch, lookback, feature set) in order up to size, and
    the first of each architecture those missed."""
    if size <= 0:
        return specs
    seen, picked = set(), []
    for spec in specs:
        key = (spec.arch, spec.lookback, spec.feature_set)
        if key not in seen and len(picked) < size:
            seen.add(key)
            picked.append(spec)
    by_arch = {spec.arch for spec in picked}
    picked += [s for s in specs if s.arch not in by_arch and not by_arch.add(s.arch)]
    return picked


def _bare_core(profile: str, sample: int) -> tuple[float, list]:
    """Seconds to train the sampled specs sequentially in this process, and the outcomes."""
    from factory.config import load_config
    from factory.data.lake import Lake
    from factory.data.universe import resolve_symbols
    from factory.grid import expand
    from factory.paths import factory_paths
    from factory.training.datasets import DatasetRef, universe_missing_inputs
    from factory.training.fit import run_chunk

    paths = factory_paths()
    lake = Lake(paths.lake)
    config = load_config(profile)
    symbols = resolve_symbols(config, lake)
    ref = DatasetRef.for_lake(paths.cache, lake, lake.data_version(), symbols)  # cached
    specs = _sample(expand(config, symbols, universe_missing_inputs(ref)).specs, sample)
    started = time.perf_counter()
    outcomes = run_chunk(specs, ref, paths.runs / "baseline")
    failed = [o.spec.label for o in outcomes if o.status != "FINISHED"]
    if failed:
        raise RuntimeError(f"the baseline failed to train {failed}")
    return time.perf_counter() - started, outcomes


def _report(summary: dict, workers: int, baseline: float, outcomes: list,
            sampled_all: bool) -> None:
    seconds = summary["seconds"]
    total = seconds["total"]
    n = len(summary["finished"]) + len(summary["failed"])
    shares = {
        "feature building": seconds["features"],
        "training (worker s / workers)": seconds["training_worker_total"] / workers,
        "MLflow logging after training": seconds["mlflow_logging_after_training"],
    }
    shares["orchestration (rest)"] = total - sum(shares.values())
    print(f"profile {summary['profile']}: {n} configs in {total:.1f} s wall = "
          f"{60 * n / total:.2f} configs per minute ({workers} workers)")
    for name, value in shares.items():
        print(f"  {name:34s} {value:9.1f} s   ({100 * value / total:5.1f}%)")
    overhead = shares["orchestration (rest)"] + shares["MLflow logging after training"]
    print(f"orchestration + tracking not hidden by training: {100 * overhead / total:.1f}% "
          "of wall (target < 5%)")
    print(f"MLflow logging in all (flow process, overlapping the workers) "
          f"{seconds['mlflow_logging']:.1f} s = {seconds['mlflow_logging'] / max(n, 1):.2f} s "
          "per config")
    print("worker seconds per architecture:")
    for arch, value in sorted(summary["arch_seconds"].items(), key=lambda kv: -kv[1]):
        print(f"  {arch:22s} {value:9.1f} s")
    if sampled_all:
        print(f"baseline: every spec sequentially in one process {baseline:9.1f} s; "
              f"ratio factory wall / baseline {total / baseline:.2f}")
    else:
        inside = sum(summary["spec_seconds"][o.spec.id] for o in outcomes)
        print(f"baseline: a sample of {len(outcomes)} specs sequentially in one process "
              f"{baseline:.1f} s, the same specs in the factory's workers {inside:.1f} s "
              f"(ratio {inside / baseline:.2f}); factory wall / (sum of worker seconds "
              f"scaled to the sample's in-process speed) "
              f"{total / (seconds['training_worker_total'] * baseline / inside):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-sample", type=int, default=0,
                        help="specs the in-process baseline trains (0: all of them)")
    parser.add_argument("--home", type=Path, default=None,
                        help="FACTORY_HOME to run in (kept); default: a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as scratch:
        home = args.home or Path(scratch)
        os.environ["FACTORY_HOME"] = str(home)
        from factory.paths import configure_environment

        configure_environment()
        summary = _factory_run(args.profile, args.workers)
        import torch

        torch.set_num_threads(1)
        baseline, outcomes = _bare_core(args.profile, args.baseline_sample)
        print(f"home {home}")
        _report(summary, args.workers, baseline, outcomes, args.baseline_sample <= 0)


if __name__ == "__main__":
    main()
