"""Stage `report`: the page a reader opens first, `reports/README.md`.

Reads `experiments`, `seeds`, `evaluate` and `stats` from params, the statistics (`--stats`, from
stage `metrics`) and the lock file (`--requirements`). Writes `--page` (Markdown): the results
table, every run's score by seed, the comparisons, the figures (linked relative to the page; the
performance profiles are stage `plot`'s `profile-<env>.png`), how the numbers were produced,
and the pinned versions of the key packages. Its bytes depend on those inputs only.
"""

import dataclasses
import sys
from pathlib import Path
from typing import Any

from rlrepro import console
from rlrepro.core import params, requirements
from rlrepro.core.files import write_bytes
from rlrepro.results import profile_name, read_stats
from rlrepro.results.bounds import return_bounds
from rlrepro.results.stats import MIN_RUNS, kept

# What the simulations of docs/statistics.md (`python -m tools.coverage`) measured of the mean's
# t interval at 10 runs: the shapes of run scores where it covers within 2 points of its level,
# and where it does not (with the measured coverage).
T_COVERS = "normal run scores and run scores against a ceiling"
T_FAILS = "skewed run scores (log-normal: 83%) and a tenth of runs taking off (65%)"


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `report` reads and writes."""

    stats: Path
    requirements: Path
    page: Path


def _budget(exp: params.Experiment) -> str:
    ((unit, amount),) = exp.budget.items()
    return f"{amount:,} {unit}"


def _interval(m: dict[str, Any], key: str) -> str:
    """`value [low, high]` of statistic `key` (e.g. `return_iqm`), or the value alone."""
    if f"{key}_ci_low" not in m:
        return f"{m[key]:.1f}"
    return f"{m[key]:.1f} [{m[f'{key}_ci_low']:.1f}, {m[f'{key}_ci_high']:.1f}]"


def _row(name: str, exp: params.Experiment, m: dict[str, Any]) -> str:
    success = f"{m['episodes_success_rate']:.1%}" if "episodes_success_rate" in m else "-"
    if "runs_reaching_threshold" in m:
        reached = f"{m['runs_reaching_threshold']} of {m['runs']}"
        if "steps_to_threshold_mean" in m:
            reached += f", {m['steps_to_threshold_mean']:,.0f} steps"
    else:
        reached = "not evaluated during training"
    network = "-".join(str(h) for h in exp.policy.hidden) + f" {exp.policy.activation}"
    return (
        f"| `{name}` | {exp.env} | {exp.algo} | {network} | {_budget(exp)} | {m['runs']} "
        f"| {_interval(m, 'return_iqm')} | {_interval(m, 'return_mean')} | {success} "
        f"| {reached} |"
    )


def verdict(x: str, y: str, entry: dict[str, float]) -> str:
    """What the interval of the probability that `x` improves on `y` supports."""
    if "ci_low" not in entry:
        return f"too few runs for an interval (fewer than {MIN_RUNS} each)"
    if entry["ci_low"] > 0.5:
        return f"`{x}` better"
    if entry["ci_high"] < 0.5:
        return f"`{y}` better"
    return "no difference shown"


def comparisons(metrics: dict[str, Any]) -> list[str]:
    """The table of every pair of experiments on one env, X before Y in sorted order: the
    probability of improvement with its interval, and the verdict it supports; none when no two
    experiments share an env. Y over X is its complement: 1 - P, interval [1 - high, 1 - low]."""
    rows = []
    for x in sorted(metrics):
        for y, entry in sorted(metrics[x].get("improvement_over", {}).items()):
            if x < y:
                probability = f"{entry['probability']:.2f}"
                if "ci_low" in entry:
                    probability += f" [{entry['ci_low']:.2f}, {entry['ci_high']:.2f}]"
                rows.append(f"| `{x}` | `{y}` | {probability} | {verdict(x, y, entry)} |")
    if not rows:
        return []
    return [
        "## Comparisons",
        "",
        "The probability of improvement of X over Y is P(a run of X scores more than a run of "
        "Y), ties counted half, over every pair of their runs (rliable's definition); 0.5 is "
        "no difference. A verdict needs the whole interval on one side of 0.5. Each pair is "
        "bootstrapped once, seeded from its two names: P(Y > X) is 1 - P(X > Y) and its "
        "interval [1 - high, 1 - low].",
        "",
        "| X | Y | P(X > Y) [CI] | verdict |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def runs_table(names: list[str], metrics: dict[str, Any]) -> list[str]:
    """Every run's score (the mean return of its evaluation episodes), one column per seed."""
    seeds = metrics[names[0]]["seeds"]
    return [
        "## Runs",
        "",
        "Every run's score (the mean return of its evaluation episodes), by seed: the numbers "
        "the aggregates above summarize.",
        "",
        f"| experiment | {' | '.join(f'seed {seed}' for seed in seeds)} |",
        f"|---|{'---|' * len(seeds)}",
        *(
            f"| `{name}` | {' | '.join(f'{score:.1f}' for score in metrics[name]['run_scores'])} |"
            for name in names
        ),
        "",
    ]


