"""Stage `plot`: reward curves over seeds, per experiment and side by side, and the final IQMs.

Reads `experiments`, `seeds`, `plot` and `stats.confidence` from params, the learning curves
(`--curves`, a folder of `<exp>-<seed>.csv`) and the metrics (`--metrics`, from stage `metrics`).
Writes, per experiment, the mean curve over seeds against env steps (`--out-curves/<exp>.csv`,
for `dvc plots`) and against episodes (`--out-episode-curves/<exp>.csv`), and a figure of both
(`--figures/<exp>.png`); and for all experiments together, their curves (`all-curves.png`) and
a point plot of their final IQM with its bootstrap interval (`all-final-iqm.png`). Bands are
Student's t intervals of the mean over seeds. PNGs carry no date or version stamp.
"""

import io
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rlrepro import cli, params, stats
from rlrepro.curves import mean_curve, read_curve
from rlrepro.files import write_bytes

# PNG metadata matplotlib would stamp with its version: left out, so bytes depend on data only.
_PNG_METADATA: dict[str, str | None] = {"Software": None}
COMBINED = ("all-curves", "all-final-iqm")


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata=_PNG_METADATA)
    return buffer.getvalue()


def _band(ax: Axes, curve: pd.DataFrame, x: str, label: str) -> None:
    line = ax.plot(curve[x], curve["return_mean"], label=label)[0]
    ax.fill_between(
        curve[x], curve["return_ci_low"], curve["return_ci_high"], alpha=0.2, color=line.get_color()
    )


def _axes(fig: Figure, smoothing: int, confidence: float) -> tuple[Axes, Axes]:
    by_step, by_episode = fig.subplots(1, 2, sharey=True)
    ylabel = f"episode return (mean of last {smoothing} episodes)"
    by_step.set(xlabel="env steps", ylabel=ylabel)
    by_episode.set(xlabel="training episodes")
    for ax in (by_step, by_episode):
        ax.grid(alpha=0.3)
    return by_step, by_episode


def figure(
    title: str,
    curves: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    plot: params.Plot,
    confidence: float,
    threshold: float | None = None,
) -> bytes:
    """A PNG of one or more experiments' mean curves with bands, by env step and by episode,
    and the env's reward threshold when one is given."""
    # matplotlib's defaults, not the user's matplotlibrc: the bytes depend on the data only
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig = Figure(figsize=(11.0, 4.2), dpi=100)
        by_step, by_episode = _axes(fig, plot.window, confidence)
        for label, (steps, episodes) in curves.items():
            _band(by_step, steps, "step", label)
            _band(by_episode, episodes, "episode", label)
        if threshold is not None:
            for ax in (by_step, by_episode):
                ax.axhline(threshold, color="gray", linestyle="--", label="reward threshold")
        by_step.legend(loc="upper left", fontsize="small")
        fig.suptitle(f"{title}\nline: mean over seeds; band: {confidence:.0%} t interval")
        return _png(fig)


def iqm_figure(metrics: dict[str, dict[str, Any]], confidence: float) -> bytes:
    """A point plot of each experiment's final IQM with its bootstrap interval."""
    names = sorted(metrics)
    key = f"ci{round(confidence * 100)}"
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig = Figure(figsize=(8.0, 0.6 * len(names) + 2.0), dpi=100)
        ax = fig.subplots()
        for row, name in enumerate(names):
            m = metrics[name]
            low, high = m[f"return_iqm_{key}_low"], m[f"return_iqm_{key}_high"]
            ax.errorbar(
                m["return_iqm"],
                row,
                xerr=[[m["return_iqm"] - low], [high - m["return_iqm"]]],
                fmt="o",
                capsize=4,
                label=f"{name} ({m['seeds']} seeds)",
            )
        ax.set_yticks(range(len(names)), [f"{n} ({metrics[n]['seeds']} seeds)" for n in names])
        ax.set(
            xlabel="evaluation return, interquartile mean over seeds x episodes",
            title=f"Final performance ({min(m['seeds'] for m in metrics.values())} seeds each)\n"
            f"IQM with {confidence:.0%} bootstrap interval",
        )
        ax.grid(alpha=0.3, axis="x")
        ax.legend(loc="best", fontsize="small", title="IQM and interval")
        return _png(fig)


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete the files in `folder` of experiments no longer in params (outputs persist)."""
    for path in sorted(folder.glob("*")):
        if path.is_file() and path.stem not in keep:
            path.unlink()


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_bytes(path, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Write the mean curves and figures of every experiment in params."""
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--curves", type=Path, required=True, help="folder of training curves")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON (stage metrics)")
    parser.add_argument("--out-curves", type=Path, required=True, help="folder: curves by step")
    parser.add_argument(
        "--out-episode-curves", type=Path, required=True, help="folder: curves by episode"
    )
    parser.add_argument("--figures", type=Path, required=True, help="folder for PNG figures")
    args = parser.parse_args(argv)

    def work() -> None:
        raw = params.read(args.params)
        seeds = params.seeds(raw)
        plot = params.section(raw, params.Plot, "plot")
        confidence = params.section(raw, stats.Settings, "stats").confidence
        names = sorted(params.section_names(raw, "experiments"))
        if not args.metrics.is_file():
            raise cli.StageError(f"{args.metrics}: no such file; run `dvc repro` (stage metrics)")
        metrics = json.loads(args.metrics.read_text())
        every: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
        for name in names:
            exp = params.experiment(raw, name)
            runs = [f"{name}-{seed}" for seed in seeds]
            missing = [run for run in runs if not (args.curves / f"{run}.csv").is_file()]
            if missing:
                raise cli.StageError(
                    f"{args.curves}: no curve for {', '.join(missing)}; "
                    "run `dvc repro` to train them"
                )
            seed_curves = [read_curve(args.curves / f"{run}.csv") for run in runs]
            curves = (
                mean_curve(seed_curves, plot.points, plot.window, confidence, x="step"),
                mean_curve(seed_curves, plot.points, plot.window, confidence, x="episode"),
            )
            _write_csv(args.out_curves / f"{name}.csv", curves[0])
            _write_csv(args.out_episode_curves / f"{name}.csv", curves[1])
            title = f"{name}: {exp.algo} on {exp.env} ({len(runs)} seeds)"
            threshold = gym.spec(exp.env).reward_threshold
            write_bytes(
                args.figures / f"{name}.png",
                figure(title, {name: curves}, plot, confidence, threshold),
            )
            every[f"{name} ({exp.env})"] = curves
        title = f"All experiments ({len(seeds)} seeds each)"
        write_bytes(args.figures / "all-curves.png", figure(title, every, plot, confidence))
        write_bytes(args.figures / "all-final-iqm.png", iqm_figure(metrics, confidence))
        remove_stale(args.out_curves, set(names))
        remove_stale(args.out_episode_curves, set(names))
        remove_stale(args.figures, set(names) | set(COMBINED))

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
