"""Each stage in-process on tiny params: what it writes, and that it writes it the same twice."""

import json
from pathlib import Path

import pandas as pd
import pytest
from stable_baselines3 import PPO

from rlrepro import checkpoint
from rlrepro.episodes import CURVE_HEADER
from stages import env_check, evaluate, metrics, plot, report, train
from tests.conftest import ROOT, tiny_params, write_params

EXPERIMENTS = ("cartpole-ppo", "pendulum-reinforce")


def _train(params_file: Path, out: Path, exp: str, seed: int) -> tuple[Path, Path]:
    model, curve = out / f"{exp}-{seed}.zip", out / f"{exp}-{seed}.csv"
    code = train.main(
        [
            "--params",
            str(params_file),
            "--exp",
            exp,
            "--seed",
            str(seed),
            "--model",
            str(model),
            "--curve",
            str(curve),
            "--trace",
            str(out / f"{exp}-{seed}.trace.csv"),
            "--progress",
            str(out / f"{exp}-{seed}.progress.csv"),
            "--timing",
            str(out / f"{exp}-{seed}.timing.json"),
        ]
    )
    assert code == 0
    return model, curve


def _evaluate(params_file: Path, model: Path, episodes: Path, metrics: Path) -> None:
    args = ["--params", str(params_file), "--model", str(model)]
    args += ["--episodes-out", str(episodes), "--metrics-out", str(metrics)]
    assert evaluate.main(args) == 0


