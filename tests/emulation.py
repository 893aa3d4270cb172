"""Running the project's own Python on another CPU: `qemu-x86_64 -cpu MODEL` (Debian's
`qemu-user`), installed when missing, or a one-line reason to skip."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Emulated CPUs of both vendors with AVX2 (emulation has no AVX-512).
CPU_MODELS = ("Haswell-v4", "EPYC-Rome")


def installed(program: str, package: str) -> str | None:
    """The path of `program`, installing Debian's `package` first when it is missing (and
    apt-get is there); None when it is still missing."""
    found = shutil.which(program)
    if found is None and shutil.which("apt-get") is not None:
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", package],
        ):
            subprocess.run(command, capture_output=True, check=False)
        found = shutil.which(program)
    return found


def qemu() -> str:
    """The path of `qemu-x86_64`, installing Debian's `qemu-user` if needed; skips the test with
    the reason when that is impossible."""
    found = installed("qemu-x86_64", "qemu-user")
    if found is None:
        pytest.skip("qemu-x86_64 is not installed and `apt-get install qemu-user` failed")
    return found


def shim(folder: Path, model: str, modules: tuple[str, ...], log: Path) -> Path:
    """A folder holding a `python` that runs `python -m <one of modules> ...` on the emulated CPU
    `model` (logging each such command to `log`) and anything else natively; put it first on PATH.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pattern = "|".join(modules)
    script = folder / "python"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$2" in {pattern})\n'
        f'  echo "{model} $*" >> "{log}"\n'
        f'  exec "{qemu()}" -cpu {model} "{sys.executable}" "$@" 2>/dev/null ;;\n'
        "esac\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    script.chmod(0o755)
    return folder
