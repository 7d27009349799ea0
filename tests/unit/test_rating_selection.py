"""Composite score ranks and the selection policy: gate, score, diversify, explain."""

import json

import numpy as np
import polars as pl
import pytest

from factory.config import SelectionConfig
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


def _policy(**overrides):
    gates = {"min_obs": 1, "min_deflated_sharpe": 0.95, "beat_buy_and_hold": False,
             "min_live_psr": 0.05, "min_live_bars": 20} | overrides.pop("gates", {})
    base = {"weights": WEIGHTS, "top_k": 3, "min_k": 1, "staging_k": 2,
            "max_correlation": 0.9, "gates": gates}
    return SelectionConfig.model_validate(base | overrides)


def _candidates(names, sharpe, drawdown, dsr=None, stage=None):
    n = len(names)
    return pl.DataFrame({
        "model_name": names, "sharpe": sharpe, "max_drawdown": drawdown,
        "win_rate": [0.5] * n, "profit_factor": [1.2] * n, "recovery_bars": [10.0] * n,
        "fit_seconds": [1.0] * n, "n_obs": [300.0] * n,
        "deflated_sharpe": dsr or [0.99] * n, "n_trials": [n] * n,
        "rolling_sharpe_30d": sharpe, "stage": stage or ["None"] * n,
        "live_n_obs": [0.0] * n, "live_psr": [None] * n, "buy_and_hold_sharpe": [0.5] * n,
    }, schema_overrides={"live_psr": pl.Float64})


def _independent_returns(names, n=300, seed=1):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.01, n) for name in names}


def _select(candidates, returns, **overrides):
    return select(candidates, returns, _policy(**overrides))


def _by_name(result, column):
    return dict(zip(result.table["model_name"], result.table[column], strict=True))


def test_correlated_group_keeps_its_strongest_member_even_when_it_scores_lower():
    # "b" is the strongest (Sharpe 7.9) but has the worst drawdown, so it scores below "a";
    # a greedy walk by score dropped it for "a". The group must keep "b".
    candidates = _candidates(["a", "b", "c"], [5.7, 7.9, 1.0], [0.05, 0.3, 0.1])
    returns = _independent_returns(["a", "c"])
    returns["b"] = 2 * returns["a"] + 1e-5
    result = _select(candidates, returns)
    assert "b" in result.production and "a" not in result.production
    assert _by_name(result, "reason")["a"] == "correlated 1.00 with b, which is stronger"
    assert _by_name(result, "max_corr_with_chosen")["a"] == pytest.approx(1.0)


def test_min_k_fills_only_from_gate_clearing_models_set_aside_for_correlation():
    candidates = _candidates(["a", "b", "c", "d"], [2.0, 1.5, 1.0, 3.0], [0.1] * 4,
                             dsr=[0.99, 0.99, 0.99, 0.40])
    base = _independent_returns(["a"])["a"]
    returns = {"a": base, "b": base * 3, "c": base + 1e-4,
               **_independent_returns(["d"], seed=2)}
    result = _select(candidates, returns, min_k=3)
    assert result.production == ["a", "b", "c"]
    reasons = _by_name(result, "reason")
    assert "min_k fill; correlated 1.00 with a, which is stronger" in reasons["b"]
    assert "d" not in result.production
    assert reasons["d"] == "failed: deflated Sharpe 0.40 < 0.95 (N=4 trials)"


def test_nothing_clears_the_gate_nothing_is_promoted_and_the_headline_says_why():
    names = ["a", "b", "c"]
    candidates = _candidates(names, [1.0, 0.5, -0.2], [0.1] * 3, dsr=[0.54, 0.31, 0.02])
    result = _select(candidates, _independent_returns(names))
    assert result.production == []
    assert result.headline.startswith(
        "no configuration clears the deflated-Sharpe gate: best 0.54 < 0.95 (N=3 trials)")
    assert result.table["weight"].sum() == 0
    # Staging keeps the next best in evaluation, with the gate each failed.
    assert result.staging == ["a", "b"]
    assert _by_name(result, "stage_to")["c"] == "None"
    assert _by_name(result, "reason")["a"].startswith("failed: deflated Sharpe 0.54 < 0.95")


def test_a_production_model_that_now_fails_a_gate_is_demoted_with_the_reason():
    candidates = _candidates(["a", "b", "c", "d"], [2.0, 1.0, 1.5, 0.5], [0.1] * 4,
                             stage=["Production", "Staging", "None", "Staging"])
    candidates = candidates.with_columns(live_n_obs=pl.Series([40.0, 0.0, 0.0, 0.0]),
                                         live_psr=pl.Series([0.01, None, None, None]))
    result = _select(candidates, _independent_returns(["a", "b", "c", "d"]), top_k=2,
                     staging_k=1)
    stage = _by_name(result, "stage_to")
    assert result.production == ["c", "b"]
    assert stage["a"] == "Archived" and _by_name(result, "stage_from")["a"] == "Production"
    assert "live record loses: probabilistic Sharpe 0.010 < 0.05 over 40 live bars" in (
        _by_name(result, "reason")["a"])
    # Staging prefers gate-clearing models: "d" stays, below top_k.
    assert result.staging == ["d"] and _by_name(result, "reason")["d"] == "below top_k (2)"


