"""Results over seeds: statistics (IQM, bootstrap and t intervals), mean learning curves, and
reading what the stages before wrote (evaluation, progress and statistics files), each checked as
it is read (`rlrepro.core.readers`)."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlrepro.core import layout, params
from rlrepro.core.errors import StageError
from rlrepro.core.readers import REMAKE, Column, Rows, read_csv, read_json

# The columns of the files the stages write (`stages.evaluate.EPISODES_HEADER`,
# `rlrepro.agents.rollout.CURVE_HEADER`, `rlrepro.training.recording.PROGRESS_HEADER`).
EVAL_COLUMNS = (
    Column("episode", int, low=0, ordered=True),
    Column("episode_return", float),
    Column("episode_length", int, low=1),
)
CURVE_COLUMNS = (
    Column("step", int, low=1, ordered=True),
    Column("episode_return", float),
    Column("episode_length", int, low=1),
)
PROGRESS_COLUMNS = (
    Column("step", int, low=0, ordered=True),
    Column("episodes", int, low=0, ordered=True),
    Column("eval_return_mean", float),
    Column("eval_return_std", float, low=0),
    Column("eval_length_mean", float, low=0),
)
# An evaluation summary (`rlrepro.agents.rollout.summary`).
SUMMARY_SHAPE = {
    "episodes": int,
    "return_mean": float,
    "return_std": float,
    "return_min": float,
    "return_max": float,
    "length_mean": float,
}
# An experiment's statistics (`stages.metrics.experiment_stats`, `improvements`); `?`: optional.
STATS_SHAPE = {
    "runs": int,
    "confidence": float,
    "seeds": [int],
    "run_scores": [float],
    "return_iqm": float,
    "return_iqm_ci_low?": float,
    "return_iqm_ci_high?": float,
    "return_mean": float,
    "return_mean_ci_low?": float,
    "return_mean_ci_high?": float,
    "run_score_min": float,
    "run_score_max": float,
    "episodes": int,
    "episodes_return_mean": float,
    "episodes_return_std": float,
    "episodes_return_median": float,
    "episodes_return_iqm": float,
    "threshold?": float,
    "episodes_success_rate?": float,
    "runs_reaching_threshold?": int,
    "steps_to_threshold_mean?": float,
    "improvement_over?": {"*": {"probability": float, "ci_low?": float, "ci_high?": float}},
    "profile": {
        "thresholds": [float],
        "fraction": [float],
        "ci_low?": [float],
        "ci_high?": [float],
    },
}


def read_returns(path: Path, episodes: int) -> np.ndarray:
    """The episode returns of evaluation CSV `path`, which must hold `episodes` episodes.

    :raises StageError: when the file is missing or damaged (`rlrepro.core.readers.read_csv`).
    """
    rows = Rows(exact=episodes, why="params `evaluate.episodes`")
    return read_csv(path, "evaluation CSV", EVAL_COLUMNS, rows)["episode_return"].to_numpy()


def read_progress(path: Path, experiment: params.Experiment) -> pd.DataFrame:
    """The progress CSV `path` of a training of `experiment` (with `periodic_eval`): from its
    evaluation at step 0 to its last, at the end of the budget; at most one evaluation per
    `periodic_eval.every` steps besides those two.

    :raises StageError: when the file is missing or damaged, or its rows do not span the budget.
    """
    assert experiment.periodic_eval is not None
    frame = read_csv(path, "progress CSV", PROGRESS_COLUMNS, Rows(least=2, why="start and end"))
    ((unit, amount),) = experiment.budget.items()
    first, last = int(frame["step"].iloc[0]), frame.iloc[-1]
    every = experiment.periodic_eval.every
    column = "step" if unit == "steps" else "episodes"
    if first != 0 or int(last[column]) < amount or len(frame) > int(last["step"]) // every + 2:
        raise StageError(
            f"{path}: evaluations from step {first} to {column} {int(last[column]):,} "
            f"({len(frame)} rows), expected from step 0 to at least {column} {amount:,} (the "
            f"budget), one per {every:,} steps at most: the file is truncated or from other "
            f"params; {REMAKE}"
        )
    return frame


def read_stats(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The statistics of experiments `names` in `folder` (`<exp>.json`, from stage `metrics`).

    :raises StageError: naming the files that are missing, or one that is damaged.
    """
    files = [layout.experiment_file(folder, name, ".json") for name in names]
    layout.require(files, "statistics")
    stats = {}
    for name, file in zip(names, files, strict=True):
        stats[name] = read_json(file, "statistics JSON", STATS_SHAPE)
        _paired(file, "", stats[name])
        for other, entry in stats[name].get("improvement_over", {}).items():
            _paired(file, f"improvement_over.{other}.", entry)
    return stats


def _paired(path: Path, where: str, entry: dict[str, Any]) -> None:
    """Each interval in `entry` (keys `<x>ci_low`, `<x>ci_high`) whole: both ends or neither.

    :raises StageError: naming the end that is missing.
    """
    for key in entry:
        for end, other in (("ci_low", "ci_high"), ("ci_high", "ci_low")):
            if key.endswith(end) and key.removesuffix(end) + other not in entry:
                raise StageError(
                    f"{path}: `{where}{key}` without `{where}{key.removesuffix(end)}{other}`; "
                    f"expected both ends of the interval or neither; {REMAKE}"
                )


def profile_name(env: str) -> str:
    """The stem of the performance profile figure of env `env` (stage `plot` writes it, the
    results page links it)."""
    return f"profile-{env}"
