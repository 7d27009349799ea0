"""Which symbols a run trains on, and the error when the lake lacks them."""

from __future__ import annotations

import pytest

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.data.universe import MissingSymbolsError, resolve_symbols


def test_demo_profile_on_an_empty_lake_says_to_ingest_the_demo(tmp_path):
    with pytest.raises(MissingSymbolsError, match="factory ingest --source demo"):
        resolve_symbols(load_config("demo"), Lake(tmp_path))


def test_lake_source_takes_every_symbol_in_the_lake(tmp_path):
    lake = Lake(tmp_path)
    lake.ingest_bars(synthetic_bars(symbols=("B", "A"), n_bars=30, seed=1), "syn")
    assert resolve_symbols(load_config("ci"), lake) == ("A", "B")
