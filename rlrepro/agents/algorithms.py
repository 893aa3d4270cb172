"""Stable-Baselines3's algorithms by name: their classes, the action spaces they take, loading
one from a checkpoint without unpickling anything, and their deterministic actor."""

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
from stable_baselines3.common.base_class import BaseAlgorithm

from rlrepro.agents.networks import activation
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


def _constant(_: float) -> float:
    return 0.0


# How SB3 writes a class beside its pickle: "<class 'torch.optim.rmsprop.RMSprop'>".
_TORCH_CLASS = re.compile(r"<class '(torch(?:\.\w+)+)\.(\w+)'>")


def _readable(value: Any) -> Any:
    """A value SB3 wrote beside the pickle, rebuilt without it: plain JSON as it is, a torch
    class from its name (only from `torch`'s own modules), anything else None."""
    if isinstance(value, bool | int | float | list | dict):
        return value
    found = _TORCH_CLASS.fullmatch(value) if isinstance(value, str) else None
    return getattr(importlib.import_module(found[1]), found[2]) if found else None


def _policy_kwargs(saved: dict[str, Any], network: dict[str, Any]) -> dict[str, Any]:
    """The policy's keyword arguments from what SB3 wrote beside the pickle (numbers, lists,
    torch classes by name: `n_critics`, `use_sde`, `optimizer_class`, ...), with the network
    from `network` (`{hidden, activation}`)."""
    readable = {key: _readable(value) for key, value in saved.items() if not key.startswith(":")}
    plain = {key: value for key, value in readable.items() if value is not None}
    return plain | {
        "net_arch": list(network["hidden"]),
        "activation_fn": activation(network["activation"]),
    }


def safe_load(
    path: Path, algo: str, data: bytes, env: gym.Env[Any, Any], network: dict[str, Any]
) -> BaseAlgorithm:
    """SB3 agent `algo` from checkpoint `path`, for acting only, without unpickling anything.

    SB3's `load` unpickles (cloudpickle) every `:serialized:` field of the checkpoint's `data`
    entry: code that runs on load. Here each one is replaced (SB3's `custom_objects`) by what
    this project knows without it: the spaces of `env`, the policy class and `network`
    (`{hidden, activation}`, from the checkpoint's own `rlrepro.json`), and inert values for the
    rest (schedules, buffers, noise: training state that acting never reads). The weights are
    read with `torch.load(weights_only=True)`, as SB3 does.

    :param data: the checkpoint's `data` entry (JSON).
    """
    cls = sb3_class(algo)
    fields = json.loads(data)
    replaced: dict[str, Any] = {
        key: None
        for key, value in fields.items()
        if isinstance(value, dict) and ":serialized:" in value
    }
    replaced |= {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "policy_class": cls.policy_aliases["MlpPolicy"],
        "policy_kwargs": _policy_kwargs(fields.get("policy_kwargs", {}), network),
        "learning_rate": 0.0,
        "lr_schedule": _constant,
    }
    for key in ("clip_range", "clip_range_vf", "exploration_schedule"):
        if key in replaced:
            replaced[key] = _constant
    if "train_freq" in replaced:  # off-policy algorithms check it when they set up
        replaced["train_freq"] = 1
    return cls.load(path, device="cpu", custom_objects=replaced)


def sb3_actor(model: BaseAlgorithm, normalize: Callable[[np.ndarray], np.ndarray]) -> Actor:
    """`model`'s deterministic policy on raw observations, `normalize`d first."""

    def act(obs: np.ndarray) -> Any:
        action, _ = model.predict(normalize(obs), deterministic=True)
        return action

    return act
