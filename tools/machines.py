"""Other machines on this one, for the stages: another CPU, another C library, another build of
Python 3.11. Each is a command that stands for `python` for some stage modules:

- `cpu(MODEL)`: `qemu-x86_64 -cpu MODEL` (Debian's `qemu-user`, installed when missing) runs the
  stages that compute (train, evaluate); emulation is 15-20x slower.
- `glibc(SUITE)`: Debian SUITE's `libc6`, fetched with apt into a folder of its own (never
  installed over the system's), runs this venv's interpreter through its own loader
  (`ld-linux-x86-64.so.2 --library-path`), for every stage.
- `python_build(PATH)`: a venv of another CPython 3.11 (default: Debian's `/usr/bin/python3.11`,
  installed when missing) with the lock installed in it, for every stage.

`shim` writes a folder with a `python` that sends those stage modules to the machine; put it
first on PATH and run `dvc repro` or the runner as usual.
"""

import dataclasses
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from rlrepro.core.errors import UserError

# Emulated CPUs of both vendors with AVX2 (emulation has no AVX-512).
CPU_MODELS = ("Haswell-v4", "EPYC-Rome")
# The stage modules whose arithmetic depends on the CPU; the others only read and write files.
COMPUTING = ("stages.train", "stages.evaluate")
EVERY_STAGE = ("stages.*",)
# The C library of Debian 13: glibc 2.41, whose float functions are the correctly rounded ones.
LIBC_SUITE = "trixie"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
ROOT = Path(__file__).resolve().parents[1]


