"""PSR, DSR and PBO against hand computations from the papers' formulas, and on simulated
noise versus a planted edge."""

import math
from statistics import NormalDist, mean, stdev

import numpy as np
import pytest
from scipy import stats

from factory.evaluation import multiple_testing
from factory.evaluation.multiple_testing import (
    annual_to_per_bar,
    deflated_sharpe,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe,
)

PHI = NormalDist().cdf
PHI_INV = NormalDist().inv_cdf
EULER_GAMMA = 0.5772156649015329


def hand_psr(sr, t, skew, kurt, sr_star):
    """Bailey & Lopez de Prado (2012), written out term by term."""
    se = math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return PHI((sr - sr_star) * math.sqrt(t - 1) / se)


def hand_sr0(n, v):
    """False strategy theorem (Bailey & Lopez de Prado 2014), written out term by term."""
    return math.sqrt(v) * (
        (1 - EULER_GAMMA) * PHI_INV(1 - 1 / n) + EULER_GAMMA * PHI_INV(1 - 1 / (n * math.e))
    )


def test_psr_normal_returns_by_hand():
    # SR 0.1 over 500 bars, normal: z = 0.1 * sqrt(499) / sqrt(1 + 2/4 * 0.01) = 2.2282...
    z = 0.1 * math.sqrt(499) / math.sqrt(1.005)
    assert float(probabilistic_sharpe(0.1, 500, 0.0, 3.0)) == pytest.approx(PHI(z), abs=1e-12)
    assert PHI(z) == pytest.approx(0.98707, abs=1e-4)


def test_psr_non_normal_returns_by_hand():
    # Skew -0.5 and kurtosis 5 widen the standard error: 1 + 0.5 * 0.08 + 4/4 * 0.0064.
    z = (0.08 - 0.02) * math.sqrt(749) / math.sqrt(1 + 0.04 + 0.0064)
    got = float(probabilistic_sharpe(0.08, 750, -0.5, 5.0, benchmark=0.02))
    assert got == pytest.approx(PHI(z), abs=1e-12)
    assert got < float(probabilistic_sharpe(0.08, 750, 0.0, 3.0, benchmark=0.02))


def test_psr_broadcasts_and_is_nan_on_bad_inputs():
    sharpes = np.array([0.05, 0.1, np.nan, 0.1, 0.1])
    n_obs = np.array([300, 300, 300, 1, 300])
    kurt = np.array([5.0, 5.0, 5.0, 5.0, -1000.0])  # the last: 1 + 0.05 - 1001 / 4 * 0.01 < 0
    got = probabilistic_sharpe(sharpes, n_obs, -0.5, kurt)
    assert got.shape == (5,)
    assert got[0] == pytest.approx(hand_psr(0.05, 300, -0.5, 5.0, 0.0), abs=1e-12)
    assert got[1] == pytest.approx(hand_psr(0.1, 300, -0.5, 5.0, 0.0), abs=1e-12)
    assert np.isnan(got[2:]).all()


def test_annual_to_per_bar():
    assert annual_to_per_bar(2.5, 250) == pytest.approx(2.5 / math.sqrt(250))
    np.testing.assert_allclose(annual_to_per_bar(np.array([1.0, 2.0]), 4.0), [0.5, 1.0])
    with pytest.raises(ValueError, match="periods_per_year"):
        annual_to_per_bar(1.0, 0)


def test_expected_max_sharpe_by_hand_grows_with_n_and_variance():
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert expected_max_sharpe(1, np.nan) == 0.0
    # N = 2: Phi^-1(1/2) = 0, only the gamma term is left.
    assert expected_max_sharpe(2, 0.04) == pytest.approx(
        0.2 * EULER_GAMMA * PHI_INV(1 - 1 / (2 * math.e)), abs=1e-12
    )
    assert expected_max_sharpe(50, 0.01) == pytest.approx(hand_sr0(50, 0.01), abs=1e-12)
    by_n = expected_max_sharpe(np.array([1, 2, 10, 100, 1000]), 0.01)
    assert np.all(np.diff(by_n) > 0)
    by_v = expected_max_sharpe(20, np.array([0.0, 0.001, 0.01, 0.1]))
    assert by_v[0] == 0.0
    assert np.all(np.diff(by_v) > 0)


