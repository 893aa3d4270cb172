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
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd

from rlrepro.core import layout, params


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def seed_row(folder: Path, exp: str, seed: int, threshold: float | None) -> dict[str, Any]:
    """One seed's figures (None where the files to compute them are missing)."""
    timing = _read_json(layout.run_file(folder / layout.TIMING, exp, seed, ".json"))
    summary = _read_json(layout.run_file(folder / layout.EVALS, exp, seed, ".json"))
    progress_file = layout.run_file(folder / layout.PROGRESS, exp, seed, ".csv")
    progress = pd.read_csv(progress_file) if progress_file.is_file() else pd.DataFrame()
    hit_step = None
    if threshold is not None and not progress.empty:
        reached = progress[progress["eval_return_mean"] >= threshold]
        hit_step = int(reached["step"].iloc[0]) if not reached.empty else None
    hit_seconds = None
    if timing is not None and hit_step is not None:
        hit_seconds = next(e["train_seconds"] for e in timing["evals"] if e["step"] == hit_step)
    return {
        "run": layout.run_name(exp, seed),
        "steps_per_second": timing["steps_per_second"] if timing else None,
        "train_seconds": timing["train_seconds"] if timing else None,
        "steps_to_threshold": hit_step,
        "seconds_to_threshold": hit_seconds,
        "eval_mean": summary["return_mean"] if summary else None,
        "eval_std": summary["return_std"] if summary else None,
    }


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _over_seeds(values: list[float | None], spec: str = ",.0f") -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    spread = statistics.pstdev(known) if len(known) > 1 else 0.0
    mean = format(statistics.fmean(known), spec)
    missing = len(values) - len(known)
    return f"{mean} ± {format(spread, spec)}" + (f" ({missing} never)" if missing else "")


def report(folder: Path) -> None:
    """Print the table of the pipeline in `folder`."""
    raw = params.read(folder / "params.yaml")
    header = ("run", "steps/s", "train s", "steps to thr", "s to thr", "final eval")
    print(f"\n{folder}  (threshold: the env's reward_threshold; s = training wall seconds)")
    print("  " + "".join(f"{h:>16}" if i else f"{h:<28}" for i, h in enumerate(header)))
    for exp_name in params.section_names(raw, "experiments"):
        exp = params.experiment(raw, exp_name)
        threshold = gym.spec(exp.env).reward_threshold
        rows = [seed_row(folder, exp_name, s, threshold) for s in params.seeds(raw)]
        for row in rows:
            cells = (
                _fmt(row["steps_per_second"]),
                _fmt(row["train_seconds"], ",.1f"),
                _fmt(row["steps_to_threshold"]),
                _fmt(row["seconds_to_threshold"], ",.1f"),
                f"{_fmt(row['eval_mean'], '.1f')} ± {_fmt(row['eval_std'], '.1f')}",
            )
            print(f"  {row['run']:<28}" + "".join(f"{c:>16}" for c in cells))
        print(
            f"  {exp_name + ' (' + str(len(rows)) + ' seeds)':<28}"
            + "".join(
                f"{c:>16}"
                for c in (
                    _over_seeds([r["steps_per_second"] for r in rows]),
                    _over_seeds([r["train_seconds"] for r in rows], ",.1f"),
                    _over_seeds([r["steps_to_threshold"] for r in rows]),
                    _over_seeds([r["seconds_to_threshold"] for r in rows], ",.1f"),
                    _over_seeds([r["eval_mean"] for r in rows], ".1f"),
                )
            )
            + f"   (threshold {threshold})"
        )


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table of each pipeline folder given (default: `.`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[Path()])
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / "params.yaml").is_file():
            print(
                f"error: {folder}: no params.yaml; give `.` or a studies/<name> folder",
                file=sys.stderr,
            )
            return 2
        report(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
