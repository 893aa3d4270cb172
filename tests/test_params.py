"""Bad params stop a stage before any work, with one line naming the key; outputs stay."""

from pathlib import Path
from typing import Any

import pytest

from rlrepro import params
from stages import env_check, evaluate, metrics, train
from tests.conftest import tiny_params, write_params


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


def _delete(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    del node[last]
    return data


PPO = "experiments.cartpole-ppo"
RF = "experiments.pendulum-reinforce"

BAD_CASES = [
    # (change to the tiny params, experiment, words the error must contain)
    (
        lambda d: _set(d, f"{PPO}.env", "CartPole-v9"),
        "cartpole-ppo",
        [f"{PPO}.env", "unknown env id 'CartPole-v9'", "CartPole-v1"],
    ),
    (
        lambda d: _set(d, f"{PPO}.algo", "ppx"),
        "cartpole-ppo",
        [
            f"{PPO}.algo",
            "unknown algorithm 'ppx'",
            "accepted: reinforce, ppo, a2c, sac, td3, ddpg, dqn",
        ],
    ),
    (lambda d: _delete(d, f"{PPO}.budget"), "cartpole-ppo", [f"{PPO}.budget", "missing key"]),
    (
        lambda d: _set(d, f"{PPO}.polcy", {}),
        "cartpole-ppo",
        [
            f"{PPO}.polcy",
            "unknown key",
            "accepted: algo, budget, env, hyperparams, n_envs, normalize, periodic_eval, policy",
        ],
    ),
    (
        lambda d: _set(d, f"{PPO}.budget", {"steps": -5}),
        "cartpole-ppo",
        [f"{PPO}.budget.steps", "expected an integer >= 0, got -5"],
    ),
    (
        lambda d: _set(d, f"{RF}.budget", {"episodes": 0}),
        "pendulum-reinforce",
        [f"{RF}.budget", "positive amount"],
    ),
    (
        lambda d: _set(d, f"{RF}.budget", {"epochs": 3}),
        "pendulum-reinforce",
        [f"{RF}.budget", "exactly one of episodes, steps"],
    ),
    (
        lambda d: _set(d, f"{PPO}.normalize", {"obs": "yes", "reward": False}),
        "cartpole-ppo",
        [f"{PPO}.normalize.obs", "expected true or false, got 'yes'"],
    ),
    (
        lambda d: _set(d, f"{RF}.n_envs", 4),
        "pendulum-reinforce",
        [f"{RF}: reinforce runs one env, unnormalised"],
    ),
    (
        lambda d: _set(d, f"{PPO}.periodic_eval", {"every": 0, "episodes": 5}),
        "cartpole-ppo",
        [f"{PPO}.periodic_eval.every", "expected an integer >= 1, got 0"],
    ),
    (
        lambda d: _set(d, f"{PPO}.policy.activation", "swish"),
        "cartpole-ppo",
        [f"{PPO}.policy.activation", "unknown activation 'swish'", "tanh"],
    ),
    (
        lambda d: _set(d, f"{PPO}.hyperparams.learning_rat", 0.1),
        "cartpole-ppo",
        [f"{PPO}.hyperparams.learning_rat", "unknown hyperparameter of ppo", "learning_rate"],
    ),
    (
        lambda d: _set(d, f"{RF}.hyperparams.learning_rate", "1e-4"),
        "pendulum-reinforce",
        [f"{RF}.hyperparams.learning_rate", "expected a number", "1.0e-4"],
    ),
    (
        lambda d: _set(d, "numerics.torch_threads", 0),
        "cartpole-ppo",
        ["numerics.torch_threads", ">= 1"],
    ),
    (lambda d: _delete(d, "numerics"), "cartpole-ppo", ["numerics", "missing key"]),
    (lambda d: _set(d, "experiments", {}), "cartpole-ppo", ["experiments.cartpole-ppo"]),
]


@pytest.mark.parametrize(("change", "exp", "words"), BAD_CASES)
def test_train_rejects_bad_params_and_keeps_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, exp: str, words: list[str]
) -> None:
    path = write_params(tmp_path / "params.yaml", change(tiny_params()))
    model, curve = tmp_path / "model.zip", tmp_path / "curve.csv"
    model.write_bytes(b"earlier checkpoint")
    curve.write_text("earlier curve\n")
    code = train.main(
        [
            "--params",
            str(path),
            "--exp",
            exp,
            "--seed",
            "0",
            "--model",
            str(model),
            "--curve",
            str(curve),
            "--trace",
            str(tmp_path / "trace.csv"),
            "--progress",
            str(tmp_path / "progress.csv"),
            "--timing",
            str(tmp_path / "timing.json"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err
    assert model.read_bytes() == b"earlier checkpoint"
    assert curve.read_text() == "earlier curve\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.csv", "model.zip", "params.yaml"]


def test_env_check_rejects_unknown_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_params(tmp_path / "params.yaml", _set(tiny_params(), f"{PPO}.env", "Nope-v0"))
    out = tmp_path / "report.json"
    out.write_text("{}\n")
    assert env_check.main(["--params", str(path), "--exp", "cartpole-ppo", "--out", str(out)]) == 2
    assert "experiments.cartpole-ppo.env: unknown env id 'Nope-v0'" in capsys.readouterr().err
    assert out.read_text() == "{}\n"


def test_evaluate_rejects_zero_episodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_params(tmp_path / "params.yaml", _set(tiny_params(), "evaluate.episodes", 0))
    code = evaluate.main(
        [
            "--params",
            str(path),
            "--model",
            str(tmp_path / "m.zip"),
            "--episodes-out",
            str(tmp_path / "e.csv"),
            "--metrics-out",
            str(tmp_path / "e.json"),
        ]
    )
    assert code == 2
    assert "evaluate.episodes: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_metrics_rejects_duplicate_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_params(tmp_path / "params.yaml", _set(tiny_params(), "seeds", [0, 0]))
    args = ["--params", str(path), "--evals", str(tmp_path), "--progress", str(tmp_path)]
    assert metrics.main([*args, "--metrics", str(tmp_path / "m.json")]) == 2
    assert "seeds: expected a non-empty list of distinct integers" in capsys.readouterr().err


def test_stats_confidence_outside_zero_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_params(tmp_path / "params.yaml", _set(tiny_params(), "stats.confidence", 95))
    args = ["--params", str(path), "--evals", str(tmp_path), "--progress", str(tmp_path)]
    assert metrics.main([*args, "--metrics", str(tmp_path / "m.json")]) == 2
    assert "stats.confidence: expected a number in (0, 1), got 95.0" in capsys.readouterr().err


def test_missing_params_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(params.ParamsError, match=r"nope\.yaml: no such params file"):
        params.read(tmp_path / "nope.yaml")


def test_good_experiment_parses_to_frozen_dataclass(params_file: Path) -> None:
    exp = params.experiment(params.read(params_file), "pendulum-reinforce")
    assert exp.policy == params.Policy(hidden=(16, 32), activation="tanh")
    assert exp.budget == {"episodes": 5}
    with pytest.raises(AttributeError):
        exp.env = "CartPole-v1"  # type: ignore[misc]
