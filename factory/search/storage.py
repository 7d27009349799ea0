"""Where the Optuna studies live: a relational database shared by every worker through its URL.

By default a sqlite file beside the MLflow tracking db (``<FACTORY_HOME>/mlflow/optuna.db``);
at scale a PostgreSQL database, named by ``search.storage`` in conf/search.yaml or by the
environment's ``FACTORY_OPTUNA_STORAGE`` (which wins). A plain ``postgresql://`` URL uses the
psycopg (3) driver, the one the project installs.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url

from factory.config import SearchConfig

STORAGE_ENV = "FACTORY_OPTUNA_STORAGE"
SQLITE_FILE = "optuna.db"
SQLITE_TIMEOUT_S = 60
"""How long a sqlite writer waits for another (two workers' studies share the file)."""


def storage_url(search: SearchConfig, mlflow_dir: Path) -> str:
    """The studies' database URL: FACTORY_OPTUNA_STORAGE, else ``search.storage``, else
    sqlite beside the MLflow db in ``mlflow_dir``."""
    url = os.environ.get(STORAGE_ENV) or search.storage or f"sqlite:///{mlflow_dir / SQLITE_FILE}"
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def redacted(url: str) -> str:
    """``url`` without its password, for logs and MLflow tags."""
    return make_url(url).render_as_string(hide_password=True)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url``, its tables created where they are not yet.

    Raises
    ------
    ValueError
        When the database cannot be reached or opened; the message names it (password
        hidden) and the cause.
    """
    sqlite = url.startswith("sqlite")
    engine = ({"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite
              else {"pool_pre_ping": True})
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy and drivers raise many kinds
        cause = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"Optuna storage {redacted(url)}: {cause} (set search.storage or "
                         f"{STORAGE_ENV})") from err
