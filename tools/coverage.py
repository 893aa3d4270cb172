"""How far the pipeline's intervals and tests can be trusted, measured on simulated run scores.

Run scores (one per seed) are drawn from shapes our runs have (`SHAPES`): normal; against a
ceiling (InvertedPendulum's 1,000, a third of runs on it); skewed (log-normal); and a tenth of
runs that take off (the double pendulum's REINFORCE: most runs near 300, one in ten near 9,000).

    python -m tools.coverage [--sims N] [--runs N ...] [--resamples N]

prints the coverage of each interval (`INTERVALS`) per shape and run count: the share of
simulations whose interval holds the truth (the shape's mean, or its IQM: the mean of its
middle half). The probability of improvement is simulated on normal runs shifted by half a
standard deviation (truth Phi(0.5 / sqrt(2))).

    python -m tools.coverage --tests [--sims N] [--runs 3 10] [--alpha A]

prints the false-alarm rate of each test of `make verify-stats` (`TESTS`: both sides' runs from
one shape) and its power against a shift of one standard deviation of the shape's runs.

    python -m tools.coverage --replicates [--seeds K] [--runs 10]

prints how far each interval's bounds move between K bootstrap seeds, as a share of its width,
at 2,000, 10,000 and 50,000 replicates, and the seconds one interval takes.
"""

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
from scipy import stats as scipy_stats

from rlrepro import console
from rlrepro.core.errors import UserError
from rlrepro.results.stats import (
    generator,
    improvement,
    iqm,
    percentile_interval,
    replicates,
    t_interval,
    welch_p,
)

Sampler = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class Shape:
    """A distribution of run scores: how to draw them and their possible range."""

    draw: Sampler
    bounds: tuple[float | None, float | None] = (None, None)


def _ceiling(rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    return np.clip(rng.normal(900.0, 200.0, size), 0.0, 1000.0)


def _take_off(rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    off = rng.random(size) < 0.1
    return np.where(off, rng.normal(9000.0, 300.0, size), rng.normal(300.0, 50.0, size))


SHAPES: dict[str, Shape] = {
    "normal": Shape(lambda rng, size: rng.normal(0.0, 1.0, size)),
    "ceiling": Shape(_ceiling, (0.0, 1000.0)),
    "skewed": Shape(lambda rng, size: rng.lognormal(0.0, 1.0, size), (0.0, None)),
    "take-off": Shape(_take_off, (None, 10000.0)),
}


@functools.cache
def truths(shape: str) -> dict[str, float]:
    """The mean, IQM (mean of the middle half) and standard deviation of a shape, from four
    million draws of a fixed generator (their error is far below any interval's width)."""
    draws = SHAPES[shape].draw(np.random.default_rng(12345), (4_000_000,))
    return {"mean": float(draws.mean()), "iqm": float(iqm(draws)), "sd": float(draws.std())}


# ---- intervals: each maps (run scores (sims, runs), rng, resamples, confidence) to bounds


def _t(data: np.ndarray, rng: np.random.Generator, b: int, c: float) -> np.ndarray:
    del rng, b  # not a bootstrap
    return np.stack(t_interval(data, c, axis=1), axis=1)


def _percentile(statistic: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def interval(data: np.ndarray, rng: np.random.Generator, b: int, c: float) -> np.ndarray:
        return np.array(
            [percentile_interval(replicates((row,), statistic, b, rng), c) for row in data]
        )

    return interval


def _mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(values, axis=axis))


def _bca_mean(data: np.ndarray, rng: np.random.Generator, b: int, c: float) -> np.ndarray:
    """The BCa bootstrap interval of the mean (Efron's bias and acceleration corrections)."""
    out = []
    tail = (1.0 - c) / 2.0
    for row in data:
        drawn = replicates((row,), _mean, b, rng)
        share = np.clip(np.mean(drawn < row.mean()), 1.0 / b, 1.0 - 1.0 / b)
        z0 = scipy_stats.norm.ppf(share)
        jack = (row.sum() - row) / (row.size - 1)
        spread = jack.mean() - jack
        scale = 6.0 * np.sum(spread**2) ** 1.5
        accel = np.sum(spread**3) / scale if scale > 0 else 0.0
        z = scipy_stats.norm.ppf([tail, 1.0 - tail])
        levels = scipy_stats.norm.cdf(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))
        out.append(np.quantile(drawn, np.nan_to_num(levels, nan=0.5)))
    return np.array(out)


INTERVALS: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "mean, Student's t (reported)": ("mean", _t),
    "mean, percentile bootstrap": ("mean", _percentile(_mean)),
    "mean, BCa bootstrap": ("mean", _bca_mean),
    "IQM, percentile bootstrap (reported)": ("iqm", _percentile(iqm)),
}