def test_the_headline_names_the_gate_that_stops_the_best_when_it_is_not_the_deflated_one():
    candidates = _candidates(["a", "b"], [2.0, 1.0], [0.1, 0.1], dsr=[0.99, 0.5]).with_columns(
        live_n_obs=pl.Series([40.0, 0.0]), live_psr=pl.Series([0.01, None]))
    result = _select(candidates, _independent_returns(["a", "b"]))
    assert result.production == []
    assert result.headline == (
        "no configuration clears every gate (the best scored, a, fails: live record loses: "
        "probabilistic Sharpe 0.010 < 0.05 over 40 live bars); nothing promoted")


def test_each_candidate_keeps_the_metric_ranks_behind_its_score():
    candidates = _candidates(["a", "b", "c"], [2.0, 1.0, 1.5], [0.3, 0.1, 0.2])
    result = _select(candidates, _independent_returns(["a", "b", "c"]))
    ranks = {n: json.loads(r) for n, r in zip(result.table["model_name"],
                                               result.table["metric_ranks"], strict=True)}
    assert set(ranks["a"]) == set(WEIGHTS)
    assert (ranks["a"]["sharpe"], ranks["b"]["sharpe"], ranks["c"]["sharpe"]) == (1.0, 0.0, 0.5)
    assert (ranks["a"]["max_drawdown"], ranks["b"]["max_drawdown"]) == (0.0, 1.0)
    score = sum(WEIGHTS[k] * v for k, v in ranks["c"].items()) / sum(WEIGHTS.values())
    assert _by_name(result, "score")["c"] == pytest.approx(score, abs=1e-4)


def test_a_short_live_record_does_not_trigger_the_live_gate():
    candidates = _candidates(["a"], [2.0], [0.1]).with_columns(
        live_n_obs=pl.Series([5.0]), live_psr=pl.Series([0.001]))
    assert _select(candidates, _independent_returns(["a"])).production == ["a"]


def test_gates_on_observations_and_buy_and_hold():
    candidates = _candidates(["good", "weak", "short"], [1.0, 0.2, 1.0], [0.1] * 3)
    candidates = candidates.with_columns(n_obs=pl.Series([300.0, 300.0, 20.0]))
    result = _select(candidates, _independent_returns(["good", "weak", "short"]),
                     gates={"min_obs": 100, "beat_buy_and_hold": True})
    assert result.production == ["good"]
    reasons = _by_name(result, "reason")
    assert reasons["weak"] == "failed: Sharpe 0.20 <= buy and hold 0.50"
    assert reasons["short"] == "failed: out-of-sample bars 20 < 100"


def test_allocation_weights_sum_to_one_and_respect_the_cap():
    names = [f"m{i}" for i in range(6)]
    candidates = _candidates(names, [3.0, 2.0, 1.5, 1.0, 0.8, 0.5], [0.1] * 6)
    result = _select(candidates, _independent_returns(names), top_k=6,
                     allocation={"max_weight": 0.3, "recent_weight": 0.5})
    weights = _by_name(result, "weight")
    assert sum(weights.values()) == pytest.approx(1.0)
    assert max(weights.values()) <= 0.3 + 1e-9
    assert weights["m0"] >= weights["m1"] >= weights["m5"] > 0


def test_rising_configurations_gain_weight():
    candidates = _candidates(["rising", "falling"], [1.0, 1.0], [0.1, 0.1]).with_columns(
        rolling_sharpe_30d=pl.Series([3.0, -1.0]))
    result = _select(candidates, _independent_returns(["rising", "falling"]),
                     allocation={"max_weight": 1.0, "recent_weight": 0.5})
    weights = _by_name(result, "weight")
    assert weights["rising"] > 0.5 > weights["falling"]


def test_same_input_gives_identical_output_whatever_the_row_order():
    names = [f"m{i}" for i in range(8)]
    rng = np.random.default_rng(7)
    candidates = _candidates(names, list(rng.normal(1, 0.5, 8)), [0.2] * 8)
    returns = _independent_returns(names)
    returns["m5"] = returns["m2"] * 1.01
    returns["m6"][:50] = np.nan
    first = _select(candidates, returns, top_k=5, min_k=5)
    shuffled = _select(candidates.reverse(), returns, top_k=5, min_k=5)
    assert first.production == shuffled.production
    assert first.table.equals(shuffled.table)


def test_ties_are_broken_by_model_name():
    candidates = _candidates(["b", "a"], [1.0, 1.0], [0.1, 0.1])
    result = _select(candidates, _independent_returns(["a", "b"]), top_k=1)
    assert result.production == ["a"]


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


def test_rating_models_whose_bars_the_lake_lacks_says_to_share_the_lake(tmp_path):
    """A tracking store shared between homes: the models' universe is not in this lake."""
    from factory.data.lake import Lake
    from factory.data.sources import synthetic_bars
    from factory.selection_run import _universe

    lake = Lake(tmp_path / "lake")
    lake.ingest_bars(synthetic_bars(symbols=("AAA",), n_bars=50, seed=1), "synthetic")
    with pytest.raises(LookupError, match="trained on SP500,NASDAQ.*shared MLflow store"):
        _universe(lake, None, "SP500,NASDAQ")
