"""The statistics of the reports, checked on cases whose answers are known, and the coverage of
every interval the pipeline reports, measured on simulated run scores."""

import json

import numpy as np
import pytest

from rlrepro.core.params import Stats
from rlrepro.results.stats import (
    MIN_RUNS,
    bootstrap_interval,
    generator,
    improvement,
    iqm,
    kept,
    t_interval,
    welch_p,
    within,
)
from stages.metrics import experiment_stats, improvements, profile
from tools import coverage

SETTINGS = Stats(bootstrap_samples=500, confidence=0.95, seed=0)


def test_iqm_trims_a_quarter_rounded_down_each_side() -> None:
    """`trim_mean(x, 0.25)` drops floor(n / 4) runs each side: the middle half only when 4
    divides n; nothing at 3 runs (the mean), the middle 6 at 10."""
    assert iqm(np.arange(8.0)) == 3.5  # mean of 2, 3, 4, 5
    assert iqm(np.array([0.0, 1.0, 100.0])) == pytest.approx(101.0 / 3)  # 3 runs: the mean
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 100.0])) == 2.0  # 5 runs: the middle 3
    assert iqm(np.array([-100.0, -50.0, *range(6), 50.0, 100.0])) == 2.5  # 10: the middle 6
    assert [kept(n) for n in (3, 4, 5, 8, 10, 20)] == [3, 2, 3, 4, 6, 10]


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


def test_generator_depends_on_the_names_not_their_order() -> None:
    draw = [generator(0, *names).random() for names in (("a", "b"), ("b", "a"), ("a", "c"))]
    assert draw[0] == draw[1] != draw[2]
    assert generator(0, "a").random() != generator(1, "a").random()


def test_t_interval_known_value() -> None:
    low, high = t_interval(np.array([[1.0], [2.0], [3.0]]), 0.95)
    # mean 2, sample std 1, t(0.975, 2) = 4.303: 2 +- 4.303 / sqrt(3)
    assert low[0] == pytest.approx(2 - 2.4842, abs=1e-3)
    assert high[0] == pytest.approx(2 + 2.4842, abs=1e-3)


def test_intervals_are_cut_to_the_possible_returns() -> None:
    assert within((-277.1, 1481.0), (0.0, 1000.0)) == (0.0, 1000.0)
    assert within((-5.0, 3.0), (None, 10.0)) == (-5.0, 3.0)
    runs = [np.array([1000.0]), np.array([400.0]), np.array([406.0])]  # pendulum-reinforce-like
    stats = experiment_stats(runs, None, None, SETTINGS, np.random.default_rng(0), (0.0, 1000.0))
    assert stats["return_mean_ci_low"] == 0.0 and stats["return_mean_ci_high"] == 1000.0
    assert stats["run_scores"] == [1000.0, 400.0, 406.0]


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


