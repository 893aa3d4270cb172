"""`make pull`: every output in DVC's cache that dvc.lock records (every pipeline's), from the
default DVC remote, each file hashed against dvc.lock before it is left in the workspace.

    python -m tools.pull [TARGET ...]

TARGETs are what `dvc pull` takes (default: everything). In order: the remote is asked whether
it answers (`tools.dvcremote.probe`, bounded); DVC's cache objects and the workspace's files of
the outputs are hashed and any with other bytes than dvc.lock's is set aside
(`.dvc/tmp/quarantine/`, one line each); `dvc pull` runs (with the remote's `verify`, if set);
what arrived is hashed again, and whatever is still missing or bad is fetched once more, object
by object, each download hashed before it enters DVC's cache (a remote holding other bytes is
named with the object). Nothing in the workspace is deleted: a bad file is moved aside.

Exit 0 when every output is in place with dvc.lock's bytes; 2 with one line when no remote is
set, the remote cannot be used, or outputs are still missing (how many, of which pipeline).
"""

import argparse
import os
import sys
import tempfile
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

from rlrepro import console
from rlrepro.core.errors import UserError
from tools import dvcremote, integrity
from tools.pipeline import missing, no_remote, writable


def cached_outs(repo: Any, targets: list[str]) -> list[Any]:
    """DVC's outputs of `targets` (stages or dvc.yaml files; none: every pipeline's) whose files
    live in DVC's cache and that dvc.lock records."""
    if targets:
        stages = [s for t in targets for s in repo.stage.collect(t, with_deps=False)]
        outs = [out for stage in stages for out in stage.outs]
    else:
        outs = list(repo.index.outs)
    return [out for out in outs if out.use_cache and out.hash_info]


def pipelines(root: Path, outs: list[Any], paths: list[str]) -> str:
    """How many of `paths` (relative to `root`) each pipeline (dvc.yaml) has, e.g.
    `dvc.yaml: 3, studies/network/dvc.yaml: 40`."""
    owner = {}
    for out in outs:
        file = Path(os.path.relpath(out.stage.dvcfile.path, root)).as_posix()
        owner[Path(os.path.relpath(out.fs_path, root)).as_posix()] = file
    counts = Counter(
        next((f for o, f in owner.items() if p == o or p.startswith(f"{o}/")), "?") for p in paths
    )
    return ", ".join(f"{file}: {n}" for file, n in sorted(counts.items()))


def set_aside(root: Path, report: integrity.Report) -> int:
    """Move every bad file or object of `report` aside, one line each on stderr.
    :return: how many."""
    for mismatch in report.mismatches:
        if mismatch.obj == "(git)":
            continue
        where = integrity.set_aside(root, mismatch)
        print(f"{mismatch.line()}: set aside to {where.relative_to(root)}", file=sys.stderr)
    return len(report.mismatches)


def fetch_verified(root: Path, store: Any, out: Any, oid: str, path: str) -> str | None:
    """Download object `oid` of output `out` (file `path`) from the remote's object store
    `store` into a temporary file, hash it, and put it in DVC's cache only when it is dvc.lock's.

    :return: None when it is in the cache now; else why not ("not on the remote", or the line
        naming the remote's object and the bytes it holds, the download set aside).
    """
    source = store.oid_to_path(oid)
    scratch = root / ".dvc" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=scratch, prefix="fetch-")
    os.close(handle)
    download = Path(name)
    try:
        try:
            store.fs.get_file(source, str(download))
        except FileNotFoundError:
            return "not on the remote"
        actual = integrity.md5(download, out.hash_name)
        if actual != oid.removesuffix(".dir"):
            obj = Path(out.cache.oid_to_path(oid))
            target = root / integrity.QUARANTINE / "remote" / obj.parent.name / obj.name
            target.parent.mkdir(parents=True, exist_ok=True)
            download.replace(target)
            return (
                f"{path}: the remote's object {source} holds other bytes (md5 {actual}, not "
                f"dvc.lock's {oid}); set aside to {target.relative_to(root)}"
            )
        from dvc_objects.fs.local import LocalFileSystem

        out.cache.add(str(download), LocalFileSystem(), oid)
        return None
    finally:
        download.unlink(missing_ok=True)


def repair(root: Path, repo: Any, name: str, outs: list[Any]) -> list[str]:
    """Fetch again, object by object and verified, every cache object the workspace still needs
    (its file absent, its object absent), then check those outputs out.

    :return: the lines of the objects the remote holds with other bytes.
    """
    bad: list[str] = []
    store = dvcremote.odb(repo, name)
    for out in outs:
        info = out.hash_info
        needed = []
        if info.isdir and not Path(out.cache.oid_to_path(info.value)).is_file():
            needed.append((info.value, Path(os.path.relpath(out.fs_path, root)).as_posix()))
        report = integrity.check(root, [out], uncached=False)
        needed += [(oid, path) for path, oid in report.needed]
        with dvcremote.faults(repo, name, "fetch again"):
            for oid, path in needed:
                why = fetch_verified(root, store, out, oid, path)
                if why is not None and why != "not on the remote":
                    print(why, file=sys.stderr)
                    bad.append(why)
        if needed:
            _checkout(repo, out)
    return bad


def _checkout(repo: Any, out: Any) -> None:
    """Check output `out` out of DVC's cache, leaving out what is not there."""
    from dvc.exceptions import DvcException

    with suppress(DvcException):  # what is still missing is counted by the caller
        repo.checkout(targets=[out.fs_path], allow_missing=True)


def pull(targets: list[str]) -> None:
    """Pull and verify (see the module's docstring). :raises UserError: in one line."""
    from dvc.exceptions import DvcException

    with dvcremote.open_repo() as repo:
        root = Path(repo.root_dir)
        outs = cached_outs(repo, targets)
        name = repo.config["core"].get("remote")
        if name is None:
            lacking = missing(root, outs)
            if lacking:
                raise UserError(no_remote(lacking))
            print("Everything is up to date.")
            return
        holds = dvcremote.probe(repo, name)
        writable(repo)
        set_aside(root, integrity.check(root, outs, uncached=False))
        lacking = missing(root, outs)
        asked = f"pull {len(lacking)} outputs ({pipelines(root, outs, lacking)})"
        if lacking and not holds:
            raise UserError(dvcremote.line(repo, name, asked, dvcremote.EMPTY))
        if lacking:
            # What did not come is fetched again, or counted, below.
            with dvcremote.faults(repo, name, asked), suppress(DvcException):
                repo.pull(targets=targets or None, allow_missing=True)
            set_aside(root, integrity.check(root, outs, uncached=False))
            bad = repair(root, repo, name, [o for o in outs if missing(root, [o])])
            still = missing(root, outs)
            if still:
                what = (
                    f"{len(still)} still missing ({pipelines(root, outs, still)}; first: "
                    f"{still[0]}): {len(bad)} with other bytes on the remote, the rest not on it"
                )
                raise UserError(
                    f"DVC remote {dvcremote.describe(repo, name)}: {asked}: {what}; make repro "
                    "regenerates them (the same bytes), or push them from a clone that has "
                    "them (make push)"
                )
        print(f"Everything is up to date: {len(outs)} outputs, every file hashed against dvc.lock")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and pull; :return: the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="stages or dvc.yaml files (default: all)")
    args = parser.parse_args(argv)
    pull(args.targets)
    return 0


if __name__ == "__main__":
    sys.exit(console.run(main))
