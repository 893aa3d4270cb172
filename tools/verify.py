"""`make verify`: rerun the committed pipeline from nothing and compare its outputs byte for byte.

In a fresh clone of the repository at `--rev` (another path, an empty DVC cache) every output of
the pipeline is deleted, then the runner (`tools.run`, as `make repro`: the stages side by side on
every CPU, or `--jobs N`) reruns every stage from nothing, with this shell's environment
(`--rerun`: nothing is taken from a DVC remote or run-cache). Then each stage's output hashes are
compared with the committed `dvc.lock`, one row per stage: identical, or differs and where: for
`train`, the first update at which the training traces part; for `evaluate`, the first differing
episode (the committed trace or episodes read from git, or from this repository's DVC cache).
Exit 0 only when every stage is identical, 1 when one differs, 2 when the rerun fails.

The rerun can run on another machine (`tools.machines`), where the same bytes are required:
`--cpu MODEL` runs its train and evaluate stages on an emulated CPU (`qemu-x86_64 -cpu MODEL`);
`--libc SUITE` every stage under the C library of a Debian suite (e.g. trixie: glibc 2.41),
through that library's own loader; `--python PATH` every stage in a venv of another build of
Python 3.11 (e.g. Debian's /usr/bin/python3.11).

`--stats` is for machines whose bytes cannot match (another CPU architecture or simulator build):
the physics check only warns, and per experiment the rerun's runs are compared with the committed
ones: each run (seed) scores the mean return of its evaluation episodes, and the two sides' run
scores go through Welch's two-sided t test (`rlrepro.results.stats.welch_p`; runs, not
episodes: a rerun of the same process differs from the committed one by its runs' spread, not
its episodes'). Exit 0 when every experiment is compatible (p >= `--alpha`), else 1. The test's
false alarms and power at 3 and 10 runs, simulated: docs/statistics.md.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from rlrepro import console
from rlrepro.core import layout, params
from rlrepro.core.errors import StageError, UserError
from rlrepro.core.readers import CSV_LIMIT, read_text
from rlrepro.machine import ALLOW_PHYSICS_VAR
from rlrepro.results.stats import welch_p
from rlrepro.training import trace
from tools import machines, remote
from tools.pipeline import remove_outputs

Committed = Callable[[str], str | None]


class Row(NamedTuple):
    """One line of a result table."""

    name: str
    result: str
    detail: str = ""


def lock_outs(lock_text: str) -> dict[str, dict[str, str | None]]:
    """Each stage's outputs in a `dvc.lock` text, as {stage: {path: md5}}."""
    stages = (yaml.safe_load(lock_text) or {}).get("stages", {})
    return {
        name: {out["path"]: out.get("md5") for out in spec.get("outs", [])}
        for name, spec in stages.items()
    }


def trace_parting(committed: str | None, rerun: Path) -> str | None:
    """Where a rerun's training trace first parts from the committed one's text, if they do."""
    if committed is None or not rerun.is_file():
        return None
    try:
        ours = trace.parse(read_text(rerun, "training trace", CSV_LIMIT))
        theirs = trace.parse(committed)
    except (StageError, ValueError) as err:
        return f"traces cannot be compared: {err}"
    point = trace.first_parting(ours, theirs)
    if point is None:
        return None
    same_update = [p for p in theirs if p.update == point.update]
    if not same_update:
        return f"traces part at update {point.update} (step {point.step}): it was not recorded"
    what = "policy parameters" if same_update[0].params != point.params else "observations"
    return f"traces part at update {point.update} (step {point.step}): {what}"


def episode_parting(committed: str | None, rerun: Path) -> str | None:
    """The first episode whose row in a rerun's evaluation CSV differs from the committed one."""
    if committed is None or not rerun.is_file():
        return None
    try:
        ours = list(csv.reader(read_text(rerun, "evaluation CSV", CSV_LIMIT).splitlines()))
    except StageError as err:
        return f"episodes cannot be compared: {err}"
    theirs = list(csv.reader(committed.splitlines()))
    for index, (row, was) in enumerate(zip(ours[1:], theirs[1:], strict=False)):
        if row != was:
            ret, committed_ret = (r[1] if len(r) > 1 else ",".join(r) for r in (row, was))
            return f"first differing episode {index}: return {ret}, committed {committed_ret}"
    return None if len(ours) == len(theirs) else "the number of episodes differs"


