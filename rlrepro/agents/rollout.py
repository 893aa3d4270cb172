"""Playing episodes: the one loop that runs a deterministic actor in envs, several episodes side
by side, and the one summary of their returns."""

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


def _play_together(
    envs: list[gym.Env[Any, Any]], act: Actor, seeds: list[int], watch: Watcher | None
) -> list[tuple[float, int]]:
    """Play one episode in each of `envs`, reset with `seeds`, one policy call per step for
    every live episode; :return: each episode's return and length."""
    obs = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds, strict=True)]
    totals, lengths = [0.0] * len(envs), [0] * len(envs)
    live = [i for i, env in enumerate(envs) if watch is None or watch(env)]
    while live:
        actions = act(np.stack([obs[i] for i in live]))
        still = []
        for row, i in enumerate(live):
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[row])
            totals[i] += float(reward)
            lengths[i] += 1
            if not (terminated or truncated or (watch is not None and not watch(envs[i]))):
                still.append(i)
        live = still
    return list(zip(totals, lengths, strict=True))


def rollout(
    envs: list[gym.Env[Any, Any]],
    act: Actor,
    episodes: int,
    seed: int,
    watch: Watcher | None = None,
) -> list[Episode]:
    """Run the deterministic actor `act` (observations in rows, actions in rows) for `episodes`
    episodes, `len(envs)` at a time; episode `i` starts from `reset(seed=seed + i)`.

    :param watch: sees each env after its reset and after each step, and may end its episode.
    :return: one `Episode` per episode, `step` being the episode's index. The returns are the
        same for any number of `envs`.
    """
    results: list[Episode] = []
    for first in range(0, episodes, len(envs)):
        count = min(len(envs), episodes - first)
        seeds = [seed + first + k for k in range(count)]
        played = _play_together(envs[:count], act, seeds, watch)
        results += [Episode(first + k, total, length) for k, (total, length) in enumerate(played)]
    return results


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
