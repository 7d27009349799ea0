"""Configuration schemas and grid expansion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from factory.config import CONF_DIR, ConfigError, load_config
from factory.grid import expand


def _copy_conf(tmp_path: Path) -> Path:
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target)
    return target


def test_every_profile_loads_and_differs_only_in_size():
    demo, smoke, full = (load_config(p) for p in ("demo", "smoke", "full"))
    assert set(demo.grid.architectures) == set(full.grid.architectures)
    assert 0 < len(expand(smoke).specs) < len(expand(demo).specs) < len(expand(full).specs)


def test_typo_in_a_yaml_key_names_the_key_and_files(tmp_path):
    conf = _copy_conf(tmp_path)
    text = (conf / "selection.yaml").read_text().replace("top_k:", "top_kk:")
    (conf / "selection.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config("demo", conf_dir=conf)
    assert "top_kk" in str(err.value)
    assert "selection.yaml" in str(err.value)


def test_missing_profile_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="nosuch.yaml"):
        load_config("nosuch")


def test_config_is_frozen():
    config = load_config("smoke")
    with pytest.raises(Exception, match="frozen"):
        config.selection.top_k = 99  # type: ignore[misc]


def test_spec_ids_are_stable_unique_and_sha256():
    first = expand(load_config("full"), ("A", "B")).specs
    second = expand(load_config("full"), ("A", "B")).specs
    assert [s.id for s in first] == [s.id for s in second]
    assert len({s.id for s in first}) == len(first)
    assert all(len(s.id) == 64 and int(s.id, 16) >= 0 for s in first)
    assert {s.id for s in expand(load_config("full"), ("A",)).specs}.isdisjoint(
        {s.id for s in first}
    )


def test_capability_exclusions_drop_duplicate_arima_cells_with_reasons():
    expansion = expand(load_config("full"))
    arima = [s for s in expansion.specs if s.arch == "arima"]
    assert {s.lookback for s in arima} == {min(load_config("full").grid.lookbacks)}
    assert {s.feature_set for s in arima} == {"raw_ohlcv"}
    reasons = [c.reason for c in expansion.excluded if c.arch == "arima"]
    assert any("univariate" in r for r in reasons)
    assert any("warm-up" in r for r in reasons)


def test_yaml_exclusion_rule_applies_with_its_reason():
    expansion = expand(load_config("full"))
    assert not [s for s in expansion.specs if s.arch == "lstm" and s.lookback == 7]
    assert any(
        c.arch == "lstm" and c.lookback == 7 and "too short" in c.reason for c in expansion.excluded
    )


def test_full_grid_count_is_the_product_minus_exclusions():
    config = load_config("full")
    grid = config.grid
    cells = len(grid.lookbacks) * len(grid.feature_sets)
    expected = 0
    for arch, axes in grid.architectures.items():
        combos = 1
        for values in axes.hparams.values():
            combos *= len(values)
        kept = cells - sum(1 for c in expand(config).excluded if c.arch == arch)
        expected += kept * combos
    assert len(expand(config).specs) == expected


def test_a_profile_trains_only_its_part_of_the_zoo_and_names_must_exist(tmp_path):
    from model_zoo.registry import ARCHITECTURES

    assert {s.arch for s in expand(load_config("smoke"), ("AAA",)).specs} == {
        "lstm", "lightgbm", "arima"}
    assert {s.arch for s in expand(load_config("ci"), ("AAA", "BBB")).specs} == set(ARCHITECTURES)
    conf = _copy_conf(tmp_path)
    profile = conf / "profiles" / "smoke.yaml"
    profile.write_text(profile.read_text().replace("only: [lstm,", "only: [no_such_net,"))
    with pytest.raises(ConfigError, match="no_such_net"):
        load_config("smoke", conf_dir=conf)


def test_panel_models_are_dropped_on_a_one_asset_universe_with_the_reason():
    expansion = expand(load_config("ci"), ("AAA",))
    dropped = {cell.arch: cell.reason for cell in expansion.excluded}
    assert set(dropped) == {"var", "gnn"}
    assert "panel of assets" in dropped["var"] and "AAA" in dropped["var"]
