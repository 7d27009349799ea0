"""Configuration schemas and grid expansion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from factory.config import CONF_DIR, ConfigError, load_config
from factory.grid import expand
from factory.grid_design import combinations


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


def test_yaml_exclusion_rule_applies_with_its_name_ground_and_reason():
    expansion = expand(load_config("full"))
    assert not [s for s in expansion.specs if s.arch == "lstm" and s.lookback == 7]
    assert any(
        c.arch == "lstm" and c.lookback == 7 and c.rule == "sequence-learners-not-on-7-bars"
        and c.kind == "capability" and "too short" in c.reason for c in expansion.excluded
    )


def test_every_cell_and_design_row_is_kept_or_dropped_by_exactly_one_rule():
    config = load_config("full")
    grid = config.grid
    expansion = expand(config)
    cells = len(grid.lookbacks) * len(grid.feature_sets)
    for arch, axes in grid.architectures.items():
        rows = len(combinations(axes.hparams, axes.fixed, axes.design))
        kept = sum(1 for s in expansion.specs if s.arch == arch)
        dropped = sum(c.configs for c in expansion.excluded if c.arch == arch)
        assert kept + dropped == cells * rows, arch


def test_default_grid_is_486_configurations_over_every_architecture_lookback_and_set():
    from model_zoo.registry import ARCHITECTURES

    config = load_config("full")
    expansion = expand(config)
    assert len(expansion.specs) == 486
    assert len({s.id for s in expansion.specs}) == 486
    assert set(expansion.kept_by("arch")) == set(ARCHITECTURES) and len(ARCHITECTURES) == 26
    assert set(expansion.kept_by("lookback")) == {7, 14, 30, 60, 90}
    assert set(expansion.kept_by("feature_set")) == {
        "raw_ohlcv", "technical", "momentum", "volatility", "order_flow", "cross_asset",
        "sentiment", "onchain"}
    rules = expansion.dropped_by_rule(config)
    assert {kind for kind, _, _ in rules.values()} >= {"capability", "feasibility"}
    assert all(len(reason) > 20 for _, reason, _ in rules.values())
    assert sum(count for _, _, count in rules.values()) == sum(
        c.configs for c in expansion.excluded)


def test_the_nets_shared_axes_are_the_issues_levels_in_an_orthogonal_design():
    """Learning rate 1e-4/5e-4/1e-3, hidden 16/32/64 (CPU sizes: see conf/grid.yaml),
    dropout 0.1/0.2/0.3 and L1/L2/both, 9 rows at the reference cell in which every pair of
    levels of two axes appears once."""
    specs = [s for s in expand(load_config("full")).specs
             if s.arch == "lstm" and s.lookback == 30 and s.feature_set == "technical"]
    assert len(specs) == 9
    levels = {"learning_rate": {1e-4, 5e-4, 1e-3}, "hidden_size": {16, 32, 64},
              "dropout": {0.1, 0.2, 0.3}}
    for name, values in levels.items():
        assert {s.hparams[name] for s in specs} == values
    penalty = [("l1" in s.hparams, "l2" in s.hparams) for s in specs]
    assert sorted(set(penalty)) == [(False, True), (True, False), (True, True)]
    pairs = {(s.hparams["learning_rate"], s.hparams["hidden_size"]) for s in specs}
    assert len(pairs) == 9


def test_a_rule_can_keep_what_its_unless_patterns_match(tmp_path):
    conf = _copy_conf(tmp_path)
    profile = conf / "profiles" / "narrow.yaml"
    profile.write_text("""
grid:
  only: [lightgbm]
  exclusions:
    - name: only-fast-leaves-off-reference
      kind: prior_performance
      reason: "measured: 63 leaves overfit off the reference cell"
      where: {architectures: [lightgbm], hparams: {num_leaves: [63]}}
      unless: [{lookbacks: [30], feature_sets: [technical]}]
""")
    expansion = expand(load_config("narrow", conf_dir=conf))
    leaves = {(s.lookback, s.feature_set, s.hparams["num_leaves"]) for s in expansion.specs}
    assert (30, "technical", 63) in leaves
    assert not [cell for cell in leaves if cell[2] == 63 and cell[:2] != (30, "technical")]
    assert expansion.dropped_by_rule(load_config("narrow", conf_dir=conf))[
        "only-fast-leaves-off-reference"][2] > 0


@pytest.mark.parametrize("rule, message", [
    ("{name: a, kind: feasibility, reason: 'too slow here', where: {}}", "must name"),
    ("{name: Bad Name, kind: feasibility, reason: 'too slow here', where: {lookbacks: [7]}}",
     "name"),
    ("{name: a, kind: guess, reason: 'too slow here', where: {lookbacks: [7]}}", "kind"),
    ("{name: a, kind: feasibility, reason: 'too slow', where: {architectures: [nosuch]}}",
     "nosuch"),
])
def test_a_malformed_exclusion_rule_is_refused_naming_it(tmp_path, rule, message):
    conf = _copy_conf(tmp_path)
    (conf / "profiles" / "bad.yaml").write_text(f"grid:\n  exclusions: [{rule}]\n")
    with pytest.raises(ConfigError, match=message):
        load_config("bad", conf_dir=conf)


def test_a_profile_replaces_an_architectures_entry_whole(tmp_path):
    conf = _copy_conf(tmp_path)
    (conf / "profiles" / "tiny.yaml").write_text(
        "grid:\n  only: [lstm]\n  architectures:\n    lstm: {hparams: {hidden_size: [8]}}\n")
    lstm = load_config("tiny", conf_dir=conf).grid.architectures["lstm"]
    assert lstm.hparams == {"hidden_size": [8]} and lstm.fixed == {} and lstm.design == "full"


def test_every_configuration_of_the_default_grid_builds_its_model():
    """Each architecture accepts every hyperparameter the grid gives it (no training)."""
    from model_zoo.base import ModelConfig
    from model_zoo.registry import build_model

    seen = set()
    for spec in expand(load_config("full"), ("AAA", "BBB")).specs:
        key = (spec.arch, spec.canonical_json())
        if key in seen:
            continue
        seen.add(key)
        build_model(spec.arch, ModelConfig(hparams=spec.hparams, lookback=spec.lookback,
                                           feature_names=("ret_1", "f1"), seed=0))


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
