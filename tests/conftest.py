"""Shared fixtures: tiny params that exercise every stage in seconds."""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)

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
