"""Each stage in-process on tiny params: what it writes, and that it writes it the same twice."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stable_baselines3 import PPO

from rlrepro.agents import checkpoint
from rlrepro.agents.rollout import CURVE_HEADER
from rlrepro.core import params
from rlrepro.core.errors import StageError
from stages import env_check, metrics, plot, report
from tests.conftest import ROOT, evaluate_run, tiny_params, train_run, write_params

EXPERIMENTS = ("cartpole-ppo", "pendulum-reinforce")


def _check_paths(tmp_path: Path, lock: Path = ROOT / "requirements.txt") -> env_check.Paths:
    references = tmp_path / "physics.json"
    references.write_bytes((ROOT / "references" / "physics.json").read_bytes())
    return env_check.Paths(
        requirements=lock,
        references=references,
        facts=tmp_path / "machine" / "facts.json",
        reports=tmp_path / "reports",
    )


def test_env_check_writes_machine_free_reports(params_file: Path, tmp_path: Path) -> None:
    paths = _check_paths(tmp_path)
    env_check.env_check(params.read(params_file), paths)
    assert sorted(p.name for p in paths.reports.iterdir()) == [f"{e}.json" for e in EXPERIMENTS]
    report_data = json.loads((paths.reports / "pendulum-reinforce.json").read_text())
    assert report_data["env"] == "InvertedPendulum-v5"
    assert report_data["reward_threshold"] == 950.0
    assert report_data["version_mismatches"] == []
    assert report_data["key_versions"]["torch"] == "2.13.0+cpu"  # the lock names the CPU build
    text = (paths.reports / "pendulum-reinforce.json").read_text()
    assert str(ROOT) not in text and "/tmp" not in text and "\x1b" not in text
    assert json.loads(paths.facts.read_text())["cpu_count"] >= 1


def test_env_check_reuses_the_last_check_until_anything_it_covers_changes(
    params_file: Path, tmp_path: Path
) -> None:
    paths = _check_paths(tmp_path)
    raw = params.read(params_file)
    first = env_check.env_check(raw, paths)
    record = paths.facts.with_name("env_check.json")
    kept = json.loads(record.read_text())
    kept["reports"]["cartpole-ppo"]["env"] = "reused"  # what a rerun would return if it reused
    record.write_text(json.dumps(kept))
    assert env_check.env_check(raw, paths)["cartpole-ppo"]["env"] == "reused"
    refs = json.loads(paths.references.read_text())
    refs["CartPole-v1"]["sha256"] = "0" * 64
    paths.references.write_text(json.dumps(refs))  # the references changed: a full check runs
    with pytest.raises(
        StageError, match=r"CartPole-v1: this machine's simulator \(x86_64, MuJoCo [\d.]+\) parts"
    ):
        env_check.env_check(raw, paths)
    paths.references.write_bytes((ROOT / "references" / "physics.json").read_bytes())
    record.unlink()  # no record of a last check: a full check
    assert env_check.env_check(raw, paths) == first


def test_env_check_fails_on_version_mismatch_unless_allowed(
    params_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("numpy==0.0.1\n")
    paths = _check_paths(tmp_path, lock)
    with pytest.raises(StageError, match=r"numpy: locked ==0\.0\.1, installed"):
        env_check.env_check(params.read(params_file), paths)
    assert not paths.reports.exists()
    monkeypatch.setenv(env_check.ALLOW_MISMATCH_VAR, "1")
    reports = env_check.env_check(params.read(params_file), paths)
    assert reports["cartpole-ppo"]["version_mismatches"][0].startswith("numpy: locked")


def test_env_check_refuses_a_python_other_than_the_lock_s(
    params_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(env_check, "LOCKED_PYTHON", (3, 12))
    paths = _check_paths(tmp_path)
    with pytest.raises(
        StageError, match=r"^Python 3\.11\.\d+: .*requirements\.txt is locked for Python 3\.12; "
    ):
        env_check.env_check(params.read(params_file), paths)
    assert not paths.reports.exists()


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_train_twice_gives_identical_bytes(params_file: Path, tmp_path: Path, exp: str) -> None:
    first = train_run(params_file, tmp_path / "a", exp, seed=0)
    second = train_run(params_file, tmp_path / "b", exp, seed=0)
    other_seed = train_run(params_file, tmp_path / "c", exp, seed=1)
    for kind in ("model", "curve", "trace", "progress"):
        assert getattr(first, kind).read_bytes() == getattr(second, kind).read_bytes(), kind
    weights = [checkpoint.read_entries(run.model)["policy.pth"] for run in (first, other_seed)]
    assert weights[0] != weights[1]
    curve = pd.read_csv(first.curve)
    assert tuple(curve.columns) == CURVE_HEADER
    assert curve["step"].is_monotonic_increasing and len(curve) > 0
    assert checkpoint.read_meta(first.model)["algo"] == tiny_params()["experiments"][exp]["algo"]


def test_sb3_checkpoint_opens_with_sb3_load(params_file: Path, tmp_path: Path) -> None:
    paths = train_run(params_file, tmp_path, "cartpole-ppo", seed=0)
    loaded = PPO.load(paths.model, device="cpu")
    assert loaded.num_timesteps == 256
    assert loaded.policy.mlp_extractor.policy_net[0].out_features == 8


def test_reinforce_budget_in_steps(tmp_path: Path) -> None:
    data = tiny_params()
    data["experiments"]["pendulum-reinforce"]["budget"] = {"steps": 50}
    paths = train_run(write_params(tmp_path / "p.yaml", data), tmp_path, "pendulum-reinforce")
    steps = pd.read_csv(paths.curve)["step"]
    assert steps.iloc[-1] >= 50 > steps.iloc[-2]


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_evaluate_is_seeded_and_repeatable(params_file: Path, tmp_path: Path, exp: str) -> None:
    model = train_run(params_file, tmp_path, exp, seed=0).model
    runs = [evaluate_run(params_file, model, tmp_path / name) for name in ("a", "b")]
    assert runs[0].episodes.read_bytes() == runs[1].episodes.read_bytes()
    assert runs[0].summary.read_bytes() == runs[1].summary.read_bytes()
    summary = json.loads(runs[0].summary.read_text())
    assert summary["episodes"] == 2
    frame = pd.read_csv(runs[0].episodes)
    assert summary["return_mean"] == pytest.approx(frame["episode_return"].mean())


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny params, both experiments trained and evaluated on both seeds: (params, folder)."""
    folder = tmp_path_factory.mktemp("results")
    params_path = write_params(folder / "params.yaml", tiny_params())
    for exp in EXPERIMENTS:
        for seed in (0, 1):
            paths = train_run(params_path, folder / "curves", exp, seed)
            (folder / "progress").mkdir(exist_ok=True)
            paths.progress.rename(folder / "progress" / f"{exp}-{seed}.csv")
            evaluate_run(params_path, paths.model, folder / "eval")
    return params_path, folder


