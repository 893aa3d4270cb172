"""Statistics over runs (one run: one seed), as rliable defines them (Agarwal et al., 2021,
"Deep Reinforcement Learning at the Edge of the Statistical Precipice"): each run's score is the
mean return of its evaluation episodes; the IQM is over run scores; intervals come from a
bootstrap that resamples runs; the probability of improvement of X over Y is P(X > Y) over runs.

rliable itself cannot run here: its last release (1.2.0) needs `arch` < 8, whose 7.2 fails to
import with the locked pandas 3.1, and passes arch a `random_state` that arch 8 refuses. The
same definitions are computed with SciPy (`scipy.stats.bootstrap`, `trim_mean`), seeded from
params, so the intervals are as reproducible as the results they describe.

With few runs a percentile bootstrap covers less than its nominal level (a draw of one seed
three times is likely with 3 seeds). `tools/coverage.py` measures the coverage of every interval
reported here on simulated truths; `MIN_RUNS` is the run count from which the bootstrap
intervals are reported. Below it the pipeline says the seeds are too few, and reports the
Student t interval of the mean over runs, which holds its level with 3 runs.
"""

from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

Statistic = Callable[..., np.ndarray]
# Runs from which a bootstrap interval over runs is reported (its measured coverage is within
# a few points of nominal from there: docs/statistics.md).
MIN_RUNS = 10


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The interquartile mean along `axis`: the mean of the middle 50% (25% trimmed each side;
    rliable's `aggregate_iqm`)."""
    return np.asarray(scipy_stats.trim_mean(values, 0.25, axis=axis))


def improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """rliable's probability of improvement of runs `x` over runs `y` (along the last axis):
    P(X > Y) + P(X = Y) / 2 over every pair of runs (the Mann-Whitney U over the pairs)."""
    del axis  # the runs are the last axis, as `scipy.stats.bootstrap` gives them
    diff = np.asarray(x)[..., :, None] - np.asarray(y)[..., None, :]
    return np.asarray(((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1)))


def bootstrap_interval(
    samples: tuple[np.ndarray, ...],
    statistic: Statistic,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """The percentile bootstrap interval of `statistic` over runs: each of `samples` (the run
    scores of one experiment) is resampled with replacement on its own (rliable's stratified
    bootstrap over runs, one task).

    :return: the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the replicates.
    """
    result = scipy_stats.bootstrap(
        samples,
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=rng,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def t_interval(
    values: np.ndarray, confidence: float, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Student's t interval of the mean along `axis` (e.g. over runs); zero width for one value."""
    data = np.asarray(values, dtype=np.float64)
    count = data.shape[axis]
    mean = data.mean(axis=axis)
    if count < 2:
        return mean, mean
    half = (
        scipy_stats.t.ppf((1.0 + confidence) / 2.0, count - 1)
        * data.std(axis=axis, ddof=1)
        / np.sqrt(count)
    )
    return mean - half, mean + half