def coverage(
    interval: str, shape: str, runs: int, sims: int, resamples: int, confidence: float, seed: int
) -> float:
    """The share of `sims` simulations of `runs` runs of `shape` whose `interval` (a key of
    `INTERVALS`) holds the shape's truth."""
    truth_key, method = INTERVALS[interval]
    rng = generator(seed, interval, shape, str(runs))
    data = SHAPES[shape].draw(rng, (sims, runs))
    bounds = method(data, rng, resamples, confidence)
    truth = truths(shape)[truth_key]
    return float(np.mean((bounds[:, 0] <= truth) & (truth <= bounds[:, 1])))


_SHIFT = 0.5


def improvement_coverage(
    runs: int, sims: int, resamples: int, confidence: float, seed: int
) -> float:
    """The coverage of the percentile bootstrap of the probability of improvement of normal
    runs shifted by `_SHIFT` standard deviations over unshifted ones."""
    rng = generator(seed, "improvement", str(runs))
    truth = float(scipy_stats.norm.cdf(_SHIFT / math.sqrt(2.0)))
    hits = 0
    for _ in range(sims):
        better, worse = rng.normal(_SHIFT, 1.0, runs), rng.normal(0.0, 1.0, runs)
        drawn = replicates((better, worse), improvement, resamples, rng)
        low, high = percentile_interval(drawn, confidence)
        hits += low <= truth <= high
    return hits / sims


# ---- tests of `make verify-stats`: each maps run scores (sims, runs) x2 to p values


