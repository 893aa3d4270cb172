"""The bytes of DVC's outputs checked against what dvc.lock (or a run-cache entry) records: each
file of the workspace and each object of DVC's cache hashed afresh with DVC's own hash
(`dvc_data`'s `file_md5`; DVC's state database, which trusts a file's size and time, is not
asked), and a bad cache object set aside.

DVC hashes nothing on the way out of its cache: a damaged object is checked out, pushed and
pulled under its good name. Everything here takes DVC's outputs (`dvc.output.Output`, as a
stage loaded from dvc.yaml and dvc.lock carries them) and reads their expected hashes from them.
"""

import dataclasses
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

QUARANTINE = Path(".dvc", "tmp", "quarantine")  # bad objects and files, set aside


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """A file whose bytes are not those recorded.

    :param path: the output's file, relative to the repository's root (for a damaged folder
        listing, the folder).
    :param where: "workspace" (the file there) or "cache" (DVC's cache object of it).
    :param expected: the recorded hash (DVC's object id).
    :param actual: the hash of the bytes found.
    :param obj: the cache object that should hold those bytes, relative to the root.
    """

    path: str
    where: str
    expected: str
    actual: str
    obj: str

    def line(self) -> str:
        """One line naming the file, the object and both hashes."""
        if self.where == "cache":
            return (
                f"{self.path}: DVC's cache object {self.obj} holds other bytes (md5 "
                f"{self.actual}, not dvc.lock's {self.expected})"
            )
        return (
            f"{self.path}: its bytes are not dvc.lock's (md5 {self.actual}, not "
            f"{self.expected}; cache object {self.obj})"
        )


@dataclasses.dataclass
class Report:
    """What a check found: the mismatches, the files it could not check because they are
    absent (relative to the root), and those absent from both, with their object ids (`needed`:
    (path, oid), what a pull must bring)."""

    mismatches: list[Mismatch] = dataclasses.field(default_factory=list)
    absent_workspace: list[str] = dataclasses.field(default_factory=list)
    absent_cache: list[str] = dataclasses.field(default_factory=list)
    needed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    checked: int = 0

    def add(self, other: "Report") -> None:
        """Add `other`'s findings to these."""
        self.mismatches += other.mismatches
        self.absent_workspace += other.absent_workspace
        self.absent_cache += other.absent_cache
        self.needed += other.needed
        self.checked += other.checked


def md5(path: Path, name: str = "md5") -> str:
    """DVC's hash (`name`: "md5", or "md5-dos2unix" for entries of DVC 2) of the file at
    `path`, computed from its bytes now."""
    from dvc_data.hashfile.hash import file_md5

    return file_md5(os.fspath(path), name=name)


def _relative(root: Path, path: str | Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _files(root: Path, out: Any, report: Report) -> list[tuple[str, str]] | None:
    """Each file of output `out` with its recorded object id: the output itself, or each entry
    of its folder listing (a `.dir` object, checked first). None when nothing is recorded or
    the listing cannot be read (then `report` says why)."""
    info = out.hash_info
    if not out.use_cache or not info or not info.value:
        return None
    if not info.isdir:
        return [(_relative(root, out.fs_path), info.value)]
    from dvc_data.hashfile.tree import Tree

    listing = Path(out.cache.oid_to_path(info.value))
    folder = _relative(root, out.fs_path)
    if not listing.is_file():
        report.absent_cache.append(folder)
        return None
    actual = md5(listing, out.hash_name)
    if actual != info.value.removesuffix(".dir"):
        obj = _relative(root, listing)
        report.mismatches.append(Mismatch(folder, "cache", info.value, actual, obj))
        return None
    tree = Tree.load(out.cache, info, hash_name=out.hash_name)
    return [
        (Path(folder, *key).as_posix(), entry_info.value)
        for key, _, entry_info in tree
        if entry_info and entry_info.value
    ]


def check(
    root: Path,
    outs: Iterable[Any],
    workspace: bool = True,
    cache: bool = True,
    uncached: bool = True,
) -> Report:
    """Hash every file of DVC's cached outputs among `outs` (and, with `workspace` and
    `uncached`, the uncached ones, such as metrics and plots kept in git) in the workspace at
    `root` and, with `cache`,
    each one's object in DVC's cache, against the hashes the outputs carry (dvc.lock's, or a
    run-cache entry's once restored). Absent files are counted, not hashed.

    :return: the `Report`.
    """
    report = Report()
    for out in outs:
        if not out.use_cache:
            if workspace and uncached:
                _check_uncached(root, out, report)
            continue
        for path, oid in _files(root, out, report) or []:
            obj = Path(out.cache.oid_to_path(oid))
            file = root / path
            if workspace:
                report.checked += 1
                if not file.is_file():
                    report.absent_workspace.append(path)
                elif (actual := md5(file, out.hash_name)) != oid:
                    report.mismatches.append(
                        Mismatch(path, "workspace", oid, actual, _relative(root, obj))
                    )
            if cache:
                report.checked += 1
                if not obj.is_file():
                    report.absent_cache.append(path)
                    if not file.is_file():
                        report.needed.append((path, oid))
                elif (actual := md5(obj, out.hash_name)) != oid:
                    report.mismatches.append(
                        Mismatch(path, "cache", oid, actual, _relative(root, obj))
                    )
    return report


def _check_uncached(root: Path, out: Any, report: Report) -> None:
    """An uncached output (kept in git) against its recorded hash: a file's md5, a folder's
    listing hash as DVC builds it."""
    info = out.hash_info
    if not info or not info.value:
        return
    path = _relative(root, out.fs_path)
    report.checked += 1
    if not Path(out.fs_path).exists():
        report.absent_workspace.append(path)
        return
    if info.isdir:
        actual = folder_hash(Path(out.fs_path), out.hash_name)
    else:
        actual = md5(Path(out.fs_path), out.hash_name)
    if actual != info.value:
        report.mismatches.append(Mismatch(path, "workspace", info.value, actual, "(git)"))


def folder_hash(folder: Path, name: str = "md5") -> str:
    """DVC's object id of a folder (its listing's hash, `<md5>.dir`), every file hashed now."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        tree.add(file.relative_to(folder).parts, None, HashInfo(name, md5(file, name)))
    tree.digest(name=name)
    return str(tree.hash_info.value)


def set_aside(root: Path, mismatch: Mismatch) -> Path:
    """Move the bad bytes `mismatch` names out of the way, into `QUARANTINE` under `root`: the
    cache object (under its object path) or the workspace file (under `workspace/` and its
    path), so that DVC fetches or regenerates them and nothing is deleted.

    :return: where they are now.
    """
    if mismatch.where == "cache":
        source = root / mismatch.obj
        target = root / QUARANTINE / "cache" / Path(*Path(mismatch.obj).parts[-2:])
    else:
        source = root / mismatch.path
        target = root / QUARANTINE / "workspace" / mismatch.path
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.chmod(0o644)
        target.unlink()
    shutil.move(source, target)
    return target