def _metrics_paths(folder: Path) -> metrics.Paths:
    return metrics.Paths(folder / "eval", folder / "progress", folder / "stats", folder / "metrics")


def test_metrics_are_over_runs_and_a_short_headline(results: tuple[Path, Path]) -> None:
    params_path, folder = results
    paths = _metrics_paths(folder)
    stale = paths.metrics / "removed-experiment.json"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("{}")
    metrics.metrics(params.read(params_path), paths)
    assert sorted(p.stem for p in paths.metrics.glob("*.json")) == sorted(EXPERIMENTS)
    stats = json.loads((paths.stats / "cartpole-ppo.json").read_text())
    returns = [pd.read_csv(folder / "eval" / f"cartpole-ppo-{s}.csv") for s in (0, 1)]
    pooled = pd.concat(returns)["episode_return"]
    scores = [frame["episode_return"].mean() for frame in returns]
    assert stats["return_mean"] == pytest.approx(np.mean(scores), abs=1e-4)
    assert stats["return_iqm"] == pytest.approx(np.mean(scores), abs=1e-4)  # 2 runs: none cut
    assert stats["episodes_return_mean"] == pytest.approx(pooled.mean(), abs=1e-4)
    assert stats["runs"] == 2 and stats["episodes"] == 4
    assert "return_iqm_ci_low" not in stats  # 2 runs: too few for a bootstrap interval
    assert stats["return_mean_ci_low"] <= stats["return_mean"] <= stats["return_mean_ci_high"]
    assert stats["threshold"] == 475.0
    assert stats["episodes_success_rate"] == pytest.approx((pooled >= 475).mean())
    headline = json.loads((paths.metrics / "cartpole-ppo.json").read_text())
    assert set(headline) <= set(metrics.HEADLINE)
    assert headline["iqm"] == round(stats["return_iqm"], 1)
    assert headline["mean"] == round(stats["return_mean"], 1)
    first = {p.name: p.read_bytes() for p in sorted(folder.glob("*/*.json"))}
    metrics.metrics(params.read(params_path), paths)
    assert first == {p.name: p.read_bytes() for p in sorted(folder.glob("*/*.json"))}


