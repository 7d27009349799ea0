"""The RL trading environment: costed rewards, no look-ahead, episodes inside one asset."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from model_zoo.rl.env import POSITIONS, TradingEnv, segment_bounds

LOOKBACK, N_FEATURES = 4, 2


def _data(n: int = 20, groups: np.ndarray | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, LOOKBACK, N_FEATURES)).astype(np.float32)
    y = rng.normal(0.0, 0.01, n)
    return X, y, np.zeros(n, dtype=np.int64) if groups is None else groups


def _walk(env: TradingEnv, row: int, actions: list) -> list[tuple]:
    """Reset at ``row`` and take ``actions``; return (observation, reward, info) per step."""
    observation, _ = env.reset(options={"row": row})
    steps = [(observation, None, None)]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        steps.append((observation, reward, info))
        if terminated or truncated:
            break
    return steps


def test_passes_gymnasiums_environment_checks():
    X, y, groups = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observations: standardised data has no bound
        for discrete in (True, False):
            check_env(TradingEnv(X, y, groups, discrete=discrete), skip_render_check=True)


@pytest.mark.parametrize("discrete", [True, False])
def test_reward_is_position_times_label_minus_cost_times_turnover(discrete):
    X, y, groups = _data()
    env = TradingEnv(X, y, groups, discrete=discrete, cost_bps=5.0, reward_scale=3.0)
    positions = [1.0, 1.0, -1.0, 0.0, -1.0]
    actions = ([POSITIONS.index(p) for p in positions] if discrete
               else [np.array([p], dtype=np.float32) for p in positions])
    steps = _walk(env, row=6, actions=actions)
    previous = 0.0
    for offset, (position, (_, reward, info)) in enumerate(zip(positions, steps[1:],
                                                               strict=True)):
        expected = position * y[6 + offset] - 5e-4 * abs(position - previous)
        assert info["row"] == 6 + offset
        assert reward == pytest.approx(3.0 * expected, rel=1e-12, abs=1e-15)
        previous = position


def test_continuous_actions_are_clipped_to_one_unit():
    X, y, groups = _data()
    env = TradingEnv(X, y, groups, discrete=False, cost_bps=0.0)
    steps = _walk(env, row=0, actions=[np.array([3.0]), np.array([-0.25]), np.array([-7.0])])
    assert [info["position"] for _, _, info in steps[1:]] == [1.0, -0.25, -1.0]


def test_observation_is_the_window_at_t_and_the_reward_its_label():
    """Step k observes the window ending at row r + k; its reward uses that row's label."""
    X, y, groups = _data()
    env = TradingEnv(X, y, groups, discrete=True, cost_bps=0.0)
    steps = _walk(env, row=3, actions=[2, 2, 2, 2])
    for k, (observation, _, _) in enumerate(steps):
        np.testing.assert_array_equal(observation, X[3 + k])
    for k, (_, reward, _) in enumerate(steps[1:]):
        assert reward == pytest.approx(y[3 + k])


def test_no_look_ahead_a_label_changes_only_its_own_reward():
    """Changing the label of row t leaves every observation, and every reward but the
    one earned at row t, as it was: nothing observed before acting depends on it."""
    X, y, groups = _data()
    changed = y.copy()
    changed[8] += 1.0
    actions = [2, 0, 1, 2, 2, 0, 2, 2]
    before = _walk(TradingEnv(X, y, groups, discrete=True), row=4, actions=actions)
    after = _walk(TradingEnv(X, changed, groups, discrete=True), row=4, actions=actions)
    for k, ((obs_a, reward_a, _), (obs_b, reward_b, _)) in enumerate(zip(before, after,
                                                                         strict=True)):
        np.testing.assert_array_equal(obs_a, obs_b)
        if k >= 1 and 4 + k - 1 == 8:
            assert reward_b == pytest.approx(reward_a + 1.0 * POSITIONS[actions[k - 1]])
        else:
            assert reward_a == reward_b


def test_episode_ends_with_its_asset_and_is_cut_at_the_episode_length():
    groups = np.repeat([0, 1], 10)
    X, y, _ = _data(groups=groups)
    env = TradingEnv(X, y, groups, discrete=True, episode_length=4)
    env.reset(options={"row": 7})
    flags = [env.step(1)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (True, False)]  # rows 7, 8, 9: asset 0 ends
    env.reset(options={"row": 10})
    flags = [env.step(1)[2:4] for _ in range(4)]
    assert flags[-1] == (False, True) and not any(any(f) for f in flags[:-1])


def test_random_starts_are_seeded_and_stay_inside_the_data():
    groups = np.repeat([0, 1, 2], [5, 30, 5])
    X, y, _ = _data(n=40, groups=groups)
    rows = []
    for _ in range(2):
        env = TradingEnv(X, y, groups, discrete=True)
        rows.append([env.reset(seed=3)[1]["row"]] + [env.reset()[1]["row"] for _ in range(50)])
    assert rows[0] == rows[1]
    assert all(0 <= row < 40 for row in rows[0])
    assert len(set(rows[0])) > 10


def test_segments_are_runs_of_one_group():
    assert segment_bounds(np.array([0, 0, 1, 1, 1, 0])) == [(0, 2), (2, 5), (5, 6)]
    assert segment_bounds(np.array([], dtype=np.int64)) == []


def test_refuses_mismatched_or_empty_inputs():
    X, y, groups = _data()
    with pytest.raises(ValueError, match="as many windows"):
        TradingEnv(X, y[:-1], groups, discrete=True)
    with pytest.raises(ValueError, match="as many windows"):
        TradingEnv(X[:0], y[:0], groups[:0], discrete=True)
    with pytest.raises(ValueError, match="cost_bps"):
        TradingEnv(X, y, groups, discrete=True, cost_bps=-1.0)
