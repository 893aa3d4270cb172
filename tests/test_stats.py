"""The statistics of the reports, checked on cases whose answers are known, and the coverage of
every interval the pipeline reports, measured on simulated truths."""

import numpy as np
import pytest

from rlrepro.core.params import Stats
from rlrepro.results.stats import MIN_RUNS, bootstrap_interval, improvement, iqm, t_interval
from stages.metrics import experiment_stats, improvements
from tools.coverage import coverage

SETTINGS = Stats(bootstrap_samples=500, confidence=0.95, seed=0)


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm(np.arange(8.0)) == 3.5  # mean of 2, 3, 4, 5
    assert iqm(np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0])) == 1.0


def test_improvement_counts_pairs_and_half_ties() -> None:
    assert improvement(np.array([2.0, 3.0]), np.array([1.0, 0.0])) == 1.0
    assert improvement(np.array([0.0]), np.array([1.0])) == 0.0
    assert improvement(np.array([1.0, 3.0]), np.array([1.0, 2.0])) == (0.5 + 0 + 1 + 1) / 4


def test_bootstrap_of_constant_runs_is_a_point() -> None:
    low, high = bootstrap_interval((np.full(10, 7.0),), iqm, 200, 0.95, np.random.default_rng(0))
    assert low == high == 7.0


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    runs = (np.arange(10.0) ** 2,)
    first = bootstrap_interval(runs, iqm, 300, 0.9, np.random.default_rng(4))
    assert first == bootstrap_interval(runs, iqm, 300, 0.9, np.random.default_rng(4))
    assert first != bootstrap_interval(runs, iqm, 300, 0.9, np.random.default_rng(5))


def test_t_interval_known_value() -> None:
    low, high = t_interval(np.array([[1.0], [2.0], [3.0]]), 0.95)
    # mean 2, sample std 1, t(0.975, 2) = 4.303: 2 +- 4.303 / sqrt(3)
    assert low[0] == pytest.approx(2 - 2.4842, abs=1e-3)
    assert high[0] == pytest.approx(2 + 2.4842, abs=1e-3)


def test_iqm_is_over_runs_not_pooled_episodes() -> None:
    """Run scores 0, 0, 0 and one run of 100 episodes: the pooled IQM and the IQM over runs
    differ, and the stats say which is which."""
    runs = [np.zeros(4), np.zeros(4), np.zeros(4), np.full(4, 100.0)]
    stats = experiment_stats(runs, None, None, SETTINGS, np.random.default_rng(0))
    assert stats["return_iqm"] == 0.0  # the middle two of 0, 0, 0, 100
    assert stats["return_mean"] == 25.0
    assert stats["episodes_return_iqm"] == 0.0 and stats["episodes_return_mean"] == 25.0
    assert stats["runs"] == 4 and stats["episodes"] == 16


def test_intervals_are_withheld_below_min_runs_and_one_run_has_none() -> None:
    rng = np.random.default_rng(0)
    few = experiment_stats([np.array([float(i)]) for i in range(3)], None, None, SETTINGS, rng)
    assert "return_iqm_ci_low" not in few and "return_mean_ci_low" in few
    one = experiment_stats([np.array([1.0, 2.0])], None, None, SETTINGS, rng)
    assert "return_iqm_ci_low" not in one and "return_mean_ci_low" not in one
    runs = [np.array([float(i)]) for i in range(MIN_RUNS)]
    enough = experiment_stats(runs, None, None, SETTINGS, rng)
    assert enough["return_iqm_ci_low"] <= enough["return_iqm"] <= enough["return_iqm_ci_high"]


def test_steps_to_threshold_says_how_many_runs_reached_it() -> None:
    runs = [np.array([500.0]), np.array([10.0]), np.array([20.0])]
    stats = experiment_stats(runs, 475.0, [1000, None, None], SETTINGS, np.random.default_rng(0))
    assert stats["runs_reaching_threshold"] == 1 and stats["runs"] == 3
    assert stats["steps_to_threshold_mean"] == 1000


def test_improvement_interval_from_min_runs() -> None:
    rng = np.random.default_rng(0)
    mine, theirs = np.arange(MIN_RUNS) + 100.0, np.arange(MIN_RUNS, dtype=float)
    result = improvements(mine, {"other": theirs, "few": theirs[:3]}, SETTINGS, rng)
    assert result["other"] == {"probability": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert result["few"] == {"probability": 1.0}  # 3 runs: no interval


@pytest.mark.parametrize("runs", [3, 5, MIN_RUNS])
def test_measured_coverage_of_every_reported_interval(runs: int) -> None:
    """Simulated truths (normal run scores): the t interval of the mean holds its level at any
    run count; the bootstrap intervals (IQM, probability of improvement) fall short with few
    runs, which is why they are reported only from `MIN_RUNS` runs, where they come close.
    docs/statistics.md has the table at 4,000 simulations (`python -m tools.coverage`)."""
    sims = 400  # the measured share's standard error is about 1.1 points at 95%
    measured = {name: coverage(name, runs, sims, 500, 0.95, seed=1) for name in ("iqm", "mean")}
    measured["improvement"] = coverage("improvement", runs, sims, 500, 0.95, seed=1)
    assert measured["mean"] >= 0.92, measured
    if runs >= MIN_RUNS:
        assert measured["iqm"] >= 0.91 and measured["improvement"] >= 0.91, measured
    if runs == 3:
        assert measured["iqm"] < 0.85 and measured["improvement"] < 0.9, measured
