"""Stage `evaluate`: the deterministic policy of one trained agent over seeded episodes.

Reads `numerics` and `evaluate` from params and the checkpoint (`--model`, which names its algorithm
and env); runs `evaluate.episodes` episodes, episode `i` reset with seed `evaluate.seed + i`, with
the argmax or Gaussian-mean action; writes the per-episode results (`--episodes-out`, CSV) and their
summary (`--metrics-out`, JSON).
"""

import statistics
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym

from rlrepro import agents, checkpoint, cli, numerics, params
from rlrepro.episodes import Episode, rollout
from rlrepro.files import write_csv, write_json

EPISODES_HEADER = ("episode", "episode_return", "episode_length")


def summary(episodes: list[Episode]) -> dict[str, Any]:
    """Mean, population std, min and max of the returns, mean length, and the count."""
    returns = [ep.episode_return for ep in episodes]
    return {
        "episodes": len(episodes),
        "return_mean": statistics.fmean(returns),
        "return_std": statistics.pstdev(returns),
        "return_min": min(returns),
        "return_max": max(returns),
        "length_mean": statistics.fmean(ep.length for ep in episodes),
    }


def evaluate(model: Path, settings: params.Evaluation) -> list[Episode]:
    """Roll out checkpoint `model`'s deterministic policy as `settings` say."""
    env = gym.make(checkpoint.read_meta(model)["env"])
    try:
        return rollout(env, agents.load_actor(model, env), settings.episodes, settings.seed)
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    """Evaluate `--model`; write `--episodes-out` and `--metrics-out`."""
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint to evaluate")
    parser.add_argument("--episodes-out", type=Path, required=True, help="per-episode CSV")
    parser.add_argument("--metrics-out", type=Path, required=True, help="summary JSON")
    args = parser.parse_args(argv)

    def work() -> None:
        raw = params.read(args.params)
        settings = params.section(raw, params.Evaluation, "evaluate")
        pins = params.section(raw, params.Numerics, "numerics")
        if not args.model.is_file():
            raise cli.StageError(f"{args.model}: no such checkpoint; run `dvc repro` to train it")
        numerics.configure_torch(pins.torch_threads)
        numerics.seed_everything(settings.seed)
        episodes = evaluate(args.model, settings)
        write_csv(args.episodes_out, EPISODES_HEADER, episodes)
        write_json(args.metrics_out, summary(episodes))

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
