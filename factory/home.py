"""Copy and move a FACTORY_HOME without it reaching back into the original.

MLflow stores artifact locations as absolute URIs (``file:///old/home/mlflow/artifacts/...``)
in its database. A home copied with ``cp -r`` would therefore read, and write, the original's
artifacts. ``backup_home`` copies a home consistently (under the writer lock, the sqlite store
through SQLite's backup API) and then relocates the copy; ``relocate_home`` rewrites the
locations of a home that was copied or moved by hand; the tracker refuses to work in a home
whose store still points elsewhere (`HomeMovedError`), naming the command that fixes it.
Only the embedded sqlite store has this problem: an ``mlflow server`` owns its artifacts.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from factory.data.cold_record import copy_cold_tier
from factory.paths import FactoryPaths

EXPERIMENTS = ("model-factory", "model-factory-selection")
COPIED_FOLDERS = (("data", "lake"), ("data", "runs"), ("mlflow", "artifacts"))
"""What a backup copies besides the database; the feature cache is rebuilt on demand."""


class HomeMovedError(RuntimeError):
    """The home's MLflow store points at another home's artifacts."""


def _database(paths: FactoryPaths) -> Path:
    return paths.mlflow / "mlflow.db"


def stored_artifact_root(paths: FactoryPaths) -> str | None:
    """The artifact root URI recorded in the home's sqlite store (None without one)."""
    database = _database(paths)
    if not database.exists():
        return None
    with sqlite3.connect(database) as connection:
        try:
            rows = connection.execute("SELECT name, artifact_location FROM experiments").fetchall()
        except sqlite3.OperationalError:  # a store MLflow has not finished creating
            return None
    for name, location in rows:
        if name in EXPERIMENTS and location and location.endswith(f"/{name}"):
            return location[: -len(name) - 1]
    return None


def check_home_is_its_own(paths: FactoryPaths) -> None:
    """Raise if the home's sqlite store records another home's artifact root.

    Raises
    ------
    HomeMovedError
        Naming both roots and the command that repoints the store.
    """
    recorded = stored_artifact_root(paths)
    if recorded is not None and recorded != paths.artifact_root.as_uri():
        raise HomeMovedError(
            f"{paths.home} was copied or moved: its MLflow store keeps artifacts at {recorded}, "
            f"not {paths.artifact_root.as_uri()}. Run `FACTORY_HOME={paths.home} factory "
            "relocate` to make it use its own (or `factory backup DEST` to copy a home)")


def relocate_home(paths: FactoryPaths) -> str | None:
    """Rewrite every artifact location in the home's sqlite store to the home's own root.

    Returns
    -------
    str or None
        The root the store pointed at before, or None when it already pointed here.
    """
    old = stored_artifact_root(paths)
    new = paths.artifact_root.as_uri()
    if old is None or old == new:
        return None
    old_path, new_path = old.removeprefix("file://"), str(paths.artifact_root)
    with sqlite3.connect(_database(paths)) as connection:
        for table, column in _text_columns(connection):
            for before, after in ((old, new), (old_path, new_path)):
                connection.execute(
                    f'UPDATE "{table}" SET "{column}" = REPLACE("{column}", ?, ?) '
                    f'WHERE instr("{column}", ?) > 0', (before, after, before))
    return old


def _text_columns(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (table, text column) of the store: MLflow's schema changes between versions."""
    tables = [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = []
    for table in tables:
        for _, name, kind, *_ in connection.execute(f'PRAGMA table_info("{table}")'):
            if any(word in kind.upper() for word in ("CHAR", "TEXT", "CLOB")):
                columns.append((table, name))
    return columns


def backup_home(paths: FactoryPaths, destination: Path) -> Path:
    """Copy the lake (with a local cold tier), the model runs, the MLflow store and its
    artifacts to a new home. A cold tier on an object store is shared with the copy.

    Hold the writer lock while calling this, so nothing changes during the copy.

    Parameters
    ----------
    paths
        The home to copy.
    destination
        A folder that does not exist yet, or is empty.

    Returns
    -------
    Path
        The new home, whose store points at its own artifacts.
    """
    destination = destination.resolve()
    if destination.exists() and any(destination.iterdir()):
        raise FileExistsError(f"{destination} exists and is not empty: back up to a new folder")
    if destination.is_relative_to(paths.home):
        raise ValueError(f"{destination} is inside the home it would copy ({paths.home})")
    copy = FactoryPaths(destination)
    for parts in COPIED_FOLDERS:
        source = paths.home.joinpath(*parts)
        if source.exists():
            shutil.copytree(source, destination.joinpath(*parts))
    copy_cold_tier(str(paths.lake), str(copy.lake))
    if _database(paths).exists():
        copy.mlflow.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(_database(paths)) as origin, \
                sqlite3.connect(_database(copy)) as target:
            origin.backup(target)
        relocate_home(copy)
    return destination
