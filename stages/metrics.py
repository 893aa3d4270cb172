"""Stage `metrics`: each experiment's statistics over its seeds and evaluation episodes.

Reads `experiments`, `seeds` and `stats` from params, the evaluation episodes (`--evals`, a folder
of `<exp>-<seed>.csv`) and the progress curves (`--progress-dir`, `<exp>-<seed>.csv`: the
evaluations during training). Writes per experiment, into `--stats`, `<exp>.json`: the mean, std,
median and interquartile mean (IQM) of the evaluation returns of all seeds' episodes, bootstrap
intervals of the mean and the IQM (seeds, then episodes, resampled; the generator seeded from
`stats.seed` and the experiment's name), the worst and best seed's mean, the success rate
(episodes at or above the env's reward threshold) and, when training evaluated periodically, how
many seeds reached the threshold and their mean env steps to first reach it. Into `--metrics`
(what `dvc metrics show` lists: one row per experiment) goes `<exp>.json` with the headline: the
IQM and its interval (`iqm_lo`, `iqm_hi`), the mean, the success rate and the mean env steps to
the threshold (`steps_to_thr`).
"""

import dataclasses
import statistics
import sys
import zlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from rlrepro import console
from rlrepro.core import layout, params
from rlrepro.core.files import remove_others, write_json
from rlrepro.results.stats import bootstrap_ci, iqm

# The headline of an experiment in `dvc metrics show`: its key there, its key in the stats, and
# the decimals it is shown with (so that a row of every pipeline fits in 120 columns).
HEADLINE = {
    "iqm": ("return_iqm", 1),
    "iqm_lo": ("return_iqm_ci_low", 1),
    "iqm_hi": ("return_iqm_ci_high", 1),
    "mean": ("return_mean", 1),
    "success": ("success_rate", 3),
    "steps_to_thr": ("steps_to_threshold_mean", 0),
}


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `metrics` reads and writes."""

    evals: Path
    progress_dir: Path
    stats: Path
    metrics: Path


def steps_to_threshold(progress: pd.DataFrame, threshold: float) -> int | None:
    """The env step of the first periodic evaluation at or above `threshold`, if any."""
    reached = progress[progress["eval_return_mean"] >= threshold]
    return None if reached.empty else int(reached["step"].iloc[0])


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values))


def experiment_stats(
    per_seed: list[np.ndarray],
    threshold: float | None,
    hits: list[int | None] | None,
    settings: params.Stats,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The statistics of one experiment (see the module's docstring), rounded to 4 places."""
    pooled = np.concatenate(per_seed)
    seed_means = [float(np.mean(a)) for a in per_seed]
    result: dict[str, Any] = {
        "seeds": len(per_seed),
        "episodes": int(pooled.size),
        "confidence": settings.confidence,
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
        result[f"return_{name}_ci_low"], result[f"return_{name}_ci_high"] = low, high
    if threshold is not None:
        result["threshold"] = threshold
        result["success_rate"] = float(np.mean(pooled >= threshold))
    if threshold is not None and hits is not None:
        reached = [h for h in hits if h is not None]
        result["seeds_reaching_threshold"] = len(reached)
        if reached:
            result["steps_to_threshold_mean"] = statistics.fmean(reached)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def headline(stats: dict[str, Any]) -> dict[str, Any]:
    """The few `HEADLINE` values of an experiment's statistics that it has, rounded."""
    return {
        key: round(stats[source], places) if places else round(stats[source])
        for key, (source, places) in HEADLINE.items()
        if source in stats
    }


def _returns(paths: Paths, name: str, seeds: tuple[int, ...]) -> list[np.ndarray]:
    files = [layout.run_file(paths.evals, name, seed, ".csv") for seed in seeds]
    files = layout.require(files, "evaluation")
    return [pd.read_csv(file)["episode_return"].to_numpy() for file in files]


def metrics(raw: dict[str, Any], paths: Paths) -> dict[str, dict[str, Any]]:
    """Write the statistics and the headline of every experiment in params; :return: the
    statistics by experiment."""
    seeds = params.seeds(raw)
    settings = params.section(raw, params.Stats, "stats")
    result = {}
    for name in sorted(params.section_names(raw, "experiments")):
        exp = params.experiment(raw, name)
        threshold = gym.spec(exp.env).reward_threshold
        hits = None
        if exp.periodic_eval is not None and threshold is not None:
            hits = [
                steps_to_threshold(
                    pd.read_csv(layout.run_file(paths.progress_dir, name, s, ".csv")), threshold
                )
                for s in seeds
            ]
        # One generator per experiment, from the seed and its name: adding an experiment
        # leaves the others' intervals as they were.
        rng = np.random.default_rng([settings.seed, zlib.crc32(name.encode())])
        returns = _returns(paths, name, seeds)
        result[name] = experiment_stats(returns, threshold, hits, settings, rng)
        write_json(layout.experiment_file(paths.stats, name, ".json"), result[name])
        write_json(layout.experiment_file(paths.metrics, name, ".json"), headline(result[name]))
    for folder in (paths.stats, paths.metrics):
        remove_others(folder, set(result))
    return result


def main(argv: list[str] | None = None) -> int:
    """Write the statistics of every experiment in params."""
    params_file, _, paths = console.parse(__doc__, Paths, argv)
    return console.run(lambda: metrics(params.read(params_file), paths))


if __name__ == "__main__":
    sys.exit(main())
