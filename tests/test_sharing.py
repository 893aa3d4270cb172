"""Results shared the DVC way, through real DVC and real remotes: a SeaweedFS S3 server and a
local folder. A fresh clone pulls every output (or the runner does, instead of training); the
run-cache restores params already run; experiments go from one clone to another. Slow: each test
runs DVC on the tiny pipeline."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BUCKET, KEYS, clone, run
from tools.pipeline import no_remote
from tools.verify import lock_outs

CHECKPOINT = "models/cartpole-ppo-0.zip"
BUDGET = "experiments.cartpole-ppo.budget.steps"  # the tiny params' is 256


def add_s3_remote(repo: Path, endpoint: str, prefix: str) -> None:
    """Make the S3 folder `prefix` of the bucket at `endpoint` the default remote of `repo`,
    and commit that (the keys stay in the environment)."""
    run(repo, "dvc", "remote", "add", "-d", "s3", f"s3://{BUCKET}/{prefix}")
    run(repo, "dvc", "remote", "modify", "s3", "endpointurl", endpoint)
    run(repo, "git", "commit", "-qm", "results on S3", ".dvc/config")


def locked_outputs(repo: Path) -> list[str]:
    """Every output path dvc.lock records."""
    lock = lock_outs((repo / "dvc.lock").read_text())
    return sorted(path for outs in lock.values() for path in outs)


def stale(repo: Path) -> set[str]:
    """The stages `dvc status` lists, but the machine check (always changed, by design)."""
    listed = json.loads(run(repo, "dvc", "status", "--json", env=KEYS).stdout)
    return {stage for stage in listed if stage != "env_check"}


def read_all(repo: Path, paths: list[str]) -> dict[str, bytes]:
    """The bytes of each file at or under `paths` in `repo`."""
    found = {}
    for path in paths:
        full = repo / path
        for file in sorted(full.rglob("*")) if full.is_dir() else [full]:
            found[file.relative_to(repo).as_posix()] = file.read_bytes()
    return found


def pushed_and_cloned(reproduced: Path, s3: str, folder: Path) -> tuple[Path, Path]:
    """A clone of `reproduced` whose outputs went to a folder of the S3 remote `s3`, and a
    fresh git clone of it (nothing pulled), both in `folder`."""
    team = clone(reproduced, folder / "team")
    add_s3_remote(team, s3, folder.name)
    pushed = run(team, "dvc", "push", env=KEYS)
    assert "pushed" in pushed.stdout, pushed.stdout
    run(folder, "git", "clone", "-q", str(team), str(folder / "fresh"))
    assert not (folder / "fresh" / CHECKPOINT).exists()
    return team, folder / "fresh"


def runner(repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`make repro` (`python -m tools.run`) in `repo`, on one CPU; checked."""
    return run(repo, sys.executable, "-m", "tools.run", "--jobs", "1", env=env)


@pytest.mark.slow
def test_fresh_clone_pulls_every_output_from_s3_and_verifies(
    reproduced: Path, s3: str, tmp_path: Path
) -> None:
    team, fresh = pushed_and_cloned(reproduced, s3, tmp_path)
    start = time.monotonic()
    run(fresh, "dvc", "pull", env=KEYS)
    seconds = time.monotonic() - start
    outputs = locked_outputs(fresh)
    assert not [path for path in outputs if not (fresh / path).exists()]
    assert stale(fresh) == set()
    assert (fresh / CHECKPOINT).read_bytes() == (team / CHECKPOINT).read_bytes()
    assert read_all(fresh, outputs) == read_all(team, outputs)
    (fresh / CHECKPOINT).unlink()  # what a cluster node would pay per input from the remote
    start = time.monotonic()
    run(fresh, "dvc", "pull", CHECKPOINT, env=KEYS)
    print(f"dvc pull from S3: every output {seconds:.1f} s, {CHECKPOINT} alone ", end="")
    print(f"{time.monotonic() - start:.1f} s")
    verified = run(fresh, sys.executable, "-m", "tools.verify", "--jobs", "1", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "identical)" in verified.stdout and " differs " not in verified.stdout


@pytest.mark.slow
def test_repro_in_a_fresh_clone_pulls_from_s3_instead_of_training(
    reproduced: Path, s3: str, tmp_path: Path
) -> None:
    team, fresh = pushed_and_cloned(reproduced, s3, tmp_path)
    result = runner(fresh, env=KEYS)
    started = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("start")}
    assert started == {"env_check"}, result.stdout
    assert "cached  train@cartpole-ppo-0  from DVC's remote" in result.stdout, result.stdout
    outputs = locked_outputs(fresh)
    assert read_all(fresh, outputs) == read_all(team, outputs)
    assert run(fresh, "git", "status", "--porcelain").stdout == ""


