"""Training speed and sample efficiency, per experiment and seed, from a pipeline's last run.

    python -m benchmarks.bench [PIPELINE_DIR ...]     (default: the main pipeline, `.`)

For each pipeline folder (`.` or `studies/<name>`) it reads params.yaml, the progress curves
(`data/progress/`, the deterministic evaluations during training), the evaluation summaries
(`data/eval/`) and this machine's untracked wall-clock record (`reports/timing/`, written by
`train`), and prints per seed: training env steps per second, the env steps and training seconds
to the first periodic evaluation at or above the env's reward threshold, and the final evaluation
mean ± std; then per experiment the same over seeds. Wall-clock figures exist only where the
pipeline ran on this machine (`dvc repro` or `dvc repro --force`).
"""

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd

from rlrepro import console
from rlrepro.core import layout, params
from rlrepro.core.errors import UserError
from rlrepro.core.readers import Rows, read_csv, read_json
from rlrepro.results import PROGRESS_COLUMNS, SUMMARY_SHAPE

# The untracked timing record `train` writes (`rlrepro.training.recording.Recording.timing`).
TIMING_SHAPE = {
    "experiment": str,
    "seed": int,
    "steps": int,
    "train_seconds": float,
    "steps_per_second": (float, None),
    "evals": [{"step": int, "train_seconds": float}],
}


def _read_json(path: Path, what: str, shape: dict[str, Any]) -> dict[str, Any] | None:
    return read_json(path, what, shape) if path.is_file() else None


def seed_row(folder: Path, exp: str, seed: int, threshold: float | None) -> dict[str, Any]:
    """One seed's figures (None where the files to compute them are missing).

    :raises StageError: when a file is there but damaged (`rlrepro.core.readers`).
    """
    timing = _read_json(
        layout.run_file(folder / layout.TIMING, exp, seed, ".json"), "timing JSON", TIMING_SHAPE
    )
    summary = _read_json(
        layout.run_file(folder / layout.EVALS, exp, seed, ".json"),
        "evaluation summary",
        SUMMARY_SHAPE,
    )
    progress_file = layout.run_file(folder / layout.PROGRESS, exp, seed, ".csv")
    progress = pd.DataFrame()
    if progress_file.is_file():
        progress = read_csv(progress_file, "progress CSV", PROGRESS_COLUMNS, Rows(least=0))
    hit_step = None
    if threshold is not None and not progress.empty:
        reached = progress[progress["eval_return_mean"] >= threshold]
        hit_step = int(reached["step"].iloc[0]) if not reached.empty else None
    hit_seconds = None
    if timing is not None and hit_step is not None:
        times = [e["train_seconds"] for e in timing["evals"] if e["step"] == hit_step]
        hit_seconds = times[0] if times else None
    return {
        "run": layout.run_name(exp, seed),
        "steps_per_second": timing["steps_per_second"] if timing else None,
        "train_seconds": timing["train_seconds"] if timing else None,
        "steps_to_threshold": hit_step,
        "seconds_to_threshold": hit_seconds,
        "eval_mean": summary["return_mean"] if summary else None,
        "eval_std": summary["return_std"] if summary else None,
        "evaluated": not progress.empty,  # periodic evaluations during training
    }


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _mean_sd(values: list[float], spec: str) -> str:
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.fmean(values), spec)} ± {format(spread, spec)}"


def summary(rows: list[dict[str, Any]], threshold: float | None) -> str:
    """One line over an experiment's seeds: how many ran, how many final agents score at or
    above `threshold`, how many seeds' periodic evaluations ever reached it, and the means."""
    ran = [r for r in rows if r["eval_mean"] is not None]
    if not ran:
        return "no seed has run here"
    parts = [f"{len(ran)} of {len(rows)} seeds ran"]
    if threshold is not None:
        ending = sum(r["eval_mean"] >= threshold for r in ran)
        reached = [r["steps_to_threshold"] for r in ran if r["steps_to_threshold"] is not None]
        parts.append(f"{ending} end at or above {threshold:,.0f}")
        if any(r["evaluated"] for r in ran):
            parts.append(f"{len(reached)} reached it in periodic evaluations")
        if reached:
            parts.append(f"first at {_mean_sd(reached, ',.0f')} steps")
    parts.append(f"final eval {_mean_sd([r['eval_mean'] for r in ran], ',.1f')}")
    timed = [r["train_seconds"] for r in ran if r["train_seconds"] is not None]
    if timed:
        parts.append(f"train {_mean_sd(timed, ',.1f')} s")
    return "; ".join(parts)


def report(folder: Path) -> None:
    """Print the table of the pipeline in `folder`."""
    raw = params.read(folder / "params.yaml")
    header = ("run", "budget", "steps/s", "train s", "steps to thr", "s to thr", "final eval")
    print(f"\n{folder}  (threshold: the env's reward_threshold; s = training wall seconds)")
    widths = (28, 15, 9, 9, 14, 10, 18)
    print(
        "  "
        + "".join(
            f"{h:>{w}}" if i else f"{h:<{w}}"
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for exp_name in params.section_names(raw, "experiments"):
        exp = params.experiment(raw, exp_name)
        threshold = gym.spec(exp.env).reward_threshold
        budget = ", ".join(f"{v:,} {k}" for k, v in exp.budget.items())
        rows = [seed_row(folder, exp_name, s, threshold) for s in params.seeds(raw)]
        for row in rows:
            never = row["evaluated"] and row["steps_to_threshold"] is None
            cells = (
                budget,
                _fmt(row["steps_per_second"]),
                _fmt(row["train_seconds"], ",.1f"),
                "never" if never else _fmt(row["steps_to_threshold"]),
                _fmt(row["seconds_to_threshold"], ",.1f"),
                f"{_fmt(row['eval_mean'], ',.1f')} ± {_fmt(row['eval_std'], ',.1f')}",
            )
            print(
                f"  {row['run']:<28}"
                + "".join(f"{c:>{w}}" for c, w in zip(cells, widths[1:], strict=True))
            )
        print(f"  {exp_name}: {summary(rows, threshold)}")


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table of each pipeline folder given (default: `.`).

    :raises UserError: when a folder has no params.yaml, or a file in it is damaged.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[Path()])
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / "params.yaml").is_file():
            raise UserError(f"{folder}: no params.yaml; give `.` or a studies/<name> folder")
        report(folder)
    return 0


if __name__ == "__main__":
    sys.exit(console.run(main))
