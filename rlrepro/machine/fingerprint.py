"""A cheap fingerprint of everything a machine check depends on, to skip a check that would only
repeat the last one.

It hashes what could change the check's result, read without importing numpy, torch or the envs:
the installed distributions (every `*.dist-info` name, which carries the version, in every
site-packages folder), the CPU (model name and flags) and the machine, Python's version and
build (`sys.version`), the C library's name and version (MuJoCo's physics calls its math
functions), the package lock and the physics references (their bytes), the check's own code,
and what params ask for. A package edited in place without a new version is not seen: delete
the last check's record (`reports/machine/env_check.json`) to force a full check.
"""

import hashlib
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

from rlrepro.core import requirements


def _cpu() -> str:
    """The first CPU's model name and flags from /proc/cpuinfo (or the platform's name)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return platform.processor()
    lines = info.read_text().split("\n\n", 1)[0].splitlines()
    return "\n".join(line for line in lines if line.startswith(("model name", "flags")))


def fingerprint(files: Iterable[Path], settings: str) -> str:
    """The sha256 (hex) of this machine and its packages, the bytes of `files` (the lock, the
    references, the check's code) and `settings` (what params ask the check for)."""
    digest = hashlib.sha256()
    libc = " ".join(platform.libc_ver())
    machine = (_cpu(), platform.machine(), sys.version, libc, "\n".join(requirements.installed()))
    for part in (*machine, settings):
        digest.update(part.encode() + b"\0")
    for file in files:
        digest.update(str(file.name).encode() + b"\0")
        digest.update(file.read_bytes() if file.is_file() else b"missing")
    return digest.hexdigest()
