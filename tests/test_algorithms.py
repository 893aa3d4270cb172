"""Every algorithm by name, VecNormalize, schedules, several envs and the periodic evaluation."""

import io
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from rlrepro.agents import algorithms, checkpoint, load_actor, normalize
from rlrepro.core import params
from rlrepro.training.recording import PROGRESS_HEADER
from stages import train
from tests.conftest import evaluate_run, tiny_params, train_paths, train_run, write_params

# A few hundred steps of each SB3 algorithm, on an env whose action space it takes.
TINY_SB3: dict[str, dict[str, Any]] = {
    "ppo": {"env": "CartPole-v1", "hyperparams": {"n_steps": 64, "batch_size": 32, "n_epochs": 1}},
    "a2c": {"env": "CartPole-v1", "hyperparams": {"n_steps": 8}},
    "dqn": {
        "env": "CartPole-v1",
        "hyperparams": {"learning_starts": 100, "batch_size": 32, "train_freq": [4, "step"]},
    },
    "sac": {
        "env": "InvertedPendulum-v5",
        "hyperparams": {"learning_starts": 100, "batch_size": 32},
    },
    "td3": {
        "env": "InvertedPendulum-v5",
        "hyperparams": {"learning_starts": 100, "batch_size": 32, "action_noise": {"normal": 0.1}},
    },
    "ddpg": {
        "env": "InvertedPendulum-v5",
        "hyperparams": {"learning_starts": 100, "batch_size": 32},
    },
}


def _params(tmp_path: Path, name: str, experiment: dict[str, Any]) -> Path:
    data = tiny_params()
    data["experiments"] = {
        name: {"budget": {"steps": 300}, "policy": {"hidden": [8], "activation": "relu"}}
        | experiment
    }
    return write_params(tmp_path / f"{name}.yaml", data)


