"""The same bytes on other machines: a small pipeline of every algorithm, run natively, then rerun
(`dvc repro --force`) with its train and evaluate stages on emulated Intel and AMD CPUs
(`qemu-x86_64 -cpu`), and with every stage under Debian 13's C library (glibc 2.41) and in a
venv of Debian's own build of Python 3.11 (`tools.machines`): every stage's dvc.lock hashes are
the native ones.

Slow (emulation is 15-20x slower): `make test-machines`, and in CI.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import make_project, run, tiny_params
from tools import machines
from tools.machines import COMPUTING, CPU_MODELS, Machine, MachineError, shim


def all_algorithms() -> dict[str, Any]:
    """Tiny params with every algorithm: PPO (one env; and 2 envs with VecNormalize and a
    schedule on MuJoCo), A2C (rewards normalised, observations not), DQN, SAC, TD3 (action
    noise), DDPG and REINFORCE; every activation whose kernels call a math function (tanh,
    sigmoid, ELU; REINFORCE's softplus head)."""
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
        "a2c": {
            **small,
            "env": "CartPole-v1",
            "algo": "a2c",
            "policy": {"hidden": [8], "activation": "elu"},
            "normalize": {"obs": False, "reward": True, "clip_obs": 10.0},
            "hyperparams": {"n_steps": 8},
        },
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
        "ddpg": {
            **small,
            "env": "InvertedPendulum-v5",
            "algo": "ddpg",
            "policy": {"hidden": [8], "activation": "sigmoid"},
            "hyperparams": off_policy,
        },
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


def _here() -> str:
    """This machine: CPU model, C library and Python build."""
    from rlrepro.machine.facts import facts

    found = facts()
    return f"{found['cpu_model']}, {found['libc']}, {found['python_build']}"


def _rerun(
    native: Path, folder: Path, machine: Machine
) -> tuple[Path, Path, Path, subprocess.Popen[str]]:
    """A clone of `native` in `folder`, rerun with the stages of `machine` on it."""
    repo, log = folder / "rlrepro", folder / "ran.log"
    run(folder.parent, "git", "clone", "-q", str(native), str(repo))
    bin_dir = shim(folder / "bin", machine, log)
    return repo, log, bin_dir, _repro(repo, bin_dir, "--force")


def _check(
    native: Path, started: dict[str, tuple[Path, Path, Path, subprocess.Popen[str]]]
) -> None:
    """Wait for each machine's rerun; print which stages ran there and how every stage's hashes
    compare with the native run's; fail on any difference."""
    outcomes = {name: proc.communicate()[0] for name, (*_, proc) in started.items()}
    before = _hashes(native)
    print(f"\nnative: {_here()}")
    for name, (repo, log, bin_dir, proc) in started.items():
        code = proc.returncode
        ran = log.read_text().splitlines()  # one line per command sent to the machine
        if code != 0 and EMULATOR_GLITCH in outcomes[name]:
            print(f"\n{name}: {EMULATOR_GLITCH!r}: dvc repro continues once")
            again = _repro(repo, bin_dir)
            outcomes[name] += again.communicate()[0]
            code = again.returncode
            rerun = log.read_text().splitlines()[len(ran) :]
            ran = ran[:-1] + rerun  # the failed command, once: it ran again first
        assert code == 0, f"{name}:\n{outcomes[name]}"
        for module in COMPUTING:
            sent = [line for line in ran if f" -m {module} " in line]
            assert len(sent) == len(all_algorithms()["experiments"]), ran
        after = _hashes(repo)
        print(f"\n{name}: {len(ran)} stages ran there; hashes compared:")
        for stage in sorted(before):
            print(f"  {stage:<24} {'same' if before[stage] == after[stage] else 'DIFFERS'}")
    for stage in sorted(before):
        for path, md5 in before[stage].items():
            print(f"    {path} {md5}")
    for name, (repo, *_) in started.items():
        assert _hashes(repo) == before, name
        assert run(repo, "git", "status", "--porcelain", "dvc.lock").stdout == "", name


@pytest.mark.slow
def test_train_and_evaluate_give_the_same_bytes_on_emulated_cpus(
    native: Path, tmp_path: Path
) -> None:
    """Each CPU model reruns the pipeline in a clone of its own; the models run at once, one
    emulated process each, so the test takes the time of one on two cores."""
    try:
        emulated = [machines.cpu(model) for model in CPU_MODELS]
    except MachineError as err:
        pytest.skip(str(err))
    _check(native, {m.name: _rerun(native, tmp_path / m.name.split()[1], m) for m in emulated})


@pytest.mark.slow
def test_every_stage_gives_the_same_bytes_under_another_c_library(
    native: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Debian 13's glibc (2.41, correctly rounded float functions), fetched with apt into a
    folder of its own and started through its own loader, for every stage."""
    try:
        machine = machines.glibc(tmp_path_factory.mktemp("libc"))
    except MachineError as err:
        pytest.skip(str(err))
    _check(native, {machine.name: _rerun(native, tmp_path_factory.mktemp("glibc"), machine)})


@pytest.mark.slow
def test_every_stage_gives_the_same_bytes_in_another_python_build(
    native: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Debian's own CPython 3.11 (3.11.2 on Debian 12) in a venv of its own, installed from
    requirements.txt as the Makefile installs it, for every stage."""
    try:
        machine = machines.python_build(tmp_path_factory.mktemp("python"))
    except MachineError as err:
        pytest.skip(str(err))
    if machine.name.split()[1] == sys.version.split()[0]:
        pytest.skip(f"{machine.name}: the same version as this one, {sys.version.split()[0]}")
    _check(native, {machine.name: _rerun(native, tmp_path_factory.mktemp("build"), machine)})
