"""Killed, resumed, identical: a train stage killed anywhere (SIGKILL, even while it writes a
snapshot) or stopped (SIGTERM, SIGINT) and then rerun by `dvc repro` ends with the same bytes as
a run never stopped, for every algorithm family. Slow: `make test-slow`."""

import copy
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlrepro.core import faults
from tests.conftest import make_project, run, tiny_params, write_params

SMALL_NET = {"hidden": [16, 16], "activation": "relu"}
OFF_POLICY = {"learning_starts": 100, "batch_size": 32, "buffer_size": 5000}
# One experiment per algorithm family, small enough for seconds of training, each with several
# snapshots (every 128 env steps).
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "ppo": {
        "env": "CartPole-v1",
        "algo": "ppo",
        "budget": {"steps": 1536},
        "policy": {"hidden": [8, 8], "activation": "tanh"},
        "hyperparams": {"n_steps": 128, "batch_size": 64, "n_epochs": 2},
    },
    "ppo-vecnormalize": {
        "env": "InvertedPendulum-v5",
        "algo": "ppo",
        "budget": {"steps": 2048},
        "policy": {"hidden": [8, 8], "activation": "tanh"},
        "n_envs": 4,
        "normalize": {"obs": True, "reward": True, "clip_obs": 10.0},
        "periodic_eval": {"every": 512, "episodes": 2, "seed": 2000},
        "hyperparams": {
            "n_steps": 32,
            "batch_size": 64,
            "n_epochs": 2,
            "learning_rate": {"schedule": "linear", "start": 3.0e-4, "end": 0.0},
        },
    },
    "a2c": {
        "env": "CartPole-v1",
        "algo": "a2c",
        "budget": {"steps": 1500},
        "policy": {"hidden": [8, 8], "activation": "tanh"},
        "hyperparams": {"n_steps": 5},
    },
    "sac": {
        "env": "InvertedPendulum-v5",
        "algo": "sac",
        "budget": {"steps": 700},
        "policy": SMALL_NET,
        "hyperparams": OFF_POLICY,
    },
    "td3": {
        "env": "InvertedPendulum-v5",
        "algo": "td3",
        "budget": {"steps": 700},
        "policy": SMALL_NET,
        "periodic_eval": {"every": 300, "episodes": 2, "seed": 2000},
        "hyperparams": {**OFF_POLICY, "action_noise": {"normal": 0.1}},
    },
    "ddpg": {
        "env": "InvertedPendulum-v5",
        "algo": "ddpg",
        "budget": {"steps": 700},
        "policy": SMALL_NET,
        "hyperparams": {**OFF_POLICY, "action_noise": {"normal": 0.1}},
    },
    "dqn": {
        "env": "CartPole-v1",
        "algo": "dqn",
        "budget": {"steps": 1500},
        "policy": SMALL_NET,
        "hyperparams": {**OFF_POLICY, "train_freq": 4, "target_update_interval": 100},
    },
    "reinforce": {
        "env": "InvertedPendulum-v5",
        "algo": "reinforce",
        "budget": {"episodes": 150},
        "policy": {"hidden": [16, 32], "activation": "tanh"},
        "hyperparams": {
            "learning_rate": 1.0e-3,
            "weight_decay": 0.01,
            "gamma": 0.99,
            "std_eps": 1.0e-6,
        },
    },
}
OUTPUTS = ("models/{}.zip", "data/curves/{}.csv", "data/traces/{}.csv", "data/progress/{}.csv")


def resume_params(every: int | None) -> dict[str, Any]:
    """The experiments above with seed 0; snapshots every `every` env steps (none: no
    snapshots at all)."""
    data = tiny_params()
    data.update(seeds=[0], experiments=copy.deepcopy(EXPERIMENTS))
    if every is not None:
        data["resume"] = {"every": every}
    return data


