"""The whole pipeline through real `dvc repro` in a temporary git repository, on tiny params."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, tiny_params, write_params

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
OUTPUT_DIRS = ("data", "models", "reports")


def _run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def _outputs(repo: Path) -> dict[str, str]:
    """The sha256 of every pipeline output and of dvc.lock."""
    files = [p for d in OUTPUT_DIRS for p in sorted((repo / d).rglob("*")) if p.is_file()]
    files.append(repo / "dvc.lock")
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository holding the project with tiny params, committed."""
    path = tmp_path_factory.mktemp("clone") / "rlrepro"
    path.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    write_params(path / "params.yaml", tiny_params())
    _run(path, "git", "init", "-q", "-b", "main")
    _run(path, "git", "config", "user.email", "test@example.invalid")
    _run(path, "git", "config", "user.name", "test")
    _run(path, "git", "add", "-A")
    _run(path, "git", "commit", "-qm", "tiny project")
    return path


def test_repro_twice_gives_identical_bytes(repo: Path) -> None:
    _run(repo, "dvc", "repro")
    first = _outputs(repo)
    assert "models/cartpole-ppo-1.zip" in first and "reports/metrics.json" in first
    assert "data/env_check/pendulum-reinforce.json" in first
    _run(repo, "dvc", "repro", "--force")
    assert _outputs(repo) == first
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "results")
    assert _run(repo, "git", "diff", "--exit-code", "dvc.lock").returncode == 0


def test_metrics_and_plots_show(repo: Path) -> None:
    shown = json.loads(_run(repo, "dvc", "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"]["reports/metrics.json"]["data"]
    assert set(metrics) == {"cartpole-ppo", "pendulum-reinforce"}
    assert all("eval_return_mean" in m for m in metrics.values())
    _run(repo, "dvc", "plots", "show", "-o", "plots_out")
    html = (repo / "plots_out" / "index.html").read_text()
    assert "return_mean" in html and "cartpole-ppo" in html


def test_bad_param_fails_repro_and_keeps_results(repo: Path) -> None:
    before = _outputs(repo)
    data = tiny_params()
    data["experiments"]["cartpole-ppo"]["budget"] = {"steps": -1}
    write_params(repo / "params.yaml", data)
    result = _run(repo, "dvc", "repro", check=False)
    assert result.returncode != 0
    assert "experiments.cartpole-ppo.budget.steps: expected an integer >= 0, got -1" in (
        result.stdout + result.stderr
    )
    assert _outputs(repo) == before
    _run(repo, "git", "checkout", "params.yaml")


def test_exp_run_with_set_param_shows_in_metrics_diff(repo: Path) -> None:
    _run(repo, "dvc", "exp", "run", "-S", "experiments.cartpole-ppo.budget.steps=512")
    diff = json.loads(_run(repo, "dvc", "metrics", "diff", "--json").stdout)
    changed = diff["reports/metrics.json"]
    assert "cartpole-ppo.eval_return_mean" in changed or any(
        key.startswith("cartpole-ppo.") for key in changed
    )
    assert not any(key.startswith("pendulum-reinforce.") for key in changed)
