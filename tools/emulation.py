"""Running the project's own Python on another CPU: `qemu-x86_64 -cpu MODEL` (Debian's
`qemu-user`, installed when missing), for the stages that compute (train, evaluate)."""

import shutil
import subprocess
import sys
from pathlib import Path

from rlrepro.core.errors import UserError

# Emulated CPUs of both vendors with AVX2 (emulation has no AVX-512).
CPU_MODELS = ("Haswell-v4", "EPYC-Rome")
# The stage modules whose arithmetic depends on the CPU; the others only read and write files.
COMPUTING = ("stages.train", "stages.evaluate")


class EmulationError(UserError):
    """Emulation is impossible here; the message says why in one line."""


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


def qemu(model: str) -> str:
    """The path of `qemu-x86_64` (installing Debian's `qemu-user` if needed), checked to know
    the CPU `model`; raises EmulationError otherwise."""
    found = installed("qemu-x86_64", "qemu-user")
    if found is None:
        raise EmulationError("qemu-x86_64 is not installed and `apt-get install qemu-user` failed")
    listed = subprocess.run([found, "-cpu", "help"], capture_output=True, text=True).stdout
    known = {line.split()[1] for line in listed.splitlines() if line.startswith("x86 ")}
    if model not in known:
        raise EmulationError(
            f"--cpu {model}: not a CPU model of qemu-x86_64; e.g. {', '.join(CPU_MODELS)} "
            "(`qemu-x86_64 -cpu help` lists them all)"
        )
    return found


def shim(folder: Path, model: str, log: Path) -> Path:
    """A folder holding a `python` that runs `python -m <a COMPUTING module> ...` on the emulated
    CPU `model` (logging each such command to `log`) and anything else natively; put it first on
    PATH. Raises EmulationError when qemu cannot emulate `model`."""
    emulator = qemu(model)
    folder.mkdir(parents=True, exist_ok=True)
    log.touch()
    pattern = "|".join(COMPUTING)
    script = folder / "python"
    script.write_text(  # qemu's warnings about CPU features it lacks are dropped, nothing else
        "#!/bin/bash\n"
        f'case "$2" in {pattern})\n'
        f'  echo "{model} $*" >> "{log}"\n'
        f'  "{emulator}" -cpu {model} "{sys.executable}" "$@" \\\n'
        "    2> >(grep -v --line-buffered '^qemu-x86_64: warning: TCG doesn' >&2)\n"
        "  exit $? ;;\n"
        "esac\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    script.chmod(0o755)
    return folder