def outputs(repo: Path, exp: str) -> dict[str, bytes]:
    """The train stage's tracked outputs of (`exp`, seed 0), by path."""
    return {o.format(f"{exp}-0"): (repo / o.format(f"{exp}-0")).read_bytes() for o in OUTPUTS}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The experiments trained by `dvc repro train` without a snapshot or a stop."""
    repo = make_project(tmp_path_factory.mktemp("whole") / "rlrepro", resume_params(None))
    run(repo, "dvc", "repro", "train")
    return repo


def project(path: Path, data: dict[str, Any]) -> Path:
    """A project with params `data` whose env checks have run (the train stages' inputs)."""
    repo = make_project(path, data)
    run(repo, "dvc", "repro", "env_check")
    return repo


def _start(repo: Path, stage: str, fault: str) -> subprocess.Popen[str]:
    """`dvc repro` of `stage`, forced, whose train process sends itself a signal at `fault`
    (`RLREPRO_FAULT`, `rlrepro.core.faults`): a point the stage reaches, never a moment timed
    from outside, so the signal always lands before the training ends."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.Popen(
        ["dvc", "repro", "--force", "--single-item", stage],
        cwd=repo,
        env={**os.environ, "PATH": path, faults.VARIABLE: fault},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_points(exp: str, rng: random.Random) -> list[str]:
    """Where the runs of `exp` are killed, in turn: at the first progress report, inside the
    first snapshot write, at a random report, inside the second write of a run, at another
    random report, and at the report past 90% of the budget."""
    ((_, amount),) = EXPERIMENTS[exp]["budget"].items()
    return [
        "KILL@progress:1",
        "KILL@write:1",
        f"KILL@progress:{rng.randint(amount // 20, amount * 4 // 10)}",
        "KILL@write:2",
        f"KILL@progress:{rng.randint(amount // 20, amount * 85 // 100)}",
        f"KILL@progress:{amount * 9 // 10}",
    ]


def _killed_run(repo: Path, exp: str, fault: str) -> str:
    """Run `dvc repro` of (`exp`, 0) with its train process killed at `fault`; check that the
    kill landed (the stage failed on SIGKILL; a write cut short left its temporary file).

    :return: what DVC printed.
    """
    with _start(repo, f"train@{exp}-0", fault) as proc:
        output, _ = proc.communicate(timeout=600)
    assert re.search(r"exited with (-9|137)\b", output), f"{fault}: {output}"  # dash: 137
    if "@write:" in fault:
        left = [f.name for f in (repo / "snapshots").iterdir() if f.name.endswith(".tmp")]
        assert left, f"{fault}: no half-written snapshot was left"
    return output


@pytest.mark.slow
@pytest.mark.parametrize("exp", list(EXPERIMENTS))
def test_killed_anywhere_then_rerun_gives_the_same_bytes(
    uninterrupted: Path, tmp_path: Path, exp: str
) -> None:
    repo = project(tmp_path / "rlrepro", resume_params(every=128))
    for fault in kill_points(exp, random.Random(f"{exp}-kills")):
        _killed_run(repo, exp, fault)
    final = run(repo, "dvc", "repro", "--single-item", f"train@{exp}-0")
    assert re.search(rf"^resuming {exp} seed 0 from step [\d,]+$", final.stderr, re.M), final.stderr
    assert outputs(repo, exp) == outputs(uninterrupted, exp)
    assert not list((repo / "snapshots").iterdir())  # removed, with any cut write's leftovers


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_writes_a_snapshot_and_exits_with_one_line(
    uninterrupted: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    exp = "ppo-vecnormalize"
    repo = project(tmp_path / "rlrepro", resume_params(every=1_000_000))
    fault = f"{signum.name.removeprefix('SIG')}@progress:{EXPERIMENTS[exp]['budget']['steps'] // 3}"
    with _start(repo, f"train@{exp}-0", fault) as proc:
        output, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    assert f"exited with {128 + signum}" in output, output  # DVC reports the stage's code
    stopped = re.findall(
        rf"^error: {exp} seed 0: stopped by {signum.name} at step .*$", output, re.M
    )
    assert len(stopped) == 1, output
    assert (repo / "snapshots" / f"{exp}-0.pkl").is_file()
    final = run(repo, "dvc", "repro", "--single-item", f"train@{exp}-0")
    assert f"resuming {exp} seed 0 from step" in final.stderr
    assert outputs(repo, exp) == outputs(uninterrupted, exp)


@pytest.mark.slow
def test_a_snapshot_of_other_params_is_never_used(uninterrupted: Path, tmp_path: Path) -> None:
    exp = "ppo"
    changed = resume_params(every=128)
    changed["experiments"][exp]["hyperparams"]["n_epochs"] = 3
    repo = project(tmp_path / "rlrepro", changed)
    _killed_run(repo, exp, f"KILL@progress:{EXPERIMENTS[exp]['budget']['steps'] * 9 // 10}")
    assert (repo / "snapshots" / f"{exp}-0.pkl").is_file()
    write_params(repo / "params.yaml", resume_params(every=128))
    final = run(repo, "dvc", "repro", "--single-item", f"train@{exp}-0")
    assert "resuming" not in final.stderr
    assert outputs(repo, exp) == outputs(uninterrupted, exp)


@pytest.mark.slow
def test_a_snapshot_of_other_code_is_never_used(uninterrupted: Path, tmp_path: Path) -> None:
    """The key covers every file of the train stage's code deps in dvc.yaml: an edit of a
    compiled kernel's C source (not Python) after a kill makes the rerun start over."""
    exp = "ppo"
    repo = project(tmp_path / "rlrepro", resume_params(every=128))
    _killed_run(repo, exp, f"KILL@progress:{EXPERIMENTS[exp]['budget']['steps'] * 9 // 10}")
    assert (repo / "snapshots" / f"{exp}-0.pkl").is_file()
    kernel = repo / "rlrepro" / "numerics" / "portable.c"
    kernel.write_text(kernel.read_text() + "/* edited after the kill */\n")
    final = run(repo, "dvc", "repro", "--single-item", f"train@{exp}-0")
    assert "resuming" not in final.stderr
    assert outputs(repo, exp) == outputs(uninterrupted, exp)  # a comment: the same bytes
