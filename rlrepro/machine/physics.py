"""Physics digests: a hash of a fixed rollout, to tell whether this machine simulates alike.

The rollout is fixed by a seed and a step count: actions come from `numpy.random.default_rng(seed)`
(uniform over the action space), episodes restart with `reset(seed=seed + k)`. The digest hashes
the exact bytes of every observation, reward and termination flag, so one ulp of drift shows.
`make digests` (`python -m tools.digests`) records this machine's as the references.
"""

import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlrepro.core.errors import StageError
from rlrepro.core.readers import read_json
from rlrepro.machine import ALLOW_PHYSICS_VAR


def rollout_digest(env_id: str, steps: int, seed: int) -> str:
    """The sha256 (hex) of `steps` steps of `env_id` under the fixed action sequence."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    episode = 0
    obs, _ = env.reset(seed=seed)
    digest.update(np.asarray(obs).tobytes())
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(_action(env.action_space, rng))
        digest.update(np.asarray(obs).tobytes())
        digest.update(np.float64(reward).tobytes())
        digest.update(bytes([terminated, truncated]))
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            digest.update(np.asarray(obs).tobytes())
    env.close()
    return digest.hexdigest()


def _action(space: gym.Space[Any], rng: np.random.Generator) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    if isinstance(space, gym.spaces.Box):
        return rng.uniform(space.low, space.high).astype(space.dtype)
    raise StageError(f"no fixed action sequence for {space}: the digest takes Box or Discrete")


# The committed references: per env id, the rollout's steps and seed and its digest.
REFERENCES_SHAPE = {"*": {"steps": int, "seed": int, "sha256": str}}


def read_references(path: Path) -> dict[str, dict[str, Any]]:
    """The physics references in `path` (`REFERENCES_SHAPE`), checked as they are read.

    :raises StageError: when the file is too large, not UTF-8, not JSON or of another shape.
    """
    remedy = f"restore it with git (`git checkout -- {path.name}` in its folder), or `make digests`"
    known: dict[str, dict[str, Any]] = read_json(
        path, "physics references", REFERENCES_SHAPE, remedy=remedy
    )
    return known


def check(env_id: str, steps: int, seed: int, references: Path) -> str:
    """The digest of `env_id`'s fixed rollout, checked against the committed `references`.

    :raises StageError: when `references` is missing or damaged, has no reference for
        `env_id`, `steps` and `seed`, or the
        digest differs from it (unless `ALLOW_PHYSICS_VAR` is 1: then a warning on stderr).
    """
    if not references.is_file():
        raise StageError(
            f"{references}: no such file; it is the repository's physics references: restore it "
            f"(`git checkout -- {references.name}` in its folder), or record this machine's with "
            "`make digests`"
        )
    known = read_references(references)
    digest = rollout_digest(env_id, steps, seed)
    expected = known.get(env_id, {})
    if expected.get("steps") != steps or expected.get("seed") != seed:
        raise StageError(
            f"{references}: no physics digest for {env_id} with steps={steps}, seed={seed}; "
            "run `make digests` to record this machine's as the reference, and commit it"
        )
    if expected["sha256"] != digest:
        message = (
            f"{env_id}: this machine's simulator ({platform.machine()}, MuJoCo "
            f"{metadata.version('mujoco')}) parts from the reference ({references}) "
            f"on a fixed {steps}-step rollout (sha256 {digest[:16]}, "
            f"expected {expected['sha256'][:16]}), so results cannot match byte for byte"
        )
        if os.environ.get(ALLOW_PHYSICS_VAR) == "1":
            print(f"warning: physics mismatch allowed: {message}", file=sys.stderr)
        else:
            raise StageError(
                f"{message}; compare them statistically (`make verify-stats`), or make this "
                "machine the reference deliberately (`make digests`, then commit and rerun); "
                f"or set {ALLOW_PHYSICS_VAR}=1 to go on"
            )
    return digest