def test_plot_and_report(results: tuple[Path, Path]) -> None:
    params_path, folder = results
    raw = params.read(params_path)
    metrics.metrics(raw, _metrics_paths(folder))
    paths = plot.Paths(
        folder / "curves", folder / "stats", folder / "mean", folder / "by_episode", folder / "fig"
    )
    stale = paths.figures / "removed-experiment.png"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"old")
    plot.plot(raw, paths)
    names = sorted(p.name for p in paths.figures.glob("*.png"))
    assert names == [
        "all-curves.png",
        "all-final-iqm.png",
        "cartpole-ppo.png",
        "pendulum-reinforce.png",
        "profile-CartPole-v1.png",
        "profile-InvertedPendulum-v5.png",
    ]
    png = (paths.figures / "cartpole-ppo.png").read_bytes()
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"matplotlib" not in png
    figures = {p.name: p.read_bytes() for p in sorted(paths.figures.glob("*"))}
    plot.plot(raw, paths)
    assert figures == {p.name: p.read_bytes() for p in sorted(paths.figures.glob("*"))}
    by_episode = pd.read_csv(paths.episode_curves / "pendulum-reinforce.csv")
    assert by_episode["episode"].iloc[0] == 1 and set(by_episode["n_seeds"]) == {2}

    page = report.Paths(folder / "stats", ROOT / "requirements.txt", folder / "README.md")
    text = report.report(raw, page)
    assert "| `cartpole-ppo` | CartPole-v1 | ppo | 8-8 tanh | 256 steps | 2 |" in text
    assert "![All experiments' learning curves](figures/all-curves.png)" in text
    assert "figures/profile-CartPole-v1.png" in text
    stats = json.loads((folder / "stats" / "cartpole-ppo.json").read_text())
    scores = " | ".join(f"{score:.1f}" for score in stats["run_scores"])
    assert "| experiment | seed 0 | seed 1 |" in text and f"| `cartpole-ppo` | {scores} |" in text
    assert "with 2 runs nothing is dropped: the IQM is the mean" in text
    assert "| torch | 2.13.0+cpu |" in text
    assert page.page.read_text() == text


def test_missing_inputs_are_named(results: tuple[Path, Path], tmp_path: Path) -> None:
    params_path, folder = results
    paths = metrics.Paths(tmp_path, folder / "progress", tmp_path / "s", tmp_path / "m")
    with pytest.raises(StageError, match=r"no evaluation .*cartpole-ppo-0.csv.*; run `dvc repro`"):
        metrics.metrics(params.read(params_path), paths)


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_batched_evaluation_is_the_same_at_every_batch_size(
    params_file: Path, tmp_path: Path, exp: str
) -> None:
    import gymnasium as gym

    from rlrepro.agents import load_actor
    from rlrepro.agents.rollout import rollout

    model = train_run(params_file, tmp_path, exp, seed=0).model
    env_id = checkpoint.read_meta(model)["env"]
    envs = [gym.make(env_id) for _ in range(7)]
    act = load_actor(model, envs[0])
    runs = {size: rollout(envs[:size], act, 7, 1000) for size in (1, 3, 7)}
    assert runs[1] == runs[3] == runs[7]
    assert [ep.step for ep in runs[7]] == list(range(7))
    assert len({ep.episode_return for ep in runs[7]}) > 1  # the seeds give other starts


class _Payload:
    """Unpickling this creates the file `marker`: what a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_evaluate_never_unpickles_a_checkpoint(params_file: Path, tmp_path: Path) -> None:
    import base64
    import pickle

    model = train_run(params_file, tmp_path, "cartpole-ppo", seed=0).model
    entries = checkpoint.read_entries(model)
    data = json.loads(entries["data"])
    marker = tmp_path / "payload-ran"
    serialized = [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]
    assert "clip_range" in serialized and "policy_class" in serialized
    for key in serialized:
        data[key][":serialized:"] = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    entries["data"] = json.dumps(data).encode()
    evil = tmp_path / "evil.zip"
    evil.write_bytes(checkpoint.canonical_zip(entries))
    honest = evaluate_run(params_file, model, tmp_path / "honest")
    crafted = evaluate_run(params_file, evil, tmp_path / "crafted")
    assert not marker.exists()
    assert crafted.episodes.read_bytes() == honest.episodes.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - SB3's own load runs the payload, then fails
        PPO.load(evil, device="cpu")
    assert marker.exists()  # so the payload was live: only our loading ignored it


def test_each_row_of_a_batch_gets_the_bits_it_gets_alone() -> None:
    """What the batched evaluation relies on: a policy's output for one observation is the same
    in a batch of 37 rows (tails of every tile size of the matrix kernel) as alone, for a 64-wide
    MLP (with ATen's own products, MKL's, some rows differ)."""
    import numpy as np
    import torch

    from rlrepro import numerics
    from rlrepro.agents.networks import mlp

    numerics.configure_torch(1)
    torch.manual_seed(0)
    net = mlp((4, 64, 64, 2), "tanh")
    rows = np.random.default_rng(0).normal(size=(37, 4)).astype(np.float32)
    with torch.no_grad():
        batch = net(torch.from_numpy(rows))
        for n in range(len(rows)):
            alone = net(torch.from_numpy(rows[n : n + 1]))
            assert torch.equal(alone[0].view(torch.int32), batch[n].view(torch.int32)), n
