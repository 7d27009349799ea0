"""Where everything lives, rooted at FACTORY_HOME, and the process environment it needs.

FACTORY_HOME (default: the project root) holds ``data/lake``, the feature cache, ``mlflow/``
(sqlite tracking db and artifacts) and ``.prefect`` (Prefect's home), so a test can point
the whole factory at a temporary directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}
"""Set before worker processes start: torch with several OpenMP threads next to another busy
process was measured 300x slower on this machine."""


@dataclass(frozen=True)
class FactoryPaths:
    """Every location the factory reads or writes."""

    home: Path

    @property
    def lake(self) -> Path:
        return self.home / "data" / "lake"

    @property
    def cache(self) -> Path:
        return self.home / "data" / "cache"

    @property
    def runs(self) -> Path:
        return self.home / "data" / "runs"

    @property
    def replay(self) -> Path:
        """Held-back bars the replay feed releases into the lake (``factory replay``)."""
        return self.home / "data" / "replay"

    @property
    def mlflow(self) -> Path:
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.mlflow / "artifacts"

    @property
    def prefect_home(self) -> Path:
        return self.home / ".prefect"

    def has_tracking_store(self) -> bool:
        """Whether there is an MLflow store to read (a server, or this home's sqlite file)."""
        uri = os.environ.get("MLFLOW_TRACKING_URI", self.tracking_uri)
        return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def factory_paths() -> FactoryPaths:
    """Paths under ``$FACTORY_HOME`` (default: the project root)."""
    return FactoryPaths(Path(os.environ.get("FACTORY_HOME", PROJECT_ROOT)).resolve())


def configure_environment(paths: FactoryPaths | None = None) -> FactoryPaths:
    """Export the settings MLflow, Prefect and the numeric libraries read from the environment.

    Explicit values set by the user win (``setdefault``), except the thread limits, which the
    fan-out relies on.
    """
    paths = paths or factory_paths()
    paths.mlflow.mkdir(parents=True, exist_ok=True)
    paths.prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", paths.tracking_uri)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("PREFECT_HOME", str(paths.prefect_home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.update(SINGLE_THREAD_ENV)
    return paths
