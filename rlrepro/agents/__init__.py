"""A trained agent as an artifact: its checkpoint, its networks, and its deterministic actor.

This package is what the `evaluate` stage needs and nothing more: `load_actor` rebuilds the
deterministic policy of a checkpoint. Training (`rlrepro.training`) builds on it.
"""

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

from rlrepro.agents import algorithms, checkpoint, networks, normalize
from rlrepro.agents.rollout import Actor


def load_actor(path: Path, env: gym.Env[Any, Any]) -> Actor:
    """The deterministic policy saved in checkpoint `path` (argmax, or the Gaussian mean), on raw
    observations of `env`: SB3 agents trained with `VecNormalize` normalise them as in training.
    Nothing in the checkpoint is unpickled (`algorithms.safe_load`).

    :raises CheckpointError: when `path` is not a checkpoint this code reads.
    """
    meta = checkpoint.read_meta(path)
    entries = checkpoint.read_entries(path)
    if meta["algo"] == "reinforce":
        policy = networks.load_gaussian(entries[networks.GAUSSIAN_ENTRY], meta["network"])
        return networks.mean_actor(policy, env)
    model = algorithms.safe_load(path, meta["algo"], entries["data"], env, meta["network"])
    stats = entries.get(normalize.ENTRY)
    return algorithms.sb3_actor(model, normalize.normalizer(json.loads(stats) if stats else None))
