"""Stage `metrics`: each experiment's statistics over its seeds and evaluation episodes.

Reads `experiments`, `seeds` and `stats` from params, the evaluation episodes (`--evals`, a folder
of `<exp>-<seed>.csv`) and the progress curves (`--progress`, `<exp>-<seed>.csv`: the evaluations
during training). Writes `--metrics` (JSON, for `dvc metrics`), one flat mapping per experiment:
the mean, std, median and interquartile mean (IQM) of the evaluation returns of all seeds'
episodes, bootstrap intervals of the mean and the IQM (seeds, then episodes, resampled; the
generator seeded from `stats.seed`), the worst and best seed's mean, the success rate (episodes
at or above the env's reward threshold) and, when training evaluated periodically, how many seeds
reached the threshold and their mean env steps to first reach it.
"""

import statistics
import sys
import zlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from rlrepro import cli, params, stats
from rlrepro.files import write_json
from rlrepro.stats import bootstrap_ci, iqm


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values))


def steps_to_threshold(progress: pd.DataFrame, threshold: float) -> int | None:
    """The env step of the first periodic evaluation at or above `threshold`, if any."""
    reached = progress[progress["eval_return_mean"] >= threshold]
    return None if reached.empty else int(reached["step"].iloc[0])


def experiment_metrics(
    per_seed: list[np.ndarray],
    threshold: float | None,
    hits: list[int | None] | None,
    settings: stats.Settings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The flat metrics of one experiment (see the module's docstring), rounded to 4 places."""
    pooled = np.concatenate(per_seed)
    seed_means = [float(np.mean(a)) for a in per_seed]
    confidence = round(settings.confidence * 100)
    metrics: dict[str, Any] = {
        "seeds": len(per_seed),
        "episodes": int(pooled.size),
        "return_mean": float(np.mean(pooled)),
        "return_std": float(np.std(pooled)),
        "return_median": float(np.median(pooled)),
        "return_iqm": iqm(pooled),
        "seed_mean_min": min(seed_means),
        "seed_mean_max": max(seed_means),
    }
    for name, statistic in (("mean", _mean), ("iqm", iqm)):
        low, high = bootstrap_ci(
            per_seed, statistic, settings.bootstrap_samples, settings.confidence, rng
        )
        metrics[f"return_{name}_ci{confidence}_low"] = low
        metrics[f"return_{name}_ci{confidence}_high"] = high
    if threshold is not None:
        metrics["threshold"] = threshold
        metrics["success_rate"] = float(np.mean(pooled >= threshold))
    if threshold is not None and hits is not None:
        reached = [h for h in hits if h is not None]
        metrics["seeds_reaching_threshold"] = len(reached)
        if reached:
            metrics["steps_to_threshold_mean"] = statistics.fmean(reached)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def main(argv: list[str] | None = None) -> int:
    """Write the metrics of every experiment in params."""
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--evals", type=Path, required=True, help="folder of evaluation CSVs")
    parser.add_argument("--progress", type=Path, required=True, help="folder of progress CSVs")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    def work() -> None:
        raw = params.read(args.params)
        seeds = params.seeds(raw)
        settings = params.section(raw, stats.Settings, "stats")
        metrics = {}
        for name in sorted(params.section_names(raw, "experiments")):
            exp = params.experiment(raw, name)
            runs = [f"{name}-{seed}" for seed in seeds]
            missing = [run for run in runs if not (args.evals / f"{run}.csv").is_file()]
            if missing:
                raise cli.StageError(
                    f"{args.evals}: no evaluation for {', '.join(missing)}; run `dvc repro`"
                )
            per_seed = [
                pd.read_csv(args.evals / f"{run}.csv")["episode_return"].to_numpy() for run in runs
            ]
            threshold = gym.spec(exp.env).reward_threshold
            hits = None
            if exp.periodic_eval is not None and threshold is not None:
                hits = [
                    steps_to_threshold(pd.read_csv(args.progress / f"{run}.csv"), threshold)
                    for run in runs
                ]
            # One generator per experiment, from the seed and its name: adding an experiment
            # leaves the others' intervals as they were.
            rng = np.random.default_rng([settings.seed, zlib.crc32(name.encode())])
            metrics[name] = experiment_metrics(per_seed, threshold, hits, settings, rng)
        write_json(args.metrics, metrics)

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
