"""Advantage actor-critic with a continuous position in [-1, 1].

A3C's asynchronous variant has no maintained implementation; A2C is its synchronous form
(the same advantage actor-critic update, with the parallel environments stepped in lock
step instead of by asynchronous workers). Its forecast is the calibrated mean of the
Gaussian policy; environment, training, early stopping and persistence come from
:mod:`model_zoo.rl.agent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from stable_baselines3 import A2C

from model_zoo.base import Capabilities
from model_zoo.registry import ARCHITECTURES
from model_zoo.rl.agent import RLAgentModel


class A2CModel(RLAgentModel):
    """A2C (stable-baselines3, RMSprop) on :class:`~model_zoo.rl.env.TradingEnv`.

    Own hyperparameters (stable-baselines3's names and meanings): ``n_steps`` (per
    environment and update), ``gae_lambda``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``
    and the policy's ``log_std_init``; the shared ones are in
    :data:`model_zoo.rl.agent.SHARED_DEFAULTS`.

    Action space: a ``Box`` position, as for PPO; three discrete positions learned no
    better (out-of-sample R^2 0.020-0.023 against 0.024-0.032, three seeds at 10,000 steps).
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["a2c"].capabilities
    algorithm = A2C
    discrete = False
    algorithm_defaults: ClassVar[Mapping[str, Any]] = {
        "n_steps": 16,
        "gae_lambda": 0.9,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
    }
    policy_defaults: ClassVar[Mapping[str, Any]] = {"log_std_init": 0.0}
