"""Bad params stop a stage before any work, with one line naming the key; outputs stay."""

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlrepro.agents import checkpoint
from rlrepro.core import params
from rlrepro.core.errors import ParamsError
from stages import env_check, evaluate, metrics, train
from tests.conftest import (
    ROOT,
    argv,
    evaluate_run,
    make_project,
    run,
    tiny_params,
    train_paths,
    train_run,
    write_params,
)


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


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[None]:
    """A real tmpfs mounted on `folder` with mount `options` while inside (the test skips
    where mounting is not allowed)."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


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
            (
                "accepted: algo, allow_nonportable_ops, budget, env, hyperparams, max_days, "
                "n_envs, normalize, periodic_eval, policy"
            ),
        ],
    ),
    (
        lambda d: _set(d, f"{PPO}.budget", {"steps": -5}),
        "cartpole-ppo",
        [f"{PPO}.budget.steps", "expected an integer >= 1, got -5"],
    ),
    (
        lambda d: _set(d, f"{RF}.budget", {"episodes": 0}),
        "pendulum-reinforce",
        [f"{RF}.budget.episodes", "expected an integer >= 1, got 0"],
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
        [
            f"{PPO}.hyperparams.learning_rat: unknown hyperparameter of ppo; did you mean "
            "`learning_rate`? accepted: "
        ],
    ),
    (
        lambda d: _set(d, f"{RF}.hyperparams.learning_rate", "1e-4"),
        "pendulum-reinforce",
        [f"{RF}.hyperparams.learning_rate", "expected a number", "1.0e-4"],
    ),
    (
        lambda d: _set(d, f"{PPO}.hyperparams.n_steps", 2.5),
        "cartpole-ppo",
        [f"{PPO}.hyperparams.n_steps", "expected an integer, got 2.5"],
    ),
    (
        lambda d: _set(d, f"{PPO}.hyperparams.batch_size", 1),
        "cartpole-ppo",
        [f"{PPO}.hyperparams: ppo rejects them:", "batch_size"],
    ),
    (
        lambda d: _set(d, "numerics.torch_threads", 0),
        "cartpole-ppo",
        ["numerics.torch_threads", ">= 1"],
    ),
    (lambda d: _delete(d, "numerics"), "cartpole-ppo", ["numerics", "missing key"]),
    (
        lambda d: _set(d, "resume", {"every": 0}),
        "cartpole-ppo",
        ["resume.every", "expected an integer >= 1, got 0"],
    ),
    (
        lambda d: _set(d, f"{PPO}.max_days", 0),
        "cartpole-ppo",
        [f"{PPO}.max_days", "expected a number > 0, got 0"],
    ),
    (lambda d: _set(d, "experiments", {}), "cartpole-ppo", ["experiments.cartpole-ppo"]),
    (
        lambda d: _set(d, f"{PPO}.policy.hidden", [8, 0]),
        "cartpole-ppo",
        [f"{PPO}.policy.hidden[1]: expected an integer >= 1, got 0"],
    ),
    (
        lambda d: _set(d, f"{PPO}.hyperparams.gamma", 1.5),
        "cartpole-ppo",
        [f"{PPO}.hyperparams.gamma: expected a number in [0, 1], got 1.5"],
    ),
    (
        lambda d: _set(d, f"{PPO}.hyperparams.gae_lambda", -0.1),
        "cartpole-ppo",
        [f"{PPO}.hyperparams.gae_lambda: expected a number in [0, 1], got -0.1"],
    ),
    (
        lambda d: _set(
            d, f"{PPO}.hyperparams.learning_rate", {"schedule": "linear", "start": -1, "end": 0}
        ),
        "cartpole-ppo",
        [f"{PPO}.hyperparams.learning_rate.start: expected a number > 0, got -1"],
    ),
    (
        lambda d: _set(d, f"{RF}.hyperparams.std_eps", 0.0),
        "pendulum-reinforce",
        [f"{RF}.hyperparams.std_eps: expected a number > 0, got 0.0"],
    ),
    (
        lambda d: _set(d, f"{PPO}.normalize", {"obs": True, "reward": True, "clip_obs": 0.0}),
        "cartpole-ppo",
        [f"{PPO}.normalize.clip_obs: expected a number > 0, got 0.0"],
    ),
    (
        lambda d: _set(d, f"{PPO}.n_envs", 2.5),
        "cartpole-ppo",
        [f"{PPO}.n_envs: expected an integer >= 1, got 2.5"],
    ),
    (
        lambda d: _set(d, "foo", 1),
        "cartpole-ppo",
        ["params.yaml: foo: unknown key; accepted: env_check, evaluate, experiments"],
    ),
    (
        lambda d: _set(d, "evalute", d.pop("evaluate")),
        "cartpole-ppo",
        ["params.yaml: evalute: unknown key; did you mean `evaluate`? accepted: "],
    ),
    (
        lambda d: _set(d, f"{PPO}.polcy", d["experiments"]["cartpole-ppo"].pop("policy")),
        "cartpole-ppo",
        [f"{PPO}.polcy: unknown key; did you mean `policy`? accepted: algo, allow_nonportable_ops"],
    ),
]


@pytest.mark.parametrize(("change", "exp", "words"), BAD_CASES)
def test_train_rejects_bad_params_and_keeps_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, exp: str, words: list[str]
) -> None:
    path = write_params(tmp_path / "params.yaml", change(tiny_params()))
    paths = train_paths(tmp_path / "out", exp)
    paths.model.parent.mkdir()
    paths.model.write_bytes(b"earlier checkpoint")
    paths.curve.write_text("earlier curve\n")
    code = train.main(argv(path, paths, exp=exp, seed=0))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err
    assert paths.model.read_bytes() == b"earlier checkpoint"
    assert paths.curve.read_text() == "earlier curve\n"
    assert sorted(p.name for p in paths.model.parent.iterdir()) == [
        paths.curve.name,
        paths.model.name,
    ]


def test_env_check_rejects_unknown_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_params(tmp_path / "params.yaml", _set(tiny_params(), f"{PPO}.env", "Nope-v0"))
    paths = env_check.Paths(
        ROOT / "requirements.txt",
        ROOT / "references/physics.json",
        tmp_path / "machine" / "facts.json",
        tmp_path / "reports",
    )
    paths.reports.mkdir()
    (paths.reports / "cartpole-ppo.json").write_text("{}\n")
    assert env_check.main(argv(path, paths)) == 2
    assert "experiments.cartpole-ppo.env: unknown env id 'Nope-v0'" in capsys.readouterr().err
    assert (paths.reports / "cartpole-ppo.json").read_text() == "{}\n"


@pytest.mark.parametrize("episodes", [0, -3, 2.5])
def test_evaluate_rejects_episodes_below_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], episodes: float
) -> None:
    data = _set(tiny_params(), "evaluate.episodes", episodes)
    path = write_params(tmp_path / "params.yaml", data)
    paths = evaluate.Paths(tmp_path / "m.zip", tmp_path / "e.csv", tmp_path / "e.json")
    assert evaluate.main(argv(path, paths)) == 2
    expected = f"error: evaluate.episodes: expected an integer >= 1, got {episodes}\n"
    assert capsys.readouterr().err == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "numerics:\n\ttorch_threads: 1\n",
            "params.yaml:2:1: not valid YAML: while scanning for the next token found "
            "character '\\t' that cannot start any token",
        ),
        (
            "seeds: [0, 1\n",
            (
                "params.yaml:2:1: not valid YAML: while parsing a flow sequence expected ',' or "
                "']', but got '<stream end>'"
            ),
        ),
        (
            "seeds: [0]\nseeds: [1]\n",
            "params.yaml:2:1: not valid YAML: key 'seeds' written twice in one mapping",
        ),
    ],
)
def test_yaml_mistakes_name_the_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    paths = train_paths(tmp_path / "out", "cartpole-ppo")
    assert train.main(argv(path, paths, exp="cartpole-ppo", seed=0)) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}/{message}\n"
    assert not paths.model.parent.exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seeds", [0, 0], "seeds: expected a non-empty list of distinct integers"),
        ("stats.confidence", 95, "stats.confidence: expected a number in (0, 1), got 95.0"),
    ],
)
def test_metrics_rejects_bad_seeds_and_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: Any, message: str
) -> None:
    path = write_params(tmp_path / "params.yaml", _set(tiny_params(), key, value))
    paths = metrics.Paths(tmp_path, tmp_path, tmp_path / "stats", tmp_path / "metrics")
    assert metrics.main(argv(path, paths)) == 2
    assert message in capsys.readouterr().err
    assert not paths.metrics.exists()


def test_a_bug_keeps_its_traceback(params_file: Path, tmp_path: Path) -> None:
    """Only our own errors become one line: anything else is a bug and propagates."""
    paths = train_paths(tmp_path, "cartpole-ppo")
    broken = train.Paths(paths.model, paths.curve, paths.trace, paths.progress, timing=tmp_path)
    with pytest.raises(IsADirectoryError):  # writing the timing file onto a folder: not ours
        train.main(argv(params_file, broken, exp="cartpole-ppo", seed=0))


def test_missing_params_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"nope\.yaml: no such params file"):
        params.read(tmp_path / "nope.yaml")


def test_good_experiment_parses_with_types_and_defaults(params_file: Path) -> None:
    exp = params.experiment(params.read(params_file), "pendulum-reinforce")
    assert exp.policy == params.Policy(hidden=(16, 32), activation="tanh")
    assert exp.budget == {"episodes": 5}
    assert (exp.n_envs, exp.normalize, exp.periodic_eval) == (1, None, None)
    assert exp.hyperparams == {
        "gamma": 0.99,
        "learning_rate": 1.0e-4,
        "std_eps": 1.0e-6,
        "weight_decay": 0.01,
    }


@pytest.mark.parametrize(("options", "words"), [("size=64k", "No space left"), ("ro", "Read-only")])
def test_unwritable_output_is_one_line_and_keeps_what_was_there(
    params_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: str,
    words: str,
) -> None:
    """A full disk and a read-only file system, as real small tmpfs mounts."""
    folder = tmp_path / "mounted"
    folder.mkdir()
    (folder / "cartpole-ppo-0.zip").write_bytes(b"earlier")  # under the mount: hidden
    with tmpfs(folder, f"{options},size=64k"):
        paths = train_paths(folder, "cartpole-ppo")
        if options != "ro":
            paths.curve.write_text("earlier curve\n")
            with (folder / "filler").open("wb", buffering=0) as filler, pytest.raises(OSError):
                while True:  # fill the disk to the last block
                    filler.write(b"x" * 4096)
        assert train.main(argv(params_file, paths, exp="cartpole-ppo", seed=0)) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(err) == 1 and words in err[0] and "cannot write it" in err[0], err
        if options != "ro":
            assert paths.curve.read_text() == "earlier curve\n"
            assert sorted(p.name for p in folder.iterdir()) == [paths.curve.name, "filler"]


def test_a_budget_of_years_is_refused_after_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Steps 10^12 (a typo) would run for years: refused once the speed is measured, with one
    error line after the progress lines; nothing is written."""
    data = _set(tiny_params(), f"{PPO}.budget", {"steps": 10**12})
    path = write_params(tmp_path / "params.yaml", data)
    paths = train_paths(tmp_path / "out", "cartpole-ppo")
    assert train.main(argv(path, paths, exp="cartpole-ppo", seed=0)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if not line.startswith("cartpole-ppo seed 0: ")]
    assert errors == [lines[-1]], lines
    assert lines[-1].startswith(f"error: {PPO}.budget.steps: 1,000,000,000,000 would take about ")
    assert " years at the " in lines[-1]
    assert f"raise {PPO}.max_days if it is intended" in lines[-1]
    assert not paths.model.parent.exists()


