"""The lock installs on a user's machine: a fresh venv, pip's own configuration ignored
(`pip --isolated`: PyPI and the lock's index line only), hash-checking mode, gives a torch that is
the CPU build and imports. Slow (it installs every locked package): `make test-slow`.

Where PyTorch's CPU index cannot be reached (as on machines without outside access but for PyPI),
the local wheel folders that this machine's pip configuration names are given explicitly, and
pip is told not to retry that index, as the Makefile does.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.reachable import reachable

TORCH_INDEX = "download.pytorch.org"


def _local_wheel_folders() -> list[str]:
    """The `find-links` folders of this machine's pip configuration (none on a user's)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    folders = []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            folders += value.strip("'\"").split()
    return folders


@pytest.mark.slow
def test_the_lock_installs_a_cpu_torch_that_imports(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = [python, "-m", "pip", "--isolated", "install", "--quiet", "--no-deps"]
    install += ["--require-hashes", "-r", str(ROOT / "requirements.txt")]
    if not reachable(TORCH_INDEX):
        folders = _local_wheel_folders()
        if not folders:
            pytest.skip(f"{TORCH_INDEX} cannot be reached and no local wheel folder is configured")
        install += ["--retries", "0", *(f"--find-links={folder}" for folder in folders)]
    done = subprocess.run(install, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    code = "import torch; print(torch.__version__, torch.version.cuda, float(torch.ones(2).sum()))"
    imported = subprocess.run([python, "-c", code], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == "2.13.0+cpu None 2.0\n"
    checked = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
