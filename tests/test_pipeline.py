"""The whole pipeline through real `dvc repro` in a temporary git repository, on tiny params."""

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import make_project, run, tiny_params, write_params

OUTPUT_DIRS = ("data", "models", "reports")
UNTRACKED = ("reports/machine/", "reports/timing/")  # wall clock and machine: differ by design


def _outputs(repo: Path) -> dict[str, str]:
    """The sha256 of every tracked pipeline output and of dvc.lock."""
    files = [p for d in OUTPUT_DIRS for p in sorted((repo / d).rglob("*")) if p.is_file()]
    files = [p for p in files if not str(p.relative_to(repo)).startswith(UNTRACKED)]
    files.append(repo / "dvc.lock")
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository holding the project with tiny params, committed."""
    return make_project(tmp_path_factory.mktemp("clone") / "rlrepro", tiny_params())


def test_repro_twice_gives_identical_bytes(repo: Path) -> None:
    run(repo, "dvc", "repro")
    first = _outputs(repo)
    assert "models/cartpole-ppo-1.zip" in first and "reports/metrics.json" in first
    assert "data/env_check/pendulum-reinforce.json" in first
    run(repo, "dvc", "repro", "--force")
    assert _outputs(repo) == first
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "results")
    assert run(repo, "git", "diff", "--exit-code", "dvc.lock").returncode == 0


def test_metrics_and_plots_show(repo: Path) -> None:
    shown = json.loads(run(repo, "dvc", "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"]["reports/metrics.json"]["data"]
    assert set(metrics) == {"cartpole-ppo", "pendulum-reinforce"}
    assert all("return_iqm" in m and "return_iqm_ci95_low" in m for m in metrics.values())
    assert (repo / "reports" / "README.md").read_text().startswith("# Results")
    run(repo, "dvc", "plots", "show", "-o", "plots_out")
    html = (repo / "plots_out" / "index.html").read_text()
    assert "return_mean" in html and "cartpole-ppo" in html


def test_bad_param_fails_repro_and_keeps_results(repo: Path) -> None:
    before = _outputs(repo)
    data = tiny_params()
    data["experiments"]["cartpole-ppo"]["budget"] = {"steps": -1}
    write_params(repo / "params.yaml", data)
    result = run(repo, "dvc", "repro", check=False)
    assert result.returncode != 0
    assert "experiments.cartpole-ppo.budget.steps: expected an integer >= 0, got -1" in (
        result.stdout + result.stderr
    )
    assert _outputs(repo) == before
    run(repo, "git", "checkout", "params.yaml")


def test_exp_run_with_set_param_shows_in_metrics_diff(repo: Path) -> None:
    run(repo, "dvc", "exp", "run", "-S", "experiments.cartpole-ppo.budget.steps=512")
    diff = json.loads(run(repo, "dvc", "metrics", "diff", "--json").stdout)
    changed = diff["reports/metrics.json"]
    assert "cartpole-ppo.return_mean" in changed or any(
        key.startswith("cartpole-ppo.") for key in changed
    )
    assert not any(key.startswith("pendulum-reinforce.") for key in changed)
    # `dvc plots diff` overlays the committed curves and the experiment's on one plot.
    run(repo, "dvc", "plots", "diff", "HEAD", "-o", "plots_diff")
    html = (repo / "plots_diff" / "index.html").read_text()
    assert "reports/curves/cartpole-ppo.csv" in html
    assert '"rev": "HEAD"' in html and '"rev": "workspace"' in html
