"""`python -m tools.run` (`make repro`): stale stages side by side through real DVC and real Ray
processes, on tiny params, against a serial `dvc repro` of the same params; marked slow: a Ray
cluster of three nodes on this machine, and a stage killed in the middle of a run."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.conftest import clone, make_project, run, tiny_params, train_process, write_params

CHANGED_EXP = "pendulum-reinforce"
RERUN = {
    *(f"{stage}@{CHANGED_EXP}-{seed}" for stage in ("train", "evaluate") for seed in (0, 1)),
    "metrics",
    "plot",
    "report",
}


def changed_params() -> dict[str, Any]:
    """The tiny params with one experiment's budget changed."""
    data = tiny_params()
    data["experiments"][CHANGED_EXP]["budget"] = {"episodes": 3}
    return data


def runner(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m tools.run` in `repo` (not checked: the caller reads the exit code)."""
    return run(repo, sys.executable, "-m", "tools.run", *args, check=False, env=env)


def started(output: str) -> dict[str, str]:
    """Each stage the runner started, and where (`host:node (workspace|own folder)`)."""
    return dict(re.findall(r"^start +(\S+) +on (.+)$", output, flags=re.MULTILINE))


def stale(repo: Path) -> set[str]:
    """What `dvc status` lists as changed, but the machine checks (always changed)."""
    listed = json.loads(run(repo, "dvc", "status", "--json").stdout)
    return {stage for stage in listed if stage != "env_check"}


def lock_entries(repo: Path) -> dict[str, Any]:
    """dvc.lock's stages."""
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


@pytest.fixture(scope="module")
def serial_changed(reproduced: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of the reproduced project where serial `dvc repro` ran `changed_params()`."""
    repo = clone(reproduced, tmp_path_factory.mktemp("serial") / "rlrepro")
    write_params(repo / "params.yaml", changed_params())
    run(repo, "dvc", "repro")
    return repo


def test_up_to_date_starts_no_ray(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "noop")
    probe = (
        "import sys; from tools import run; code = run.main([]); "
        "print('ray imported:', 'ray' in sys.modules); sys.exit(code)"
    )
    written = (repo / "dvc.lock").stat().st_mtime_ns
    result = run(repo, sys.executable, "-c", probe)
    assert "Everything is up to date." in result.stdout
    assert (repo / "dvc.lock").stat().st_mtime_ns == written  # the passed check: not rewritten
    assert "ray imported: False" in result.stdout
    assert set(started(result.stdout)) == {"env_check"}
    assert run(repo, "git", "status", "--porcelain").stdout == ""


def test_seeds_that_dvc_cannot_expand_are_one_line_naming_the_key(
    reproduced: Path, tmp_path: Path
) -> None:
    repo = clone(reproduced, tmp_path / "seeds")
    data = tiny_params()
    data["seeds"] = "abc"
    write_params(repo / "params.yaml", data)
    result = runner(repo)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: params.yaml: seeds: expected a non-empty list of distinct integers, got 'abc'"
    ]
    assert run(repo, "git", "status", "--porcelain").stdout == " M params.yaml\n"


def test_a_repository_locked_by_another_dvc_is_one_line(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "busy")
    holder = (
        "import sys, time; from dvc.repo import Repo, lock_repo; "
        "repo = Repo(); lock = lock_repo(repo); lock.__enter__(); "
        "print('locked', flush=True); time.sleep(120)"
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with subprocess.Popen(
        [sys.executable, "-c", holder],
        cwd=repo,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        text=True,
    ) as other:
        assert other.stdout is not None and other.stdout.readline() == "locked\n"
        result = runner(repo)
        other.kill()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: .dvc/tmp/lock: another DVC command holds this repository (a `dvc repro` or "
        "`make repro` still running?); wait for it to end, or give every pipeline to one run: "
        "python -m tools.run dvc.yaml studies/<name>/dvc.yaml"
    ]


def test_param_change_reruns_those_stages_with_the_serial_lock(
    reproduced: Path, serial_changed: Path, tmp_path: Path
) -> None:
    repo = clone(reproduced, tmp_path / "changed")
    write_params(repo / "params.yaml", changed_params())
    result = runner(repo, "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s for s in started(result.stdout) if s != "env_check"} == RERUN
    assert (repo / "dvc.lock").read_bytes() == (serial_changed / "dvc.lock").read_bytes()
    assert stale(repo) == set()


def test_failed_stage_is_named_and_the_others_are_recorded(
    reproduced: Path, serial_changed: Path, tmp_path: Path
) -> None:
    repo = clone(reproduced, tmp_path / "failing")
    data = changed_params()
    data["experiments"]["cartpole-ppo"]["hyperparams"]["n_stepz"] = 1  # found by train only
    write_params(repo / "params.yaml", data)
    result = runner(repo, "--jobs", "4")  # every train stage at once
    assert result.returncode == 1, result.stdout + result.stderr
    for seed in (0, 1):
        failed = re.search(
            rf"^FAILED +train@cartpole-ppo-{seed} .*\n(( +.*\n)+)", result.stdout, re.M
        )
        assert failed is not None, result.stdout
        assert "cartpole-ppo.hyperparams.n_stepz: unknown hyperparameter of ppo" in failed[1]
    now, serial = lock_entries(repo), lock_entries(serial_changed)
    for seed in (0, 1):
        name = f"train@{CHANGED_EXP}-{seed}"
        assert f"done    {name}" in result.stdout
        assert now[name] == serial[name]
    assert not any(
        s.startswith(("evaluate@", "metrics", "plot", "report")) for s in started(result.stdout)
    )
    assert stale(repo) == {  # the failed stages' evaluations too: DVC deleted their inputs
        *(f"{stage}@cartpole-ppo-{seed}" for stage in ("train", "evaluate") for seed in (0, 1)),
        *(s for s in RERUN if not s.startswith("train@")),
    }


@pytest.mark.slow
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_killed_stage_fails_alone_and_a_rerun_completes(
    reproduced: Path, serial_changed: Path, tmp_path: Path, shell: str
) -> None:
    """DVC runs a stage through $SHELL, else /bin/sh: dash reports its killed child as exit
    137, bash execs the command and is killed itself; both read as the signal."""
    repo = clone(reproduced, tmp_path / "killed")
    write_params(repo / "params.yaml", changed_params())
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    full = {**os.environ, "PATH": path, "SHELL": shell}
    with subprocess.Popen(
        [sys.executable, "-m", "tools.run", "--jobs", "2"],
        cwd=repo,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        victim = train_process(f"{CHANGED_EXP}-0", timeout=120)
        victim.send_signal(signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output
    assert re.search(rf"^FAILED +train@{CHANGED_EXP}-0 .*killed by signal 9", output, re.M), output
    other = f"train@{CHANGED_EXP}-1"
    assert f"done    {other}" in output
    assert lock_entries(repo)[other] == lock_entries(serial_changed)[other]
    rerun = runner(repo)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"start   {other}" not in rerun.stdout
    assert (repo / "dvc.lock").read_bytes() == (serial_changed / "dvc.lock").read_bytes()
    assert stale(repo) == set()


@pytest.mark.slow
def test_interrupted_run_is_one_line_and_a_rerun_completes(
    reproduced: Path, serial_changed: Path, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT) on the runner: one line and exit 130, no traceback, no stage left running;
    a rerun finishes with the serial lock."""
    repo = clone(reproduced, tmp_path / "interrupted")
    write_params(repo / "params.yaml", changed_params())
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with subprocess.Popen(
        [sys.executable, "-m", "tools.run", "--jobs", "2"],
        cwd=repo,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        train_process(f"{CHANGED_EXP}-0", timeout=120)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, output
    assert "error: interrupted (SIGINT)" in output and "Traceback" not in output, output
    deadline = time.monotonic() + 30
    while _stages_in(repo):
        assert time.monotonic() < deadline, "a stage outlived the interrupted runner"
        time.sleep(0.5)
    rerun = runner(repo)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert (repo / "dvc.lock").read_bytes() == (serial_changed / "dvc.lock").read_bytes()
    assert stale(repo) == set()


def _stages_in(folder: Path) -> list[psutil.Process]:
    """The stage processes (`python -m stages.…`) working in `folder`."""
    found = []
    for process in psutil.process_iter():
        try:
            stage = any(arg.startswith("stages.") for arg in process.cmdline())
            if stage and Path(process.cwd()).is_relative_to(folder):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
def test_params_edited_while_a_stage_runs_are_not_recorded_as_its_inputs(
    reproduced: Path, tmp_path: Path
) -> None:
    """The runner records the inputs a stage started with: an edit to params.yaml while the
    stage runs (held by SIGSTOP, so that it cannot finish first) leaves that stage out of
    dvc.lock, said in one line and exit 1, and `dvc status` still lists it; a rerun records the
    stage with the new params."""
    repo = clone(reproduced, tmp_path / "edited")
    write_params(repo / "params.yaml", changed_params())
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with subprocess.Popen(
        [sys.executable, "-m", "tools.run", "--jobs", "1"],
        cwd=repo,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        victim = train_process(f"{CHANGED_EXP}-0", timeout=120)
        victim.suspend()
        try:
            deadline = time.monotonic() + 10
            while victim.status() != psutil.STATUS_STOPPED:  # the signal lands asynchronously
                assert time.monotonic() < deadline, victim.status()
                time.sleep(0.01)
            edited = changed_params()
            edited["experiments"][CHANGED_EXP]["budget"] = {"episodes": 4}
            write_params(repo / "params.yaml", edited)
        finally:
            victim.resume()
        output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output
    name = f"train@{CHANGED_EXP}-0"
    assert re.search(rf"^NOT RECORDED {name}: params\.yaml.* changed while it ran", output, re.M), (
        output
    )
    assert name in stale(repo)
    assert lock_entries(repo)[name] == lock_entries(reproduced)[name]  # the entry it had
    rerun = runner(repo)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"start   {name}" in rerun.stdout
    assert stale(repo) == set()


@pytest.fixture
def three_nodes() -> Iterator[Any]:
    """A Ray cluster on this machine: a head and two worker nodes, one CPU each."""
    from ray.cluster_utils import Cluster

    store = 100 * 1024**2
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store}
    )
    workers = [cluster.add_node(num_cpus=1, object_store_memory=store) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_cluster_of_three_nodes_gives_the_serial_lock(
    reproduced: Path, tmp_path: Path, three_nodes: Any
) -> None:
    cluster, workers = three_nodes
    repo = make_project(tmp_path / "cluster", tiny_params())
    env = {"RAY_ADDRESS": cluster.address, "RLREPRO_RUN_ISOLATED": "1"}
    result = runner(repo, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    where = started(result.stdout)
    ran = {place for name, place in where.items() if name != "env_check"}
    assert all(place.endswith("(own folder)") for place in ran), ran
    for worker in workers:
        label = worker.node_id[:8]
        assert f":{label} passed the machine checks" in result.stdout, result.stdout
        assert any(f":{label} (own folder)" in place for place in ran), result.stdout
    assert (repo / "dvc.lock").read_bytes() == (reproduced / "dvc.lock").read_bytes()
    assert stale(repo) == set()