NORMALIZE = {
    "none": None,
    "obs": {"obs": True, "reward": False, "clip_obs": 10.0},
    "reward": {"obs": False, "reward": True, "clip_obs": 10.0},
    "both": {"obs": True, "reward": True, "clip_obs": 10.0},
}


@pytest.mark.parametrize("normalize", sorted(NORMALIZE))
@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])  # Discrete, Box actions
@pytest.mark.parametrize("algo", params.SB3_ALGORITHMS)
def test_every_combination_trains_and_evaluates_or_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algo: str, env: str, normalize: str
) -> None:
    """Each algorithm on each kind of action space with each normalization either trains,
    checkpoints and evaluates, or is refused in one line before any training step."""
    hyperparams = {"n_steps": 16} if algo in ("ppo", "a2c") else {"learning_starts": 32}
    if algo in ("ppo", "dqn", "sac", "td3", "ddpg"):
        hyperparams["batch_size"] = 16
    experiment = {
        "env": env,
        "algo": algo,
        "budget": {"steps": 64},
        "policy": {"hidden": [4], "activation": "tanh"},
        "hyperparams": hyperparams,
        "n_envs": 2,
        "normalize": NORMALIZE[normalize],
    }
    data = tiny_params()
    data["experiments"] = {"combo": experiment}
    data["evaluate"]["episodes"] = 1
    path = write_params(tmp_path / "params.yaml", data)
    paths = train_paths(tmp_path / "out", "combo")
    code = train.main(argv(path, paths, exp="combo", seed=0))
    err = capsys.readouterr().err.strip().splitlines()
    box_only = algo in ("sac", "td3", "ddpg")
    if (algo == "dqn" and env == "Pendulum-v1") or (box_only and env == "CartPole-v1"):
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith("error: experiments.combo.algo: ") and "action space" in err[0]
        assert not paths.model.parent.exists()
        return
    assert code == 0, err
    evaluated = evaluate_run(path, paths.model, tmp_path / "eval")
    assert evaluated.episodes.read_text().count("\n") == 2  # the header and one episode