def compare(
    committed_lock: str,
    rerun_lock: str,
    workdir: Path,
    committed: Committed,
    pipeline: set[str] | None = None,
) -> list[Row]:
    """One row per stage of either lock: identical, or differs (and where), or missing; and a
    stage that the lock holds but the pipeline (`pipeline`, its stage names) no longer has is
    stale: it was never rerun, so it proves nothing."""
    before, after = lock_outs(committed_lock), lock_outs(rerun_lock)
    rows = []
    for stage in sorted(before.keys() | after.keys()):
        if pipeline is not None and stage not in pipeline:
            why = "in dvc.lock, but no longer a stage: run `dvc repro`, then commit dvc.lock"
            rows.append(Row(stage, "stale", why))
            continue
        if stage not in after or stage not in before:
            rows.append(
                Row(
                    stage,
                    "missing",
                    "not in the " + ("rerun" if stage in before else "committed dvc.lock"),
                )
            )
            continue
        differing = sorted(
            p
            for p in before[stage].keys() | after[stage].keys()
            if before[stage].get(p) != after[stage].get(p)
        )
        if not differing:
            rows.append(Row(stage, "identical"))
            continue
        where = None
        for path in differing:
            if Path(path).parent == layout.TRACES:
                where = trace_parting(committed(path), workdir / path)
            elif Path(path).parent == layout.EVALS and path.endswith(".csv"):
                where = episode_parting(committed(path), workdir / path)
            if where:
                break
        rows.append(Row(stage, "differs", where or ", ".join(differing)))
    return rows


def run_scores(exp: str, seeds: tuple[int, ...], read: Callable[[str], str | None]) -> list[float]:
    """The scores of experiment `exp`'s runs (one per seed: the mean return of its evaluation
    episodes), of the seeds whose evaluation file `read` finds."""
    scores = []
    for seed in seeds:
        text = read(layout.run_file(layout.EVALS, exp, seed, ".csv").as_posix())
        if text is not None:
            returns = [float(row["episode_return"]) for row in csv.DictReader(text.splitlines())]
            scores.append(float(np.mean(returns)))
    return scores


def compatible(committed: list[float], rerun: list[float], alpha: float) -> Row:
    """Welch's two-sided t test of two sides' run scores, as a table row's result and detail:
    compatible when p >= `alpha` (identical scores give p = 1); too few when they differ and a
    side has fewer than 2 runs (no test: not compatible)."""
    if not committed or not rerun:
        return Row("", "missing", "no evaluations to compare")
    if committed != rerun and min(len(committed), len(rerun)) < 2:
        return Row("", "too few", "the run scores differ, and one run a side allows no test")
    p_value = 1.0 if committed == rerun else float(welch_p(np.array(committed), np.array(rerun)))
    result = "compatible" if p_value >= alpha else "differs"
    return Row(
        "",
        result,
        (
            f"committed {_mean_sd(committed)} ({len(committed)} runs), "
            f"rerun {_mean_sd(rerun)} ({len(rerun)} runs), Welch's t p={p_value:.3g}"
        ),
    )


def _mean_sd(scores: list[float]) -> str:
    """The mean and sample standard deviation of run scores (the mean alone for one run)."""
    if len(scores) < 2:
        return f"{np.mean(scores):.2f}"
    return f"{np.mean(scores):.2f} ± {np.std(scores, ddof=1):.2f}"


def print_table(title: str, rows: list[Row]) -> None:
    """Rows as aligned columns under `title`."""
    width = max(len(row.name) for row in rows)
    print(f"\n{title}")
    for row in rows:
        print(f"  {row.name:<{width}}  {row.result:<10}  {row.detail}".rstrip())


class VerifyError(UserError):
    """A step that could not run; its message is one line saying which and why."""


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise VerifyError(f"git {' '.join(args)} in {repo}: {why}")
    return result.stdout


