"""Learning curves: read a seed's curve, smooth it, and average seeds on a common step grid."""

from pathlib import Path

import numpy as np
import pandas as pd

from rlrepro.core.errors import StageError
from rlrepro.core.readers import Rows, read_csv
from rlrepro.results import CURVE_COLUMNS
from rlrepro.results.stats import t_interval


def read_curve(path: Path) -> pd.DataFrame:
    """A learning curve CSV (step, episode_return, episode_length), checked as it is read.

    :raises StageError: when it holds no episode, or is missing or damaged
        (`rlrepro.core.readers.read_csv`).
    """
    rows = Rows(none="no finished episode; raise the training budget")
    return read_csv(path, "learning curve CSV", CURVE_COLUMNS, rows)


def smooth(returns: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over up to `window` episodes (shorter at the start)."""
    sums = np.cumsum(np.insert(returns.astype(np.float64), 0, 0.0))
    ends = np.arange(1, len(returns) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def mean_curve(
    curves: list[pd.DataFrame], points: int, window: int, confidence: float, x: str = "step"
) -> pd.DataFrame:
    """Seed curves, smoothed and held constant between episodes, on `points` shared x values.

    :param x: "step" (the env step at which each episode ended) or "episode" (its number, 1, 2,
        ...). The grid runs from the first x at which every seed has finished an episode to the
        last x that every seed reached.
    :return: x, the mean, std, min and max over seeds, Student's t interval of the mean at
        `confidence` (ci_low, ci_high), and n_seeds.
    """
    xs = [c["step"].to_numpy() if x == "step" else np.arange(1, len(c) + 1) for c in curves]
    start, stop = max(int(v[0]) for v in xs), min(int(v[-1]) for v in xs)
    if stop < start:
        raise StageError(
            f"seed curves do not overlap (one ends at {x} {stop} before another's first "
            f"episode ends at {start}); raise the training budget"
        )
    grid = np.unique(np.linspace(start, stop, points).round().astype(np.int64))
    values = np.stack(
        [
            smooth(c["episode_return"].to_numpy(), window)[np.searchsorted(v, grid, "right") - 1]
            for c, v in zip(curves, xs, strict=True)
        ]
    )
    low, high = t_interval(values, confidence, axis=0)
    return pd.DataFrame(
        {
            x: grid,
            "return_mean": values.mean(axis=0),
            "return_std": values.std(axis=0),
            "return_min": values.min(axis=0),
            "return_max": values.max(axis=0),
            "return_ci_low": low,
            "return_ci_high": high,
            "n_seeds": len(curves),
        }
    )