@pytest.mark.slow
def test_the_runner_checks_every_experiment_before_any_stage(tmp_path: Path) -> None:
    """`make repro` refuses a hyperparameter the last experiment's algorithm does not take
    before the first experiment trains: one line naming the file and the key, exit 2, no
    training output."""
    data = _set(tiny_params(), f"{RF}.hyperparams.learning_rat", 0.1)
    repo = make_project(tmp_path / "rlrepro", data)
    result = run(repo, sys.executable, "-m", "tools.run", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: params.yaml: {RF}.hyperparams.learning_rat: unknown key; did you "
        "mean `learning_rate`? accepted: gamma, learning_rate, std_eps, weight_decay"
    )
    assert "train@" not in result.stdout + result.stderr
    assert not (repo / "models").exists()


def test_a_snapshot_that_cannot_be_written_is_one_line_and_the_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk under `snapshots/` (a real tmpfs holding only the last snapshot): the next
    snapshot write stops the stage with one line and exit 2, the last snapshot stays whole, no
    output is written, and a rerun with room resumes from it to the same bytes as a run never
    stopped."""
    import shutil

    from rlrepro.core import faults
    from rlrepro.training.snapshot import FOLDER

    data = tiny_params()
    data.update(root=str(ROOT), resume={"every": 64})
    data["experiments"]["cartpole-ppo"]["budget"] = {"steps": 512}
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")  # the snapshots' key reads its deps
    path = write_params(tmp_path / "params.yaml", data)
    whole = train_paths(tmp_path / "whole", "cartpole-ppo")
    assert train.main(argv(path, whole, exp="cartpole-ppo", seed=0)) == 0
    monkeypatch.setenv(faults.VARIABLE, "TERM@progress:200")  # stop with a snapshot
    paths = train_paths(tmp_path / "out", "cartpole-ppo")
    assert train.main(argv(path, paths, exp="cartpole-ppo", seed=0)) == 128 + 15
    snapshot = (FOLDER / "cartpole-ppo-0.pkl").read_bytes()
    pages = len(snapshot) // 4096 + 1
    with tmpfs(FOLDER, f"size={pages * 4}k"):  # room for the last snapshot only
        (FOLDER / "cartpole-ppo-0.pkl").write_bytes(snapshot)
        capsys.readouterr()
        assert train.main(argv(path, paths, exp="cartpole-ppo", seed=0)) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert err == [
            "error: snapshots/cartpole-ppo-0.pkl: cannot write it (No space left on device); "
            "free space or fix the folder's permissions, then rerun `dvc repro`"
        ]
        assert [p.name for p in FOLDER.iterdir()] == ["cartpole-ppo-0.pkl"]
        assert (FOLDER / "cartpole-ppo-0.pkl").read_bytes() == snapshot
    assert not paths.model.exists()
    assert train.main(argv(path, paths, exp="cartpole-ppo", seed=0)) == 0
    assert "resuming cartpole-ppo seed 0 from step" in capsys.readouterr().err
    assert paths.model.read_bytes() == whole.model.read_bytes()


def test_evaluating_a_checkpoint_without_its_network_is_one_line(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SB3 zip with a hand-written `rlrepro.json` that lacks `network`: one line naming the
    file and the field, exit 2, the earlier evaluation kept."""
    import zipfile

    model = train_run(params_file, tmp_path / "out", "cartpole-ppo").model
    with zipfile.ZipFile(model) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(entries.pop("rlrepro.json"))
    del meta["network"]
    crafted = tmp_path / "crafted.zip"
    checkpoint.write(crafted, meta, entries)
    paths = evaluate.Paths(crafted, tmp_path / "e.csv", tmp_path / "e.json")
    paths.episodes.write_text("earlier\n")
    capsys.readouterr()  # the training's progress lines
    assert evaluate.main(argv(params_file, paths)) == 2
    assert capsys.readouterr().err == (
        f"error: {crafted}: rlrepro.json.network: missing key; retrain it with `dvc repro`\n"
    )
    assert paths.episodes.read_text() == "earlier\n"
    assert not paths.summary.exists()
