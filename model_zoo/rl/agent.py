"""The one wrapper every reinforcement-learning agent of the zoo shares.

An agent's file (``dqn.py``, ``ppo.py``, ``a2c.py``) names only its stable-baselines3
algorithm, its action space and its defaults; everything else lives here: the trading
environment (:mod:`model_zoo.rl.env`) over the training windows, seeding, one torch thread,
keeping the policy that scores best on the validation block, the mapping of the policy's
output to a forward-return forecast, and persistence without pickle.

Score. A sign is a poor forecast, so each policy gives a continuous score per window:
``Q(s, long) - Q(s, short)`` for a Q-network, ``P(long) - P(short)`` for a discrete actor and
the Gaussian mean position for a continuous one. As in :mod:`model_zoo.econometric.arima`,
a least-squares line ``y ~ intercept + slope * score`` fitted on the training rows maps the
score to ``y``'s units, so ``predict`` returns forward returns as the protocol says (and a
policy that learned nothing gets a slope near zero, not a confident forecast).

Early stopping. With ``valid``, every ``eval_freq`` timesteps the policy is scored on the
training rows (to refit the line) and on the validation rows; the weights with the lowest
validation mean squared error are kept, and training stops after ``patience`` checks
without improvement (``0``: never). :meth:`RLAgentModel.training_budget` reports the
timesteps behind the kept weights, ``{"total_timesteps": steps}`` (all of them without
``valid``), for the refit on all history.

Persistence. stable-baselines3's own ``save`` zip cloudpickles parts of the model (rule 11),
so :meth:`RLAgentModel.save` writes the policy's ``state_dict`` with ``torch.save`` and the
config and calibration to ``model.json``; :meth:`RLAgentModel.load` rebuilds the policy from
the same spaces and keyword arguments and reads the weights with ``weights_only=True``.
Training runs on the CPU (``Capabilities.gpu`` is false): these policies are small MLPs and
the environment steps in Python, so a GPU would only add transfers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.dqn.policies import DQNPolicy

from model_zoo.base import (
    Capabilities,
    Model,
    ModelConfig,
    SupervisedData,
    check_windows,
    least_squares_line,
)
from model_zoo.registry import read_model_meta, resolve_hparams, write_model_meta
from model_zoo.rl.env import TradingEnv, action_space, observation_space

SHARED_DEFAULTS: Mapping[str, Any] = {
    "total_timesteps": 20_000,
    "learning_rate": 1e-3,
    "hidden_size": 64,
    "num_layers": 1,
    "gamma": 0.5,
    "cost_bps": 2.0,
    "episode_length": 256,
    "n_envs": 4,
    "eval_freq": 2_000,
    "patience": 3,
}
"""Hyperparameters every agent accepts, with their defaults.