def _show(repo: Path, pipeline: str, cache: Path) -> Committed:
    """The committed text of a path relative to the pipeline folder `pipeline` of the clone
    `repo`, if any: from git, else (an output in DVC's cache) from the DVC cache folder `cache`
    by the hash the committed dvc.lock gives it."""

    def from_git(path: str) -> str | None:
        name = Path(pipeline, path).as_posix()
        result = subprocess.run(
            ["git", "-C", str(repo), "show", f"HEAD:{name}"], capture_output=True, text=True
        )
        return result.stdout if result.returncode == 0 else None

    hashes = {
        p: md5 for outs in lock_outs(from_git("dvc.lock") or "").values() for p, md5 in outs.items()
    }

    def committed(path: str) -> str | None:
        md5 = hashes.get(path)
        if md5 is None or md5.endswith(".dir"):
            return from_git(path)
        file = cache / md5[:2] / md5[2:]
        return file.read_text() if file.is_file() else None

    return committed


def _cache(root: Path) -> Path:
    """The folder of the files in DVC's cache of the repository at `root`."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.path)


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    """`path` (created, kept), or a temporary folder removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path / "rlrepro"
        return
    folder = Path(tempfile.mkdtemp(prefix="rlrepro-verify-"))
    try:
        yield folder / "rlrepro"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _env(stats: bool, first: Path | None = None) -> dict[str, str]:
    """This environment with the venv (after folder `first`, if given) first on PATH, and the
    physics check relaxed for --stats."""
    path = ([str(first)] if first is not None else []) + [str(Path(sys.executable).parent)]
    env = {**os.environ, "PATH": os.pathsep.join([*path, os.environ["PATH"]])}
    if first is not None:  # the runner's tasks put their Python first: the shim goes before it
        env[remote.SHIM_VAR] = str(first)
    if stats:
        env[ALLOW_PHYSICS_VAR] = "1"
    return env


def rerun(
    repo: Path,
    rev: str,
    clone: Path,
    pipeline: str,
    stats: bool,
    emulated: tuple[str, Path] | None = None,
    jobs: int | None = None,
) -> int:
    """Clone `repo` at `rev` into `clone`, delete every output of the pipeline in folder
    `pipeline` there and rerun it with the runner on `jobs` CPUs (default: all; its log on
    stderr); with `emulated` (a machine's name and its `machines.shim` folder), that folder first
    on PATH. :return: the runner's exit code."""
    if clone.exists() and any(clone.iterdir()):
        raise VerifyError(f"--workdir: {clone} is not empty; give a new or empty folder")
    _git(repo, "clone", "--quiet", "--no-hardlinks", ".", str(clone.resolve()))
    _git(clone, "checkout", "--quiet", "--detach", rev)
    env = _env(stats, emulated[1] if emulated else None)
    target = Path(pipeline, "dvc.yaml").as_posix()
    remove_outputs(clone, clone / target)
    where = f", stages on {emulated[0]}" if emulated else ""
    print(f"verify: rerunning {target} of {rev} in {clone}{where}", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "tools.run", "--rerun", target]
    command += ["--jobs", str(jobs)] if jobs else []
    return subprocess.run(command, cwd=clone, env=env, stdout=sys.stderr.fileno()).returncode


