"""Physics digests: a hash of a fixed rollout, to tell whether this machine simulates alike.

The rollout is fixed by a seed and a step count: actions come from `numpy.random.default_rng(seed)`
(uniform over the action space), episodes restart with `reset(seed=seed + k)`. The digest hashes
the exact bytes of every observation, reward and termination flag, so one ulp of drift shows.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlrepro import params
from rlrepro.files import write_json

REFERENCE_FILE = "references/physics.json"


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
    raise ValueError(f"no fixed action sequence for {space}")


class PhysicsMismatchError(ValueError):
    """This machine's digest (`digest`) differs from the reference; the message says what to do."""

    def __init__(self, message: str, digest: str) -> None:
        super().__init__(message)
        self.digest = digest


def check(env_id: str, steps: int, seed: int, references: Path) -> str:
    """The digest of `env_id`'s fixed rollout, checked against the committed `references`.

    :raises PhysicsMismatchError: when the digest differs from the reference (one line: what to do).
    :raises ValueError: when there is no reference for `env_id`, `steps` and `seed`.
    """
    digest = rollout_digest(env_id, steps, seed)
    known = json.loads(references.read_text()) if references.is_file() else {}
    expected = known.get(env_id, {})
    if expected.get("steps") != steps or expected.get("seed") != seed:
        raise ValueError(
            f"{references}: no physics digest for {env_id} with steps={steps}, seed={seed}; "
            "run `make digests` to record this machine's as the reference, and commit it"
        )
    if expected["sha256"] != digest:
        raise PhysicsMismatchError(
            f"{env_id}: this machine's simulator parts from the reference ({references}) "
            f"on a fixed {steps}-step rollout (sha256 {digest[:16]}, "
            f"expected {expected['sha256'][:16]}), so results cannot match byte for byte; "
            "compare them statistically (`make verify-stats`), or make this machine the "
            "reference deliberately (`make digests`, then commit and rerun)",
            digest,
        )
    return digest


def main(argv: list[str] | None = None) -> int:
    """`--update`: record the digests of every experiment's env in params as the references."""
    parser = argparse.ArgumentParser(description="Record the physics digests of params' envs.")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--references", type=Path, default=Path(REFERENCE_FILE))
    args = parser.parse_args(argv)
    raw = params.read(args.params)
    settings = params.section(raw, params.EnvCheck, "env_check")
    envs = sorted({params.experiment(raw, n).env for n in params.section_names(raw, "experiments")})
    known = json.loads(args.references.read_text()) if args.references.is_file() else {}
    for env_id in envs:
        digest = rollout_digest(env_id, settings.digest_steps, settings.digest_seed)
        known[env_id] = {
            "steps": settings.digest_steps,
            "seed": settings.digest_seed,
            "sha256": digest,
        }
        print(f"{env_id}: {digest}")
    write_json(args.references, known)
    return 0


if __name__ == "__main__":
    sys.exit(main())
