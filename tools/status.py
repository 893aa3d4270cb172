"""`make status`: `dvc status` in a few lines: how many stages are up to date, and why the others
would rerun (outputs not here, code changed, params changed), with what to do about each.

    python -m tools.status [DVC.YAML ...]      # default: the pipeline of this folder

In a fresh clone every stage's outputs are missing (checkpoints and per-run files live in DVC's
cache, not git), so `dvc status` lists every output of every stage, hundreds of lines; this says
so in one. `dvc status` itself lists them all.
"""

import argparse
import json
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from rlrepro import console


def _shown(names: Iterable[str], most: int = 4) -> str:
    """`names`, sorted, at most `most` of them, and how many more."""
    ordered = sorted(set(names))
    rest = len(ordered) - most
    return ", ".join(ordered[:most]) + (f" and {rest} more" if rest > 0 else "")


def summary(status: dict[str, list[Any]], stages: int) -> list[str]:
    """The lines of the summary of `dvc status --json`'s `status`, for a pipeline of `stages`
    stages."""
    missing: set[str] = set()
    code: dict[str, set[str]] = {}
    params: dict[str, set[str]] = {}
    always: list[str] = []
    for stage, reasons in status.items():
        for reason in reasons:
            if reason == "always changed":
                always.append(stage)
                continue
            if not isinstance(reason, dict):
                continue
            for change in reason.get("changed outs", {}).values():
                if change in ("not in cache", "deleted"):
                    missing.add(stage)
            for dep, change in reason.get("changed deps", {}).items():
                if isinstance(change, dict):
                    params.setdefault(stage, set()).update(f"{dep}:{key}" for key in change)
                elif change == "modified":
                    code.setdefault(stage, set()).add(dep)
                else:  # an upstream stage's output not here: counted with that stage
                    missing.add(stage)
    lines = [f"{stages - len(status)} of {stages} stages up to date"]
    if missing:
        lines.append(
            f"{len(missing)} stages without their outputs here (DVC's cache, not git, holds "
            "checkpoints and per-run files): `make pull` fetches them where a remote holds "
            "them, `make repro` regenerates them (the same bytes)"
        )
    if code:
        changed = (dep for deps in code.values() for dep in deps)
        lines.append(f"{len(code)} stages would rerun for changed code: {_shown(changed)}")
    if params:
        keys = (key for found in params.values() for key in found)
        lines.append(f"{len(params)} stages would rerun for changed params: {_shown(keys)}")
    if always:
        lines.append(f"always run: {_shown(always)} (it checks this machine)")
    return lines


def _stages(targets: list[str]) -> int:
    """The number of stages of `targets` (matrix entries counted one by one)."""
    from dvc.repo import Repo

    with Repo() as repo:
        if not targets:
            return len(repo.index.stages)
        return sum(len(repo.stage.collect(target)) for target in targets)


def main(argv: list[str] | None = None) -> int:
    """Print the summary of `dvc status` of the targets; :return: dvc's exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="dvc.yaml files (default: this folder's)")
    args = parser.parse_args(argv)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json", *args.targets],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
        return done.returncode
    status = json.loads(done.stdout or "{}")
    for line in summary(status, _stages(args.targets)):
        print(line)
    print("(`dvc status` lists every stage and output)")
    return 0


if __name__ == "__main__":
    sys.exit(console.run(main))
