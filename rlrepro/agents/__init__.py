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
from rlrepro.core.errors import CheckpointError


def load_actor(source: Path | checkpoint.Checkpoint, env: gym.Env[Any, Any]) -> Actor:
    """The deterministic policy saved in checkpoint `source` (a path, or one already `load`ed)
    (argmax, or the Gaussian mean), on raw observations of `env`: SB3 agents trained with
    `VecNormalize` normalise them as in training. Nothing in the checkpoint is unpickled, and
    nothing beyond its bounds is read (`checkpoint.load`): an SB3 agent's actor is rebuilt from
    its policy's weights (`checkpoint.weights`; `algorithms.policy_actor`), or, for what that
    does not cover, loaded by `algorithms.safe_load`.

    :raises CheckpointError: when `source` is not a checkpoint this code reads, or its weights
        do not fit its `rlrepro.json` and `env` (`algorithms.mismatch`, `normalize.mismatch`).
    """
    loaded = source if isinstance(source, checkpoint.Checkpoint) else checkpoint.load(source)
    meta, path = loaded.meta, loaded.path
    weights = checkpoint.weights(loaded)
    problem = algorithms.mismatch(meta["algo"], weights, meta["network"], env)
    stats = loaded.entries.get(normalize.ENTRY)
    if problem is None and stats is not None:
        problem = normalize.mismatch(json.loads(stats), env.observation_space.shape)
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}; retrain it with `dvc repro`")
    if meta["algo"] == "reinforce":
        return networks.mean_actor(networks.load_gaussian(weights, meta["network"]), env)
    normalized = normalize.normalizer(json.loads(stats) if stats else None)
    act = algorithms.policy_actor(
        meta["algo"], weights, meta["network"]["activation"], env, normalized
    )
    if act is not None:
        return act
    return algorithms.sb3_actor(algorithms.safe_load(loaded, weights, env), normalized)