def _scores(count: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {f"exp-{i}": rng.normal(i * 0.3, 1.0, MIN_RUNS) for i in range(count)}


def test_mirrored_pairs_are_complements_exactly() -> None:
    pairs = improvements(_scores(3), dict.fromkeys(_scores(3), "E"), SETTINGS)
    for x, rivals in pairs.items():
        for y, entry in rivals.items():
            back = pairs[y][x]
            assert back["probability"] == round(1.0 - entry["probability"], 4)
            assert (back["ci_low"], back["ci_high"]) == (
                round(1.0 - entry["ci_high"], 4),
                round(1.0 - entry["ci_low"], 4),
            )
            assert entry["ci_low"] < entry["ci_high"]


def test_adding_an_experiment_moves_no_other_pair() -> None:
    before_scores, after_scores = _scores(3), _scores(4)  # the same three, and one more
    before = improvements(before_scores, dict.fromkeys(before_scores, "E"), SETTINGS)
    after = improvements(after_scores, dict.fromkeys(after_scores, "E"), SETTINGS)
    for x, rivals in before.items():
        for y, entry in rivals.items():
            assert json.dumps(after[x][y]) == json.dumps(entry), (x, y)
    assert "exp-3" in after["exp-0"] and "exp-3" not in before["exp-0"]


def test_pairs_only_on_one_env_and_intervals_from_min_runs() -> None:
    scores = {"a": np.arange(MIN_RUNS) + 100.0, "b": np.arange(MIN_RUNS, dtype=float)}
    scores |= {"few": np.arange(3.0), "other-env": np.arange(MIN_RUNS, dtype=float)}
    envs = {"a": "E", "b": "E", "few": "E", "other-env": "F"}
    pairs = improvements(scores, envs, SETTINGS)
    assert pairs["a"]["b"] == {"probability": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert pairs["a"]["few"] == {"probability": 1.0}  # 3 runs: no interval
    assert "other-env" not in pairs and "other-env" not in pairs["a"]


def test_performance_profile_counts_runs_above_each_threshold() -> None:
    few = profile("x", np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.5, 3.0]), SETTINGS)
    assert few == {"thresholds": [0.0, 1.0, 2.5, 3.0], "fraction": [1.0, 0.6667, 0.3333, 0.0]}
    runs = np.arange(MIN_RUNS, dtype=float)
    band = profile("x", runs, np.array([-1.0, 4.5, 100.0]), SETTINGS)
    assert band["ci_low"][0] == band["ci_high"][0] == 1.0  # every run is above -1
    assert band["ci_low"][1] < band["fraction"][1] == 0.5 < band["ci_high"][1]


def test_welch_of_identical_constant_runs_is_one() -> None:
    assert welch_p(np.full(3, 1000.0), np.full(3, 1000.0)) == 1.0
    assert welch_p(np.array([1.0, 2.0, 3.0]), np.array([101.0, 102.0, 103.0])) < 0.001


@pytest.mark.parametrize("argv", [["--sims", "0"], ["--runs", "1"], ["--resamples", "5"]])
def test_coverage_options_out_of_range_are_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert coverage.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {argv[0]}:") and err.count("\n") == 1


@pytest.mark.parametrize("runs", [3, MIN_RUNS])
def test_measured_coverage_of_every_reported_interval(runs: int) -> None:
    """Simulated normal run scores: the t interval of the mean holds its level at any run
    count; the bootstrap intervals (IQM, probability of improvement) fall short with 3 runs,
    which is why they are reported only from `MIN_RUNS` runs, where they come close.
    docs/statistics.md has the table at 2,000 simulations (`python -m tools.coverage`)."""
    sims = 400  # the measured share's standard error is about 1.1 points at 95%
    measured = {
        name: coverage.coverage(name, "normal", runs, sims, 500, 0.95, seed=1)
        for name in ("mean, Student's t (reported)", "IQM, percentile bootstrap (reported)")
    }
    measured["improvement"] = coverage.improvement_coverage(runs, sims, 500, 0.95, seed=1)
    assert measured["mean, Student's t (reported)"] >= 0.92, measured
    bootstraps = (measured["IQM, percentile bootstrap (reported)"], measured["improvement"])
    if runs >= MIN_RUNS:
        assert min(bootstraps) >= 0.91, measured
    if runs == 3:
        assert max(bootstraps) < 0.88, measured


@pytest.mark.parametrize(
    ("shape", "holds"),
    [("normal", True), ("ceiling", True), ("skewed", False), ("take-off", False)],
)
def test_t_interval_holds_only_where_the_results_pages_say(shape: str, holds: bool) -> None:
    """At 10 runs the mean's t interval comes within 2 points of 95% on normal runs and runs
    against a ceiling, and falls well short on skewed runs and runs of which a tenth take off
    (docs/statistics.md: 82.9% and 65.2% at 2,000 simulations): what the pages say."""
    measured = coverage.coverage("mean, Student's t (reported)", shape, 10, 400, 100, 0.95, seed=1)
    assert (measured >= 0.91) if holds else (measured < 0.88), measured
