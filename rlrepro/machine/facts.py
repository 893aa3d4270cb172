"""Facts about this machine (CPU, instruction sets, cores, OS, library builds).

They explain a difference between two machines' results, so they are written beside the results,
in an untracked file (`layout.FACTS`), never into a DVC-tracked output.
"""

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rlrepro.core.requirements import KEY_PACKAGES

_FLAG_PREFIXES = ("avx", "sse", "fma", "amx")


def _cpuinfo() -> tuple[str, list[str]]:
    path = Path("/proc/cpuinfo")
    model, flags = platform.processor() or "unknown", list[str]()
    if path.is_file():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", "unknown", platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = sorted(f for f in value.split() if f.startswith(_FLAG_PREFIXES))
    return model, flags


def facts() -> dict[str, Any]:
    """CPU model and SIMD flags, cores, OS, Python and its build, the C library, package versions
    and numeric back-ends, with
    which portable kernels the stages run here (`portable.kernels` after `portable.install`,
    which compiles them on a machine's first run)."""
    import numpy as np
    import torch
    from numpy._core._multiarray_umath import __cpu_features__

    from rlrepro.numerics import portable

    portable.install()

    model, flags = _cpuinfo()
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "cpu_model": model,
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        # The build of Python (CPython 3.11.2 of Debian and a pyenv 3.11.7 are both "3.11") and the
        # C library: two axes of "another machine" besides the CPU.
        "python_build": " ".join(
            (platform.python_implementation(), sys.version.split()[0], *platform.python_build())
        )
        + f" [{platform.python_compiler()}]",
        "libc": " ".join(platform.libc_ver()) or "unknown",
        "packages": {name: metadata.version(name) for name in KEY_PACKAGES},
        "numpy_simd_in_use": sorted(k for k, on in __cpu_features__.items() if on),
        "numpy_blas": {k: blas.get(k) for k in ("name", "version")},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_mkl": torch.backends.mkl.is_available(),
        "portable_kernels": portable.kernels(),
        "env": {
            k: os.environ.get(k)
            for k in sorted(os.environ)
            if k.startswith(("OMP_", "MKL_", "OPENBLAS_", "ATEN_", "NPY_", "KMP_"))
        },
    }
