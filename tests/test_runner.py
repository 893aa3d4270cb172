"""`python -m tools.run` (`make repro`): stale stages side by side through real DVC and real Ray
processes, on tiny params, against a serial `dvc repro` of the same params; marked slow: a Ray
cluster of three nodes on this machine, and a stage killed in the middle of a run."""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml

from tests.conftest import clone, make_project, run, tiny_params, train_process, write_params

T = TypeVar("T")

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


@contextlib.contextmanager
def held(victim: psutil.Process, within: float) -> Iterator[None]:
    """Inside, `victim` is stopped (SIGSTOP, seen within `within` seconds); it goes on after,
    if it is still there."""
    victim.suspend()
    try:
        deadline = time.monotonic() + within
        while victim.status() != psutil.STATUS_STOPPED:  # the signal lands asynchronously
            assert time.monotonic() < deadline, victim.status()
            time.sleep(0.01)
        yield
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.resume()


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
    # SB3 refuses it when the train stage builds the agent; the runner's own check does not
    data["experiments"]["cartpole-ppo"]["hyperparams"]["batch_size"] = 1
    write_params(repo / "params.yaml", data)
    result = runner(repo, "--jobs", "4")  # every train stage at once
    assert result.returncode == 1, result.stdout + result.stderr
    for seed in (0, 1):
        failed = re.search(
            rf"^FAILED +train@cartpole-ppo-{seed} .*\n(( +.*\n)+)", result.stdout, re.M
        )
        assert failed is not None, result.stdout
        assert "cartpole-ppo.hyperparams: ppo rejects them: `batch_size`" in failed[1]
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
        victim = train_process(f"{CHANGED_EXP}-0", timeout=120, within=repo)
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
        # As from a terminal: a job started in the background by a script inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as proc:
        # The stage is held stopped while the runner gets Ctrl-C, so the run cannot end first.
        with held(train_process(f"{CHANGED_EXP}-0", timeout=120, within=repo), 30):
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, output
    assert "error: stopped by SIGINT" in output and "Traceback" not in output, output
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
        with held(train_process(f"{CHANGED_EXP}-0", timeout=120, within=repo), 10):
            edited = changed_params()
            edited["experiments"][CHANGED_EXP]["budget"] = {"episodes": 4}
            write_params(repo / "params.yaml", edited)
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


# Ray makes 127.0.0.1 and localhost its nodes' outward address; another loopback address stays.
LOOPBACK = "127.0.0.2"


def free_port() -> int:
    """A TCP port free on `LOOPBACK` now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class RayNode:
    """A node started by `ray start --block` in a folder of its own (its HOME, TMPDIR and
    --temp-dir): the process and everything it started."""

    folder: Path
    process: "subprocess.Popen[bytes]"

    def processes(self) -> list[psutil.Process]:
        """Its `ray start` and every process below it still running."""
        try:
            top = psutil.Process(self.process.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def raylet(self) -> psutil.Process:
        """Its raylet."""
        (raylet,) = [p for p in self.processes() if p.name() == "raylet"]
        return raylet

    def started(self) -> bool:
        """Whether `ray start` said the node runs; fails the test if it exited instead."""
        said = (self.folder / "ray-start.txt").read_text()
        assert self.process.poll() is None, said
        return "Ray runtime started." in said


def stop(nodes: list[RayNode]) -> None:
    """SIGTERM to each node's `ray start` at once (each stops its node; a worker left without
    its head would wait a minute for it), SIGKILL to whatever of theirs is left after 60 s."""
    left = [process for node in nodes for process in node.processes()]
    for node in nodes:
        node.process.terminate()
    _, alive = psutil.wait_procs(left, timeout=60)
    for process in alive:
        process.kill()
    for node in nodes:
        node.process.wait(timeout=10)


def poll(condition: Callable[[], T | None], what: str, timeout: float) -> T:
    """What `condition()` returns once it is neither None nor false, asked every 50 ms; fails
    the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)
    return result


