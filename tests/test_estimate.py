"""tools.estimate: the runner's schedule replayed on N CPUs, and the critical path."""

from tools.estimate import critical_path, wall_time
from tools.pipeline import Step


def _step(name: str, *upstream: str, threads: int = 1) -> Step:
    return Step(name, "true", ".", False, upstream, (), (), threads, False)


# check -> three trainings -> their evaluations -> one summary
STEPS = [
    _step("check"),
    _step("train-a", "check"),
    _step("train-b", "check"),
    _step("train-c", "check"),
    _step("eval-a", "train-a"),
    _step("eval-b", "train-b"),
    _step("eval-c", "train-c"),
    _step("summary", "eval-a", "eval-b", "eval-c"),
]
SECONDS = {
    "check": 2.0,
    "train-a": 10.0,
    "train-b": 60.0,
    "train-c": 30.0,
    "eval-a": 5.0,
    "eval-b": 5.0,
    "eval-c": 5.0,
    "summary": 1.0,
}


def test_one_cpu_is_the_sum_and_many_are_the_critical_path() -> None:
    assert wall_time(STEPS, SECONDS, 1) == sum(SECONDS.values())
    assert wall_time(STEPS, SECONDS, 64) == 2 + 60 + 5 + 1
    assert critical_path(STEPS, SECONDS) == ["check", "train-b", "eval-b", "summary"]


def test_two_cpus_start_the_longest_first() -> None:
    # 0-2 check; CPU 1: train-b 2-62, eval-b 62-67; CPU 2: train-c 2-32, then train-a (longer
    # than eval-c) 32-42, eval-c 42-47, eval-a 47-52; summary 67-68.
    assert wall_time(STEPS, SECONDS, 2) == 68.0


def test_a_stage_wider_than_the_machine_waits_for_all_its_cpus() -> None:
    steps = [_step("a"), _step("wide", threads=2), _step("b")]
    seconds = {"a": 10.0, "wide": 5.0, "b": 10.0}
    # Longest first: a and b on the two CPUs (0-10), then wide on both (10-15).
    assert wall_time(steps, seconds, 2) == 15.0
