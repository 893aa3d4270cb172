"""Stage `plot`: reward curves and aggregated metrics over seeds, per experiment.

Reads `experiments`, `seeds` and `plot` from params, the learning curves (`--curves`, a folder of
`<exp>-<seed>.csv`) and the evaluation summaries (`--evals`, `<exp>-<seed>.json`). Writes, per
experiment, the mean curve over seeds (`--out-curves/<exp>.csv`, for `dvc plots`) and a PNG with
a band (`--figures/<exp>.png`), and `--metrics` (JSON, for `dvc metrics`): each experiment's
evaluation return over its seeds.
"""

import io
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from rlrepro import cli, params
from rlrepro.curves import mean_curve, read_curve
from rlrepro.files import write_bytes, write_json

# PNG metadata matplotlib would stamp with its version: left out, so bytes depend on data only.
_PNG_METADATA: dict[str, str | None] = {"Software": None}


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """An experiment's metrics from its seeds' evaluation summaries (mean and std over seeds)."""
    means = [s["return_mean"] for s in summaries]
    return {
        "eval_return_mean": round(statistics.fmean(means), 4),
        "eval_return_std": round(statistics.pstdev(means), 4),
        "eval_return_min_seed": round(min(means), 4),
        "eval_return_max_seed": round(max(means), 4),
        "seeds": len(summaries),
        "episodes_per_seed": summaries[0]["episodes"],
    }


def figure(name: str, exp: params.Experiment, curve: pd.DataFrame) -> bytes:
    """A PNG of the mean curve with a mean +/- std band; fixed size, dpi and metadata."""
    # matplotlib's defaults, not the user's matplotlibrc: the bytes depend on the data only
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        ax = fig.subplots()
        mean, std = curve["return_mean"], curve["return_std"]
        ax.plot(curve["step"], mean, label="mean over seeds")
        ax.fill_between(curve["step"], mean - std, mean + std, alpha=0.25, label="mean \u00b1 std")
        ax.set(
            title=f"{name}: {exp.algo} on {exp.env} ({int(curve['n_seeds'].iloc[0])} seeds)",
            xlabel="env steps",
            ylabel="episode return (moving average)",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata=_PNG_METADATA)
    return buffer.getvalue()


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete the files in `folder` of experiments no longer in params (outputs persist)."""
    for path in sorted(folder.glob("*")):
        if path.is_file() and path.stem not in keep:
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    """Write the mean curves, figures and metrics of every experiment in params."""
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--curves", type=Path, required=True, help="folder of training curves")
    parser.add_argument("--evals", type=Path, required=True, help="folder of evaluation JSONs")
    parser.add_argument("--out-curves", type=Path, required=True, help="folder for mean curves")
    parser.add_argument("--figures", type=Path, required=True, help="folder for PNG figures")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    def work() -> None:
        raw = params.read(args.params)
        seeds = params.seeds(raw)
        settings = params.section(raw, params.Plot, "plot")
        names = sorted(params.section_names(raw, "experiments"))
        experiments = {name: params.experiment(raw, name) for name in names}
        metrics = {}
        for name, exp in experiments.items():
            runs = [f"{name}-{seed}" for seed in seeds]
            missing = [run for run in runs if not (args.curves / f"{run}.csv").is_file()]
            if missing:
                raise cli.StageError(
                    f"{args.curves}: no curve for {', '.join(missing)}; "
                    "run `dvc repro` to train them"
                )
            curve = mean_curve(
                [read_curve(args.curves / f"{run}.csv") for run in runs],
                settings.points,
                settings.window,
            )
            write_bytes(
                args.out_curves / f"{name}.csv",
                curve.to_csv(index=False, lineterminator="\n").encode("utf-8"),
            )
            write_bytes(args.figures / f"{name}.png", figure(name, exp, curve))
            missing = [run for run in runs if not (args.evals / f"{run}.json").is_file()]
            if missing:
                raise cli.StageError(
                    f"{args.evals}: no evaluation for {', '.join(missing)}; run `dvc repro`"
                )
            summaries = [json.loads((args.evals / f"{run}.json").read_text()) for run in runs]
            metrics[name] = aggregate(summaries)
        write_json(args.metrics, metrics)
        remove_stale(args.out_curves, set(experiments))
        remove_stale(args.figures, set(experiments))

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
