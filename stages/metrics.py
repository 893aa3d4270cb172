"""Stage `metrics`: each experiment's statistics over its runs (one run per seed).

Reads `experiments`, `seeds`, `stats` and `evaluate.episodes` from params, the evaluation episodes
(`--evals`, a folder of `<exp>-<seed>.csv`, each of `evaluate.episodes` rows) and the progress
curves (`--progress-dir`, `<exp>-<seed>.csv`: the evaluations during training), each checked as
it is read (`rlrepro.results`). A run's score is the mean return of its evaluation episodes
(`rlrepro.results.stats`, rliable's definitions). Writes per experiment, into `--stats`,
`<exp>.json`:
- over runs: the IQM of the run scores and, from `MIN_RUNS` runs, its percentile bootstrap
  interval (runs resampled; the generator seeded from `stats.seed` and the experiment's name);
  the mean of the run scores with its Student t interval; the worst and best run;
- for every other experiment on the same env, the probability of improvement over it (P(this
  run > that run) over runs) and, from `MIN_RUNS` runs each, its bootstrap interval;
- pooled over all runs' episodes, and labelled so: the mean, std, median and IQM of the
  returns, and the success rate (episodes at or above the env's reward threshold);
- when training evaluated periodically: how many runs reached the threshold, out of how many,
  and the mean env steps to first reach it of those that did.
Into `--metrics` (what `dvc metrics show` lists: one row per experiment) goes `<exp>.json` with
the headline: the IQM over runs with its interval when there is one, the mean over runs with
its t interval, the success rate, the runs that reached the threshold and their mean steps.
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
from rlrepro.results import read_progress, read_returns
from rlrepro.results.stats import MIN_RUNS, bootstrap_interval, improvement, iqm, t_interval

# The headline of an experiment in `dvc metrics show`: its key there, its key in the stats, and
# the decimals it is shown with.
HEADLINE = {
    "iqm": ("return_iqm", 1),
    "iqm_lo": ("return_iqm_ci_low", 1),
    "iqm_hi": ("return_iqm_ci_high", 1),
    "mean": ("return_mean", 1),
    "mean_lo": ("return_mean_ci_low", 1),
    "mean_hi": ("return_mean_ci_high", 1),
    "success": ("episodes_success_rate", 3),
    "reached": ("runs_reaching_threshold", 0),
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


def experiment_stats(
    per_seed: list[np.ndarray],
    threshold: float | None,
    hits: list[int | None] | None,
    settings: params.Stats,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The statistics of one experiment (see the module's docstring), rounded to 4 places.

    :param per_seed: the evaluation returns of each run.
    :param hits: each run's env steps to the threshold during training (None: not reached).
    """
    scores = np.array([np.mean(a) for a in per_seed])
    pooled = np.concatenate(per_seed)
    runs = len(scores)
    result: dict[str, Any] = {
        "runs": runs,
        "confidence": settings.confidence,
        "return_iqm": float(iqm(scores)),
        "return_mean": float(np.mean(scores)),
        "run_score_min": float(scores.min()),
        "run_score_max": float(scores.max()),
    }
    if runs >= MIN_RUNS:
        low, high = bootstrap_interval(
            (scores,), iqm, settings.bootstrap_samples, settings.confidence, rng
        )
        result["return_iqm_ci_low"], result["return_iqm_ci_high"] = low, high
    if runs >= 2:
        t_low, t_high = t_interval(scores, settings.confidence)
        result["return_mean_ci_low"], result["return_mean_ci_high"] = float(t_low), float(t_high)
    result |= {
        "episodes": int(pooled.size),
        "episodes_return_mean": float(np.mean(pooled)),
        "episodes_return_std": float(np.std(pooled)),
        "episodes_return_median": float(np.median(pooled)),
        "episodes_return_iqm": float(iqm(pooled)),
    }
    if threshold is not None:
        result["threshold"] = threshold
        result["episodes_success_rate"] = float(np.mean(pooled >= threshold))
    if threshold is not None and hits is not None:
        reached = [h for h in hits if h is not None]
        result["runs_reaching_threshold"] = len(reached)
        if reached:
            result["steps_to_threshold_mean"] = statistics.fmean(reached)
    return _rounded(result)


def improvements(
    mine: np.ndarray,
    rivals: dict[str, np.ndarray],
    settings: params.Stats,
    rng: np.random.Generator,
) -> dict[str, dict[str, float]]:
    """The probability of improvement of run scores `mine` over each of `rivals` (run scores by
    experiment), with its bootstrap interval where both have `MIN_RUNS` runs."""
    result = {}
    for other, theirs in rivals.items():
        entry = {"probability": float(improvement(mine, theirs))}
        if min(len(mine), len(theirs)) >= MIN_RUNS:
            low, high = bootstrap_interval(
                (mine, theirs), improvement, settings.bootstrap_samples, settings.confidence, rng
            )
            entry |= {"ci_low": low, "ci_high": high}
        result[other] = _rounded(entry)
    return result


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def headline(stats: dict[str, Any]) -> dict[str, Any]:
    """The few `HEADLINE` values of an experiment's statistics that it has, rounded."""
    return {
        key: round(stats[source], places) if places else round(stats[source])
        for key, (source, places) in HEADLINE.items()
        if source in stats
    }


def _returns(paths: Paths, name: str, seeds: tuple[int, ...], episodes: int) -> list[np.ndarray]:
    files = [layout.run_file(paths.evals, name, seed, ".csv") for seed in seeds]
    files = layout.require(files, "evaluation")
    return [read_returns(file, episodes) for file in files]


def metrics(raw: dict[str, Any], paths: Paths) -> dict[str, dict[str, Any]]:
    """Write the statistics and the headline of every experiment in params; :return: the
    statistics by experiment."""
    seeds = params.seeds(raw)
    settings = params.section(raw, params.Stats, "stats")
    names = sorted(params.section_names(raw, "experiments"))
    experiments = {name: params.experiment(raw, name) for name in names}
    episodes = params.section(raw, params.Evaluation, "evaluate").episodes
    returns = {name: _returns(paths, name, seeds, episodes) for name in names}
    scores = {name: np.array([np.mean(a) for a in returns[name]]) for name in names}
    result = {}
    for name, exp in experiments.items():
        threshold = gym.spec(exp.env).reward_threshold
        hits = None
        if exp.periodic_eval is not None and threshold is not None:
            files = [layout.run_file(paths.progress_dir, name, s, ".csv") for s in seeds]
            hits = [
                steps_to_threshold(read_progress(file, exp), threshold)
                for file in layout.require(files, "progress")
            ]
        # One generator per experiment, from the seed and its name: adding an experiment
        # leaves the others' intervals as they were.
        rng = np.random.default_rng([settings.seed, zlib.crc32(name.encode())])
        result[name] = experiment_stats(returns[name], threshold, hits, settings, rng)
        rivals = {
            other: scores[other]
            for other in names
            if other != name and experiments[other].env == exp.env
        }
        if rivals:
            result[name]["improvement_over"] = improvements(scores[name], rivals, settings, rng)
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
    sys.exit(console.run(main))
