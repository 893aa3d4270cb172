"""Stage `metrics`: each experiment's statistics over its runs (one run per seed).

Reads `experiments`, `seeds`, `stats` and `evaluate.episodes` from params, the evaluation episodes
(`--evals`, a folder of `<exp>-<seed>.csv`, each of `evaluate.episodes` rows) and the progress
curves (`--progress-dir`, `<exp>-<seed>.csv`: the evaluations during training), each checked as
it is read (`rlrepro.results`). A run's score is the mean return of its evaluation episodes
(`rlrepro.results.stats`, rliable's definitions). Writes per experiment, into `--stats`,
`<exp>.json`:
- every run's score, by seed (`seeds`, `run_scores`);
- over runs: the IQM of the run scores and, from `MIN_RUNS` runs, its percentile bootstrap
  interval (runs resampled; the generator seeded from `stats.seed` and the experiment's name);
  the mean of the run scores with its Student t interval, cut to the env's possible returns
  (`rlrepro.results.bounds`); the worst and best run;
- for every other experiment on the same env, the probability of improvement over it (P(this
  run > that run) over runs) and, from `MIN_RUNS` runs each, its bootstrap interval: one
  bootstrap per pair, seeded from `stats.seed` and the pair's names, whose interval for the
  mirrored pair is [1 - high, 1 - low];
- the performance profile: the share of runs scoring above each threshold (`PROFILE_POINTS`
  spanning the env's returns, and every run score on the env), and from `MIN_RUNS` runs its
  bootstrap band;
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
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from rlrepro import console
from rlrepro.core import layout, params
from rlrepro.core.files import remove_others, write_json
from rlrepro.results import read_progress, read_returns
from rlrepro.results.bounds import return_bounds
from rlrepro.results.stats import (
    MIN_RUNS,
    bootstrap_interval,
    generator,
    improvement,
    iqm,
    replicates,
    t_interval,
    within,
)

Bounds = tuple[float | None, float | None]
# Thresholds of a performance profile, evenly spaced over the env's returns.
PROFILE_POINTS = 101

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
    bounds: Bounds = (None, None),
) -> dict[str, Any]:
    """The statistics of one experiment (see the module's docstring), rounded to 4 places.

    :param per_seed: the evaluation returns of each run.
    :param hits: each run's env steps to the threshold during training (None: not reached).
    :param bounds: the env's lowest and highest possible return (None: none on that side).
    """
    scores = np.array([np.mean(a) for a in per_seed])
    pooled = np.concatenate(per_seed)
    runs = len(scores)
    result: dict[str, Any] = {
        "runs": runs,
        "confidence": settings.confidence,
        "run_scores": [round(float(s), 4) for s in scores],
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
        interval = within((float(t_low), float(t_high)), bounds)
        result["return_mean_ci_low"], result["return_mean_ci_high"] = interval
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


def pair_improvement(
    x: tuple[str, np.ndarray], y: tuple[str, np.ndarray], settings: params.Stats
) -> tuple[dict[str, float], dict[str, float]]:
    """The probability of improvement of runs `x` over runs `y` (each a name and its run
    scores) and of `y` over `x`, with the bootstrap interval where both have `MIN_RUNS` runs.
    One bootstrap, of the pair in sorted order of the names, from a generator seeded from
    `stats.seed` and the two names only; the other direction is its complement:
    P(Y > X) = 1 - P(X > Y), interval [1 - high, 1 - low], exactly (after rounding).

    :return: the entry of x over y, and the entry of y over x.
    """
    (first, mine), (second, theirs) = sorted((x, y), key=lambda pair: pair[0])
    entry = {"probability": float(improvement(mine, theirs))}
    if min(len(mine), len(theirs)) >= MIN_RUNS:
        rng = generator(settings.seed, first, second)
        low, high = bootstrap_interval(
            (mine, theirs), improvement, settings.bootstrap_samples, settings.confidence, rng
        )
        entry |= {"ci_low": low, "ci_high": high}
    forward = _rounded(entry)
    mirrored = {"probability": round(1.0 - forward["probability"], 4)}
    if "ci_low" in forward:
        mirrored |= {
            "ci_low": round(1.0 - forward["ci_high"], 4),
            "ci_high": round(1.0 - forward["ci_low"], 4),
        }
    return (forward, mirrored) if first == x[0] else (mirrored, forward)


def improvements(
    scores: dict[str, np.ndarray], envs: dict[str, str], settings: params.Stats
) -> dict[str, dict[str, dict[str, float]]]:
    """For every experiment of `scores` (run scores by name), its probability of improvement
    over each other experiment on the same env (`envs`: env by name), each unordered pair
    bootstrapped once (`pair_improvement`); experiments alone on their env have no entry."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    names = sorted(scores)
    for index, x in enumerate(names):
        for y in names[index + 1 :]:
            if envs[x] == envs[y]:
                over, under = pair_improvement((x, scores[x]), (y, scores[y]), settings)
                result.setdefault(x, {})[y] = over
                result.setdefault(y, {})[x] = under
    return result


def profile_thresholds(runs: list[np.ndarray], bounds: Bounds) -> np.ndarray:
    """The thresholds of the performance profiles of one env: `PROFILE_POINTS` evenly spaced
    from the env's lowest to its highest possible return (where it has no bound, the lowest or
    highest run score of `runs`, the run scores of each experiment on the env), and every run
    score, so that each profile steps down exactly at its runs."""
    every = np.concatenate(runs)
    low = float(every.min()) if bounds[0] is None else bounds[0]
    high = float(every.max()) if bounds[1] is None else bounds[1]
    return np.unique(np.concatenate([np.linspace(low, max(high, low), PROFILE_POINTS), every]))


def profile(
    name: str, scores: np.ndarray, thresholds: np.ndarray, settings: params.Stats
) -> dict[str, list[float]]:
    """rliable's performance profile of run scores `scores`: at each of `thresholds`, the
    share of runs scoring above it; from `MIN_RUNS` runs with its percentile bootstrap band
    (runs resampled, the generator seeded from `stats.seed`, the name and "profile")."""

    def above(runs: np.ndarray) -> np.ndarray:
        return np.asarray((runs[..., :, None] > thresholds).mean(axis=-2))

    result = {"thresholds": thresholds, "fraction": above(scores)}
    if len(scores) >= MIN_RUNS:
        rng = generator(settings.seed, name, "profile")
        drawn = replicates((scores,), above, settings.bootstrap_samples, rng)
        tail = (1.0 - settings.confidence) / 2.0
        result["ci_low"], result["ci_high"] = np.quantile(drawn, [tail, 1.0 - tail], axis=0)
    return {key: [round(float(v), 4) for v in values] for key, values in result.items()}


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
    envs = {name: exp.env for name, exp in experiments.items()}
    episodes = params.section(raw, params.Evaluation, "evaluate").episodes
    returns = {name: _returns(paths, name, seeds, episodes) for name in names}
    scores = {name: np.array([np.mean(a) for a in returns[name]]) for name in names}
    pairs = improvements(scores, envs, settings)
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
        bounds = return_bounds(exp.env)
        rng = generator(settings.seed, name)
        stats = experiment_stats(returns[name], threshold, hits, settings, rng, bounds)
        stats["seeds"] = list(seeds)
        if name in pairs:
            stats["improvement_over"] = pairs[name]
        rivals = [scores[other] for other in names if envs[other] == exp.env]
        stats["profile"] = profile(name, scores[name], profile_thresholds(rivals, bounds), settings)
        result[name] = stats
        write_json(layout.experiment_file(paths.stats, name, ".json"), stats)
        write_json(layout.experiment_file(paths.metrics, name, ".json"), headline(stats))
    for folder in (paths.stats, paths.metrics):
        remove_others(folder, set(result))
    return result


def main(argv: list[str] | None = None) -> int:
    """Write the statistics of every experiment in params."""
    params_file, _, paths = console.parse(__doc__, Paths, argv)
    return console.run(lambda: metrics(params.read(params_file), paths))


if __name__ == "__main__":
    sys.exit(console.run(main))
