"""Stage `evaluate`: the deterministic policy of one trained agent over seeded episodes.

Reads `numerics` and `evaluate` from params and the checkpoint (`--model`, which names its
algorithm and env); runs `evaluate.episodes` episodes, episode `i` reset with seed
`evaluate.seed + i`, with the argmax or Gaussian-mean action, all episodes side by side (one
policy call per step for every live episode); writes the per-episode results (`--episodes`, CSV)
and their summary (`--summary`, JSON).
"""

import dataclasses
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym

from rlrepro import console, numerics
from rlrepro.agents import checkpoint, load_actor
from rlrepro.agents.rollout import Episode, rollout, summary
from rlrepro.core import params
from rlrepro.core.errors import StageError
from rlrepro.core.files import write_csv, write_json

EPISODES_HEADER = ("episode", "episode_return", "episode_length")


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `evaluate` reads and writes."""

    model: Path
    episodes: Path
    summary: Path


def evaluate(raw: dict[str, Any], paths: Paths) -> list[Episode]:
    """Roll out checkpoint `paths.model`'s deterministic policy as params `evaluate` say; write
    the episodes and their summary; :return: the episodes."""
    settings = params.section(raw, params.Evaluation, "evaluate")
    pins = params.section(raw, params.Numerics, "numerics")
    if not paths.model.is_file():
        raise StageError(f"{paths.model}: no such checkpoint; run `dvc repro` to train it")
    numerics.configure_torch(pins.torch_threads)
    numerics.seed_everything(settings.seed)
    loaded = checkpoint.load(paths.model)
    envs = [gym.make(loaded.meta["env"]) for _ in range(settings.episodes)]
    try:
        act = load_actor(loaded, envs[0])
        episodes = rollout(envs, act, settings.episodes, settings.seed)
    finally:
        for env in envs:
            env.close()
    write_csv(paths.episodes, EPISODES_HEADER, episodes)
    write_json(paths.summary, summary(episodes))
    return episodes


def main(argv: list[str] | None = None) -> int:
    """Evaluate `--model`; write `--episodes` and `--summary`."""
    params_file, _, paths = console.parse(__doc__, Paths, argv)
    return console.run(lambda: evaluate(params.read(params_file), paths))


if __name__ == "__main__":
    sys.exit(console.run(main))