@pytest.fixture
def documented_cluster() -> Iterator[tuple[str, list[RayNode]]]:
    """The README's cluster, as separate processes on this machine: a token made on the head by
    `ray get-auth-token --generate` and copied to the other nodes, then with
    RAY_AUTH_MODE=token `ray start --head --port=<port> --num-cpus=1` and twice
    `ray start --address=<head>:<port> --num-cpus=1`. Each node has its own folder (short:
    Ray's socket paths must fit 107 bytes). Added for one machine: --block (the test holds and
    stops each node; `ray stop` would stop every Ray here), the node address, ports, a small
    object store, no dashboard.

    :return: the head's address and the nodes, the head first.
    """
    root = Path(tempfile.mkdtemp(prefix="rlrepro-nodes-"))
    port, nodes = free_port(), []
    bin_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    def env(folder: Path) -> dict[str, str]:
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        home = {"HOME": str(folder), "TMPDIR": str(folder / "tmp"), "PATH": bin_path}
        return {**os.environ, **home, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}

    def start(name: str, *args: str) -> RayNode:
        folder = root / name
        command = ["ray", "start", *args, "--num-cpus=1", "--block", f"--temp-dir={folder}/ray"]
        command += [f"--node-ip-address={LOOPBACK}", "--object-store-memory=100000000"]
        command += [f"--dashboard-agent-listen-port={free_port()}"]
        with (folder / "ray-start.txt").open("wb") as said:
            process = subprocess.Popen(
                command, env=env(folder), stdout=said, stderr=subprocess.STDOUT
            )
        return RayNode(folder, process)

    try:
        head_env = env(root / "head")
        run(root, "ray", "get-auth-token", "--generate", env=head_env)
        for worker in ("worker-1", "worker-2"):
            (root / worker / ".ray").mkdir(parents=True)
            shutil.copy(root / "head" / ".ray" / "auth_token", root / worker / ".ray")
        nodes.append(start("head", "--head", f"--port={port}", "--include-dashboard=false"))
        address = f"{LOOPBACK}:{port}"
        nodes += [start(worker, f"--address={address}") for worker in ("worker-1", "worker-2")]
        poll(lambda: all(node.started() for node in nodes), "three nodes started", 120)
        poll(lambda: _alive_nodes(address, head_env) == 3, "three nodes in `ray status`", 120)
        yield address, nodes
    finally:
        stop(nodes)
        shutil.rmtree(root, ignore_errors=True)


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    """How many active nodes `ray status` lists for the cluster at `address`."""
    status = run(Path.cwd(), "ray", "status", f"--address={address}", env=env, check=False)
    active = status.stdout.partition("Active:")[2].partition("Pending:")[0]
    return len(re.findall(r"^ *1 node_", active, flags=re.MULTILINE))


def stage_in_own_folder(nodes: list[RayNode]) -> tuple[RayNode, psutil.Process] | None:
    """The first stage (not a machine check) that one of `nodes` runs in a folder of its own,
    with its node."""
    for node in nodes:
        for process in node.processes():
            try:
                command, cwd = process.cmdline(), Path(process.cwd())
            except psutil.Error:
                continue
            stage = any(arg.startswith("stages.") for arg in command)
            if stage and "stages.env_check" not in command and cwd.is_relative_to(node.folder):
                return node, process
    return None


RUNNER_LINE = re.compile(
    r"(start {3}|done {4}|retry {3})\S|FAILED {2}|NOT RECORDED |node |error: "
    r"|\d+ (stages|failed|not recorded)|Everything is up to date\.$"
)


def not_the_runners(output: str) -> list[str]:
    """The lines of `output` that the runner does not print: all but its own (`RUNNER_LINE`)
    and the indented tail under a `FAILED` line."""
    others, in_failure = [], False
    for line in output.splitlines():
        in_failure = line.startswith("FAILED  ") or (in_failure and line.startswith("    "))
        if not (in_failure or RUNNER_LINE.match(line)):
            others.append(line)
    return others