def _bounds(experiments: dict[str, params.Experiment]) -> str:
    """The possible returns of each env that has bounds, e.g. `CartPole-v1 [0, 500]`."""
    shown = []
    for env in sorted({exp.env for exp in experiments.values()}):
        low, high = return_bounds(env)
        if low is not None or high is not None:
            shown.append(
                f"{env} [{'-inf' if low is None else f'{low:.0f}'}, "
                f"{'inf' if high is None else f'{high:.0f}'}]"
            )
    return ", ".join(shown) if shown else "none of these envs has known bounds"


def _iqm_words(runs: int) -> str:
    """What the IQM keeps of `runs` run scores."""
    dropped = runs // 4
    if dropped == 0:
        return f"with {runs} runs nothing is dropped: the IQM is the mean"
    return f"with {runs} runs the middle {kept(runs)} are kept ({dropped} dropped each side)"


def page(raw: dict[str, Any], metrics: dict[str, Any], versions: dict[str, str]) -> str:
    """The report's Markdown."""
    seeds = params.seeds(raw)
    evaluation = params.section(raw, params.Evaluation, "evaluate")
    settings = params.section(raw, params.Stats, "stats")
    names = sorted(params.section_names(raw, "experiments"))
    experiments = {name: params.experiment(raw, name) for name in names}
    lines = [
        "# Results",
        "",
        "Generated by the pipeline (`dvc repro`, stage `report`) from `params.yaml` and the "
        "evaluation results; do not edit by hand.",
        "",
        f"Each experiment was trained once per seed ({', '.join(map(str, seeds))}) and its final "
        f"deterministic policy played {evaluation.episodes} evaluation episodes per seed "
        f"(episode *i* reset with seed {evaluation.seed} + *i*). A run (one seed) scores the "
        "mean return of its episodes. The IQM and the mean are over the runs' scores. The IQM "
        "(interquartile mean) is rliable's, `scipy.stats.trim_mean(scores, 0.25)`: the mean "
        "after dropping the lowest and the highest quarter of the runs, rounded down; "
        f"{_iqm_words(len(seeds))}. The IQM's {settings.confidence:.0%} interval is a "
        f"percentile bootstrap over runs ({settings.bootstrap_samples:,} replicates, seed "
        f"{settings.seed} and the experiment's name), shown from {MIN_RUNS} runs: with fewer it "
        "covers less than its level (docs/statistics.md). The mean's is Student's t over the "
        f"runs' scores, cut to the env's possible returns ({_bounds(experiments)}). Simulated, "
        f"it holds its level within 2 points at 10 runs for {T_COVERS}, but not for {T_FAILS}: "
        "where the runs below are skewed or a few are far above the rest, it is too narrow. "
        "Success is the share of all episodes at or above the env's reward threshold; "
        "*reached* counts the runs whose periodic evaluation during training reached it, and "
        "their mean env steps to get there.",
        "",
        "| experiment | env | algorithm | network | budget | runs "
        f"| IQM [{settings.confidence:.0%} CI] | mean [{settings.confidence:.0%} CI] "
        "| success | reached threshold |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_row(name, experiments[name], metrics[name]) for name in names),
        "",
        *runs_table(names, metrics),
        *comparisons(metrics),
        "## Figures",
        "",
        "Learning curves: the moving average of training episode returns, mean over seeds with a "
        f"{settings.confidence:.0%} t interval, by env step and by episode.",
        "",
        "![All experiments' learning curves](figures/all-curves.png)",
        "",
        "![Final IQM per experiment](figures/all-final-iqm.png)",
        "",
        "Performance profiles (rliable): for each env, the share of an experiment's runs that "
        "score above each threshold, with its bootstrap band from "
        f"{MIN_RUNS} runs, and every run's score as a tick. Where the table gives one number per "
        "experiment, a profile shows the whole distribution of its runs: whether an experiment "
        "is better for every threshold or only for some, and whether its mean comes from all "
        "runs or from a few that took off.",
        "",
        *(
            f"![Performance profile on {env}](figures/{profile_name(env)}.png)"
            for env in sorted({exp.env for exp in experiments.values()})
        ),
        "",
        *(f"![{name}](figures/{name}.png)" for name in names),
        "",
        "## How to reproduce",
        "",
        "`make repro` (or `dvc repro`) regenerates every number here, byte for byte; "
        "`make verify` reruns the committed pipeline in a fresh clone and compares. Videos of the "
        "trained agents (`make videos`, into `reports/videos/`) are rendered outside the "
        "pipeline: a renderer's pixels may differ between machines.",
        "",
        "## Pinned versions",
        "",
        "| package | version |",
        "|---|---|",
        *(f"| {name} | {version} |" for name, version in versions.items()),
        "",
    ]
    return "\n".join(lines)


def report(raw: dict[str, Any], paths: Paths) -> str:
    """Write the report page; :return: its text."""
    names = sorted(params.section_names(raw, "experiments"))
    stats = read_stats(paths.stats, names)
    versions = requirements.key_versions(requirements.locked(paths.requirements))
    text = page(raw, stats, versions)
    write_bytes(paths.page, text.encode("utf-8"))
    return text


def main(argv: list[str] | None = None) -> int:
    """Write the report page."""
    params_file, _, paths = console.parse(__doc__, Paths, argv)
    return console.run(lambda: report(params.read(params_file), paths))


if __name__ == "__main__":
    sys.exit(console.run(main))
