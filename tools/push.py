"""`make push`: what another clone needs to restore every stage, to the default DVC remote:
every output dvc.lock records (every pipeline's), DVC's run-cache (`dvc push --run-cache`) and
the outputs of every run it records, those kept in git too (`metrics`, `plots`: `dvc push
--run-cache` sends the run's record but not them, so another clone would rerun their stages).
Each cache object is hashed against its name before it leaves: a bad one is set aside, with one
line, and not sent.

    python -m tools.push

Exit 0 when everything went; 2 with one line when no remote is set or it cannot be used.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

from rlrepro import console
from rlrepro.core.errors import UserError
from tools import dvcremote, integrity
from tools.pipeline import writable
from tools.pull import cached_outs, set_aside


def run_outs(repo: Any) -> list[Any]:
    """The outputs, with their hashes, of every run in DVC's local run-cache (each entry as
    DVC restores it: `StageCache._create_stage`; their uncached outputs cached there)."""
    cache = repo.stage_cache
    folder = Path(cache.cache_dir)
    outs = []
    for path in sorted(folder.glob("*/*/*")) if folder.is_dir() else []:
        entry = cache._load_cache(path.parent.name, path.name)
        if entry:
            outs += list(cache._create_stage(entry).outs)
    return outs


def sendable(root: Path, outs: list[Any]) -> list[Any]:
    """The object ids of `outs` whose objects (a folder's listing and files too) are all in DVC's
    cache with the bytes they name, after every bad one is set aside (one line each): a folder's
    listing and each of its files (DVC's transfer of a listing alone sends only the listing)."""
    from dvc_data.hashfile.tree import Tree

    ids = []
    for out in outs:
        report = integrity.check(root, [out], workspace=False)
        set_aside(root, report)
        if not report.mismatches and not report.absent_cache:
            ids.append(out.hash_info)
            if out.hash_info.isdir:
                tree = Tree.load(out.cache, out.hash_info, hash_name=out.hash_name)
                ids += [info for _, _, info in tree if info]
    return ids


def refill(root: Path, repo: Any, report: integrity.Report) -> None:
    """Set aside every bad cache object of `report` (one line each), and put back into DVC's
    cache each whose workspace file has dvc.lock's bytes: those are what go."""
    from dvc_objects.fs.local import LocalFileSystem

    set_aside(root, report)
    for mismatch in report.mismatches:
        file = root / mismatch.path
        if file.is_file() and integrity.md5(file) == mismatch.expected:
            repo.cache.local.add(str(file), LocalFileSystem(), mismatch.expected)


def push() -> int:
    """Push (see the module's docstring); :return: how many objects and run records went.
    :raises UserError: in one line."""
    from dvc.exceptions import DvcException
    from dvc_data.hashfile.transfer import transfer

    with dvcremote.open_repo() as repo:
        root = Path(repo.root_dir)
        name = repo.config["core"].get("remote")
        if name is None:
            raise UserError(
                "no DVC remote to push to: add one (dvc remote add -d NAME URL; "
                "docs/sharing.md), then make push"
            )
        dvcremote.probe(repo, name)
        writable(repo, workspace=False)
        refill(root, repo, integrity.check(root, cached_outs(repo, []), workspace=False))
        asked = "push the outputs and the run-cache"
        with dvcremote.faults(repo, name, asked):
            try:
                sent = int(repo.push(run_cache=True))
            except DvcException as err:  # some objects did not go (DVC counts them)
                raise UserError(dvcremote.line(repo, name, asked, str(err))) from None
        ids = sendable(root, [o for o in run_outs(repo) if o.hash_info])
        with dvcremote.faults(repo, name, f"push the outputs of {len(ids)} recorded runs"):
            # Each object asked of the remote itself: DVC's index of what a remote holds
            # (`dvc_data`'s ObjectDBIndex) takes a folder's listing there for all its files.
            result = transfer(repo.cache.local, dvcremote.odb(repo, name), ids)
        if result.failed:
            raise UserError(
                dvcremote.line(repo, name, "push", f"{len(result.failed)} objects did not go")
            )
        return sent + len(result.transferred)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and push; :return: the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    print(f"{push()} files pushed (every object hashed against its name first)")
    return 0


if __name__ == "__main__":
    sys.exit(console.run(main))