@pytest.mark.slow
def test_documented_cluster_retries_the_stage_of_a_dead_node(
    reproduced: Path, tmp_path: Path, documented_cluster: tuple[str, list[RayNode]]
) -> None:
    """`RAY_ADDRESS=<head>:<port> python -m tools.run` (what `make repro` runs) in a workspace on
    the head's machine (its HOME, with the token, and RAY_AUTH_MODE=token). A stage that a
    worker node runs in its own folder is held (SIGSTOP, so it cannot finish first), then that
    node's raylet is killed: the runner says so in one line, starts the stage on a live node,
    and ends 0 with the serial lock; every line on the terminal is the runner's, Ray's own are
    in the file that line names."""
    address, nodes = documented_cluster
    head, workers = nodes[0], nodes[1:]
    repo = make_project(tmp_path / "workspace", tiny_params())
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    on_head = {"HOME": str(head.folder), "RAY_AUTH_MODE": "token", "RAY_ADDRESS": address}
    env = {**os.environ, "PATH": path, **on_head}
    terminal = tmp_path / "terminal.txt"
    with (
        terminal.open("wb") as out,
        subprocess.Popen(
            [sys.executable, "-m", "tools.run"], cwd=repo, env=env, stdout=out, stderr=out
        ) as proc,
    ):
        try:
            node, stage = poll(lambda: stage_in_own_folder(workers), "stage on a worker", 300)
            stage.suspend()
            node.raylet().kill()
            poll(lambda: "retry   " in terminal.read_text(), "retry line", 120)
            for process in [stage, *node.processes()]:  # the rest of that machine
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            proc.wait(timeout=600)
        finally:
            proc.kill()
    output = terminal.read_text()
    ray_lines = not_the_runners(output)
    print(f"Ray lines on the terminal: {len(ray_lines)}")
    assert proc.returncode == 0, output
    (retry,) = re.findall(r"^retry +(\S+) +its node (\S+) died \((\w+)\); (.*)$", output, re.M)
    name, dead, error = retry[:3]
    assert error == "NodeDiedError" and retry[3] == (
        "once more on a live node (Ray's log: .dvc/tmp/rlrepro-ray.log)"
    ), output
    places = re.findall(rf"^start +{re.escape(name)} +on (\S+)", output, re.M)
    assert len(places) == 2 and places[0] == dead != places[1], output
    assert re.search(rf"^done +{re.escape(name)} +on {re.escape(places[1])}", output, re.M)
    assert ray_lines == [], f"{len(ray_lines)} of Ray's lines on the terminal:\n{output}"
    assert "[state-dump]" in (repo / ".dvc" / "tmp" / "rlrepro-ray.log").read_text()
    assert (repo / "dvc.lock").read_bytes() == (reproduced / "dvc.lock").read_bytes()
    assert stale(repo) == set()


@pytest.mark.slow
def test_documented_cluster_without_the_auth_mode_is_one_line(
    reproduced: Path, tmp_path: Path, documented_cluster: tuple[str, list[RayNode]]
) -> None:
    """The head's machine, its token there, but RAY_AUTH_MODE unset for the runner (as the
    README's commands would leave it without their `export`): the cluster refuses it; one
    line saying what to set, exit 2, Ray's complaints in its log, no stage recorded but the
    machine check."""
    address, nodes = documented_cluster
    repo = clone(reproduced, tmp_path / "refused")
    write_params(repo / "params.yaml", changed_params())  # something to run: Ray is started
    assert "RAY_AUTH_MODE" not in os.environ
    result = runner(repo, env={"HOME": str(nodes[0].folder), "RAY_ADDRESS": address})
    assert result.returncode == 2, result.stdout + result.stderr
    log = repo / ".dvc" / "tmp" / "rlrepro-ray.log"
    assert result.stderr.splitlines() == [
        f"error: RAY_ADDRESS={address}: that Ray cluster wants its token: set RAY_AUTH_MODE=token "
        "and copy the head's ~/.ray/auth_token here (or name it in RAY_AUTH_TOKEN_PATH); "
        f"Ray's log: {log}"
    ]
    assert not_the_runners(result.stdout) == []
    assert "InvalidAuthToken" in log.read_text()
    # Only the machine check ran (before Ray was needed); no other stage's entry moved.
    now, before = lock_entries(repo), lock_entries(reproduced)
    assert {k: v for k, v in now.items() if k != "env_check"} == {
        k: v for k, v in before.items() if k != "env_check"
    }
