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
import time
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from tests.conftest import make_project, run, tiny_params, train_process, write_params

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


def _start(repo: Path, stage: str) -> subprocess.Popen[str]:
    """`dvc repro` of `stage`, forced: a kill that came too late (the stage finished and was
    recorded) must not leave the next attempt with nothing to run."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.Popen(
        ["dvc", "repro", "--force", "--single-item", stage],
        cwd=repo,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_progress(stream: IO[str], label: str, fraction: float, seen: list[str]) -> bool:
    """Read `stream` until a progress line of run `label` reports at least `fraction` of the
    budget done (True), or it ends (False)."""
    for line in stream:
        seen.append(line)
        done = re.match(rf"^{label}: ([\d,]+)/([\d,]+) ", line)
        if done and int(done[1].replace(",", "")) >= fraction * int(done[2].replace(",", "")):
            return True
    return False


def _kill_in_a_write(repo: Path, victim: psutil.Process) -> bool:
    """SIGKILL `victim` as soon as it has a snapshot half-written; True if the temporary file
    is still there afterwards (the write was cut), False if the run ended first."""
    folder = repo / "snapshots"
    try:
        while victim.status() != psutil.STATUS_ZOMBIE:
            if folder.is_dir() and any(f.name.endswith(".tmp") for f in folder.iterdir()):
                victim.kill()
                victim.wait()
                return any(f.name.endswith(".tmp") for f in folder.iterdir())
    except psutil.NoSuchProcess:
        pass
    return False


def _killed_run(repo: Path, exp: str, how: str, rng: random.Random) -> tuple[str, bool]:
    """Start `dvc repro` of (`exp`, 0) and SIGKILL its train process `how`: "first" at its
    first progress report, "write" inside a snapshot write, "random" at a report past a random
    part of the budget plus a random delay, "end" at its report past 90%.

    :return: what DVC printed, and whether the kill landed before the stage finished.
    """
    seen: list[str] = []
    with _start(repo, f"train@{exp}-0") as proc:
        assert proc.stdout is not None
        victim = train_process(f"{exp}-0", timeout=120)
        if how == "write":
            landed = _kill_in_a_write(repo, victim)
        else:
            fraction = {"first": 0.0, "random": rng.uniform(0.05, 0.85), "end": 0.9}[how]
            landed = _wait_progress(proc.stdout, f"{exp} seed 0", fraction, seen)
            if how == "random":
                time.sleep(rng.uniform(0.0, 0.3))
            try:
                victim.kill()
            except psutil.NoSuchProcess:
                landed = False
        seen += proc.stdout.readlines()
        landed = landed and proc.wait() != 0
    return "".join(seen), landed


@pytest.mark.slow
@pytest.mark.parametrize("exp", list(EXPERIMENTS))
def test_killed_anywhere_then_rerun_gives_the_same_bytes(
    uninterrupted: Path, tmp_path: Path, exp: str
) -> None:
    repo = project(tmp_path / "rlrepro", resume_params(every=128))
    rng = random.Random(f"{exp}-kills")
    cut_writes = 0
    for how in ("first", "write", "random", "random", "write", "end"):
        output, landed = _killed_run(repo, exp, how, rng)
        assert landed or how == "write", output
        cut_writes += landed and how == "write"
    assert cut_writes >= 1, "no kill landed inside a snapshot write"
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
    seen: list[str] = []
    with _start(repo, f"train@{exp}-0") as proc:
        assert proc.stdout is not None
        victim = train_process(f"{exp}-0", timeout=120)
        assert _wait_progress(proc.stdout, f"{exp} seed 0", 0.3, seen)
        victim.send_signal(signum)
        seen += proc.stdout.readlines()
        assert proc.wait() != 0
    output = "".join(seen)
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
    _killed_run(repo, exp, "end", random.Random(0))
    assert (repo / "snapshots" / f"{exp}-0.pkl").is_file()
    write_params(repo / "params.yaml", resume_params(every=128))
    final = run(repo, "dvc", "repro", "--single-item", f"train@{exp}-0")
    assert "resuming" not in final.stderr
    assert outputs(repo, exp) == outputs(uninterrupted, exp)
