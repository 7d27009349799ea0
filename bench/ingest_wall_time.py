"""Wall time of `factory ingest --source demo` when nothing is new, against the time it takes
just to start the `factory` command (`factory --help`), both measured here, in the same run.

Target: a re-ingest of unchanged data under 3 s. It reads the packaged bars, compares them
with the lake and commits nothing; great-expectations only checks rows that would be stored,
so it is never even imported. Each figure is the median of ``--repeat`` fresh processes.

Usage: ``python bench/ingest_wall_time.py [--repeat 3]``. Runs in a temporary FACTORY_HOME.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FACTORY = [sys.executable, "-m", "factory.cli"]


def _seconds(arguments: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([*FACTORY, *arguments], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="factory-bench-ingest-"))
    env = {**os.environ, "FACTORY_HOME": str(home), "PREFECT_HOME": str(home / ".prefect")}
    env.pop("MLFLOW_TRACKING_URI", None)
    first = _seconds(["ingest", "--source", "demo"], env)
    startup = [_seconds(["--help"], env) for _ in range(args.repeat)]
    again = [_seconds(["ingest", "--source", "demo"], env) for _ in range(args.repeat)]
    baseline, measured = statistics.median(startup), statistics.median(again)
    print(f"first ingest into an empty lake:       {first:6.2f} s")
    print(f"`factory --help` (baseline, median):   {baseline:6.2f} s")
    print(f"re-ingest, nothing new (median):       {measured:6.2f} s  (target < 3 s)")
    print(f"ratio re-ingest / command start-up:    {measured / baseline:6.2f}")


if __name__ == "__main__":
    main()
