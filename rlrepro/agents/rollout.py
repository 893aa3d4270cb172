"""Playing episodes: the one loop that runs a deterministic actor in an env, and the one
summary of their returns."""

import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

Actor = Callable[[np.ndarray], Any]
# Called after the reset and after every step; returning False ends the episode there.
Watcher = Callable[[gym.Env[Any, Any]], bool]


class Episode(NamedTuple):
    """One finished episode.

    :param step: the global env step at which it ended (for evaluation: its index).
    :param episode_return: the undiscounted sum of its rewards.
    :param length: its number of steps.
    """

    step: int
    episode_return: float
    length: int


CURVE_HEADER = ("step", "episode_return", "episode_length")


def play(
    env: gym.Env[Any, Any], act: Actor, seed: int, index: int = 0, watch: Watcher | None = None
) -> Episode:
    """Run `act` for one episode from `env.reset(seed=seed)`; `watch` sees the env after the
    reset and after each step, and may end the episode early.

    :return: the episode, its `step` being `index`.
    """
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, watch is not None and not watch(env)
    while not done:
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total += float(reward)
        length += 1
        done = terminated or truncated or (watch is not None and not watch(env))
    return Episode(index, total, length)


def rollout(env: gym.Env[Any, Any], act: Actor, episodes: int, seed: int) -> list[Episode]:
    """Run `act` for `episodes` episodes; episode `i` starts from `env.reset(seed=seed + i)`."""
    return [play(env, act, seed + index, index) for index in range(episodes)]


def summary(episodes: list[Episode]) -> dict[str, Any]:
    """The count, mean, population std, min and max of the returns, and the mean length."""
    returns = [ep.episode_return for ep in episodes]
    return {
        "episodes": len(episodes),
        "return_mean": statistics.fmean(returns),
        "return_std": statistics.pstdev(returns),
        "return_min": min(returns),
        "return_max": max(returns),
        "length_mean": statistics.fmean(ep.length for ep in episodes),
    }
