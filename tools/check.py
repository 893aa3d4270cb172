"""`make check`: every output of every pipeline (the root dvc.yaml and each study's) hashed
against its dvc.lock, in the workspace and in DVC's cache; one line per file whose bytes differ.

    python -m tools.check [--workspace | --cache]

Every file is hashed now, with DVC's own hash (`tools.integrity`); DVC's state database, which
trusts a file's size and time, is not asked. Nothing is changed: `make pull` sets bad objects
aside and fetches them again, `make repro` regenerates. The last line counts what was checked,
per pipeline, what is absent and how long it took. Exit 0 when no file differs, 1 when one does.
"""

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from rlrepro import console
from tools import dvcremote, integrity


def by_pipeline(root: Path, outs: list[Any]) -> dict[str, list[Any]]:
    """DVC's outputs `outs`, grouped by the dvc.yaml of their stage (relative to `root`)."""
    groups: dict[str, list[Any]] = {}
    for out in outs:
        file = Path(os.path.relpath(out.stage.dvcfile.path, root)).as_posix()
        groups.setdefault(file, []).append(out)
    return dict(sorted(groups.items()))


def check(workspace: bool, cache: bool) -> bool:
    """Check, print one line per mismatch and a summary; :return: whether nothing differs."""
    start = time.monotonic()
    with dvcremote.open_repo() as repo:
        root = Path(repo.root_dir)
        total = integrity.Report()
        counts = []
        for pipeline, outs in by_pipeline(root, list(repo.index.outs)).items():
            report = integrity.check(root, outs, workspace=workspace, cache=cache)
            for mismatch in report.mismatches:
                print(mismatch.line(), flush=True)
            counts.append(f"{pipeline}: {summary(report)}")
            total.add(report)
    seconds = time.monotonic() - start
    print(f"against dvc.lock in {seconds:.1f} s: {summary(total)} ({'; '.join(counts)})")
    return not total.mismatches


def summary(report: integrity.Report) -> str:
    """`N files checked, M differ` and, when some are absent, how many from where."""
    text = f"{report.checked} files checked, {len(report.mismatches)} differ"
    if report.absent_workspace or report.absent_cache:
        text += (
            f", absent (make pull): {len(report.absent_workspace)} from the workspace, "
            f"{len(report.absent_cache)} from DVC's cache"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and check; :return: the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--workspace", action="store_true", help="only the workspace's files")
    only.add_argument("--cache", action="store_true", help="only DVC's cache objects")
    args = parser.parse_args(argv)
    return 0 if check(workspace=not args.cache, cache=not args.workspace) else 1


if __name__ == "__main__":
    sys.exit(console.run(main))
