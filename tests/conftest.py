"""Shared fixtures: tiny params that exercise every stage in seconds."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)

ROOT = Path(__file__).resolve().parents[1]

TINY: dict[str, Any] = {
    "numerics": {"torch_threads": 1},
    "env_check": {"digest_steps": 2000, "digest_seed": 0},
    "trace": {"every": 1},
    "seeds": [0, 1],
    "evaluate": {"episodes": 2, "seed": 1000},
    "plot": {"points": 10, "window": 2},
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
