"""The same bytes on other CPUs: the pipeline's train and evaluate stages of every algorithm, run
natively and on emulated Intel and AMD CPUs (`qemu-x86_64 -cpu`), give the same dvc.lock hashes.

Slow (emulation is 15-20x slower): `make test-cpus`, and in CI.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import make_project, run, tiny_params
from tools.emulation import COMPUTING, CPU_MODELS, EmulationError, shim


def all_algorithms() -> dict[str, Any]:
    """Tiny params with every algorithm: PPO (one env; and 2 envs with VecNormalize and a
    schedule on MuJoCo), A2C, DQN, SAC, TD3 (action noise), DDPG and REINFORCE."""
    data = tiny_params()
    data["seeds"] = [0]
    small = {"policy": {"hidden": [8], "activation": "relu"}, "budget": {"steps": 300}}
    off_policy = {"learning_starts": 100, "batch_size": 32}
    data["experiments"] = {
        "ppo": {
            **small,
            "env": "CartPole-v1",
            "algo": "ppo",
            "hyperparams": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
        },
        "ppo-norm": {
            **small,
            "env": "InvertedPendulum-v5",
            "algo": "ppo",
            "n_envs": 2,
            "normalize": {"obs": True, "reward": True, "clip_obs": 10.0},
            "periodic_eval": {"every": 128, "episodes": 2, "seed": 2000},
            "hyperparams": {
                "n_steps": 64,
                "batch_size": 32,
                "n_epochs": 2,
                "learning_rate": {"schedule": "linear", "start": 1.0e-3, "end": 0.0},
            },
        },
        "a2c": {**small, "env": "CartPole-v1", "algo": "a2c", "hyperparams": {"n_steps": 8}},
        "dqn": {
            **small,
            "env": "CartPole-v1",
            "algo": "dqn",
            "hyperparams": {**off_policy, "train_freq": [4, "step"]},
        },
        "sac": {**small, "env": "InvertedPendulum-v5", "algo": "sac", "hyperparams": off_policy},
        "td3": {
            **small,
            "env": "InvertedPendulum-v5",
            "algo": "td3",
            "hyperparams": {**off_policy, "action_noise": {"normal": 0.1}},
        },
        "ddpg": {**small, "env": "InvertedPendulum-v5", "algo": "ddpg", "hyperparams": off_policy},
        "reinforce": tiny_params()["experiments"]["pendulum-reinforce"]
        | {"budget": {"episodes": 20}},
    }
    return data


def _hashes(repo: Path) -> dict[str, dict[str, str]]:
    """Each stage's output hashes in `repo`'s dvc.lock."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {
        name: {o["path"]: o["md5"] for o in spec.get("outs", [])} for name, spec in stages.items()
    }


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The all-algorithms project, reproduced natively and committed."""
    repo = make_project(tmp_path_factory.mktemp("native") / "rlrepro", all_algorithms())
    run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "native results")
    return repo


# Once, with four processes on two cores, MuJoCo's XML parser under qemu-user failed on an env file
# that the same command then read fine twice: a fault of the emulated run, not a difference in
# bits. A run that stops on it continues once (`dvc repro`, from the stage that failed).
EMULATOR_GLITCH = "XML Error: unknown error in attribute"


def _repro(repo: Path, bin_dir: Path, *args: str) -> subprocess.Popen[str]:
    """`dvc repro *args` in `repo`, with the shims of `bin_dir` first on PATH."""
    path = os.pathsep.join((str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]))
    return subprocess.Popen(
        ["dvc", "repro", *args],
        cwd=repo,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_train_and_evaluate_give_the_same_bytes_on_emulated_cpus(
    native: Path, tmp_path: Path
) -> None:
    """Each CPU model reruns the pipeline (`dvc repro --force`) in a clone of its own; the models
    run at once, one emulated process each, so the test takes the time of one on two cores."""
    started: dict[str, tuple[Path, Path, Path, subprocess.Popen[str]]] = {}
    for model in CPU_MODELS:
        folder = tmp_path / model
        repo, log = folder / "rlrepro", folder / "emulated.log"
        run(tmp_path, "git", "clone", "-q", str(native), str(repo))
        try:
            bin_dir = shim(folder / "bin", model, log)
        except EmulationError as err:
            pytest.skip(str(err))
        started[model] = (repo, log, bin_dir, _repro(repo, bin_dir, "--force"))
    outcomes = {model: proc.communicate()[0] for model, (*_, proc) in started.items()}
    before = _hashes(native)
    for model, (repo, log, bin_dir, proc) in started.items():
        code = proc.returncode
        emulated = log.read_text().splitlines()  # one line per command the shim emulated
        if code != 0 and EMULATOR_GLITCH in outcomes[model]:
            print(f"\n{model}: {EMULATOR_GLITCH!r}: dvc repro continues once")
            again = _repro(repo, bin_dir)
            outcomes[model] += again.communicate()[0]
            code = again.returncode
            rerun = log.read_text().splitlines()[len(emulated) :]
            emulated = emulated[:-1] + rerun  # the failed command, once: it ran again first
        assert code == 0, f"{model}:\n{outcomes[model]}"
        for module in COMPUTING:
            ran = [line for line in emulated if f" -m {module} " in line]
            assert len(ran) == len(all_algorithms()["experiments"]), emulated
        after = _hashes(repo)
        print(f"\n{model}: {len(emulated)} stages emulated; hashes compared:")
        for stage in sorted(before):
            print(f"  {stage:<24} {'same' if before[stage] == after[stage] else 'DIFFERS'}")
    for stage in sorted(before):
        for path, md5 in before[stage].items():
            print(f"    {path} {md5}")
    for model, (repo, *_) in started.items():
        assert _hashes(repo) == before, model
        assert run(repo, "git", "status", "--porcelain", "dvc.lock").stdout == "", model
