"""The whole pipeline through real `dvc repro` in a temporary git repository, on tiny params, and
what a user sees through DVC's own verbs."""

import hashlib
import json
import re
from pathlib import Path

from tests.conftest import ROOT, clone, run, tiny_params, write_params

OUTPUT_DIRS = ("data", "models", "metrics", "reports")
UNTRACKED = ("reports/machine/", "reports/timing/")  # wall clock and machine: differ by design
EXPERIMENTS = sorted(tiny_params()["experiments"])


def _outputs(repo: Path) -> dict[str, str]:
    """The sha256 of every tracked pipeline output and of dvc.lock."""
    files = [p for d in OUTPUT_DIRS for p in sorted((repo / d).rglob("*")) if p.is_file()]
    files = [p for p in files if not str(p.relative_to(repo)).startswith(UNTRACKED)]
    files.append(repo / "dvc.lock")
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _stale_stages(repo: Path) -> set[str]:
    """The stages `dvc status` lists as changed, but `env_check` (always run, by design)."""
    listed = json.loads(run(repo, "dvc", "status", "--json").stdout)
    return {stage for stage in listed if stage != "env_check"}


def test_repro_twice_gives_identical_bytes(reproduced: Path, tmp_path: Path) -> None:
    first = _outputs(reproduced)
    assert "models/cartpole-ppo-1.zip" in first and "metrics/cartpole-ppo.json" in first
    assert "data/env_check/pendulum-reinforce.json" in first
    repo = clone(reproduced, tmp_path / "again")
    assert _stale_stages(repo) == set()  # a fresh clone holds every result
    run(repo, "dvc", "repro", "--force")
    assert _outputs(repo) == first
    assert run(repo, "git", "status", "--porcelain").stdout == ""


def test_metrics_show_one_short_row_per_experiment(reproduced: Path) -> None:
    shown = run(reproduced, "dvc", "metrics", "show").stdout.splitlines()
    # 2 seeds: the IQM without an interval (fewer than 10 runs), the mean with its t interval
    assert shown[0].split()[:5] == ["Path", "iqm", "mean", "mean_hi", "mean_lo"], shown
    assert sorted(line.split()[0] for line in shown[1:]) == [
        f"metrics/{exp}.json" for exp in EXPERIMENTS
    ]
    assert max(len(line) for line in shown) <= 120, shown


def test_plots_show_one_curve_and_the_figures_per_experiment(
    reproduced: Path, tmp_path: Path
) -> None:
    shown = json.loads(
        run(reproduced, "dvc", "plots", "show", "--json", "-o", str(tmp_path / "p")).stdout
    )
    curves = [f"reports/curves/{exp}.csv" for exp in EXPERIMENTS]
    figures = [f"reports/figures/{name}.png" for name in ("all-curves", "all-final-iqm")]
    figures += [f"reports/figures/{exp}.png" for exp in EXPERIMENTS]
    envs = {tiny_params()["experiments"][exp]["env"] for exp in EXPERIMENTS}
    figures += [f"reports/figures/profile-{env}.png" for env in envs]
    assert sorted(shown["data"]) == sorted(curves + figures)
    html = run(reproduced, "dvc", "plots", "show", "-o", str(tmp_path / "html")).stdout
    assert "index.html" in html


def test_failed_rerun_then_checkout_gives_back_every_output(
    reproduced: Path, tmp_path: Path
) -> None:
    repo = clone(reproduced, tmp_path / "bad")
    before = _outputs(repo)
    data = tiny_params()
    data["trace"]["every"] = 0  # read by the train stages alone
    write_params(repo / "params.yaml", data)
    result = run(repo, "dvc", "repro", check=False)
    assert result.returncode != 0
    assert "trace.every: expected an integer >= 1, got 0" in result.stdout + result.stderr
    assert _outputs(repo) != before  # DVC deleted the failed stage's outputs before it ran
    run(repo, "dvc", "checkout")
    assert _outputs(repo) == before


def test_exp_run_with_set_param_shows_in_metrics_diff(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "exp")
    committed = json.loads((repo / "metrics/cartpole-ppo.json").read_text())
    run(repo, "dvc", "exp", "run", "-S", "experiments.cartpole-ppo.budget.steps=512")
    now = json.loads((repo / "metrics/cartpole-ppo.json").read_text())
    assert now != committed
    diff = json.loads(run(repo, "dvc", "metrics", "diff", "--json").stdout)
    assert set(diff) == {"metrics/cartpole-ppo.json"}  # the other experiment: unchanged
    for key, change in diff["metrics/cartpole-ppo.json"].items():
        assert (change["old"], change["new"]) == (committed.get(key), now.get(key)), key
    assert {k for k in now if now[k] != committed.get(k)} == set(diff["metrics/cartpole-ppo.json"])
    # `dvc plots diff` overlays the committed curves and the experiment's on one plot.
    run(repo, "dvc", "plots", "diff", "HEAD", "-o", "plots_diff")
    html = (repo / "plots_diff" / "index.html").read_text()
    assert "reports/curves/cartpole-ppo.csv" in html
    assert '"rev": "HEAD"' in html and '"rev": "workspace"' in html


def test_cosmetic_change_reruns_nothing_but_a_training_change_retrains(
    reproduced: Path, tmp_path: Path
) -> None:
    repo = clone(reproduced, tmp_path / "edit")
    console = repo / "rlrepro" / "console.py"
    text = console.read_text()
    edited = re.sub(r'"exp": "[^"]*"', '"exp": "the experiment to run, by its name"', text)
    assert edited != text
    console.write_text(edited)
    assert _stale_stages(repo) == set()
    recording = repo / "rlrepro" / "training" / "recording.py"
    recording.write_text(recording.read_text() + "\n# a change to training code\n")
    stale = _stale_stages(repo)
    assert {f"train@{exp}-{seed}" for exp in EXPERIMENTS for seed in (0, 1)} <= stale
    assert not any(s.startswith(("evaluate@", "metrics", "plot", "report")) for s in stale)


def test_stage_outside_the_environment_says_how_to_enter_it() -> None:
    bare = ("/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "python3", "-m", "stages.train")
    result = run(ROOT, *bare, check=False)
    if "No module named" in result.stderr and "stages" in result.stderr:
        raise AssertionError(result.stderr)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "make repro" in lines[0] and "source .venv/bin/activate" in lines[0]
