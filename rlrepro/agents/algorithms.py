"""Stable-Baselines3's algorithms by name: their classes, the action spaces they take, and
their deterministic actor."""

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
from stable_baselines3.common.base_class import BaseAlgorithm

from rlrepro.agents.rollout import Actor
from rlrepro.core.params import SB3_ALGORITHMS

# The action spaces an algorithm takes, where it does not take both Box and Discrete.
ACTION_SPACES: dict[str, type[gym.Space[Any]]] = {
    "dqn": gym.spaces.Discrete,
    "sac": gym.spaces.Box,
    "td3": gym.spaces.Box,
    "ddpg": gym.spaces.Box,
    "reinforce": gym.spaces.Box,
}


def sb3_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of algorithm name `algo` (one of `SB3_ALGORITHMS`), e.g. `PPO` for `ppo`."""
    if algo not in SB3_ALGORITHMS:
        raise KeyError(f"{algo!r} is not an SB3 algorithm; known: {', '.join(SB3_ALGORITHMS)}")
    cls: type[BaseAlgorithm] = getattr(stable_baselines3, algo.upper())
    return cls


def sb3_actor(model: BaseAlgorithm, normalize: Callable[[np.ndarray], np.ndarray]) -> Actor:
    """`model`'s deterministic policy on raw observations, `normalize`d first."""

    def act(obs: np.ndarray) -> Any:
        action, _ = model.predict(normalize(obs), deterministic=True)
        return action

    return act
