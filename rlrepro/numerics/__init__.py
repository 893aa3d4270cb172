"""One determinism path for every stage: environment pins, torch settings and seeding.

`pin_environment` must run before numpy or torch is imported (the `rlrepro` package does it on
import); `configure_torch` and `seed_everything` run at the start of each stage.
"""

import contextlib
import os
import platform
import random
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Values that override whatever the user's shell sets: math libraries read them once, at load.
PINNED_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_DYNAMIC": "FALSE",
    # MKL's conditional numerical reproducibility: the same results on every instruction set, for
    # what still goes to MKL: the QR decomposition of orthogonal initialisation (PPO's and A2C's
    # weights: other bits under MKL_CBWR=AVX2 and AVX512, measured on one CPU). Float32
    # products no longer do (`portable`'s matmul), so it costs nothing on the training paths.
    "MKL_CBWR": "COMPATIBLE",
}
if platform.machine().lower() in ("x86_64", "amd64"):
    # ATen's own kernels (sums, tanh, softplus, ...) at one SIMD width on every x86-64 CPU: its
    # AVX-512 and AVX2 kernels sum in another order (measured: REINFORCE traces part at update 15).
    PINNED_ENV["ATEN_CPU_CAPABILITY"] = "avx2"

_NUMERIC_MODULES = ("numpy", "torch")


def pin_environment() -> None:
    """Set `PINNED_ENV` in this process (and so in its children).

    :raises RuntimeError: when numpy or torch was imported first, so the pins would come too late.
    """
    late = [name for name in _NUMERIC_MODULES if name in sys.modules]
    changed = [key for key, value in PINNED_ENV.items() if os.environ.get(key) != value]
    if late and changed:
        raise RuntimeError(
            f"import rlrepro before {', '.join(late)}: {', '.join(changed)} must be set first"
        )
    os.environ.update(PINNED_ENV)


def configure_torch(threads: int) -> None:
    """Pin torch's intra- and inter-op thread counts, turn on deterministic algorithms and install
    the portable CPU kernels (`rlrepro.numerics.portable`: sqrt, exp, log, tanh without MKL).

    :param threads: the number of intra-op threads (params `numerics.torch_threads`).
    """
    import torch

    from rlrepro.numerics import portable

    portable.install()

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        # Settable once per process, before any inter-op work; a second call raises.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    # `torch.use_deterministic_algorithms(True)` sets this flag, which eager ATen ops read, and
    # also torch._inductor's config, whose import (1.7 s) was a quarter of an evaluation's time;
    # nothing here compiles. tests/test_portable.py checks the flag through the public getter.
    torch._C._set_deterministic_algorithms(True)


def fuse(optimizer: "torch.optim.Optimizer") -> None:
    """Make Adam and AdamW `optimizer` step with torch's fused CPU kernel: one ATen call for every
    parameter, where the default CPU path runs about ten ops per parameter from Python. Other
    optimizers are left as they are. Call it before the first step (the optimizer's state
    records the choice, so a resumed or loaded one keeps it).

    The fused kernel is one of ATen's per-instruction-set kernels, pinned to its AVX2 build on
    every x86-64 CPU (`ATEN_CPU_CAPABILITY`, like the elementwise ones): the same machine code,
    so the same bits, on every CPU; its square root is the correctly rounded instruction.
    """
    import torch

    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        optimizer.defaults.update(fused=True, foreach=False)
        for group in optimizer.param_groups:
            group.update(fused=True, foreach=False)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators with `seed`."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
