"""The factory command's surface that needs no lake: help and the grid's dry run."""

from __future__ import annotations

from typer.testing import CliRunner

from factory.cli import app
from factory.config import load_config
from factory.grid import expand

runner = CliRunner()


def test_dry_run_prints_every_config_and_the_count():
    result = runner.invoke(app, ["run", "--profile", "smoke", "--dry-run"])
    assert result.exit_code == 0, result.output
    specs = expand(load_config("smoke")).specs
    assert f"{len(specs)} configs" in result.output
    assert all(spec.short_id in result.output for spec in specs)
    assert "lstm-not-on-7-bars" in result.output


def test_full_dry_run_counts_486_per_architecture_feature_set_lookback_and_rule():
    config = load_config("full")
    result = runner.invoke(app, ["run", "--profile", "full", "--dry-run"], terminal_width=240)
    assert result.exit_code == 0, result.output
    assert "the full grid: 486 configurations" in result.output
    for title in ("per architecture", "per feature set", "per lookback", "exclusion rules"):
        assert title in result.output
    assert all(rule.name in result.output for rule in config.grid.exclusions)
    assert "univariate-one-feature-set" in result.output
    kept = expand(config).kept_by("arch")
    assert all(f"{arch} " in result.output for arch in kept)


def test_unknown_profile_is_a_clear_error():
    result = runner.invoke(app, ["run", "--profile", "nosuch", "--dry-run"])
    assert result.exit_code == 1
    assert "nosuch.yaml" in result.output


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    for command in ("ingest", "run", "select", "snapshot", "replay", "models", "leaderboard",
                    "check-data", "serve"):
        assert command in result.output


def test_models_lists_every_architecture_with_its_family():
    from model_zoo.registry import ARCHITECTURES

    result = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"{len(ARCHITECTURES)} architectures" in result.output
    lines = result.output.splitlines()
    for name, arch in ARCHITECTURES.items():
        [line] = [row for row in lines if row.startswith(f"│ {name} ")]
        assert f" {arch.capabilities.family} " in line, line


def test_dry_run_on_a_lake_counts_what_its_data_can_feed(tmp_path, monkeypatch):
    from factory.data.lake import Lake
    from factory.data.sources import synthetic_bars
    from factory.paths import configure_environment

    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    paths = configure_environment()
    Lake(paths.lake).ingest_bars(synthetic_bars(symbols=("AAA", "BBB"), n_bars=300, seed=2),
                                 "synthetic")
    result = runner.invoke(app, ["run", "--profile", "full", "--source", "lake", "--dry-run"],
                           terminal_width=240)
    assert result.exit_code == 0, result.output
    assert "the full grid: 486 configurations" in result.output
    assert "on the lake's universe (AAA, BBB)" in result.output
    assert "not fed by this lake: feature set 'onchain' needs onchain" in result.output
    assert "universe: 2 symbol(s) from lake v0" in result.output


def test_dry_run_shows_the_span_each_symbol_keeps(tmp_path, monkeypatch):
    from factory.data.lake import Lake
    from factory.data.sources import synthetic_bars
    from factory.paths import configure_environment

    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    lake = Lake(configure_environment().lake)
    lake.ingest_bars(synthetic_bars(symbols=("LONG",), n_bars=400, seed=1), "long.csv")
    lake.ingest_bars(synthetic_bars(symbols=("SHORT",), n_bars=100, seed=2), "short.csv")
    ragged = runner.invoke(app, ["run", "--profile", "smoke", "--source", "lake", "--dry-run"])
    assert "SHORT end(s) before the out-of-sample period" in ragged.output, ragged.output
    cut = runner.invoke(app, ["run", "--profile", "smoke", "--source", "lake", "--end",
                              "common", "--dry-run"])
    assert cut.exit_code == 0, cut.output
    assert "data.end common" in cut.output and "LONG: 100 bars" in cut.output
    assert "never tested" not in cut.output