def _splits(total: int, first: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Which of `total` values go to the first group, one row per split: every split of
    `first` of them when there are at most `limit`, else `limit` random ones."""
    if comb(total, first) <= limit:
        rows = np.zeros((comb(total, first), total), dtype=bool)
        for row, chosen in enumerate(combinations(range(total), first)):
            rows[row, list(chosen)] = True
        return rows
    order = np.argsort(rng.random((limit, total)), axis=1)
    rows = np.zeros((limit, total), dtype=bool)
    np.put_along_axis(rows, order[:, :first], True, axis=1)
    return rows


def permutation_p(x: np.ndarray, y: np.ndarray, limit: int) -> np.ndarray:
    """The two-sided permutation test of equal means of run scores `x` and `y` (runs on the
    last axis; leading axes: independent tests): the share of the splits of all their runs
    into groups of their sizes whose difference of means is at least as far from 0 as the
    observed one. Exact (every split) up to `limit` splits, else `limit` random splits from a
    fixed generator. Under the null hypothesis (both sides' runs from one process) it rejects
    at most `alpha` of the time, whatever the scores' shape; with 3 runs a side the smallest p
    it can give is 2 / 20 = 0.1."""
    first = np.asarray(x, dtype=np.float64)
    every = np.concatenate([first, np.asarray(y, dtype=np.float64)], axis=-1)
    size, total = first.shape[-1], every.shape[-1]
    rows = _splits(total, size, limit, np.random.default_rng(0)).astype(np.float64)
    sums = every @ rows.T
    diffs = sums / size - (every.sum(axis=-1)[..., None] - sums) / (total - size)
    observed = np.abs(first.mean(axis=-1) - every[..., size:].mean(axis=-1))[..., None]
    # splits equal to the observed one in exact arithmetic count, whatever the rounding
    slack = 1e-9 * np.maximum(1.0, np.abs(every).max(axis=-1))[..., None]
    return np.asarray(np.mean(np.abs(diffs) >= observed - slack, axis=-1))


def _mann_whitney(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(scipy_stats.mannwhitneyu(x, y, axis=1).pvalue)


def _permutation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # random splits past 20,000, so that the simulation takes minutes
    return np.concatenate(
        [permutation_p(x[i : i + 50], y[i : i + 50], 20_000) for i in range(0, len(x), 50)]
    )


TESTS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Welch's t on run scores (make verify-stats)": welch_p,
    "permutation of run means": _permutation,
    "Mann-Whitney U on run scores": _mann_whitney,
}


def rejections(test: str, shape: str, runs: int, sims: int, alpha: float, shift: float) -> float:
    """The share of `sims` simulations in which `test` finds two sides of `runs` runs of
    `shape` different at level `alpha`, the second side shifted by `shift` of the shape's
    standard deviations (0: the same process, the false-alarm rate; else the power)."""
    rng = generator(0, test, shape, str(runs), str(shift))
    draw = SHAPES[shape].draw
    first, second = draw(rng, (sims, runs)), draw(rng, (sims, runs))
    second = second + shift * truths(shape)["sd"]
    return float(np.mean(TESTS[test](first, second) < alpha))


# The network study's run scores (docs/studies.md, 2 decimals): 10 runs each, half of
# 32-16-32 tanh's taking off; the case whose IQM bound ranged 6,336 to 7,103 at 2,000 replicates.
DEEPER = np.array(
    [5541.92, 477.96, 292.27, 8579.81, 9173.84, 380.23, 475.25, 9359.36, 407.33, 371.22]
)
SHALLOWER = np.array(
    [373.83, 8371.35, 365.06, 512.74, 343.15, 338.40, 436.19, 344.57, 337.26, 411.92]
)


def movement(runs: int, seeds: int, counts: list[int], confidence: float) -> list[str]:
    """Table rows: per interval and replicate count, how far its bounds range over `seeds`
    bootstrap seeds, as a share of its mean width, and the seconds one interval takes; on
    the network study's runs and on `runs` normal runs."""
    data = np.random.default_rng(7)
    cases: dict[str, tuple[tuple[np.ndarray, ...], Callable[..., np.ndarray]]] = {
        "IQM, network-32-16-32-tanh's runs": ((DEEPER,), iqm),
        "IQM, normal runs": ((data.normal(0.0, 1.0, runs),), iqm),
        "improvement, 32-16-32 over 16-32 tanh": ((DEEPER, SHALLOWER), improvement),
        "improvement, normal runs": (
            (data.normal(_SHIFT, 1.0, runs), data.normal(0.0, 1.0, runs)),
            improvement,
        ),
    }
    rows = []
    for name, (samples, statistic) in cases.items():
        for count in counts:
            start = time.perf_counter()
            bounds = np.array(
                [
                    percentile_interval(
                        replicates(samples, statistic, count, generator(s, name)), confidence
                    )
                    for s in range(seeds)
                ]
            )
            seconds = (time.perf_counter() - start) / seeds
            width = float(np.mean(bounds[:, 1] - bounds[:, 0]))
            ranges = np.ptp(bounds, axis=0) / width if width > 0 else np.zeros(2)
            spread = np.std(bounds, axis=0) / width if width > 0 else np.zeros(2)
            rows.append(
                f"| {name} | {count:,} | {ranges[0]:.1%} | {ranges[1]:.1%} "
                f"| {spread[0]:.1%} | {spread[1]:.1%} | {seconds:.3f} |"
            )
    return rows


def _check(args: argparse.Namespace) -> None:
    if args.sims < 1:
        raise UserError(f"--sims: expected a number >= 1, got {args.sims}")
    if min(args.runs) < 2:
        raise UserError(f"--runs: expected run counts >= 2 (an interval needs 2), got {args.runs}")
    if args.resamples < 100:
        raise UserError(f"--resamples: expected a number >= 100, got {args.resamples}")
    if not 0.0 < args.confidence < 1.0 or not 0.0 < args.alpha < 1.0:
        raise UserError("--confidence and --alpha: expected numbers in (0, 1)")
    if args.seeds < 2:
        raise UserError(f"--seeds: expected a number >= 2, got {args.seeds}")


def _print(row: str) -> None:
    print(row, flush=True)


def tables(args: argparse.Namespace) -> int:
    """Print the table that the options ask for."""
    _check(args)
    runs = " | ".join(f"{n} runs" for n in args.runs)
    if args.replicates:
        _print("| interval | replicates | low's range | high's range | low's sd | high's sd | s |")
        _print("|---|---|---|---|---|---|---|")
        for n in args.runs:
            for row in movement(n, args.seeds, [2000, 10000, 50000], args.confidence):
                _print(row)
        return 0
    if args.tests:
        _print(f"| test | shape | shift | {runs} |")
        _print(f"|---|---|---|{'---|' * len(args.runs)}")
        for test in TESTS:
            for shape in SHAPES:
                for shift in (0.0, 1.0, 2.0):
                    cells = [
                        f"{rejections(test, shape, n, args.sims, args.alpha, shift):.1%}"
                        for n in args.runs
                    ]
                    _print(f"| {test} | {shape} | {shift:g} sd | {' | '.join(cells)} |")
        return 0
    settings = (args.sims, args.resamples, args.confidence, args.seed)
    _print(f"| interval | shape | {runs} |")
    _print(f"|---|---|{'---|' * len(args.runs)}")
    for interval in INTERVALS:
        for shape in SHAPES:
            cells = [f"{coverage(interval, shape, n, *settings):.1%}" for n in args.runs]
            _print(f"| {interval} | {shape} | {' | '.join(cells)} |")
    cells = [
        f"{improvement_coverage(n, args.sims, args.resamples, args.confidence, args.seed):.1%}"
        for n in args.runs
    ]
    name = "probability of improvement, percentile bootstrap"
    _print(f"| {name} | normal, shifted | {' | '.join(cells)} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the coverage, test or replicate table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--tests", action="store_true", help="false alarms and power of the tests")
    what.add_argument("--replicates", action="store_true", help="bounds' movement by replicates")
    parser.add_argument("--sims", type=int, default=2000, help="simulations per cell")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--alpha", type=float, default=0.05, help="the tests' level")
    parser.add_argument("--runs", type=int, nargs="+", default=[3, 5, 10, 20])
    parser.add_argument("--seeds", type=int, default=100, help="bootstrap seeds (--replicates)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return console.run(lambda: tables(args))


if __name__ == "__main__":
    sys.exit(console.run(main))
