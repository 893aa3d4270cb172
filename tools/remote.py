"""What runs on a node for `tools.run`: one stage's command, in the workspace or in a folder of
its own, and what comes back.

This module is sent to the nodes by value (Ray pickles it with the task), so a node needs only
the project's packages, not this repository: it imports nothing of ours. In a folder of its own
the stage gets the committed code (a tar of `git archive HEAD`) with the workspace's bytes of
its inputs and outputs on top, runs there, and returns its outputs' bytes with their sha256 as
the node computed it; the driver checks them before writing them into the workspace.
"""

import dataclasses
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

# The folder of a `python` shim for the stages (`tools.machines.shim`), set by `make verify`.
SHIM_VAR = "RLREPRO_PYTHON_SHIM"
TAIL_LINES = 12  # of a failing stage's stderr, in the runner's report


@dataclasses.dataclass(frozen=True)
class Job:
    """A stage to run on a node.

    :param name: the stage's DVC address (for DVC_STAGE and the report).
    :param cmd: its resolved command.
    :param wdir: where it runs, relative to the repository root.
    :param outs: its outputs, relative to the root (files or folders).
    :param workspace: the repository root to run in place (a node sharing the driver's files),
        or None to run in a folder of its own.
    """

    name: str
    cmd: str
    wdir: str
    outs: tuple[str, ...]
    workspace: str | None


@dataclasses.dataclass(frozen=True)
class Result:
    """What a node sends back for a `Job`.

    :param returncode: the command's exit code (negative: killed by that signal).
    :param stderr_tail: its last lines of stderr.
    :param seconds: its wall time.
    :param host: the node's host name.
    :param outs: in folder mode, every output file's bytes and sha256 as the node read them, by
        path relative to the root; empty when run in place or when the command failed.
    """

    name: str
    returncode: int
    stderr_tail: str
    seconds: float
    host: str
    outs: Mapping[str, tuple[bytes, str]]


def sha256(data: bytes) -> str:
    """The hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def unpack(
    folder: Path, archive: bytes, files: Mapping[str, bytes], clear: tuple[str, ...]
) -> None:
    """Lay out a stage's folder: the tar `archive`, then `clear` removed (its outputs as
    committed), then `files` (path relative to `folder` -> bytes) written on top."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    for path in clear:
        target = folder / path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for path, data in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def collect(folder: Path, outs: tuple[str, ...]) -> dict[str, tuple[bytes, str]]:
    """Every file of `outs` (files or folders, relative to `folder`) with its sha256."""
    found = {}
    for out in outs:
        path = folder / out
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in paths:
            if file.is_file():
                data = file.read_bytes()
                found[file.relative_to(folder).as_posix()] = (data, sha256(data))
    return found


def command(root: Path, job: Job) -> subprocess.CompletedProcess[str]:
    """Run `job.cmd` in `root`/`job.wdir` through the shell DVC uses, with this node's Python's
    folder first on PATH (after the folder `SHIM_VAR` names, if set) and DVC_ROOT and DVC_STAGE
    set as `dvc repro` sets them."""
    from dvc.env import DVC_ROOT, DVC_STAGE
    from dvc.stage.run import _make_cmd, get_executable

    # A `python` shim that sends stages to another machine (`tools.machines`, `make verify
    # LIBC=...`) goes before this node's Python, which goes before the rest.
    first = [os.environ[SHIM_VAR]] if os.environ.get(SHIM_VAR) else []
    path = os.pathsep.join([*first, str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path}
    env.update({DVC_ROOT: str(root), DVC_STAGE: job.name})
    return subprocess.run(
        _make_cmd(get_executable(), job.cmd),
        cwd=root / job.wdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def execute(
    job: Job, archive: bytes | None = None, files: Mapping[str, bytes] | None = None
) -> Result:
    """Run `job` on this node: in place when `job.workspace` is set, else in a fresh folder laid
    out from `archive` and `files` (see `unpack`), removed afterwards.

    :return: the `Result`, with the outputs' bytes in folder mode when the command succeeded.
    """
    start = time.monotonic()
    if job.workspace is not None:
        done = command(Path(job.workspace), job)
        return _result(job, done, start, {})
    folder = Path(tempfile.mkdtemp(prefix="rlrepro-stage-"))
    try:
        unpack(folder, archive or b"", files or {}, job.outs)
        done = command(folder, job)
        outs = collect(folder, job.outs) if done.returncode == 0 else {}
        return _result(job, done, start, outs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _result(
    job: Job,
    done: subprocess.CompletedProcess[str],
    start: float,
    outs: Mapping[str, tuple[bytes, str]],
) -> Result:
    tail = "\n".join(done.stderr.rstrip().splitlines()[-TAIL_LINES:])
    return Result(
        job.name, done.returncode, tail, time.monotonic() - start, socket.gethostname(), outs
    )
