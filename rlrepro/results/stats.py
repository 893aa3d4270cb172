"""Statistics over runs (one run: one seed), as rliable defines them (Agarwal et al., 2021,
"Deep Reinforcement Learning at the Edge of the Statistical Precipice"): each run's score is the
mean return of its evaluation episodes; the IQM is over run scores; intervals come from a
bootstrap that resamples runs; the probability of improvement of X over Y is P(X > Y) over runs.

rliable itself cannot run here: its last release (1.2.0) needs `arch` < 8, whose 7.2 fails to
import with the locked pandas 3.1, and passes arch a `random_state` that arch 8 refuses. The
same definitions are computed with NumPy and SciPy (`trim_mean`), the bootstrap vectorized over
its replicates, each generator seeded from params and the names of what it compares
(`generator`), so the intervals are as reproducible as the results they describe and adding an
experiment moves no other interval.

`tools/coverage.py` measures the coverage of every interval reported here on simulated run
scores of the shapes our runs have (normal, against a ceiling, skewed, a few runs that take
off): docs/statistics.md. With few runs a percentile bootstrap covers less than its level (a
draw of one seed three times is likely with 3 seeds): `MIN_RUNS` is the run count from which
the bootstrap intervals are reported. The mean's interval is Student's t, cut to the env's
possible returns where it has bounds (`rlrepro.results.bounds`).
"""

import hashlib
import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

Statistic = Callable[..., np.ndarray]
# Runs from which a bootstrap interval over runs is reported (its measured coverage is within
# a few points of nominal from there: docs/statistics.md).
MIN_RUNS = 10
# Replicates drawn at once: (chunk, runs, runs) values for the probability of improvement.
_CHUNK = 5000


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The interquartile mean along `axis`, as rliable computes it (`aggregate_iqm`:
    `scipy.stats.trim_mean(x, 0.25)`): the mean after dropping the floor(n / 4) lowest and the
    floor(n / 4) highest of n values. At 3 runs nothing is dropped (the mean); at 5 the middle
    3 are kept, at 10 the middle 6, at 20 the middle 10: the middle half only when 4 divides n.
    """
    return np.asarray(scipy_stats.trim_mean(values, 0.25, axis=axis))


def kept(runs: int) -> int:
    """How many of `runs` values the IQM keeps (`iqm`)."""
    return runs - 2 * (runs // 4)


def improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """rliable's probability of improvement of runs `x` over runs `y` (along the last axis):
    P(X > Y) + P(X = Y) / 2 over every pair of runs (the Mann-Whitney U over the pairs).
    improvement(y, x) = 1 - improvement(x, y)."""
    del axis  # the runs are the last axis
    diff = np.asarray(x)[..., :, None] - np.asarray(y)[..., None, :]
    return np.asarray(((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1)))


def generator(seed: int, *names: str) -> np.random.Generator:
    """The bootstrap's generator for what `names` name (an experiment; a pair of them, in any
    order): from `seed` and the SHA-256 of the sorted names, so it depends on nothing else."""
    digest = hashlib.sha256("\n".join(sorted(names)).encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def replicates(
    samples: tuple[np.ndarray, ...],
    statistic: Statistic,
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """`resamples` bootstrap replicates of `statistic` over runs: each of `samples` (the run
    scores of one experiment) is resampled with replacement on its own (rliable's stratified
    bootstrap over runs, one task); `statistic` takes one array per sample, runs on the last
    axis. Drawn `_CHUNK` replicates at a time, so memory stays small at 50,000."""
    data = [np.asarray(s, dtype=np.float64) for s in samples]
    out = []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        drawn = [d[rng.integers(0, d.size, size=(size, d.size))] for d in data]
        out.append(np.asarray(statistic(*drawn), dtype=np.float64))
    return np.concatenate(out)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of `values`."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_interval(
    samples: tuple[np.ndarray, ...],
    statistic: Statistic,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """The percentile bootstrap interval of `statistic` over runs (`replicates`)."""
    return percentile_interval(replicates(samples, statistic, resamples, rng), confidence)


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


def within(
    interval: tuple[float, float], bounds: tuple[float | None, float | None]
) -> tuple[float, float]:
    """`interval` cut to `bounds` (the possible values; None: unbounded on that side). The truth
    lies within them, so the cut interval covers whenever the whole one did."""
    low, high = interval
    if bounds[0] is not None:
        low, high = max(low, bounds[0]), max(high, bounds[0])
    if bounds[1] is not None:
        low, high = min(low, bounds[1]), min(high, bounds[1])
    return low, high


def welch_p(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The two-sided p value of Welch's t test of equal means of run scores `x` and `y` (runs on
    the last axis; leading axes: independent tests); 1 where both sides are one constant.
    Chosen for `make verify-stats` by simulation (docs/statistics.md): at 3 and 10 runs a side
    it rejected at most its level in every simulated shape of run scores, and it is the only
    test tried that can reject at all with 3 runs (a permutation or rank test cannot go below
    p = 0.1 there)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant sides: handled below
        p = scipy_stats.ttest_ind(x, y, axis=-1, equal_var=False).pvalue
    return np.asarray(np.where(np.isnan(p), 1.0, p))