def test_env_check_writes_machine_free_report(params_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = [
        "--params",
        str(params_file),
        "--exp",
        "pendulum-reinforce",
        "--out",
        str(out),
        "--requirements",
        str(ROOT / "requirements.txt"),
        "--references",
        str(ROOT / "references" / "physics.json"),
        "--facts",
        str(tmp_path / "machine" / "facts.json"),
    ]
    assert env_check.main(args) == 0
    report = json.loads(out.read_text())
    assert report["env"] == "InvertedPendulum-v5"
    assert report["reward_threshold"] == 950.0
    assert report["version_mismatches"] == []
    assert report["key_versions"]["torch"] == "==2.13.0"
    text = out.read_text()
    assert str(ROOT) not in text and "/tmp" not in text and "\x1b" not in text


def test_env_check_fails_on_version_mismatch_unless_allowed(
    params_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("numpy==0.0.1\n")
    out = tmp_path / "report.json"
    args = [
        "--params",
        str(params_file),
        "--exp",
        "cartpole-ppo",
        "--out",
        str(out),
        "--requirements",
        str(lock),
        "--references",
        str(ROOT / "references" / "physics.json"),
        "--facts",
        str(tmp_path / "machine" / "facts.json"),
    ]
    assert env_check.main(args) == 2
    assert "numpy: locked ==0.0.1, installed" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.setenv(env_check.ALLOW_MISMATCH_VAR, "1")
    assert env_check.main(args) == 0
    assert "warning: version mismatch allowed: numpy" in capsys.readouterr().err
    assert json.loads(out.read_text())["version_mismatches"][0].startswith("numpy: locked")


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_train_twice_gives_identical_bytes(params_file: Path, tmp_path: Path, exp: str) -> None:
    first = _train(params_file, tmp_path / "a", exp, seed=0)
    second = _train(params_file, tmp_path / "b", exp, seed=0)
    other_seed = _train(params_file, tmp_path / "c", exp, seed=1)
    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[1].read_bytes() == second[1].read_bytes()
    weights = [checkpoint.read_entries(run[0])["policy.pth"] for run in (first, other_seed)]
    assert weights[0] != weights[1]
    curve = pd.read_csv(first[1])
    assert tuple(curve.columns) == CURVE_HEADER
    assert curve["step"].is_monotonic_increasing and len(curve) > 0
    assert checkpoint.read_meta(first[0])["algo"] == tiny_params()["experiments"][exp]["algo"]


def test_sb3_checkpoint_opens_with_sb3_load(params_file: Path, tmp_path: Path) -> None:
    model, _ = _train(params_file, tmp_path, "cartpole-ppo", seed=0)
    loaded = PPO.load(model, device="cpu")
    assert loaded.num_timesteps == 256
    assert loaded.policy.mlp_extractor.policy_net[0].out_features == 8


def test_reinforce_budget_in_steps(tmp_path: Path) -> None:
    data = tiny_params()
    data["experiments"]["pendulum-reinforce"]["budget"] = {"steps": 50}
    _, curve = _train(write_params(tmp_path / "p.yaml", data), tmp_path, "pendulum-reinforce", 0)
    steps = pd.read_csv(curve)["step"]
    assert steps.iloc[-1] >= 50 > steps.iloc[-2]


def test_evaluate_is_seeded_and_repeatable(params_file: Path, tmp_path: Path) -> None:
    for exp in EXPERIMENTS:
        model, _ = _train(params_file, tmp_path, exp, seed=0)
        outs = []
        for name in ("a", "b"):
            episodes, metrics = tmp_path / f"{exp}-{name}.csv", tmp_path / f"{exp}-{name}.json"
            _evaluate(params_file, model, episodes, metrics)
            outs.append((episodes.read_bytes(), metrics.read_bytes()))
        assert outs[0] == outs[1]
        summary = json.loads(outs[0][1])
        assert summary["episodes"] == 2
        frame = pd.read_csv(tmp_path / f"{exp}-a.csv")
        assert summary["return_mean"] == pytest.approx(frame["episode_return"].mean())


def test_metrics_plot_and_report(params_file: Path, tmp_path: Path) -> None:
    curves, evals, progress = tmp_path / "curves", tmp_path / "eval", tmp_path / "progress"
    stale = tmp_path / "figures" / "removed-experiment.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    for exp in EXPERIMENTS:
        for seed in (0, 1):
            model, _ = _train(params_file, curves, exp, seed)
            progress.mkdir(exist_ok=True)
            (curves / f"{exp}-{seed}.progress.csv").rename(progress / f"{exp}-{seed}.csv")
            _evaluate(params_file, model, evals / f"{exp}-{seed}.csv", evals / f"{exp}-{seed}.json")
    out = tmp_path / "metrics.json"
    base = ["--params", str(params_file)]
    assert (
        metrics.main(
            [*base, "--evals", str(evals), "--progress", str(progress), "--metrics", str(out)]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert sorted(result) == sorted(EXPERIMENTS)
    returns = [pd.read_csv(evals / f"cartpole-ppo-{s}.csv")["episode_return"] for s in (0, 1)]
    pooled = pd.concat(returns)
    m = result["cartpole-ppo"]
    assert m["return_mean"] == pytest.approx(pooled.mean(), abs=1e-4)
    assert m["seeds"] == 2 and m["episodes"] == 4
    assert m["return_iqm_ci95_low"] <= m["return_iqm"] <= m["return_iqm_ci95_high"]
    assert m["threshold"] == 475.0 and m["success_rate"] == pytest.approx((pooled >= 475).mean())
    first = out.read_bytes()
    assert (
        metrics.main(
            [*base, "--evals", str(evals), "--progress", str(progress), "--metrics", str(out)]
        )
        == 0
    )
    assert out.read_bytes() == first  # the bootstrap is seeded from params

    plot_args = [
        *base,
        "--curves",
        str(curves),
        "--metrics",
        str(out),
        "--out-curves",
        str(tmp_path / "mean"),
        "--out-episode-curves",
        str(tmp_path / "mean_episodes"),
        "--figures",
        str(tmp_path / "figures"),
    ]
    assert plot.main(plot_args) == 0
    names = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert names == [
        "all-curves.png",
        "all-final-iqm.png",
        "cartpole-ppo.png",
        "pendulum-reinforce.png",
    ]
    png = (tmp_path / "figures" / "cartpole-ppo.png").read_bytes()
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"matplotlib" not in png
    assert not stale.exists()
    figures = {p.name: p.read_bytes() for p in sorted(tmp_path.glob("figures/*"))}
    assert plot.main(plot_args) == 0
    assert figures == {p.name: p.read_bytes() for p in sorted(tmp_path.glob("figures/*"))}
    by_episode = pd.read_csv(tmp_path / "mean_episodes" / "pendulum-reinforce.csv")
    assert by_episode["episode"].iloc[0] == 1 and set(by_episode["n_seeds"]) == {2}

    page = tmp_path / "README.md"
    report_args = [*base, "--metrics", str(out), "--requirements", str(ROOT / "requirements.txt")]
    assert report.main([*report_args, "--out", str(page)]) == 0
    text = page.read_text()
    assert "| `cartpole-ppo` | CartPole-v1 | ppo | 8-8 tanh | 256 steps | 2 |" in text
    assert "![All experiments' learning curves](figures/all-curves.png)" in text
    assert "| torch | 2.13.0 |" in text