@pytest.mark.parametrize(
    ("n_trials", "variance", "match"),
    [
        (0, 0.1, "n_trials"),
        (2.5, 0.1, "n_trials"),
        (np.nan, 0.1, "n_trials"),
        (5, -0.1, "variance"),
    ],
)
def test_expected_max_sharpe_rejects_bad_inputs(n_trials, variance, match):
    with pytest.raises(ValueError, match=match):
        expected_max_sharpe(n_trials, variance)


def test_dsr_non_normal_by_hand():
    sr0 = hand_sr0(30, 0.002)
    want = hand_psr(0.12, 900, -0.5, 5.0, sr0)
    got = float(deflated_sharpe(0.12, 900, -0.5, 5.0, 30, 0.002))
    assert got == pytest.approx(want, abs=1e-12)


def test_dsr_paper_example():
    # Bailey & Lopez de Prado (2014): annualised SR 2.5 over T = 1250 daily returns, skew -3,
    # kurtosis 10, N = 100 trials whose annualised Sharpes have variance 0.5; 250 days a year.
    # By hand: SR0 = sqrt(0.5/250) * (0.4228 * 2.3263 + 0.5772 * 2.6802) = 0.1132 per day,
    # SR = 2.5 / sqrt(250) = 0.1581, DSR = 0.9004 (the values the paper reports).
    sr, v = 2.5 / math.sqrt(250), 0.5 / 250
    sr0 = hand_sr0(100, v)
    want = hand_psr(sr, 1250, -3.0, 10.0, sr0)
    assert expected_max_sharpe(100, v) == pytest.approx(sr0, abs=1e-12)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert float(deflated_sharpe(sr, 1250, -3.0, 10.0, 100, v)) == pytest.approx(want, abs=1e-12)
    assert want == pytest.approx(0.9004, abs=5e-5)


def _moments(r):
    """Per-bar Sharpe, skewness and non-excess kurtosis of each column."""
    sharpe = r.mean(axis=0) / r.std(axis=0, ddof=1)
    return sharpe, stats.skew(r, axis=0), stats.kurtosis(r, axis=0, fisher=False)


def test_dsr_deflates_the_best_of_many_noise_strategies_but_not_a_real_edge():
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((1000, 200)) * 0.01
    sharpe, skew, kurt = _moments(noise)
    best = int(np.argmax(sharpe))
    variance = float(np.var(sharpe, ddof=1))
    naive = float(probabilistic_sharpe(sharpe[best], 1000, skew[best], kurt[best]))
    dsr = float(deflated_sharpe(sharpe[best], 1000, skew[best], kurt[best], 200, variance))
    assert naive > 0.95
    assert dsr < 0.9

    z = rng.standard_normal(1000)
    edge = (z - z.mean()) / z.std(ddof=1) + 0.2  # per-bar Sharpe exactly 0.2
    e_sharpe, e_skew, e_kurt = _moments(edge[:, None])
    assert e_sharpe[0] == pytest.approx(0.2)
    assert float(deflated_sharpe(e_sharpe[0], 1000, e_skew[0], e_kurt[0], 200, variance)) > 0.99


def _hand_metric(values, metric):
    return mean(values) if metric == "mean" else mean(values) / stdev(values)


def _hand_logits(columns, blocks, metric):
    """CSCV written out with plain loops: blocks of 2 rows, S = 4, 6 combinations.

    Returns the logit per combination and whether the in-sample best lost out of sample.
    """
    logits, losses = [], []
    for in_sample in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
        out_sample = [b for b in range(blocks) if b not in in_sample]
        rows_is = [2 * b + i for b in in_sample for i in range(2)]
        rows_oos = [2 * b + i for b in out_sample for i in range(2)]
        is_perf = [_hand_metric([col[i] for i in rows_is], metric) for col in columns]
        oos_perf = [_hand_metric([col[i] for i in rows_oos], metric) for col in columns]
        chosen = is_perf.index(max(is_perf))  # first of the tied bests
        ordered = sorted(oos_perf)
        positions = [p + 1 for p, value in enumerate(ordered) if value == oos_perf[chosen]]
        w = mean(positions) / (len(columns) + 1)
        logits.append(math.log(w / (1 - w)))
        losses.append(oos_perf[chosen] < 0)
    return logits, losses


# Blocks of two rows. Column 1 equals column 0 in blocks 0-1 (an in-sample tie), column 2
# equals column 0 in blocks 2-3 (an out-of-sample tie).
HAND_COLUMNS = [
    [-1, 2, -2, 1, 1, -1, 4, 4],
    [-1, 2, -2, 1, -2, -3, -3, 4],
    [-1, -3, -2, 2, 1, -1, 4, 4],
]


