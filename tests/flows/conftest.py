"""Fixtures of the flow tests: a real Prefect server per module (see live_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_server import PrefectServer, running_prefect_server


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[PrefectServer]:
    """One real Prefect server per test module, in a throwaway PREFECT_HOME."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect_server")) as server:
        yield server