``total_timesteps`` is the training budget (environment steps over all ``n_envs``
environments); ``hidden_size`` x ``num_layers`` the MLP of each network; ``gamma`` the
discount (actions do not move the market, only costs link one step to the next, so a short
horizon suffices and keeps value targets less noisy); ``cost_bps`` the cost per unit of turnover;
``episode_length`` the longest episode; ``eval_freq`` and ``patience`` drive early stopping
on ``valid`` (see the module docstring).
"""

PREDICT_BATCH_SIZE = 4096
WEIGHTS_FILE = "policy.pt"


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Train with one torch thread (the house rule for workers), restoring the count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class RLAgentModel(Model):
    """:class:`~model_zoo.base.Model` implementation shared by every RL agent.

    Subclasses set ``capabilities`` (the registry's object), ``algorithm`` (a
    stable-baselines3 class), ``discrete`` (the action space), ``algorithm_defaults``:
    their own hyperparameters, passed by name to the algorithm's constructor,
    ``policy_defaults``: those passed to the policy, and ``shared_overrides``: their own
    defaults of shared hyperparameters. The grid may set any shared or own hyperparameter;
    unknown names raise ``ValueError``.
    """

    capabilities: ClassVar[Capabilities]
    algorithm: ClassVar[type[BaseAlgorithm]]
    discrete: ClassVar[bool]
    algorithm_defaults: ClassVar[Mapping[str, Any]] = {}
    policy_defaults: ClassVar[Mapping[str, Any]] = {}
    shared_overrides: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        name = type(self).__name__
        defaults = {**SHARED_DEFAULTS, **self.shared_overrides, **self.algorithm_defaults,
                    **self.policy_defaults}
        self.hparams = resolve_hparams(config.hparams, defaults, name)
        counts = ("total_timesteps", "hidden_size", "num_layers", "episode_length", "n_envs",
                  "eval_freq")
        if any(self.hparams[key] < 1 for key in counts) or self.hparams["patience"] < 0:
            raise ValueError(f"{name}: {', '.join(counts)} must be at least 1 and patience "
                             f"at least 0; got {self.hparams}")
        if (self.hparams["learning_rate"] <= 0 or self.hparams["cost_bps"] < 0
                or not 0 <= self.hparams["gamma"] <= 1):
            raise ValueError(f"{name}: learning_rate must be positive, cost_bps non-negative "
                             f"and gamma in [0, 1]; got {self.hparams}")
        self.policy: BasePolicy | None = None
        self.intercept = 0.0
        self.slope = 0.0
        self.timesteps: int | None = None

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Train the agent in a :class:`TradingEnv` over ``train``; ``valid`` picks the
        kept weights and may stop training early."""
        self._check_X(train.X, "the training windows", self.capabilities.min_history)
        if valid is not None and len(valid.y) == 0:
            valid = None
        if valid is not None:
            self._check_X(valid.X, "the validation windows")
        y = np.asarray(train.y, dtype=np.float64)
        hp = self.hparams
        env = DummyVecEnv([
            lambda: TradingEnv(train.X, y, train.groups, discrete=self.discrete,
                               cost_bps=hp["cost_bps"], episode_length=hp["episode_length"],
                               reward_scale=1.0 / (float(y.std()) or 1.0))
        ] * hp["n_envs"])
        own = {key: hp[key] for key in self.algorithm_defaults}
        if "buffer_size" in own:  # a replay buffer never holds more than the run's steps
            own["buffer_size"] = min(own["buffer_size"], hp["total_timesteps"])
        with _one_torch_thread():
            agent = self.algorithm("MlpPolicy", env, learning_rate=hp["learning_rate"],
                                   gamma=hp["gamma"], policy_kwargs=self._policy_kwargs(),
                                   seed=self.config.seed, device="cpu", verbose=0, **own)
            agent.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-* folder in /tmp
            keeper = _KeepBest(self, train, valid)
            agent.learn(total_timesteps=hp["total_timesteps"], callback=keeper)
            self.policy = agent.policy.eval()
            if valid is None:
                self.timesteps = hp["total_timesteps"]
            else:
                self.policy.load_state_dict(keeper.best_state)
                self.timesteps = keeper.best_timesteps
            self._calibrate(self.score(train.X), y)
        env.close()
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Forward-return forecasts, ``(n,)`` float64: the calibrated policy score of each
        window (``groups`` and ``times`` are unused: each window is scored on its own)."""
        if self.policy is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted or loaded before predict")
        self._check_X(X, "the windows to predict")
        return self.intercept + self.slope * self.score(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        """The policy's continuous preference for long over short, ``(n,)`` float64
        (see the module docstring), before calibration."""
        if self.policy is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted or loaded before score")
        scores = []
        with _one_torch_thread(), torch.inference_mode():
            for start in range(0, len(X), PREDICT_BATCH_SIZE):
                batch = np.ascontiguousarray(X[start : start + PREDICT_BATCH_SIZE])
                scores.append(_policy_score(self.policy, torch.as_tensor(batch,
                                                                         dtype=torch.float32)))
        if not scores:
            return np.empty(0, dtype=np.float64)
        return np.concatenate(scores).astype(np.float64)

    def training_budget(self) -> dict[str, int]:
        """``{"total_timesteps": steps}``: the timesteps behind the kept weights.

        With ``valid`` these are counted at a check, so they may exceed the requested
        ``total_timesteps`` by less than one rollout (PPO collects ``n_steps * n_envs`` at a
        time); a refit with them trains exactly that many.
        """
        if self.timesteps is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted or loaded before "
                               "training_budget")
        return {"total_timesteps": self.timesteps}

    def save(self, directory: Path) -> None:
        """Write the policy weights (``policy.pt``) and config, calibration and timesteps
        (``model.json``)."""
        if self.policy is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted before save")
        directory = write_model_meta(directory, self.config, self.hparams,
                                     intercept=self.intercept, slope=self.slope,
                                     timesteps=self.timesteps)
        torch.save(self.policy.state_dict(), directory / WEIGHTS_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save` (weights read with
        ``weights_only=True``)."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.intercept = float(meta["intercept"])
        model.slope = float(meta["slope"])
        model.timesteps = int(meta["timesteps"])
        policy_class = cls.algorithm.policy_aliases["MlpPolicy"]
        learning_rate = model.hparams["learning_rate"]
        policy = policy_class(observation_space(config.lookback, len(config.feature_names)),
                              action_space(cls.discrete), lambda _: learning_rate,
                              **model._policy_kwargs())
        state = torch.load(Path(directory) / WEIGHTS_FILE, map_location="cpu",
                           weights_only=True)
        policy.load_state_dict(state)
        model.policy = policy.eval()
        return model

    def _policy_kwargs(self) -> dict[str, Any]:
        """The policy's keyword arguments: the MLP and the subclass's policy settings."""
        net_arch = [self.hparams["hidden_size"]] * self.hparams["num_layers"]
        return {"net_arch": net_arch, **{key: self.hparams[key] for key in self.policy_defaults}}

    def _calibrate(self, score: np.ndarray, y: np.ndarray) -> None:
        """Least-squares ``y ~ intercept + slope * score`` on the training rows."""
        self.intercept, self.slope = least_squares_line(score, y)

    def _check_X(self, X: np.ndarray, what: str, min_rows: int = 0) -> None:
        name = type(self).__name__
        check_windows(X, f"{name}: {what}", min_rows)
        expected = (self.config.lookback, len(self.config.feature_names))
        if X.shape[1:] != expected:
            raise ValueError(
                f"{name} expects X of shape (n, {expected[0]}, {expected[1]}) "
                f"(lookback, features {list(self.config.feature_names)}); got {X.shape}"
            )


def _policy_score(policy: BasePolicy, obs: torch.Tensor) -> np.ndarray:
    """Long-over-short preference of ``policy`` for each observation in ``obs``."""
    if isinstance(policy, DQNPolicy):
        q_values = policy.q_net(obs)
        return (q_values[:, -1] - q_values[:, 0]).cpu().numpy()
    if isinstance(policy, ActorCriticPolicy):
        distribution = policy.get_distribution(obs).distribution
        if isinstance(distribution, torch.distributions.Categorical):
            return (distribution.probs[:, -1] - distribution.probs[:, 0]).cpu().numpy()
        return distribution.mean[:, 0].cpu().numpy()
    raise TypeError(f"no score is defined for a {type(policy).__name__}")


class _KeepBest(BaseCallback):
    """Every ``eval_freq`` timesteps, keep the weights with the lowest validation MSE of
    the calibrated score; stop after ``patience`` checks without improvement.

    Checks run at the start of a rollout, when the weights have been trained on every
    timestep counted so far. Without ``valid`` it does nothing.
    """

    def __init__(self, owner: RLAgentModel, train: SupervisedData,
                 valid: SupervisedData | None) -> None:
        super().__init__(verbose=0)
        self.owner = owner
        self.train = train
        self.valid = valid
        self.eval_freq = owner.hparams["eval_freq"]
        self.patience = owner.hparams["patience"]
        self.next_check = self.eval_freq
        self.best_mse = np.inf
        self.best_state: dict[str, torch.Tensor] = {}
        self.best_timesteps = 0
        self.stale_checks = 0
        self.last_checked = 0

    def _on_rollout_start(self) -> None:
        if self.valid is not None and self.model.num_timesteps >= self.next_check:
            self._check()

    def _on_step(self) -> bool:
        return self.patience == 0 or self.stale_checks < self.patience

    def _on_training_end(self) -> None:
        if self.valid is not None and self.model.num_timesteps > self.last_checked:
            self._check()

    def _check(self) -> None:
        steps = self.model.num_timesteps
        self.last_checked = steps
        self.next_check = (steps // self.eval_freq + 1) * self.eval_freq
        self.owner.policy = self.model.policy
        intercept, slope = least_squares_line(self.owner.score(self.train.X), self.train.y)
        forecast = intercept + slope * self.owner.score(self.valid.X)
        mse = float(np.mean((np.asarray(self.valid.y, dtype=np.float64) - forecast) ** 2))
        if mse < self.best_mse:
            self.best_mse, self.best_timesteps, self.stale_checks = mse, steps, 0
            self.best_state = {key: value.detach().clone()
                               for key, value in self.model.policy.state_dict().items()}
        else:
            self.stale_checks += 1
