"""One writer at a time per FACTORY_HOME (rule 12).

Ingest, the factory run and the selection write the lake, the MLflow store and the registry.
Two of them at once trained every config twice, appended an ingest twice, or crashed on a
fresh home while both migrated the MLflow database. Every writer therefore holds an exclusive
``flock`` on ``FACTORY_HOME/.factory.lock``; a second writer waits (saying who it waits for)
or, asked not to wait, stops with a clear message. The kernel drops the lock when its holder
dies, so a killed command never leaves a stale lock behind.

When MLflow is backed by PostgreSQL (``MLFLOW_TRACKING_URI=postgresql://...``), homes on
several machines can share one registry, so the writer also holds a PostgreSQL advisory lock
on that database for as long as it holds the file lock.

The lock is re-entrant within a process: the CLI takes it before it starts a Prefect API and
the flow it then calls takes it again for the runs that the Prefect UI triggers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from factory.paths import FactoryPaths

LOCK_FILE = ".factory.lock"
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"model-factory writer").digest()[:8], "big") >> 1
"""A fixed 63-bit key: every factory writer on one PostgreSQL database contends for it."""


class HomeBusyError(RuntimeError):
    """Another command is writing to this FACTORY_HOME (or its PostgreSQL registry)."""


@dataclass
class _Held:
    depth: int
    handle: object
    database: object | None


_held: dict[str, _Held] = {}
_guard = threading.Lock()


def describe_holder(path: Path) -> str:
    """Who holds the lock at ``path``, as recorded by its holder (pid, command, start)."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another factory command"
    if not holder:
        return "another factory command"
    return (f"`{holder.get('command', 'factory')}` (pid {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')})")


@contextmanager
def writer_lock(paths: FactoryPaths, command: str, *, wait: bool = True,
                on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the FACTORY_HOME writer lock for the duration of the block.

    Parameters
    ----------
    paths
        The home to lock.
    command
        What this writer is, recorded for whoever waits (e.g. ``"factory run --profile demo"``).
    wait
        Wait for the current holder to finish (default); otherwise raise at once.
    on_wait
        Called once with a sentence naming the holder when this writer has to wait.

    Raises
    ------
    HomeBusyError
        When ``wait`` is false and another command holds the lock.
    """
    key = str(paths.home)
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
    if held is not None:
        try:
            yield
        finally:
            with _guard:
                held.depth -= 1
        return
    handle, database = _acquire(paths, command, wait, on_wait)
    with _guard:
        _held[key] = _Held(1, handle, database)
    try:
        yield
    finally:
        with _guard:
            del _held[key]
        if database is not None:
            database.close()
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _acquire(paths: FactoryPaths, command: str, wait: bool,
             on_wait: Callable[[str], None] | None):
    """Take the file lock, then (for a PostgreSQL registry) the advisory lock."""
    path = paths.home / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for as long as the lock is held
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        message = f"{paths.home} is in use by {describe_holder(path)}"
        if not wait:
            handle.close()
            raise HomeBusyError(f"{message}; try again when it has finished") from None
        if on_wait:
            on_wait(f"{message}: waiting for it to finish")
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate(0)
    handle.write(json.dumps({"pid": os.getpid(), "command": command,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
    handle.flush()
    try:
        database = _advisory_lock(os.environ.get("MLFLOW_TRACKING_URI", ""), wait, on_wait)
    except BaseException:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
        raise
    return handle, database


def _advisory_lock(tracking_uri: str, wait: bool, on_wait: Callable[[str], None] | None):
    """Hold a PostgreSQL advisory lock on the MLflow database; returns its connection."""
    if not tracking_uri.startswith(("postgresql://", "postgresql+", "postgres://")):
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    # NullPool: closing the connection ends the session, and with it the advisory lock.
    engine = create_engine(tracking_uri.replace("postgres://", "postgresql://", 1),
                           poolclass=NullPool)
    connection = engine.connect()
    got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
    if not got.scalar():
        if not wait:
            connection.close()
            raise HomeBusyError("another factory command is writing to the MLflow registry "
                                "on PostgreSQL; try again when it has finished")
        if on_wait:
            on_wait("another factory command is writing to the PostgreSQL registry: waiting")
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
    connection.commit()
    return connection
