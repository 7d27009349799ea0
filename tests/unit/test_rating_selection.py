"""Composite score ranks and the selection policy: gate, score, diversify, explain."""

import numpy as np
import polars as pl
import pytest

from factory.evaluation.rating import composite_score
from factory.selection import select

WEIGHTS = {"sharpe": 0.5, "max_drawdown": 0.3, "profit_factor": 0.2}


def test_higher_sharpe_ranks_higher():
    metrics = pl.DataFrame({"sharpe": [0.5, 2.0, 1.0]})
    score = composite_score(metrics, {"sharpe": 1.0})
    assert score.to_list() == [0.0, 1.0, 0.5]


def test_lower_drawdown_ranks_higher_and_missing_is_worst():
    metrics = pl.DataFrame({"max_drawdown": [0.4, 0.1, float("nan"), 0.2]})
    score = composite_score(metrics, {"max_drawdown": 1.0}).to_list()
    assert score[1] > score[3] > score[0] > score[2] == 0.0


def test_weights_are_normalised_and_ranks_ignore_scale():
    metrics = pl.DataFrame({"sharpe": [1.0, 2.0], "profit_factor": [1e6, 1.1]})
    score = composite_score(metrics, {"sharpe": 3.0, "profit_factor": 1.0})
    assert score.to_list() == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="win_rate"):
        composite_score(metrics, {"win_rate": 1.0})


def _candidates(names, sharpe, drawdown):
    return pl.DataFrame(
        {
            "model_name": names,
            "sharpe": sharpe,
            "max_drawdown": drawdown,
            "win_rate": [0.5] * len(names),
            "profit_factor": [1.2] * len(names),
            "recovery_bars": [10.0] * len(names),
            "fit_seconds": [1.0] * len(names),
        }
    )


def _independent_returns(names, n=300, seed=1):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.01, n) for name in names}


def _select(candidates, returns, **overrides):
    policy = dict(
        weights=WEIGHTS, top_k=3, min_k=1, max_correlation=0.9, min_sharpe=None, min_obs=0
    )
    return select(candidates, returns, **{**policy, **overrides})


def test_perfectly_correlated_pair_keeps_only_the_better_one():
    candidates = _candidates(["a", "b", "c"], [2.0, 1.5, 1.0], [0.1, 0.1, 0.1])
    returns = _independent_returns(["a", "c"])
    returns["b"] = 2 * returns["a"]
    result = _select(candidates, returns)
    assert result.chosen == ["a", "c"]
    row = result.table.filter(pl.col("model_name") == "b").row(0, named=True)
    assert row["reason"] == "correlated 1.00 with a"
    assert not row["chosen"]
    assert row["max_corr_with_chosen"] == pytest.approx(1.0)


def test_min_k_fills_from_correlated_candidates_and_says_why():
    candidates = _candidates(["a", "b", "c"], [2.0, 1.5, 1.0], [0.1, 0.1, 0.1])
    base = _independent_returns(["a"])["a"]
    returns = {"a": base, "b": base * 3, "c": base + 1e-4}
    result = _select(candidates, returns, min_k=2)
    assert result.chosen == ["a", "b"]
    reasons = dict(zip(result.table["model_name"], result.table["reason"], strict=True))
    assert reasons["b"].startswith("selected: rank 2, score")
    assert "min_k fill; correlated 1.00 with a" in reasons["b"]
    assert reasons["c"] == "correlated 1.00 with a"


def test_top_k_and_rank_order():
    names = ["m1", "m2", "m3", "m4"]
    candidates = _candidates(names, [0.5, 2.0, 1.0, 1.5], [0.3, 0.1, 0.2, 0.15])
    result = _select(candidates, _independent_returns(names), top_k=2)
    assert result.chosen == ["m2", "m4"]
    table = result.table
    assert table["model_name"].to_list() == ["m2", "m4", "m3", "m1"]
    assert table["rank"].to_list() == [1, 2, 3, 4]
    assert table["reason"][0] == f"selected: rank 1, score {table['score'][0]:.2f}"
    assert table["reason"].to_list()[2:] == ["below top_k", "below top_k"]


def test_gating_on_sharpe_and_observations():
    candidates = _candidates(["good", "weak", "short"], [1.0, -0.2, 1.0], [0.1, 0.1, 0.1])
    candidates = candidates.with_columns(n_obs=pl.Series([300, 300, 20]))
    result = _select(
        candidates, _independent_returns(["good", "weak", "short"]), min_sharpe=0.0, min_obs=100
    )
    assert result.chosen == ["good"]
    reasons = dict(zip(result.table["model_name"], result.table["reason"], strict=True))
    assert reasons["weak"] == "gated: sharpe -0.2 < 0.0"
    assert reasons["short"] == "gated: n_obs 20.0 < 100"
    gated = result.table.filter(pl.col("reason").str.starts_with("gated"))
    assert gated["score"].null_count() == 2 and gated["rank"].null_count() == 2


def test_same_input_gives_identical_output_whatever_the_row_order():
    names = [f"m{i}" for i in range(8)]
    rng = np.random.default_rng(7)
    candidates = _candidates(names, list(rng.normal(1, 0.5, 8)), [0.2] * 8)
    returns = _independent_returns(names)
    returns["m5"] = returns["m2"] * 1.01
    returns["m6"][:50] = np.nan
    first = _select(candidates, returns, top_k=5, min_k=5)
    second = _select(candidates, returns, top_k=5, min_k=5)
    shuffled = _select(candidates.reverse(), returns, top_k=5, min_k=5)
    assert first.chosen == second.chosen == shuffled.chosen
    assert first.table.equals(second.table) and first.table.equals(shuffled.table)


def test_ties_are_broken_by_model_name():
    candidates = _candidates(["b", "a"], [1.0, 1.0], [0.1, 0.1])
    result = _select(candidates, _independent_returns(["a", "b"]), top_k=1)
    assert result.chosen == ["a"]


def test_bad_inputs_are_named():
    candidates = _candidates(["a", "a"], [1.0, 1.0], [0.1, 0.1])
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        _select(candidates, _independent_returns(["a"]))
    with pytest.raises(ValueError, match=r"no return series for candidates \['b'\]"):
        _select(_candidates(["a", "b"], [1.0, 1.0], [0.1, 0.1]), _independent_returns(["a"]))


def test_compute_cost_metrics_the_factory_logs_rank_lower_as_better():
    metrics = pl.DataFrame({"model_name": ["slow", "fast"], "predict_ms_per_1k": [50.0, 5.0],
                            "fit_seconds": [9.0, 1.0]})
    for column in ("predict_ms_per_1k", "fit_seconds"):
        score = composite_score(metrics, {column: 1.0})
        assert score[1] > score[0], column
