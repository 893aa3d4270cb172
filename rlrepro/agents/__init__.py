"""A trained agent as an artifact: its checkpoint, its networks, and its deterministic actor.

This package is what the `evaluate` stage needs and nothing more: `load_actor` rebuilds the
deterministic policy of a checkpoint. Training (`rlrepro.training`) builds on it.
"""

import io
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from rlrepro.agents import algorithms, checkpoint, networks, normalize
from rlrepro.agents.rollout import Actor


def load_actor(path: Path, env: gym.Env[Any, Any]) -> Actor:
    """The deterministic policy saved in checkpoint `path` (argmax, or the Gaussian mean), on raw
    observations of `env`: SB3 agents trained with `VecNormalize` normalise them as in training.
    Nothing in the checkpoint is unpickled: an SB3 agent's actor is rebuilt from its policy's
    weights (`torch.load(weights_only=True)`; `algorithms.policy_actor`), or, for what that does
    not cover, loaded by `algorithms.safe_load`.

    :raises CheckpointError: when `path` is not a checkpoint this code reads.
    """
    meta = checkpoint.read_meta(path)
    entries = checkpoint.read_entries(path)
    if meta["algo"] == "reinforce":
        policy = networks.load_gaussian(
            checkpoint.entry(entries, networks.GAUSSIAN_ENTRY, path), meta["network"]
        )
        return networks.mean_actor(policy, env)
    stats = entries.get(normalize.ENTRY)
    normalized = normalize.normalizer(json.loads(stats) if stats else None)
    weights = torch.load(
        io.BytesIO(checkpoint.entry(entries, "policy.pth", path)), weights_only=True
    )
    act = algorithms.policy_actor(
        meta["algo"], weights, meta["network"]["activation"], env, normalized
    )
    if act is not None:
        return act
    model = algorithms.safe_load(
        path, meta["algo"], checkpoint.entry(entries, "data", path), env, meta["network"]
    )
    return algorithms.sb3_actor(model, normalized)