class MachineError(UserError):
    """This machine cannot be had here; the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class Machine:
    """A command standing for `python`, and what runs on it.

    :param name: what the machine is, e.g. "CPU Haswell-v4 (emulated)".
    :param python: the command, e.g. `("qemu-x86_64", "-cpu", "Haswell-v4", sys.executable)`.
    :param modules: the `python -m` modules sent to it (shell patterns).
    :param pythonpath: a folder added to the stages' PYTHONPATH there (a venv's site-packages,
        for an interpreter started by a foreign loader); none when it needs none.
    """

    name: str
    python: tuple[str, ...]
    modules: tuple[str, ...]
    pythonpath: str | None = None


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


def cpu(model: str) -> Machine:
    """The CPU `model`, emulated by `qemu-x86_64`, for the computing stages.

    :raises MachineError: when qemu is missing or does not know `model`.
    """
    found = installed("qemu-x86_64", "qemu-user")
    if found is None:
        raise MachineError("qemu-x86_64 is not installed and `apt-get install qemu-user` failed")
    listed = subprocess.run([found, "-cpu", "help"], capture_output=True, text=True).stdout
    known = {line.split()[1] for line in listed.splitlines() if line.startswith("x86 ")}
    if model not in known:
        raise MachineError(
            f"--cpu {model}: not a CPU model of qemu-x86_64; e.g. {', '.join(CPU_MODELS)} "
            "(`qemu-x86_64 -cpu help` lists them all)"
        )
    return Machine(f"CPU {model} (emulated)", (found, "-cpu", model, sys.executable), COMPUTING)


def glibc(folder: Path, suite: str = LIBC_SUITE) -> Machine:
    """Debian `suite`'s C library, unpacked into `folder`, running this venv's interpreter.

    :raises MachineError: when apt cannot fetch or unpack the package.
    """
    libdir = folder / "root" / "usr" / "lib" / "x86_64-linux-gnu"
    loader = libdir / "ld-linux-x86-64.so.2"
    if not loader.is_file():
        _fetch_libc(folder, suite)
    python = Path(sys.executable).resolve()
    search = f"{libdir}:{sysconfig.get_config_var('LIBDIR')}"
    version = _run([str(loader), "--library-path", search, str(python), "-c", _LIBC_VERSION])
    # Every site-packages folder of this interpreter (a venv's, and any a .pth file adds): the
    # loader starts the base interpreter, which does not know the venv.
    site = ":".join(p for p in sys.path if p.endswith("-packages"))
    command = (str(loader), "--library-path", search, str(python))
    return Machine(f"glibc {version} (Debian {suite})", command, EVERY_STAGE, site)


_LIBC_VERSION = "import platform; print(platform.libc_ver()[1])"


def _fetch_libc(folder: Path, suite: str) -> None:
    """`apt-get download libc6` from Debian `suite` into `folder`, then `dpkg-deb -x` it into
    `folder/root`, with apt's lists and cache in `folder` (the system's are untouched)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise MachineError(f"glibc of Debian {suite}: apt-get and dpkg-deb are needed")
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("lists/partial", "cache/archives/partial"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    sources = folder / "sources.list"
    sources.write_text(f"deb http://deb.debian.org/debian {suite} main\n")
    apt = [
        "apt-get",
        "-qq",
        f"-o=Dir::Etc::sourcelist={sources}",
        "-o=Dir::Etc::sourceparts=-",
        f"-o=Dir::State::Lists={folder / 'lists'}",
        f"-o=Dir::Cache={folder / 'cache'}",
    ]
    _run([*apt, "update"])
    _run([*apt, "download", "libc6"], cwd=folder)
    debs = sorted(folder.glob("libc6_*.deb"))
    if not debs:
        raise MachineError(f"glibc of Debian {suite}: apt-get download libc6 gave no package")
    _run(["dpkg-deb", "-x", str(debs[-1]), str(folder / "root")])


def python_build(folder: Path, python: Path = DEBIAN_PYTHON) -> Machine:
    """A venv in `folder` of the Python 3.11 at `python` (Debian's installed when missing), with
    requirements.txt installed as the Makefile installs it.

    :raises MachineError: when that Python is missing or not 3.11, or the install fails.
    """
    if python == DEBIAN_PYTHON and not python.is_file():
        installed("python3.11", "python3.11-venv")
    if not python.is_file():
        raise MachineError(f"{python}: no such interpreter (Debian: apt-get install python3.11)")
    version = _run([str(python), "-c", "import sys; print(sys.version.split()[0])"])
    if not version.startswith("3.11."):
        raise MachineError(f"{python}: Python {version}; the lock is for Python 3.11")
    venv = folder / "venv"
    stamp = venv / ".installed"
    lock = ROOT / "requirements.txt"
    if not stamp.is_file() or stamp.read_text() != lock.read_text():
        _run([str(python), "-m", "venv", "--clear", str(venv)])
        _run(["make", "-C", str(ROOT), "-s", f"{venv}/.installed", f"VENV={venv}"])
        stamp.write_text(lock.read_text())
    name = f"CPython {version} ({python})"
    return Machine(name, (str(venv / "bin" / "python"),), EVERY_STAGE)


def _run(command: list[str], cwd: Path | None = None) -> str:
    """Run `command`; :return: its stdout, stripped. :raises MachineError: naming it and the last
    line of its stderr when it fails."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise MachineError(f"`{shlex.join(command[:3])} ...` failed: {why}")
    return done.stdout.strip()


def shim(folder: Path, machine: Machine, log: Path) -> Path:
    """A folder holding a `python` that runs `python -m <a module of machine> ...` on `machine`
    (logging each such command to `log`) and anything else natively; put it first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    log.touch()
    pattern = "|".join(machine.modules)
    command = " ".join(shlex.quote(part) for part in machine.python)
    path = f'export PYTHONPATH="$PYTHONPATH:{machine.pythonpath}"\n' if machine.pythonpath else ""
    script = folder / "python"
    script.write_text(  # qemu's warnings about CPU features it lacks are dropped, nothing else
        "#!/bin/bash\n"
        f'if [ "$1" = -m ]; then case "$2" in {pattern})\n'
        f'  echo {shlex.quote(machine.name)} "$*" >> "{log}"\n'
        f"  {path}"
        f'  {command} "$@" \\\n'
        "    2> >(grep -v --line-buffered '^qemu-x86_64: warning: TCG doesn' >&2)\n"
        "  exit $? ;;\n"
        "esac; fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    script.chmod(0o755)
    return folder
