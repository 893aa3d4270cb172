"""The wall time a pipeline would take on N CPUs, predicted from the seconds its stages took.

    python -m tools.estimate [TARGET ...] [--cpus 2 8 64]

Targets as `tools.run` takes them (default: the root dvc.yaml). Each stage's seconds are those
of the last `make repro` that ran it (`.dvc/tmp/rlrepro-seconds.json`, written by the runner).
For each CPU count it replays the runner's schedule: a stage starts when its upstream is done and
it has its threads free, the longest ready stage first. It prints the predicted wall time, the
sum of the stage seconds, and the critical path: the longest chain of stages, which bounds the
wall time however many CPUs there are. Ray's start (a few seconds) is not counted.
"""

import argparse
import heapq
import sys

from rlrepro import console
from rlrepro.core.errors import UserError
from tools.pipeline import Pipeline, Step, ready
from tools.run import Durations


def wall_time(steps: list[Step], seconds: dict[str, float], cpus: int) -> float:
    """The runner's schedule of `steps` (plan order) on `cpus` CPUs, each stage taking
    `seconds[name]`; :return: when the last one ends."""
    names = {step.name for step in steps}
    pending, done = list(steps), set[str]()
    running: list[tuple[float, str, int]] = []  # (end, name, threads), a heap
    now, free = 0.0, cpus
    while pending or running:
        for step in ready(pending, done, names, lambda s: seconds[s.name]):
            if step.threads <= free:
                pending.remove(step)
                free -= step.threads
                heapq.heappush(running, (now + seconds[step.name], step.name, step.threads))
        if not running:
            raise UserError(f"a stage needs more than {cpus} CPUs (numerics.torch_threads)")
        now, name, threads = heapq.heappop(running)
        done.add(name)
        free += threads
    return now


def critical_path(steps: list[Step], seconds: dict[str, float]) -> list[str]:
    """The chain of stages, upstream first, with the largest sum of seconds."""
    longest: dict[str, tuple[float, list[str]]] = {}
    for step in steps:  # plan order: upstream first
        before = [longest[u] for u in step.upstream if u in longest]
        total, chain = max(before, default=(0.0, []))
        longest[step.name] = (total + seconds[step.name], [*chain, step.name])
    return max(longest.values())[1] if longest else []


def estimate(targets: list[str], cpus: list[int]) -> None:
    """Print the predicted wall time of `targets` on each of `cpus`, and the critical path."""
    with Pipeline(targets) as pipe:
        steps, seconds = pipe.steps, Durations(Durations.file(pipe.root)).seconds
    unknown = [step.name for step in steps if step.name not in seconds]
    if unknown:
        raise UserError(
            f"no measured seconds for {len(unknown)} stages ({unknown[0]}, ...): run them with "
            "`make repro` (tools.run) first"
        )
    total = sum(seconds[step.name] for step in steps)
    path = critical_path(steps, seconds)
    print(f"{len(steps)} stages, {total:.0f} s in all")
    for count in cpus:
        print(f"{count:>4} CPUs: {wall_time(steps, seconds, count):8.0f} s")
    span = sum(seconds[name] for name in path)
    print(f"critical path ({span:.0f} s): {' -> '.join(path)}")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and print the estimate; :return: the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="dvc.yaml files or stages (default: dvc.yaml)")
    parser.add_argument("--cpus", type=int, nargs="+", default=[2, 8, 64], help="CPU counts")
    args = parser.parse_args(argv)
    return console.run(lambda: estimate(args.targets, args.cpus))


if __name__ == "__main__":
    sys.exit(console.run(main))
