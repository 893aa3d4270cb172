"""Stage `plot`: reward curves over seeds, per experiment and side by side, and the final IQMs.

Reads `experiments`, `seeds`, `plot` and `stats.confidence` from params, the learning curves
(`--curves`, a folder of `<exp>-<seed>.csv`) and the statistics (`--stats`, from stage
`metrics`). Writes, per experiment, the mean curve over seeds against env steps
(`--mean-curves/<exp>.csv`, the one plot per experiment of `dvc plots`) and against episodes
(`--episode-curves/<exp>.csv`), and a figure of both (`--figures/<exp>.png`); and for all
experiments together, their curves (`all-curves.png`) and a point plot of their final IQM with
its bootstrap interval (`all-final-iqm.png`). Bands are Student's t intervals of the mean over
seeds. PNGs carry no date or version stamp.
"""

import dataclasses
import io
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rlrepro import console
from rlrepro.core import layout, params
from rlrepro.core.files import remove_others, write_bytes
from rlrepro.results import read_stats
from rlrepro.results.curves import mean_curve, read_curve
from rlrepro.results.stats import MIN_RUNS

# PNG metadata matplotlib would stamp with its version: left out, so bytes depend on data only.
_PNG_METADATA: dict[str, str | None] = {"Software": None}
COMBINED = ("all-curves", "all-final-iqm")


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `plot` reads and writes."""

    curves: Path
    stats: Path
    mean_curves: Path
    episode_curves: Path
    figures: Path


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


def _axes(fig: Figure, smoothing: int) -> tuple[Axes, Axes]:
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
        by_step, by_episode = _axes(fig, plot.window)
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
    """A point plot of each experiment's IQM over runs, with its bootstrap interval where the
    metrics have one (enough runs), and the mean over runs with its t interval."""
    names = sorted(metrics)
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig = Figure(figsize=(8.0, 0.6 * len(names) + 2.0), dpi=100)
        ax = fig.subplots()
        for key, label, marker, shift in (
            ("return_iqm", "IQM", "o", 0.1),
            ("return_mean", "mean", "s", -0.1),
        ):
            for row, name in enumerate(names):
                m = metrics[name]
                low, high = m.get(f"{key}_ci_low", m[key]), m.get(f"{key}_ci_high", m[key])
                ax.errorbar(
                    m[key],
                    row + shift,
                    xerr=[[m[key] - low], [high - m[key]]],
                    fmt=marker,
                    color=f"C{0 if key == 'return_iqm' else 1}",
                    capsize=4,
                    label=label if row == 0 else None,
                )
        ax.set_yticks(range(len(names)), [f"{n} ({metrics[n]['runs']} runs)" for n in names])
        ax.set(
            xlabel="evaluation return over runs (a run's score: its mean episode return)",
            title=f"Final performance, with {confidence:.0%} intervals over runs\n"
            f"IQM: bootstrap (shown from {MIN_RUNS} runs); mean: Student's t",
        )
        ax.grid(alpha=0.3, axis="x")
        ax.legend(loc="best", fontsize="small")
        return _png(fig)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_bytes(path, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def _seed_curves(folder: Path, name: str, seeds: tuple[int, ...]) -> list[pd.DataFrame]:
    files = [layout.run_file(folder, name, seed, ".csv") for seed in seeds]
    return [read_curve(file) for file in layout.require(files, "learning curve")]


def plot(raw: dict[str, Any], paths: Paths) -> list[Path]:
    """Write the mean curves and figures of every experiment in params; :return: the figures."""
    seeds = params.seeds(raw)
    settings = params.section(raw, params.Plot, "plot")
    confidence = params.section(raw, params.Stats, "stats").confidence
    names = sorted(params.section_names(raw, "experiments"))
    stats = read_stats(paths.stats, names)
    every: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    figures = []
    for name in names:
        exp = params.experiment(raw, name)
        seed_curves = _seed_curves(paths.curves, name, seeds)
        curves = (
            mean_curve(seed_curves, settings.points, settings.window, confidence, x="step"),
            mean_curve(seed_curves, settings.points, settings.window, confidence, x="episode"),
        )
        _write_csv(layout.experiment_file(paths.mean_curves, name, ".csv"), curves[0])
        _write_csv(layout.experiment_file(paths.episode_curves, name, ".csv"), curves[1])
        title = f"{name}: {exp.algo} on {exp.env} ({len(seeds)} seeds)"
        threshold = gym.spec(exp.env).reward_threshold
        figures.append(layout.experiment_file(paths.figures, name, ".png"))
        write_bytes(figures[-1], figure(title, {name: curves}, settings, confidence, threshold))
        every[f"{name} ({exp.env})"] = curves
    title = f"All experiments ({len(seeds)} seeds each)"
    figures += [paths.figures / f"{name}.png" for name in COMBINED]
    write_bytes(figures[-2], figure(title, every, settings, confidence))
    write_bytes(figures[-1], iqm_figure(stats, confidence))
    remove_others(paths.mean_curves, set(names))
    remove_others(paths.episode_curves, set(names))
    remove_others(paths.figures, set(names) | set(COMBINED))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Write the mean curves and figures of every experiment in params."""
    params_file, _, paths = console.parse(__doc__, Paths, argv)
    return console.run(lambda: plot(params.read(params_file), paths))


if __name__ == "__main__":
    sys.exit(console.run(main))
