"""rlrepro's float32 matrix product (`rlrepro/numerics/matmul.c`) against MKL's, in one run: MKL
choosing its own code for this CPU, and MKL under `MKL_CBWR=COMPATIBLE` (the same bits on every
CPU, which the pipeline pinned before it had its own product).

    python -m benchmarks.gemm [--runs 3] [--shapes 256x64,256x256,64x64,1x64]

Each timing is a process of its own (MKL reads `MKL_CBWR` once, when it starts) with every other
pin of `rlrepro.numerics` as the stages have it, the three in turn, A B C A B C ...: the forward
and backward pass of one linear layer (BATCH rows, WIDTH inputs and outputs, one thread), 3,000
times. The default shapes are the pipelines' layers: SAC's 64-64 networks on batches of 256, the
double pendulum PPO's 256-256, CartPole PPO's 64-64 on batches of 64, and acting on one
observation. It prints the median microseconds per pass of each and the ratios of the medians.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PASSES = 3000
DEFAULT_SHAPES = "256x64,256x256,64x64,1x64"
# What each process runs with: "ours" installs rlrepro's kernels; the others leave ATen's
# products (MKL) in place, with `MKL_CBWR` unset or at COMPATIBLE.
KINDS = {"rlrepro": "ours", "MKL": None, "MKL compatible": "COMPATIBLE"}


def one(batch: int, width: int) -> float:
    """Microseconds per forward and backward pass of a linear layer, in this process."""
    import torch

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, width, generator=generator)
    weight = torch.randn(width, width, generator=generator, requires_grad=True)
    bias = torch.randn(width, generator=generator)
    for _ in range(100):  # warm-up
        torch.nn.functional.linear(inputs, weight, bias).sum().backward()
    began = time.perf_counter()
    for _ in range(PASSES):
        torch.nn.functional.linear(inputs, weight, bias).sum().backward()
    return (time.perf_counter() - began) / PASSES * 1e6


def _timed(kind: str | None, batch: int, width: int) -> float:
    """`one` in a process of its own, run as a plain script (importing `rlrepro` would pin
    `MKL_CBWR` back): with rlrepro's kernels for "ours", else with `MKL_CBWR=kind` (None:
    unset)."""
    env = dict(os.environ)  # pinned by `rlrepro`, imported with this package
    env.pop("MKL_CBWR", None)
    if kind is not None and kind != "ours":
        env["MKL_CBWR"] = kind
    command = [sys.executable, __file__, "--one", f"{batch}x{width}"]
    if kind == "ours":
        command.append("--ours")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(done.stdout)


def main(argv: list[str] | None = None) -> int:
    """Print each shape's medians and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="processes of each (default 3)")
    parser.add_argument(
        "--shapes", default=DEFAULT_SHAPES, help=f"BATCHxWIDTH,... (default {DEFAULT_SHAPES})"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # BATCHxWIDTH: time in this process
    parser.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        if args.ours:
            from rlrepro.numerics import portable  # pins first: numpy and torch not loaded yet

            portable.install()
        print(one(*(int(n) for n in args.one.split("x"))))
        return 0
    for shape in args.shapes.split(","):
        batch, width = (int(n) for n in shape.split("x"))
        times: dict[str, list[float]] = {name: [] for name in KINDS}
        for _ in range(args.runs):
            for name, kind in KINDS.items():
                times[name].append(_timed(kind, batch, width))
        ours, mkl, compatible = (statistics.median(times[name]) for name in KINDS)
        print(
            f"linear {batch}x{width} forward+backward: rlrepro {ours:7.1f} us, "
            f"MKL {mkl:7.1f} us, MKL compatible {compatible:7.1f} us; "
            f"rlrepro/MKL {ours / mkl:4.2f}, rlrepro/compatible {ours / compatible:4.2f} "
            f"(medians of {args.runs})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
