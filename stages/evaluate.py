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
from rlrepro.core import layout, params
from rlrepro.core.errors import StageError
from rlrepro.core.files import write_csv, write_json

EPISODES_HEADER = ("episode", "episode_return", "episode_length")


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `evaluate` reads and writes."""

    model: Path
    episodes: Path
    summary: Path


def outputs(exp: str, seed: int) -> Paths:
    """The pipeline's files of run (`exp`, `seed`) (`rlrepro.core.layout`; dvc.yaml's
    checkpoint dep and outs).

    :raises ParamsError: for a name `layout.check_name` refuses.
    """
    return Paths(
        layout.run_file(layout.MODELS, exp, seed, ".zip"),
        layout.run_file(layout.EVALS, exp, seed, ".csv"),
        layout.run_file(layout.EVALS, exp, seed, ".json"),
    )


def from_address(address: str, params_file: Path) -> tuple[dict[str, Any], Paths]:
    """The files of the run of the evaluate stage at DVC address `address` (`--stage`),
    checked against params `params_file`.

    :raises StageError: for the address of no evaluate stage; :raises ParamsError: for a name
        refused or a seed not in params' seeds.
    """
    exp, seed = layout.stage_run(address, "evaluate", params.seeds(params.read(params_file)))
    return {}, outputs(exp, seed)


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
    """Evaluate `--model`; write `--episodes` and `--summary` (or the files of the run of DVC's
    stage `--stage`)."""

    def work() -> list[Episode]:
        params_file, _, paths = console.parse(__doc__, Paths, argv, from_address)
        return evaluate(params.read(params_file), paths)

    return console.run(work)


if __name__ == "__main__":
    sys.exit(console.run(main))