def _evaluate(params_file: Path, model: Path, out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(evaluate_run(params_file, model, out).summary.read_text())
    return summary


@pytest.mark.parametrize("algo", sorted(TINY_SB3))
def test_sb3_algorithm_by_name_trains_repeatably(tmp_path: Path, algo: str) -> None:
    params_file = _params(tmp_path, f"tiny-{algo}", {"algo": algo, **TINY_SB3[algo]})
    first = train_run(params_file, tmp_path / "a", f"tiny-{algo}", seed=0)
    second = train_run(params_file, tmp_path / "b", f"tiny-{algo}", seed=0)
    other = train_run(params_file, tmp_path / "c", f"tiny-{algo}", seed=1)
    for kind in ("model", "curve", "trace"):
        assert getattr(first, kind).read_bytes() == getattr(second, kind).read_bytes(), kind
    weights = [checkpoint.read_entries(run.model)["policy.pth"] for run in (first, other)]
    assert weights[0] != weights[1]  # the seed reaches the weights
    assert checkpoint.read_meta(first.model)["algo"] == algo
    timing = json.loads(first.timing.read_text())
    assert timing["steps"] >= 300 and timing["steps_per_second"] > 0
    assert _evaluate(params_file, first.model, tmp_path)["episodes"] == 2


@pytest.mark.parametrize("algo", ["dqn", "ppo", "sac", "td3"])
def test_every_adam_steps_fused(tmp_path: Path, algo: str) -> None:
    """Every Adam optimizer of a trained SB3 model (SAC's three, TD3's two) stepped with
    torch's fused kernel, and its checkpoint says so, for `PPO.load` and the like to keep."""
    params_file = _params(tmp_path, f"tiny-{algo}", {"algo": algo, **TINY_SB3[algo]})
    run = train_run(params_file, tmp_path / "a", f"tiny-{algo}", seed=0)
    entries = checkpoint.read_entries(run.model)
    states = [
        torch.load(io.BytesIO(data), weights_only=True)
        for name, data in entries.items()
        if name.endswith("optimizer.pth")
    ]
    assert len(states) == {"sac": 3, "td3": 2}.get(algo, 1)
    assert all(group["fused"] for state in states for group in state["param_groups"])


# TINY_SB3, plus gSDE: PPO's actor keeps its layout, SAC's clips its mean in a Sequential of its
# own, which `policy_actor` leaves to SB3's load.
ACTORS: dict[str, dict[str, Any]] = TINY_SB3 | {
    "ppo-gsde": {
        "algo": "ppo",
        "env": "InvertedPendulum-v5",
        "hyperparams": {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "use_sde": True},
    },
    "sac-gsde": {
        "algo": "sac",
        "env": "InvertedPendulum-v5",
        "hyperparams": {"learning_starts": 100, "batch_size": 32, "use_sde": True},
        # its tanh's inverse: log1p, the C library's for loop tails (rlrepro.numerics.ops)
        "allow_nonportable_ops": ["aten::log1p"],
    },
}


@pytest.mark.parametrize("name", sorted(ACTORS))
def test_the_evaluated_actor_acts_as_sb3_predict(tmp_path: Path, name: str) -> None:
    spec = {"algo": name} | ACTORS[name]
    params_file = _params(tmp_path, f"tiny-{name}", spec)
    model = train_run(params_file, tmp_path, f"tiny-{name}", seed=0).model
    env = gym.make(spec["env"])
    shape = env.observation_space.shape
    assert shape is not None
    # Rows from 0.1 to 1,000 in scale: some actions beyond the bounds, clipped or squashed.
    scale = np.logspace(-1, 3, 64).reshape(-1, *([1] * len(shape)))
    obs = (np.random.default_rng(0).normal(0.0, 1.0, (64, *shape)) * scale).astype(np.float32)
    expected, _ = (
        algorithms.sb3_class(spec["algo"])
        .load(model, device="cpu")
        .predict(obs, deterministic=True)
    )
    got = load_actor(model, env)(obs)
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    assert got.tobytes() == expected.tobytes()
    assert len(np.unique(expected, axis=0)) > 1  # the observations reach the actions
    # Which path acted: SB3's load only for SAC's gSDE layout.
    weights = torch.load(
        io.BytesIO(checkpoint.read_entries(model)["policy.pth"]), weights_only=True
    )
    lean = algorithms.policy_actor(spec["algo"], weights, "relu", env, lambda o: o)
    assert (lean is None) == (name == "sac-gsde")


def test_normalized_ppo_with_schedule_and_envs_evaluates_as_in_training(tmp_path: Path) -> None:
    experiment = {
        "env": "InvertedPendulum-v5",
        "algo": "ppo",
        "budget": {"steps": 512},
        "policy": {"hidden": [8, 8], "activation": "tanh"},
        "hyperparams": {
            "n_steps": 64,
            "batch_size": 64,
            "n_epochs": 2,
            "learning_rate": {"schedule": "linear", "start": 3.0e-4, "end": 0.0},
        },
        "n_envs": 4,
        "normalize": {"obs": True, "reward": True, "clip_obs": 10.0},
        "periodic_eval": {"every": 256, "episodes": 3, "seed": 1000},
    }
    params_file = _params(tmp_path, "norm-ppo", experiment)
    paths = train_run(params_file, tmp_path, "norm-ppo")
    entries = checkpoint.read_entries(paths.model)
    stats = json.loads(entries[normalize.ENTRY])
    assert stats["norm_obs"] and stats["obs_count"] > 512  # 4 envs: 128 steps each, plus resets
    assert "LinearSchedule(start=0.0003, end=0.0" in entries["data"].decode()
    progress = pd.read_csv(paths.progress)
    assert tuple(progress.columns) == PROGRESS_HEADER
    assert list(progress["step"]) == [0, 256, 512]
    # The evaluate stage, from the saved statistics, on the same seeds as the last periodic
    # evaluation (live VecNormalize): the same returns.
    summary = _evaluate(params_file, paths.model, tmp_path)
    assert summary["episodes"] == 2
    data = params.read(params_file)
    data["evaluate"] = {"episodes": 3, "seed": 1000}
    summary = _evaluate(write_params(tmp_path / "same-seeds.yaml", data), paths.model, tmp_path)
    assert summary["return_mean"] == progress["eval_return_mean"].iloc[-1]


@pytest.mark.parametrize("exp", ["cartpole-ppo", "pendulum-reinforce"])
def test_periodic_eval_leaves_training_unchanged(tmp_path: Path, exp: str) -> None:
    data = tiny_params()
    plain = train_run(write_params(tmp_path / "plain.yaml", data), tmp_path / "plain", exp)
    data["experiments"][exp]["periodic_eval"] = {"every": 16, "episodes": 2, "seed": 2000}
    evaluated = train_run(write_params(tmp_path / "eval.yaml", data), tmp_path / "eval", exp)
    for kind in ("model", "curve", "trace"):
        assert getattr(plain, kind).read_bytes() == getattr(evaluated, kind).read_bytes(), kind
    assert pd.read_csv(plain.progress).empty
    progress = pd.read_csv(evaluated.progress)
    assert progress["step"].iloc[0] == 0 and len(progress) >= 3


def test_normalizer_matches_vecnormalize() -> None:
    env = VecNormalize(make_vec_env("InvertedPendulum-v5", n_envs=1, seed=0), clip_obs=0.5)
    env.reset()
    for _ in range(20):
        env.step(np.array([[0.5]]))
    stats = json.loads(normalize.stats_json(env))
    obs = np.random.default_rng(0).normal(size=(10, 4))
    for row in obs:
        np.testing.assert_array_equal(normalize.normalizer(stats)(row), env.normalize_obs(row))


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        (
            {"algo": "dqn", "env": "InvertedPendulum-v5", "hyperparams": {}},
            "experiments.bad.algo: dqn needs a Discrete action space; InvertedPendulum-v5 has Box",
        ),
        (
            {"algo": "sac", "env": "InvertedPendulum-v5", "hyperparams": {"tau_": 0.1}},
            "experiments.bad.hyperparams.tau_: unknown hyperparameter of sac; did you mean `tau`? "
            "accepted: ",
        ),
        (
            {"algo": "sac", "env": "InvertedPendulum-v5", "hyperparams": {"learning_rate": "1e-4"}},
            "experiments.bad.hyperparams.learning_rate: expected a number, got '1e-4'",
        ),
        (
            {
                "algo": "ppo",
                "env": "CartPole-v1",
                "hyperparams": {"learning_rate": {"schedule": "cosine", "start": 1, "end": 0}},
            },
            "experiments.bad.hyperparams.learning_rate: expected a number or {schedule: linear",
        ),
        (
            {"algo": "td3", "env": "InvertedPendulum-v5", "hyperparams": {"action_noise": 0.1}},
            "experiments.bad.hyperparams.action_noise: expected {normal: <sigma>}, got 0.1",
        ),
    ],
)
def test_bad_algorithm_settings_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], experiment: dict[str, Any], message: str
) -> None:
    params_file = _params(tmp_path, "bad", experiment)
    paths = train_paths(tmp_path, "bad")
    args = ["--params", str(params_file), "--exp", "bad", "--seed", "0"]
    for field, path in vars(paths).items():
        args += [f"--{field}", str(path)]
    assert train.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not paths.model.exists()
