"""Writing outputs so that a crash never leaves a half-written file and bytes never vary.

Every writer goes through `write_bytes`: a temporary file beside the target, then a rename.
"""

import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlrepro.core.errors import StageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What the system says when an output cannot be written: the user's to fix, not a bug.
WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file in the same folder, then rename): the
    old file stays whole until the new one is complete.

    :raises StageError: when the folder cannot be written (`writing`).
    """
    with writing(path):
        _write(path, data)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Inside, a failure to write `path` that is the user's to fix (no permission, a full disk,
    a read-only file system) :raises StageError: in one line naming the file; any other
    `OSError` propagates as it is."""
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        raise StageError(
            f"{path}: cannot write it ({err.strerror}); free space or fix the folder's "
            "permissions, then rerun `dvc repro`"
        ) from err


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, two-space indent and a final newline: one text per value."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as `canonical_json` to `path`, atomically."""
    write_bytes(path, canonical_json(obj).encode("utf-8"))


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV with `header` and `rows` (floats in their shortest round-trip form)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_bytes(path, buffer.getvalue().encode("utf-8"))


def remove_others(folder: Path, keep: set[str]) -> None:
    """Delete the files in `folder` whose stem is not in `keep`: the outputs of experiments no
    longer in params (stages' outputs persist between runs)."""
    for path in sorted(folder.glob("*")):
        if path.is_file() and path.stem not in keep:
            path.unlink()
