"""Gymnasium's and SB3's env checkers on one env, as a report without terminal colours."""

import re
import warnings
from typing import Any

import gymnasium as gym
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_env(env_id: str) -> dict[str, Any]:
    """Create `env_id` and run both env checkers on it; :return: the env's spec and checks."""
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    spec = env.spec
    assert spec is not None
    env.close()
    return {
        "env": env_id,
        "observation_space": str(env.observation_space),
        "action_space": str(env.action_space),
        "max_episode_steps": spec.max_episode_steps,
        "reward_threshold": spec.reward_threshold,
        "checks": [
            "gymnasium.utils.env_checker.check_env",
            "stable_baselines3.common.env_checker.check_env",
        ],
        "checker_warnings": sorted({_ANSI.sub("", str(w.message)).splitlines()[0] for w in caught}),
    }