@pytest.mark.parametrize("metric", ["sharpe", "mean"])
def test_pbo_matches_hand_enumeration(metric):
    returns = np.array(HAND_COLUMNS, dtype=float).T
    result = pbo_cscv(returns, n_partitions=4, metric=metric)
    want, losses = _hand_logits(HAND_COLUMNS, 4, metric)
    np.testing.assert_allclose(result.logits, want, rtol=0, atol=1e-12)
    assert result.pbo == pytest.approx(sum(x <= 0 for x in want) / 6)  # logit 0 counts
    assert result.probability_of_loss == pytest.approx(sum(losses) / 6)
    assert (result.n_combinations, result.n_partitions) == (6, 4)
    assert (result.n_candidates, result.n_bars_used) == (3, 8)
    # Combination (0, 1): in rows 0-3 columns 0 and 1 tie (mean 0, Sharpe 0) above column 2
    # (mean -1); column 0 is taken. In rows 4-7 it ties with column 2 (mean 2) for ranks 2
    # and 3 above column 1 (mean -1): w = 2.5 / 4, logit ln(5/3). Column 1 would give rank 1
    # and ln(1/3).
    assert result.logits[0] == pytest.approx(math.log(5 / 3), abs=1e-12)


def test_pbo_is_the_same_when_combinations_are_evaluated_in_chunks(monkeypatch):
    returns = np.array(HAND_COLUMNS, dtype=float).T
    whole = pbo_cscv(returns, n_partitions=4)
    monkeypatch.setattr(multiple_testing, "_CHUNK_CELLS", 7)  # 2 combinations per chunk
    np.testing.assert_array_equal(pbo_cscv(returns, n_partitions=4).logits, whole.logits)


def test_pbo_drops_oldest_remainder_rows_and_nan_rows():
    base = np.array(HAND_COLUMNS, dtype=float).T
    want = pbo_cscv(base, n_partitions=4)
    older = np.vstack([np.full((3, 3), 9.0), base])
    assert pbo_cscv(older, n_partitions=4).n_bars_used == 8
    np.testing.assert_array_equal(pbo_cscv(older, n_partitions=4).logits, want.logits)
    gappy = np.insert(base, 5, [0.5, np.nan, 7.0], axis=0)
    np.testing.assert_array_equal(pbo_cscv(gappy, n_partitions=4).logits, want.logits)
    with pytest.raises(ValueError, match="7 of 8 rows have no NaN"):
        pbo_cscv(np.where(np.arange(8)[:, None] == 2, np.nan, base), n_partitions=4)


def test_pbo_of_pure_noise_is_near_one_half():
    # The 12,870 combinations share their data, so one noise matrix's PBO varies widely
    # around 0.5 from seed to seed; the bounds hold for this seed, not for every one.
    rng = np.random.default_rng(11)
    result = pbo_cscv(rng.standard_normal((1600, 50)) * 0.01)
    assert result.n_combinations == 12870
    assert result.logits.shape == (12870,)
    assert 0.3 < result.pbo < 0.7


def test_pbo_of_a_genuine_edge_is_near_zero():
    rng = np.random.default_rng(12)
    returns = rng.standard_normal((1600, 50)) * 0.01
    returns[:, 17] += 0.002  # per-bar Sharpe 0.2 on every block
    result = pbo_cscv(returns)
    assert result.pbo < 0.1
    assert result.probability_of_loss < 0.1
    assert result.median_logit == pytest.approx(math.log(50 / 1))


@pytest.mark.parametrize(
    ("returns", "n_partitions", "metric", "match"),
    [
        (np.zeros((40, 3)), 5, "sharpe", "even number"),
        (np.zeros((40, 3)), 0, "sharpe", "even number"),
        (np.zeros((40, 1)), 4, "sharpe", "at least 2 candidates"),
        (np.zeros(40), 4, "sharpe", "2-D"),
        (np.zeros((7, 3)), 4, "sharpe", "2 rows per block"),
        (np.zeros((40, 3)), 4, "sortino", "metric"),
        (np.full((40, 3), np.inf), 4, "sharpe", "infinite"),
    ],
)
def test_pbo_rejects_bad_inputs(returns, n_partitions, metric, match):
    with pytest.raises(ValueError, match=match):
        pbo_cscv(returns, n_partitions=n_partitions, metric=metric)
