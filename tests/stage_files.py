"""A tiny project whose stages have run, in-process, with dvc.yaml's folders, and each stage's
command line there: what the tests of damaged inputs (tests/test_readers.py) and the fuzzer
(tests/test_fuzz.py) corrupt and rerun."""

import contextlib
import io
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from rlrepro.core import faults, params
from stages import env_check, evaluate, metrics, plot, report, train
from tests.conftest import ROOT, tiny_params, write_params

TRAIN = {
    "--model": "models/{run}.zip",
    "--curve": "data/curves/{run}.csv",
    "--trace": "data/traces/{run}.csv",
    "--progress": "data/progress/{run}.csv",
    "--timing": "reports/timing/{run}.json",
}


def params_data() -> dict[str, Any]:
    """The tiny params, with evaluations during training for cartpole-ppo (a progress CSV to
    read) and snapshots every 128 env steps (`resume`)."""
    data = tiny_params()
    data["experiments"]["cartpole-ppo"]["periodic_eval"] = {"every": 128, "episodes": 2, "seed": 7}
    data["resume"] = {"every": 128}
    return data


class Stage(NamedTuple):
    """A stage's entry point, its command line in the project, the files it reads (globs) and
    the folders or files it writes."""

    main: Callable[[list[str] | None], int]
    argv: list[str]
    reads: tuple[str, ...]
    writes: tuple[str, ...]


def _train_argv(run: str) -> list[str]:
    exp, seed = run.rsplit("-", 1)
    args = ["--exp", exp, "--seed", seed]
    for option, path in TRAIN.items():
        args += [option, path.format(run=run)]
    return args


def _evaluate_argv(run: str) -> list[str]:
    return [
        "--model",
        f"models/{run}.zip",
        "--episodes",
        f"data/eval/{run}.csv",
        "--summary",
        f"data/eval/{run}.json",
    ]


STAGES: dict[str, Stage] = {
    "env_check": Stage(
        env_check.main,
        [
            "--requirements",
            "requirements.txt",
            "--references",
            "references/physics.json",
            "--facts",
            "reports/machine/facts.json",
            "--reports",
            "data/env_check",
        ],
        ("requirements.txt", "references/physics.json", "reports/machine/env_check.json"),
        ("data/env_check", "reports/machine"),
    ),
    "train": Stage(
        train.main,
        _train_argv("cartpole-ppo-0"),
        ("snapshots/cartpole-ppo-0.pkl",),
        ("models", "data/curves", "data/traces", "data/progress", "reports/timing", "snapshots"),
    ),
    "evaluate": Stage(
        evaluate.main,
        _evaluate_argv("cartpole-ppo-0"),
        ("models/cartpole-ppo-0.zip",),
        ("data/eval",),
    ),
    "metrics": Stage(
        metrics.main,
        [
            "--evals",
            "data/eval",
            "--progress-dir",
            "data/progress",
            "--stats",
            "reports/stats",
            "--metrics",
            "metrics",
        ],
        ("data/eval/*.csv", "data/progress/*.csv"),
        ("reports/stats", "metrics"),
    ),
    "plot": Stage(
        plot.main,
        [
            "--curves",
            "data/curves",
            "--stats",
            "reports/stats",
            "--mean-curves",
            "reports/curves",
            "--episode-curves",
            "reports/episode_curves",
            "--figures",
            "reports/figures",
        ],
        ("data/curves/*.csv", "reports/stats/*.json"),
        ("reports/curves", "reports/episode_curves", "reports/figures"),
    ),
    "report": Stage(
        report.main,
        [
            "--stats",
            "reports/stats",
            "--requirements",
            "requirements.txt",
            "--page",
            "reports/README.md",
        ],
        ("reports/stats/*.json", "requirements.txt"),
        ("reports/README.md",),
    ),
}


class Outcome(NamedTuple):
    """How a stage run ended: its exit code and what it printed on stderr."""

    code: int
    stderr: str


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """Inside, a run longer than `seconds` is stopped with an AssertionError."""

    def expire(_signum: int, _frame: object) -> None:
        raise AssertionError(f"no end within {seconds} s")

    before = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)


def run_stage(root: Path, name: str, deadline: int = 60) -> Outcome:
    """Run stage `name` in-process in project `root`, as `dvc repro` would (its folder as the
    working folder), within `deadline` seconds; :return: its exit code and stderr."""
    stage = STAGES[name]
    stderr = io.StringIO()
    with contextlib.chdir(root), contextlib.redirect_stderr(stderr), _alarm(deadline):
        code = stage.main(["--params", "params.yaml", *stage.argv])
    return Outcome(code, stderr.getvalue())


def make_project(root: Path) -> Path:
    """Project `root` with every stage run once on `params_data()`, and a snapshot of
    cartpole-ppo seed 0 stopped at step 128 (`snapshots/`); :return: `root`."""
    (root / ".dvc").mkdir(parents=True, exist_ok=True)  # a DVC project: its scratch is in it
    write_params(root / "params.yaml", params_data())
    for name in ("requirements.txt", "dvc.yaml", "references/physics.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, root / name)
    assert run_stage(root, "env_check", 300).code == 0
    raw = params.read(root / "params.yaml")
    for exp in raw["experiments"]:
        for seed in raw["seeds"]:
            run = f"{exp}-{seed}"
            with contextlib.chdir(root):
                assert train.main(["--params", "params.yaml", *_train_argv(run)]) == 0
                assert evaluate.main(["--params", "params.yaml", *_evaluate_argv(run)]) == 0
    for name in ("metrics", "plot", "report"):
        assert run_stage(root, name).code == 0, name
    os.environ[faults.VARIABLE] = "TERM@progress:128"
    try:
        stopped = run_stage(root, "train")
    finally:
        os.environ.pop(faults.VARIABLE, None)
    assert stopped.code == 128 + signal.SIGTERM, stopped
    assert (root / "snapshots" / "cartpole-ppo-0.pkl").is_file()
    return root


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (by path relative to it) and its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
