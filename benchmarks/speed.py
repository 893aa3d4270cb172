"""`make bench`: where users wait, as ratios against an anchor measured in the same run.

    python -m benchmarks.speed [--runs 3] [--only NAME ...]

Each figure runs two whole processes (or two loops in one process) in turn, A B A B ..., and
prints the median of each and the ratio of the medians, so that a machine's speed drifting during
the run moves both alike:

- `noop`: a no-op `make repro` against `dvc status` of the same repository (the pipeline must be
  up to date: run `make repro` first). Target: at most 1.2x.
- `noop-repro`: the same no-op `make repro` against a no-op `dvc repro`. Target: at most 1.0x.
- `evaluate`: stage `evaluate` on `models/pendulum-ppo-0.zip` (100 episodes) against SB3's
  `evaluate_policy` on the same checkpoint and episode count (`benchmarks/sb3_evaluate.py`).
  Target: the stage at least 3x faster.
- `train`: stage `train` of cartpole-ppo seed 0 against a plain SB3 script with the same
  hyperparameters (`benchmarks/sb3_train.py`): the pipeline's tax, portable numerics included.
  Target: at most 1.0x.
- `train-sac`, `train-td3`, `train-ppo`: the same for the double-pendulum study's SAC (3,000 env
  steps), TD3 (13,000: 3,000 after its 10,000 random ones) and PPO (256-256 networks, 16,384 env
  steps), without periodic evaluations or snapshots, as the plain script has none. Targets: SAC
  at most 0.8x, the others 1.0x.
- `snapshots`: stage `train` of cartpole-ppo seed 0 with its budget raised to 20,000 steps and
  snapshots at the default interval (params.yaml's `resume`), against the same without `resume`:
  what snapshots cost a training.
- `reinforce`: REINFORCE's env steps per second (the whole training of pendulum-reinforce seed 0,
  5,000 episodes, about a minute each run) beside `env.step`'s own speed on the same env
  (pre-sampled random actions, resets included). Target: at least 2x the 6,500-7,500 that
  `reports/timing/` showed before the lean acting path, i.e. 15,000.
"""

import argparse
import dataclasses
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two commands to time in turn: `subject` against `anchor`."""

    name: str
    subject: list[str]
    anchor: list[str]
    target: str


def _seconds(command: list[str]) -> float:
    """The wall seconds of one run of `command` in the project folder (its output discarded)."""
    began = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - began


def _alternate(first: Callable[[], float], second: Callable[[], float], runs: int) -> str:
    """`first` and `second` in turn, `runs` times each after one warm-up of each; :return: a
    line with both medians and their ratio."""
    first(), second()
    a, b = [], []
    for _ in range(runs):
        a.append(first())
        b.append(second())
    ma, mb = statistics.median(a), statistics.median(b)
    return f"{ma:8.3f} vs {mb:8.3f}   ratio {ma / mb:5.2f}   (medians of {runs})"


def _snapshot_params(out: Path) -> tuple[Path, Path]:
    """params.yaml with cartpole-ppo's budget at 20,000 steps, as is and without `resume`."""
    import yaml

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["experiments"]["cartpole-ppo"]["budget"] = {"steps": 20000}
    with_snapshots, without = out / "snapshots.yaml", out / "no-snapshots.yaml"
    with_snapshots.write_text(yaml.safe_dump(data))
    del data["resume"]
    without.write_text(yaml.safe_dump(data))
    return with_snapshots, without


# The study experiments timed as train stages against plain SB3 scripts, cut to these budgets
# (env steps): (pipeline folder, experiment, steps, target).
CUT = (
    ("studies/double-pendulum", "double-pendulum-sac", 3000, "<= 0.8"),
    ("studies/double-pendulum", "double-pendulum-td3", 13000, "<= 1.0"),  # 3,000 after 10,000
    ("studies/double-pendulum", "double-pendulum-ppo", 16384, "<= 1.0"),
)


def _cut_params(out: Path, pipeline: str, name: str, steps: int) -> Path:
    """`pipeline`'s params with experiment `name` alone, its budget cut to `steps`, without
    periodic evaluations or snapshots (a plain script has neither)."""
    import yaml

    data = yaml.safe_load((ROOT / pipeline / "params.yaml").read_text())
    exp = data["experiments"][name]
    exp["budget"] = {"steps": steps}
    exp.pop("periodic_eval", None)
    data.pop("resume", None)
    data["experiments"] = {name: exp}
    path = out / f"{name}-{steps}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _train(out: Path, name: str, params: Path | None = None) -> list[str]:
    """The command of stage `train` for experiment `name`, seed 0, its outputs in `out`."""
    train_out = [f"--{k}" for k in ("model", "curve", "trace", "progress", "timing")]
    train = [sys.executable, "-m", "stages.train", "--exp", name, "--seed", "0"]
    train += [arg for k in train_out for arg in (k, str(out / k.strip("-")))]
    return train + (["--params", str(params)] if params else [])