def main(argv: list[str] | None = None) -> int:
    """Rerun the committed pipeline in a clone and print how its outputs compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(), help="the git repository")
    parser.add_argument("--rev", default="HEAD", help="the commit to verify (default: HEAD)")
    parser.add_argument("--workdir", type=Path, help="clone into this folder and keep it")
    parser.add_argument(
        "--pipeline", default=".", help="the pipeline's folder: . (default) or studies/<name>"
    )
    parser.add_argument("--stats", action="store_true", help="compare evaluations statistically")
    other = parser.add_mutually_exclusive_group()
    other.add_argument(
        "--cpu",
        metavar="MODEL",
        help="run the train and evaluate stages on this emulated CPU (qemu-x86_64 -cpu MODEL, "
        f"e.g. {' or '.join(machines.CPU_MODELS)})",
    )
    other.add_argument(
        "--libc",
        metavar="SUITE",
        help="run every stage under the C library of this Debian suite (e.g. "
        f"{machines.LIBC_SUITE}), through its own loader",
    )
    other.add_argument(
        "--python",
        type=Path,
        metavar="PATH",
        help=f"run every stage in a venv of this Python 3.11 (e.g. {machines.DEBIAN_PYTHON})",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="--stats significance level")
    parser.add_argument("--jobs", type=int, help="the rerun on at most N CPUs (default: all)")
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        print(f"error: --alpha: expected a number in (0, 1), got {args.alpha}", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print(f"error: --jobs: expected a number >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    try:
        return verify(
            args.repo,
            args.rev,
            args.workdir,
            args.pipeline,
            args.stats,
            args.alpha,
            _machine_spec(args),
            args.jobs,
        )
    except (VerifyError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _machine_spec(args: argparse.Namespace) -> tuple[str, str] | None:
    """("cpu", MODEL), ("libc", SUITE) or ("python", PATH) from the command line, if given."""
    for kind in ("cpu", "libc", "python"):
        if getattr(args, kind) is not None:
            return kind, str(getattr(args, kind))
    return None


def _machine(spec: tuple[str, str], folder: Path) -> machines.Machine:
    """The machine of `spec` (`_machine_spec`), its files in `folder`."""
    kind, value = spec
    if kind == "cpu":
        return machines.cpu(value)
    if kind == "libc":
        return machines.glibc(folder / f"libc-{value}", value)
    return machines.python_build(folder / "python", Path(value))


def verify(
    repo: Path,
    rev: str,
    workdir: Path | None,
    pipeline: str,
    stats: bool,
    alpha: float,
    machine: tuple[str, str] | None = None,
    jobs: int | None = None,
) -> int:
    """Rerun the pipeline in folder `pipeline` of `repo` at `rev` in a clone (in `workdir`, else
    a temporary folder) on `jobs` CPUs (default: all), its stages on another `machine` if given
    (`_machine_spec`), and print the tables; :return: the exit code (0 identical or compatible,
    1 not, 2 the rerun failed)."""
    root = Path(_git(repo, "rev-parse", "--show-toplevel").strip())
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except VerifyError:
        raise VerifyError(
            f"--rev {rev}: not a commit in {root}; give a branch, tag or hash"
        ) from None
    if not (root / pipeline / "dvc.yaml").is_file():
        raise VerifyError(f"--pipeline {pipeline}: no dvc.yaml there; give . or studies/<name>")
    if _git(root, "status", "--porcelain", "--untracked-files=no"):
        print(f"verify: uncommitted changes in {root} are not verified", file=sys.stderr)
    with _workdir(workdir) as clone:
        # the other machine, checked, before anything is cloned
        emulated = None
        if machine is not None:
            other = _machine(machine, clone.parent)
            emulated = (other.name, machines.shim(clone.parent / "bin", other, _emulated(clone)))
        if rerun(root, commit, clone, pipeline, stats, emulated, jobs) != 0:
            print("error: the rerun failed in the clone (its log is above)", file=sys.stderr)
            return 2
        here, committed = clone / pipeline, _show(clone, pipeline, _cache(root))
        listed = subprocess.run(
            ["dvc", "stage", "list", "--name-only", "dvc.yaml"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            env=_env(stats),
        )
        stages = set(listed.stdout.split())
        rows = compare(
            committed("dvc.lock") or "", (here / "dvc.lock").read_text(), here, committed, stages
        )
        same = sum(row.result == "identical" for row in rows)
        where = ""
        if emulated is not None:
            ran = _emulated(clone).read_text().splitlines()
            if not ran:
                raise VerifyError(f"{emulated[0]}: no stage ran on it")
            where = f", {len(ran)} stages on {emulated[0]}"
        print_table(
            f"Stages of {commit[:12]} rerun{where}, byte for byte against dvc.lock "
            f"({same} of {len(rows)} identical):",
            rows,
        )
        if not stats:
            return 0 if same == len(rows) else 1
        raw = params.read(here / "params.yaml")
        tests = []
        seeds = params.seeds(raw)
        for exp in params.section_names(raw, "experiments"):
            row = compatible(
                run_scores(exp, seeds, committed), run_scores(exp, seeds, _reader(here)), alpha
            )
            tests.append(row._replace(name=exp))
        print_table(f"Run scores, rerun against committed (alpha={alpha}):", tests)
        return 0 if all(row.result == "compatible" for row in tests) else 1


def _emulated(clone: Path) -> Path:
    """The log of the commands run on another machine for the rerun in `clone`."""
    return clone.parent / "emulated.log"


def _reader(root: Path) -> Callable[[str], str | None]:
    def read(path: str) -> str | None:
        file = root / path
        return file.read_text() if file.is_file() else None

    return read


if __name__ == "__main__":
    sys.exit(console.run(main))
