"""`make pull`: `dvc pull` of every output in DVC's cache from the default remote. Without a
remote, one line instead of DVC's error: what is missing, and how to get it.

    python -m tools.pull [DVC PULL ARGUMENTS ...]

Exit 0 when nothing is missing, 2 when outputs are missing and no remote is configured, else
`dvc pull`'s own exit code.
"""

import subprocess
import sys
from pathlib import Path

from rlrepro import console
from tools.pipeline import missing, no_remote


def main(argv: list[str] | None = None) -> int:
    """Pull, or say why not; :return: the exit code."""
    from dvc.repo import Repo

    with Repo() as repo:
        remote = repo.config["core"].get("remote")
        lacking = missing(Path(repo.root_dir), repo.index.outs)
    if remote is None:
        if lacking:
            print(f"error: {no_remote(lacking)}", file=sys.stderr)
            return 2
        print("Everything is up to date.")
        return 0
    args = sys.argv[1:] if argv is None else argv
    return subprocess.run(["dvc", "pull", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(console.run(main))
