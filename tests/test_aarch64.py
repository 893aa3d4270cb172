"""The kernels on aarch64: matmul.c cross-compiled with Debian's gcc-aarch64-linux-gnu and run
under qemu-aarch64 gives the reference's bits (portable.py's `_addmm`, computed here), as the
x86-64 build does at every vector width; portable_aten.cpp compiles for aarch64.

    python -m pytest -m slow tests/test_aarch64.py

installs the cross compilers and qemu-user with apt-get when they are missing (or skips, saying
which is missing). portable.c is x86-64 only (it calls ATen's AVX2 SLEEF functions): on aarch64
`portable.install()` registers the Python kernels (docs/machines.md).
"""

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
from rlrepro.numerics import portable
from tests.conftest import ROOT
from tests.test_matmul import SHAPES, _random
from tools.machines import installed

pytestmark = pytest.mark.slow

MATMUL = ROOT / "rlrepro" / "numerics" / "matmul.c"
DRIVER = ROOT / "tests" / "matmul_check.c"
FLAGS = ("-O3", "-ffp-contract=off", "-fno-math-errno")
# (beta, alpha): a plain product, a bias added, both scaled.
SCALES = [(0.0, 1.0), (1.0, 1.0), (-2.0, 3.0)]


def _tool(program: str, package: str) -> str:
    found = installed(program, package)
    if found is None:
        pytest.skip(f"{program} is missing and `apt-get install {package}` failed")
    return found


def _write_cases(path: Path) -> int:
    """Every shape of tests/test_matmul.py with every scale, and the reference's result, in
    matmul_check.c's format; :return: the number of cases."""
    chunks = []
    for number, (m, k, n) in enumerate(SHAPES):
        for beta, alpha in SCALES:
            a, b = _random(m, k, seed=2 * number), _random(k, n, seed=2 * number + 1)
            s = _random(m, n, seed=100 + number) if beta != 0 else torch.zeros(m, n)
            expected = portable._addmm(s, a, b, beta, alpha)
            chunks.append(struct.pack("<3q2fi", m, n, k, alpha, beta, int(beta != 0)))
            arrays = [a, b, *([s] if beta != 0 else []), expected]
            chunks += [np.ascontiguousarray(x.numpy(), "<f4").tobytes() for x in arrays]
    path.write_bytes(struct.pack("<q", len(SHAPES) * len(SCALES)) + b"".join(chunks))
    return len(SHAPES) * len(SCALES)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command[0]}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def test_matmul_on_aarch64_gives_the_reference_bits(tmp_path: Path) -> None:
    """Under qemu-aarch64, every case in all eight layouts has the reference's bits; natively,
    the x86-64 build (as portable.py compiles it) has them at every vector width."""
    gcc = _tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    qemu = _tool("qemu-aarch64", "qemu-user")
    cases = tmp_path / "cases.bin"
    count = _write_cases(cases)
    arm = tmp_path / "matmul_check-aarch64"
    _run([gcc, *FLAGS, "-static", str(DRIVER), str(MATMUL), "-o", str(arm), "-lm"])
    line = _run([qemu, str(arm), str(cases)])
    assert line.startswith(f"{8 * count} of {8 * count} products identical"), line
    native = tmp_path / "matmul_check"
    _run(["cc", *FLAGS, "-mavx2", "-mfma", str(DRIVER), str(MATMUL), "-o", str(native), "-lm"])
    for lanes in (1, 8, 16):
        line = _run([str(native), str(cases), str(lanes)])
        assert line.startswith(f"{8 * count} of {8 * count} products identical"), line


def test_the_aarch64_build_fails_on_other_bits(tmp_path: Path) -> None:
    """The check can fail: with one expected value's last bit flipped, qemu's run reports it."""
    gcc = _tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    qemu = _tool("qemu-aarch64", "qemu-user")
    cases = tmp_path / "cases.bin"
    _write_cases(cases)
    data = bytearray(cases.read_bytes())
    data[-1] ^= 0x01  # an exponent bit of the last expected value (little-endian: its top byte)
    cases.write_bytes(bytes(data))
    arm = tmp_path / "matmul_check-aarch64"
    _run([gcc, *FLAGS, "-static", str(DRIVER), str(MATMUL), "-o", str(arm), "-lm"])
    done = subprocess.run([qemu, str(arm), str(cases)], capture_output=True, text=True)
    assert done.returncode == 1 and "identical" in done.stdout


def test_the_aten_registration_compiles_for_aarch64(tmp_path: Path) -> None:
    """portable_aten.cpp, with torch's headers, compiles for aarch64 (linking needs an aarch64
    libtorch, which this machine does not have)."""
    gxx = _tool("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")
    include = Path(torch.__file__).parent / "include"
    source = ROOT / "rlrepro" / "numerics" / "portable_aten.cpp"
    _run([gxx, "-O1", "-std=c++17", f"-I{include}", "-c", str(source), "-o", str(tmp_path / "a.o")])
