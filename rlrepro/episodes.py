"""Finished episodes: their record, and the seeded rollout of a deterministic policy."""

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

Actor = Callable[[np.ndarray], Any]
CURVE_HEADER = ("step", "episode_return", "episode_length")


class Episode(NamedTuple):
    """One finished episode.

    :param step: the global env step at which it ended (for evaluation: its index).
    :param episode_return: the undiscounted sum of its rewards.
    :param length: its number of steps.
    """

    step: int
    episode_return: float
    length: int


def rollout(env: gym.Env[Any, Any], act: Actor, episodes: int, seed: int) -> list[Episode]:
    """Run `act` for `episodes` episodes; episode `i` starts from `env.reset(seed=seed + i)`.

    :return: one `Episode` per episode, `step` being the episode's index.
    """
    results = []
    for index in range(episodes):
        obs, _ = env.reset(seed=seed + index)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            length += 1
            done = terminated or truncated
        results.append(Episode(index, total, length))
    return results
