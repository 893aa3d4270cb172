"""What every stage's `main` shares: the params path option and one-line errors."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with `--params` (default: params.yaml)."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="the params file (default: params.yaml)",
    )
    return result


class StageError(RuntimeError):
    """A check that failed; its message is one line saying what and what to do."""


def run(work: Callable[[], None]) -> int:
    """Call `work`; a `ValueError` (`ParamsError` too) or `StageError` becomes one line on stderr
    and exit code 2."""
    try:
        work()
    except (ValueError, StageError) as err:  # ParamsError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
