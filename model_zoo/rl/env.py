"""A trading environment over supervised windows, for the reinforcement-learning agents.

The agent holds a position in one asset and moves along that asset's windows in time order.
At step ``t`` it observes the window ending at bar ``t`` (``(lookback, n_features)``, scaled
as the supervised models see it), chooses a position in ``[-1, 1]`` and earns

``reward_t = reward_scale * (position_t * label_t - cost * |position_t - position_{t-1}|)``

with ``cost = cost_bps / 1e4``, where ``label_t`` is the window's label: the return from bar
``t + 1`` to ``t + 2``, realised only after the position is taken (a signal formed at bar
``t``'s close trades at ``t + 1``).

Nothing of ``label_t`` reaches the observation, so the agent cannot look ahead; the next
observation is the window ending at ``t + 1``, which does not hold ``label_t`` either (it
ends at bar ``t + 1``). The policies see the window only, never past rewards.

Episodes. Rows of one asset (``groups``) form a segment; each episode picks a segment with
probability proportional to its length and a uniformly random start inside it, then walks
at most ``episode_length`` windows forward with a flat starting position. It ends
(``terminated``) when the segment runs out of windows and is cut (``truncated``) after
``episode_length`` steps otherwise, so that bootstrapping agents value the cut state
correctly. Random starts give every rollout a fresh stretch of history.

``reward_scale`` only changes units: the agents pass ``1 / std(labels)`` so that value
targets are of order one (raw returns of order 1e-2 give vanishing value gradients); the
order of policies by reward is unchanged.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

POSITIONS = (-1.0, 0.0, 1.0)
"""Positions of the discrete action space, by action index (short, flat, long)."""


def observation_space(lookback: int, n_features: int) -> spaces.Box:
    """The space of one window: ``(lookback, n_features)`` unbounded float32."""
    return spaces.Box(-np.inf, np.inf, shape=(lookback, n_features), dtype=np.float32)


def action_space(discrete: bool) -> spaces.Space:
    """``Discrete(3)`` over :data:`POSITIONS`, or a position ``Box`` in ``[-1, 1]``."""
    if discrete:
        return spaces.Discrete(len(POSITIONS))
    return spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


def segment_bounds(groups: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` row ranges of the runs of equal consecutive ``groups`` values."""
    groups = np.asarray(groups)
    if len(groups) == 0:
        return []
    cuts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [len(groups)]])
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


class TradingEnv(gym.Env):
    """One asset position over time-ordered windows; reward is the costed position return.

    Parameters
    ----------
    X : np.ndarray
        ``(n, lookback, n_features)`` windows, rows of one group consecutive in time.
    y : np.ndarray
        ``(n,)`` labels: the forward return of each window (realised after the action).
    groups : np.ndarray
        ``(n,)`` asset codes; each run of equal values is a segment an episode walks.
    discrete : bool
        Actions index :data:`POSITIONS` (``True``) or are a position in ``[-1, 1]``
        (``False``; values outside are clipped).
    cost_bps : float
        Cost per unit of turnover, in basis points of the position.
    episode_length : int
        Most steps an episode takes before it is truncated.
    reward_scale : float
        Positive factor applied to every reward (units only).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, discrete: bool,
                 cost_bps: float = 2.0, episode_length: int = 256,
                 reward_scale: float = 1.0) -> None:
        super().__init__()
        if len(X) != len(y) or len(X) != len(groups) or len(X) == 0:
            raise ValueError(f"TradingEnv needs as many windows, labels and groups, at least "
                             f"one; got {len(X)}, {len(y)}, {len(groups)}")
        if cost_bps < 0 or episode_length < 1 or reward_scale <= 0:
            raise ValueError("TradingEnv: cost_bps must be >= 0, episode_length >= 1 and "
                             "reward_scale > 0")
        self.X = np.asarray(X, dtype=np.float32)
        self.y = np.asarray(y, dtype=np.float64)
        self.discrete = discrete
        self.cost = cost_bps / 1e4
        self.episode_length = episode_length
        self.reward_scale = reward_scale
        self.segments = segment_bounds(groups)
        lengths = np.array([stop - start for start, stop in self.segments], dtype=np.float64)
        self._segment_weights = lengths / lengths.sum()
        self.observation_space = observation_space(self.X.shape[1], self.X.shape[2])
        self.action_space = action_space(discrete)
        self.row = 0
        self.stop = 0
        self.steps = 0
        self.position = 0.0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode at a random row of a random segment, flat.

        ``options={"row": i}`` starts at row ``i`` instead (tests, evaluation).
        """
        super().reset(seed=seed)
        if options and "row" in options:
            self.row = int(options["row"])
            index = next(i for i, (a, b) in enumerate(self.segments) if a <= self.row < b)
        else:
            index = int(self.np_random.choice(len(self.segments), p=self._segment_weights))
            start, stop = self.segments[index]
            self.row = int(self.np_random.integers(start, stop))
        self.stop = self.segments[index][1]
        self.steps = 0
        self.position = 0.0
        return self.X[self.row].copy(), {"row": self.row}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take ``action`` at the current window; earn its label; move to the next window."""
        position = self.to_position(action)
        turnover = abs(position - self.position)
        pnl = position * self.y[self.row] - self.cost * turnover
        info = {"row": self.row, "position": position, "turnover": turnover, "pnl": pnl}
        self.position = position
        self.row += 1
        self.steps += 1
        terminated = self.row >= self.stop
        truncated = not terminated and self.steps >= self.episode_length
        observation = self.X[self.row - 1 if terminated else self.row].copy()
        return observation, float(self.reward_scale * pnl), terminated, truncated, info

    def to_position(self, action: Any) -> float:
        """The position an action stands for: an index of :data:`POSITIONS`, or a clipped
        number."""
        if self.discrete:
            return POSITIONS[int(np.asarray(action).reshape(-1)[0])]
        return float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
