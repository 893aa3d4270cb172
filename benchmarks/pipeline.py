"""The default pipeline from nothing, serial `dvc repro` against the runner (`tools.run`), in one
run on this machine.

    python -m benchmarks.pipeline [--params FILE] [--jobs N] [--workdir DIR] [--repeat N]

It clones the committed repository twice (into `--workdir`, else a temporary folder), puts
`--params` in each as params.yaml when given, and removes each clone's dvc.lock and every output
of the default pipeline: both start from nothing. Then, one after the other, it times `dvc repro`
in the first and `python -m tools.run` in the second (with `--jobs`), and prints both wall times,
their ratio and whether the two dvc.lock files are identical, byte for byte (and, if not,
whether they hold the same entries in another order). `--repeat N` times N such pairs, each
in fresh clones, the runner first in every second pair (a drift of the machine's speed then
favours neither), and prints each pair and the medians: on shared cores one pair's ratio moves
by several percent. Exit 0 when every pair's locks are identical, 1 when not, 2 when a run fails.

Both runs get PYTHONHASHSEED=0. DVC orders the stages it adds to a new dvc.lock by walking a
subgraph whose node order follows Python's string hashes when the repository holds several
pipelines (here: the studies), so two serial runs from nothing may list the stages in different
orders; with one hash seed, the serial run and the runner (which records new stages in DVC's
order) see the same order.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import yaml

from rlrepro import console
from rlrepro.core.errors import UserError
from tools.pipeline import remove_outputs


class BenchError(UserError):
    """A clone or a run that failed; one line saying which."""


def _environment() -> dict[str, str]:
    """This environment with this Python's folder first on PATH (stages call `python`) and one
    hash seed (DVC's order of new dvc.lock entries)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "PYTHONHASHSEED": "0"}


def prepare(repo: Path, dest: Path, params_file: Path | None) -> Path:
    """A clone of `repo` at `dest` with `params_file` as its params.yaml, without dvc.lock or any
    output of its default pipeline. :return: `dest`."""
    done = subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(dest)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"git clone {repo}: {done.stderr.strip()}")
    if params_file is not None:
        shutil.copyfile(params_file, dest / "params.yaml")
    remove_outputs(dest, dest / "dvc.yaml")
    (dest / "dvc.lock").unlink(missing_ok=True)
    return dest


def timed(folder: Path, *command: str) -> float:
    """Run `command` in `folder` (its output to a log beside the folder); :return: wall seconds."""
    log = folder.with_suffix(".log")
    print(f"bench: {' '.join(command)} in {folder} (log: {log})", file=sys.stderr, flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(command, cwd=folder, env=_environment(), stdout=out, stderr=out)
    if code.returncode != 0:
        raise BenchError(f"{' '.join(command)} failed in {folder}; its log: {log}")
    return time.monotonic() - start


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    """`path` (created, kept), or a temporary folder removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="rlrepro-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Pair(NamedTuple):
    """One serial run and one runner run, from nothing: wall seconds and dvc.lock texts."""

    serial_s: float
    runner_s: float
    serial_lock: str
    runner_lock: str

    @property
    def same(self) -> bool:
        """Whether the two dvc.lock files are identical, byte for byte."""
        return self.serial_lock == self.runner_lock


def time_pair(
    repo: Path, folder: Path, params_file: Path | None, jobs: int | None, first: str
) -> Pair:
    """Serial `dvc repro` and the runner, each in a fresh clone in `folder`, `first` ("serial" or
    "runner") timed first."""
    clones = {name: prepare(repo, folder / name, params_file) for name in ("serial", "runner")}
    runner_args = ["--jobs", str(jobs)] if jobs else []
    commands = {
        "serial": ["dvc", "repro"],
        "runner": [sys.executable, "-m", "tools.run", *runner_args],
    }
    order = ["serial", "runner"] if first == "serial" else ["runner", "serial"]
    seconds = {name: timed(clones[name], *commands[name]) for name in order}
    locks = [(clones[name] / "dvc.lock").read_text() for name in ("serial", "runner")]
    return Pair(seconds["serial"], seconds["runner"], locks[0], locks[1])


def bench(
    repo: Path, params_file: Path | None, jobs: int | None, workdir: Path | None, repeat: int
) -> bool:
    """Time `repeat` pairs (the order within a pair alternating, so that a drift of the
    machine's speed favours neither) and print each and the medians; :return: whether every
    pair's locks are identical."""
    pairs = []
    with _workdir(workdir) as folder:
        for index in range(repeat):
            first = "serial" if index % 2 == 0 else "runner"
            done = time_pair(repo, folder / str(index + 1), params_file, jobs, first)
            pairs.append(done)
            if repeat > 1:
                print(
                    f"pair {index + 1} ({first} first): serial {done.serial_s:.1f} s, runner "
                    f"{done.runner_s:.1f} s, {done.serial_s / done.runner_s:.2f}x, dvc.lock "
                    f"{'identical' if done.same else 'DIFFERS'}",
                    flush=True,
                )
    cpus = len(os.sched_getaffinity(0))
    of = f"   (median of {repeat})" if repeat > 1 else ""
    ratio = statistics.median(p.serial_s / p.runner_s for p in pairs)
    print(f"serial dvc repro:   {statistics.median(p.serial_s for p in pairs):8.1f} s{of}")
    print(f"runner (tools.run): {statistics.median(p.runner_s for p in pairs):8.1f} s{of}", end="")
    print(f"   ({jobs or cpus} CPUs)")
    print(
        f"ratio:              {ratio:8.2f}x"
        + (f"   (median of the {repeat} pairs' ratios)" if repeat > 1 else "")
    )
    same = all(p.same for p in pairs)
    print(f"dvc.lock identical: {'yes' if same else 'NO'}", end="")
    if not same:
        entries = all(yaml.safe_load(p.serial_lock) == yaml.safe_load(p.runner_lock) for p in pairs)
        print(f" (same entries in another order: {'yes' if entries else 'NO'})", end="")
    print()
    return same


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the benchmark; :return: the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(), help="the git repository")
    parser.add_argument("--params", type=Path, help="the params file to run (default: committed)")
    parser.add_argument("--jobs", type=int, help="the runner's --jobs (default: every CPU)")
    parser.add_argument("--workdir", type=Path, help="clone into this folder and keep it")
    parser.add_argument("--repeat", type=int, default=1, help="pairs to time (default 1)")
    args = parser.parse_args(argv)
    same = [False]

    def work() -> None:
        if args.params is not None and not args.params.is_file():
            raise BenchError(f"--params {args.params}: no such file")
        if args.repeat < 1:
            raise BenchError(f"--repeat: expected a number >= 1, got {args.repeat}")
        params_file = args.params.resolve() if args.params else None
        same[0] = bench(args.repo.resolve(), params_file, args.jobs, args.workdir, args.repeat)

    code = console.run(work)
    return code or (0 if same[0] else 1)


if __name__ == "__main__":
    sys.exit(console.run(main))