def _pairs(out: Path) -> list[Pair]:
    python = sys.executable
    model = "models/pendulum-ppo-0.zip"
    train = _train(out, "cartpole-ppo")
    with_snapshots, without = _snapshot_params(out)
    cut = []
    for pipeline, name, steps, target in CUT:
        params = _cut_params(out, pipeline, name, steps)
        anchor = [python, "-m", "benchmarks.sb3_train", name, "0", str(params)]
        short = name.removeprefix("double-pendulum-")
        cut.append(Pair(f"train-{short}", _train(out, name, params), anchor, target))
    return [
        Pair(
            "noop",
            ["make", "--no-print-directory", "repro"],
            [str(Path(python).parent / "dvc"), "status"],
            "<= 1.2",
        ),
        Pair(
            "noop-repro",
            ["make", "--no-print-directory", "repro"],
            [str(Path(python).parent / "dvc"), "repro"],
            "<= 1.0",
        ),
        Pair(
            "evaluate",
            [
                *(
                    python,
                    "-m",
                    "stages.evaluate",
                    "--model",
                    model,
                    "--episodes",
                    str(out / "e.csv"),
                ),
                "--summary",
                str(out / "e.json"),
            ],
            [python, "-m", "benchmarks.sb3_evaluate", model, "100"],
            "<= 0.33",
        ),
        Pair(
            "train",
            train,
            [python, "-m", "benchmarks.sb3_train", "cartpole-ppo", "0"],
            "<= 1.0",
        ),
        *cut,
        Pair(
            "snapshots",
            [*train, "--params", str(with_snapshots)],
            [*train, "--params", str(without)],
            "<= 1.05",
        ),
    ]


def reinforce_speed() -> tuple[float, float]:
    """REINFORCE's and `env.step`'s env steps per second on pendulum-reinforce's env, in this
    process, each timed once: the whole training of seed 0 (its budget of 5,000 episodes, whose
    lengths grow as it learns, as in the stage and its `reports/timing/`), then as many steps
    of the env alone."""
    import rlrepro  # noqa: F401  (pins the numerics first)
    from rlrepro import numerics
    from rlrepro.core import params
    from rlrepro.training import reinforce
    from rlrepro.training.recording import Recording

    numerics.configure_torch(1)
    numerics.seed_everything(0)
    exp = params.experiment(params.read(ROOT / "params.yaml"), "pendulum-reinforce")
    exp = dataclasses.replace(exp, periodic_eval=None)
    recording = Recording(exp.env, None, 1)
    began = time.perf_counter()
    reinforce.train(exp, "pendulum-reinforce", 0, recording, lambda _: None)
    steps = recording.episodes[-1].step
    trained = steps / (time.perf_counter() - began)
    return trained, _env_speed(exp.env, steps)


def _env_speed(env_id: str, steps: int) -> float:
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    space = env.action_space
    assert isinstance(space, gym.spaces.Box)
    actions = np.random.default_rng(0).uniform(space.low, space.high, (steps, *space.shape))
    env.reset(seed=0)
    began = time.perf_counter()
    for action in actions.astype(space.dtype):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    """Print each figure's medians and ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    every = (
        *("noop", "noop-repro", "evaluate", "train", "train-sac", "train-td3", "train-ppo"),
        *("snapshots", "reinforce"),
    )
    parser.add_argument("--only", nargs="*", choices=every, help="the figures to measure")
    args = parser.parse_args(argv)
    chosen = set(args.only or every)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    with tempfile.TemporaryDirectory() as folder:
        print("figure      subject s   anchor s")
        for pair in _pairs(Path(folder)):
            if pair.name not in chosen:
                continue
            line = _alternate(
                functools.partial(_seconds, pair.subject),
                functools.partial(_seconds, pair.anchor),
                args.runs,
            )
            print(f"{pair.name:<10} {line}   target {pair.target}", flush=True)
    if "reinforce" in chosen:
        speeds = [reinforce_speed() for _ in range(args.runs)]
        trained = statistics.median(s[0] for s in speeds)
        env_only = statistics.median(s[1] for s in speeds)
        print(
            f"reinforce  {trained:8.0f} env steps/s training, {env_only:8.0f} env.step alone "
            f"(ratio {trained / env_only:.2f}; medians of {args.runs})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
