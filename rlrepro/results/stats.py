"""Statistics over seeds and evaluation episodes: IQM, bootstrap intervals, t intervals.

Every random draw comes from a `numpy.random.Generator` that the caller seeds from params, so the
intervals are as reproducible as the results they describe.
"""

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as scipy_stats

Statistic = Callable[[np.ndarray], float]


def iqm(values: np.ndarray) -> float:
    """The interquartile mean: the mean of the middle 50% of `values` (25% trimmed each side)."""
    return float(scipy_stats.trim_mean(np.asarray(values, dtype=np.float64), 0.25))


def bootstrap_ci(
    per_seed: Sequence[np.ndarray],
    statistic: Statistic,
    samples: int,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """A percentile bootstrap interval of `statistic` over seeds and episodes.

    Each replicate draws as many seeds as there are, with replacement, then for each drawn seed
    as many of its episodes as it has, with replacement, and applies `statistic` to the pooled
    draw; so the interval reflects both seed-to-seed and episode-to-episode variation.

    :param per_seed: one array of episode returns per seed.
    :return: the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the replicates.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in per_seed]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("bootstrap_ci: every seed needs at least one episode")
    replicates = np.empty(samples, dtype=np.float64)
    for index in range(samples):
        seeds = rng.integers(len(arrays), size=len(arrays))
        draw = [arrays[s][rng.integers(arrays[s].size, size=arrays[s].size)] for s in seeds]
        replicates[index] = statistic(np.concatenate(draw))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def t_interval(
    values: np.ndarray, confidence: float, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Student's t interval of the mean along `axis` (e.g. over seeds); zero width for one value."""
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
