"""The coverage of every interval the pipeline reports, measured on simulated truths.

Each simulation draws run scores from a known distribution (normal, sd 1), computes the interval
as `stages/metrics.py` does (`rlrepro.results.stats`) and checks whether it holds the truth:
- `iqm`: the percentile bootstrap of the IQM over runs; truth 0, the IQM of N(0, 1);
- `mean`: Student's t interval of the mean over runs; truth 0;
- `improvement`: the percentile bootstrap of the probability of improvement of runs from
  N(0.5, 1) over runs from N(0, 1); truth Phi(0.5 / sqrt(2)).

    python -m tools.coverage --sims 2000 --runs 3 5 10 15

prints, per interval and run count, the nominal and the measured coverage.
"""

import argparse
import math
import sys
from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

from rlrepro import console
from rlrepro.results.stats import bootstrap_interval, improvement, iqm, t_interval

Interval = Callable[[np.random.Generator, int, int, float], bool]


def _iqm(rng: np.random.Generator, runs: int, resamples: int, confidence: float) -> bool:
    low, high = bootstrap_interval((rng.normal(0.0, 1.0, runs),), iqm, resamples, confidence, rng)
    return low <= 0.0 <= high


def _mean(rng: np.random.Generator, runs: int, resamples: int, confidence: float) -> bool:
    del resamples  # not a bootstrap
    low, high = t_interval(rng.normal(0.0, 1.0, runs), confidence)
    return bool(low <= 0.0 <= high)


_SHIFT = 0.5


def _improvement(rng: np.random.Generator, runs: int, resamples: int, confidence: float) -> bool:
    better, worse = rng.normal(_SHIFT, 1.0, runs), rng.normal(0.0, 1.0, runs)
    low, high = bootstrap_interval((better, worse), improvement, resamples, confidence, rng)
    truth = float(scipy_stats.norm.cdf(_SHIFT / math.sqrt(2.0)))
    return low <= truth <= high


INTERVALS: dict[str, Interval] = {"iqm": _iqm, "mean": _mean, "improvement": _improvement}


def coverage(
    interval: str, runs: int, sims: int, resamples: int, confidence: float, seed: int
) -> float:
    """The share of `sims` simulations whose `interval` (a key of `INTERVALS`) over `runs`
    runs holds the truth."""
    rng = np.random.default_rng([seed, runs, list(INTERVALS).index(interval)])
    hits = sum(INTERVALS[interval](rng, runs, resamples, confidence) for _ in range(sims))
    return hits / sims


def main(argv: list[str] | None = None) -> int:
    """Print the coverage table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulations per cell")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--runs", type=int, nargs="+", default=[3, 5, 10, 15])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"| interval | nominal | {' | '.join(f'{n} runs' for n in args.runs)} |")
    print(f"|---|---|{'---|' * len(args.runs)}")
    for name in INTERVALS:
        cells = [
            f"{coverage(name, n, args.sims, args.resamples, args.confidence, args.seed):.1%}"
            for n in args.runs
        ]
        print(f"| {name} | {args.confidence:.0%} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(console.run(main))
