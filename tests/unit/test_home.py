"""A copied FACTORY_HOME stands alone: `backup` and `relocate` repoint the MLflow store at the
copy's own artifacts, and a hand-made copy is refused until relocated (real sqlite MLflow)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from factory.home import (
    HomeMovedError,
    backup_home,
    check_home_is_its_own,
    relocate_home,
    stored_artifact_root,
)
from factory.paths import FactoryPaths

LOG_ONE_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    import mlflow
    from factory.paths import FactoryPaths
    paths = FactoryPaths(Path(sys.argv[1]))
    paths.mlflow.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(paths.tracking_uri)
    experiment = mlflow.create_experiment(
        "model-factory", artifact_location=(paths.artifact_root / "model-factory").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_text("original", "note.txt")
    print(run.info.run_id)
""")

READ_ARTIFACT = textwrap.dedent("""
    import sys
    from pathlib import Path
    import mlflow
    from factory.paths import FactoryPaths
    paths = FactoryPaths(Path(sys.argv[1]))
    mlflow.set_tracking_uri(paths.tracking_uri)
    run = mlflow.get_run(sys.argv[2])
    print(run.info.artifact_uri)
    print(mlflow.artifacts.load_text(run.info.artifact_uri + "/note.txt"))
""")


def _python(script: str, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().splitlines()


@pytest.fixture
def original(tmp_path):
    home = tmp_path / "original"
    run_id = _python(LOG_ONE_RUN, str(home))[-1]
    (home / "data" / "lake" / "bars").mkdir(parents=True)
    (home / "data" / "lake" / "bars" / "part.parquet").write_bytes(b"not really parquet")
    return FactoryPaths(home), run_id


def test_a_backup_reads_its_own_artifacts_after_the_original_is_gone(original, tmp_path):
    paths, run_id = original
    copy = backup_home(paths, tmp_path / "copy")
    assert stored_artifact_root(FactoryPaths(copy)) == FactoryPaths(copy).artifact_root.as_uri()
    assert (copy / "data" / "lake" / "bars" / "part.parquet").exists()
    shutil.rmtree(paths.home)
    uri, text = _python(READ_ARTIFACT, str(copy), run_id)
    assert uri.startswith(FactoryPaths(copy).artifact_root.as_uri())
    assert text == "original"


def test_a_hand_copied_home_is_refused_until_relocated(original, tmp_path):
    paths, run_id = original
    copy = FactoryPaths(tmp_path / "by-hand")
    shutil.copytree(paths.home, copy.home)
    with pytest.raises(HomeMovedError, match="factory relocate"):
        check_home_is_its_own(copy)
    assert relocate_home(copy) == paths.artifact_root.as_uri()
    check_home_is_its_own(copy)
    assert relocate_home(copy) is None
    check_home_is_its_own(paths)  # the original was not touched
    shutil.rmtree(paths.home)
    assert _python(READ_ARTIFACT, str(copy.home), run_id)[-1] == "original"


def test_a_backup_never_overwrites_or_nests(original, tmp_path):
    paths, _ = original
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        backup_home(paths, tmp_path / "full")
    with pytest.raises(ValueError, match="inside"):
        backup_home(paths, paths.home / "nested")
