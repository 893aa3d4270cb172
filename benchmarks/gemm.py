"""What `MKL_CBWR=COMPATIBLE` (pinned by `rlrepro.numerics` for the same bits on Intel and AMD)
costs a matrix product, against MKL choosing its own code for this CPU, in one run.

    python -m benchmarks.gemm [--runs 3] [--batch 256] [--width 64]

Each timing is a separate process (MKL reads `MKL_CBWR` once, when it starts) with every other
pin of `rlrepro.numerics` as the stages have it, the two settings in turn, A B A B ...: the
forward and backward pass of one linear layer (`--batch` rows, `--width` inputs and outputs, one
thread) 3,000 times. It prints the median microseconds per pass of each and their ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

PASSES = 3000


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


def _timed(cbwr: str | None, batch: int, width: int) -> float:
    """`one` in a process of its own with `MKL_CBWR=cbwr` (None: unset), run as a plain script so
    that importing `rlrepro` does not pin it back."""
    env = dict(os.environ)  # pinned by `rlrepro`, imported with this package
    env.pop("MKL_CBWR", None)
    if cbwr is not None:
        env["MKL_CBWR"] = cbwr
    command = [sys.executable, __file__, "--one", f"{batch}x{width}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(done.stdout)


def main(argv: list[str] | None = None) -> int:
    """Print both medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="processes of each (default 3)")
    parser.add_argument("--batch", type=int, default=256, help="rows (default 256: SAC's batch)")
    parser.add_argument("--width", type=int, default=64, help="inputs and outputs (default 64)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # BATCHxWIDTH: time in this process
    args = parser.parse_args(argv)
    if args.one:
        print(one(*(int(n) for n in args.one.split("x"))))
        return 0
    compatible, chosen = [], []
    for _ in range(args.runs):
        compatible.append(_timed("COMPATIBLE", args.batch, args.width))
        chosen.append(_timed(None, args.batch, args.width))
    a, b = statistics.median(compatible), statistics.median(chosen)
    print(
        f"linear {args.batch}x{args.width} forward+backward: MKL_CBWR=COMPATIBLE {a:7.1f} us, "
        f"MKL's own choice {b:7.1f} us, ratio {a / b:4.2f} (medians of {args.runs})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