@pytest.mark.slow
def test_without_a_remote_pull_and_repro_say_one_line(reproduced: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    run(tmp_path, "git", "clone", "-q", str(reproduced), str(fresh))
    run(fresh, "dvc", "remote", "remove", "store")
    missing = [p for p in locked_outputs(fresh) if not (fresh / p).exists()]
    assert CHECKPOINT in missing
    pulled = run(fresh, sys.executable, "-m", "tools.pull", check=False)
    assert pulled.returncode == 2
    line = no_remote(sorted(missing))
    assert pulled.stderr.splitlines() == [f"error: {line}"]
    assert "make repro: the same bytes" in line
    result = runner(fresh)
    assert f"{line}: regenerating" in result.stdout.splitlines()
    assert "Traceback" not in result.stdout + result.stderr
    assert (fresh / "dvc.lock").read_bytes() == (reproduced / "dvc.lock").read_bytes()


@pytest.mark.slow
def test_params_run_before_come_back_from_the_run_cache(reproduced: Path, tmp_path: Path) -> None:
    sweep = clone(reproduced, tmp_path / "sweep")
    store = tmp_path / "run-cache"
    run(sweep, "dvc", "remote", "add", "--local", "-d", "mine", str(store))
    seen: dict[int, dict[str, bytes]] = {}
    seconds = []
    for value in (384, 512, 384):
        start = time.monotonic()
        done = run(sweep, "dvc", "exp", "run", "-S", f"{BUDGET}={value}")
        seconds.append(time.monotonic() - start)
        run(sweep, "dvc", "push", "--run-cache")  # the run, and its outputs
        trained = "Running stage 'train@cartpole-ppo-0'" in done.stdout
        assert trained == (value not in seen), done.stdout
        outputs = read_all(sweep, locked_outputs(sweep))
        assert seen.setdefault(value, outputs) == outputs
    print(f"dvc exp run -S {BUDGET}= 384, 512, 384: " + ", ".join(f"{s:.1f} s" for s in seconds))
    assert "Stage 'train@cartpole-ppo-0' is cached - skipping run" in done.stdout
    # Only the stages DVC never run-caches ran: the machine check and the results page's.
    assert set(re.findall(r"^Running stage '(\S+)'", done.stdout, re.M)) == {"env_check", "report"}
    # Another clone gets the run-cache through the remote: 512 comes back without training.
    other = clone(reproduced, tmp_path / "other")
    run(other, "dvc", "remote", "add", "--local", "-d", "mine", str(store))
    run(other, "dvc", "pull", "--run-cache")
    done = run(other, "dvc", "exp", "run", "--pull", "-S", f"{BUDGET}=512")
    assert "Running stage 'train@" not in done.stdout, done.stdout
    assert read_all(other, locked_outputs(other)) == seen[512]


@pytest.mark.slow
def test_experiments_go_between_clones_through_one_remote(reproduced: Path, tmp_path: Path) -> None:
    hub = tmp_path / "hub.git"  # the team's git server
    run(tmp_path, "git", "clone", "-q", "--bare", str(reproduced), str(hub))
    store = tmp_path / "store"  # and its DVC remote
    ours, theirs = clone(hub, tmp_path / "ours"), clone(hub, tmp_path / "theirs")
    for repo in (ours, theirs):
        run(repo, "dvc", "remote", "add", "--local", "-d", "team", str(store))
    run(ours, "dvc", "exp", "run", "-n", "longer", "-S", f"{BUDGET}=512")
    made = read_all(ours, locked_outputs(ours))
    run(ours, "dvc", "exp", "push", "origin", "longer")
    assert "longer" in run(theirs, "dvc", "exp", "list", "--name-only", "origin").stdout
    run(theirs, "dvc", "exp", "pull", "origin", "longer")
    run(theirs, "dvc", "exp", "apply", "longer")
    assert read_all(theirs, locked_outputs(theirs)) == made
    assert (theirs / CHECKPOINT).read_bytes() == (ours / CHECKPOINT).read_bytes()
