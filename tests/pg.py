"""A real PostgreSQL for the tests of the at-scale backends (MLflow's store, the Prefect
server, Optuna's storage): a fresh database per use, dropped afterwards, and the URL forms
each client wants.

The server is the one at ``TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``, trust auth): its database is only used to
create and drop the others. Where no PostgreSQL answers there, or psycopg (dev extra) is not
installed, the test is skipped and says why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
"""The server and the database the tests create and drop their databases from."""

DRIVERS = ("psycopg", "asyncpg")


def sqlalchemy_url(url: str, driver: str) -> str:
    """``url`` (``postgresql://...``) with the SQLAlchemy driver named in its scheme.

    Parameters
    ----------
    url
        A plain ``postgresql://`` (or ``postgres://``) URL, as ``postgres_url`` yields.
    driver
        ``"psycopg"`` (MLflow, Optuna: ``postgresql+psycopg://``) or ``"asyncpg"`` (the
        Prefect server: ``postgresql+asyncpg://``).
    """
    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {DRIVERS}, not {driver!r}")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a plain postgresql:// URL: {url!r}")
    return f"postgresql+{driver}://{rest}"


def database_url(name: str) -> str:
    """The plain URL of database ``name`` on the test server."""
    return urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl()


def _admin_connection():
    """An autocommit connection to the admin database; skips the test where none answers."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg (dev extra) is not installed")
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL} (set TEST_POSTGRES_URL): {err}")


@contextmanager
def fresh_database(prefix: str = "mf") -> Iterator[str]:
    """Create an empty database ``<prefix>_<12 hex>``, yield its plain URL, drop it after.

    The drop forces out connections a server under test may still hold. Skips the test
    (saying why) where no PostgreSQL answers at ``ADMIN_URL``.
    """
    admin = _admin_connection()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url(name)
    finally:
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()
