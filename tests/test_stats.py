"""The statistics of the reports, checked on cases whose answers are known."""

import numpy as np
import pytest

from rlrepro.results.stats import bootstrap_ci, iqm, t_interval


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm(np.arange(8.0)) == 3.5  # mean of 2, 3, 4, 5
    assert iqm(np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0])) == 1.0


def test_bootstrap_of_constant_returns_is_a_point() -> None:
    rng = np.random.default_rng(0)
    low, high = bootstrap_ci([np.full(5, 7.0), np.full(9, 7.0)], iqm, 200, 0.95, rng)
    assert low == high == 7.0


def test_bootstrap_of_one_seed_matches_normal_theory() -> None:
    # One seed of n normal draws: the mean's 95% interval is mean +- 1.96 sigma / sqrt(n).
    data = np.random.default_rng(1).normal(10.0, 2.0, size=2000)
    low, high = bootstrap_ci([data], np.mean, 4000, 0.95, np.random.default_rng(2))
    half = 1.96 * data.std() / np.sqrt(data.size)
    assert low == pytest.approx(data.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(data.mean() + half, abs=0.1 * half)


def test_bootstrap_sees_seed_to_seed_variation() -> None:
    # Two seeds far apart, each with no spread: resampling seeds must widen the interval to them.
    seeds = [np.full(50, 0.0), np.full(50, 100.0)]
    low, high = bootstrap_ci(seeds, np.mean, 2000, 0.95, np.random.default_rng(3))
    assert low == 0.0 and high == 100.0


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    seeds = [np.arange(10.0), np.arange(5.0, 25.0)]
    first = bootstrap_ci(seeds, iqm, 300, 0.9, np.random.default_rng(4))
    assert first == bootstrap_ci(seeds, iqm, 300, 0.9, np.random.default_rng(4))
    assert first != bootstrap_ci(seeds, iqm, 300, 0.9, np.random.default_rng(5))


def test_t_interval_known_value() -> None:
    low, high = t_interval(np.array([[1.0], [2.0], [3.0]]), 0.95)
    # mean 2, sample std 1, t(0.975, 2) = 4.303: 2 +- 4.303 / sqrt(3)
    assert low[0] == pytest.approx(2 - 2.4842, abs=1e-3)
    assert high[0] == pytest.approx(2 + 2.4842, abs=1e-3)
