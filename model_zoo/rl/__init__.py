"""Reinforcement-learning agents that trade one position per asset (stable-baselines3).

:mod:`model_zoo.rl.env` is the trading environment over the training windows,
:mod:`model_zoo.rl.agent` the wrapper all three agents share; ``dqn``, ``ppo`` and ``a2c``
name only their algorithm and defaults.
"""
