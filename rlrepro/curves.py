"""Learning curves: read a seed's curve, smooth it, and average seeds on a common step grid."""

from pathlib import Path

import numpy as np
import pandas as pd


def read_curve(path: Path) -> pd.DataFrame:
    """A learning curve CSV (step, episode_return, episode_length); :raises ValueError: if empty."""
    frame = pd.read_csv(path)
    if frame.empty:
        raise ValueError(f"{path}: no finished episode; raise the training budget")
    return frame


def smooth(returns: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over up to `window` episodes (shorter at the start)."""
    sums = np.cumsum(np.insert(returns.astype(np.float64), 0, 0.0))
    ends = np.arange(1, len(returns) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def mean_curve(curves: list[pd.DataFrame], points: int, window: int) -> pd.DataFrame:
    """Seed curves, smoothed and held constant between episodes, on `points` shared steps.

    The grid runs from the first step at which every seed has finished an episode to the last
    step that every seed reached. :return: step, mean, std, min and max over seeds, and n_seeds.
    """
    start = max(int(c["step"].iloc[0]) for c in curves)
    stop = min(int(c["step"].iloc[-1]) for c in curves)
    if stop < start:
        raise ValueError(
            f"seed curves do not overlap (one ends at step {stop} before another's first "
            f"episode ends at {start}); raise the training budget"
        )
    grid = np.unique(np.linspace(start, stop, points).round().astype(np.int64))
    values = np.stack(
        [
            smooth(c["episode_return"].to_numpy(), window)[
                np.searchsorted(c["step"].to_numpy(), grid, side="right") - 1
            ]
            for c in curves
        ]
    )
    return pd.DataFrame(
        {
            "step": grid,
            "return_mean": values.mean(axis=0),
            "return_std": values.std(axis=0),
            "return_min": values.min(axis=0),
            "return_max": values.max(axis=0),
            "n_seeds": len(curves),
        }
    )
