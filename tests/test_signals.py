"""SIGTERM and SIGINT stop a training within seconds, with or without `resume`, even inside a
first update that would never end; `make repro` (`tools.run`) stopped by either prints one line
and leaves no process behind, Ray's included, and a SIGKILL of it leaves none either. Real
processes, real signals; marked slow (each starts torch, SB3 or Ray)."""

import contextlib
import hashlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import psutil
import pytest

from tests.conftest import ROOT, make_project, tiny_params, write_params

PROGRESS = re.compile(r"^cartpole-ppo seed 0: ")


def _params(folder: Path, resume: bool, epochs: int) -> Path:
    """Tiny params in `folder` whose first PPO update runs `epochs` epochs (`10**9`: it never
    ends; `max_days` at its highest, so that the schema's bound on one update's time lets it
    through), with snapshots every 64 steps when `resume`; the folder gets dvc.yaml (snapshots
    are keyed on its code deps)."""
    data = tiny_params()
    data["root"] = str(ROOT)
    data["experiments"]["cartpole-ppo"]["hyperparams"]["n_epochs"] = epochs
    data["experiments"]["cartpole-ppo"]["max_days"] = 36525
    if resume:
        data["resume"] = {"every": 64}
    shutil.copy(ROOT / "dvc.yaml", folder / "dvc.yaml")
    return write_params(folder / "params.yaml", data)


@contextlib.contextmanager
def training(folder: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m stages.train` of cartpole-ppo seed 0 in `folder`, stderr piped (bytes)."""
    args = [sys.executable, "-m", "stages.train", "--exp", "cartpole-ppo", "--seed", "0"]
    for option, name in [("model", "m.zip"), ("curve", "c.csv"), ("trace", "t.csv")]:
        args += [f"--{option}", f"out/{name}"]
    args += ["--progress", "out/p.csv", "--timing", "out/timing.json"]
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with subprocess.Popen(args, cwd=folder, env=full, stderr=subprocess.PIPE) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def _wait_for_steps(proc: subprocess.Popen[bytes], steps: int, timeout: float) -> str:
    """Read `proc`'s stderr (raw, so that `select` sees all of it) until a progress line
    reports at least `steps` steps. :return: what was read."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    read = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, f"stderr closed: {read.decode()}"
            read += chunk
        for done in re.findall(rb"^cartpole-ppo seed 0: ([\d,]+)/", read, re.M):
            if int(done.replace(b",", b"")) >= steps:
                return read.decode()
    raise AssertionError(f"no progress line of {steps} steps within {timeout} s: {read!r}")


@pytest.mark.slow
@pytest.mark.parametrize("resume", [False, True], ids=["no-resume", "resume"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_first_update_that_would_never_end(
    tmp_path: Path, signum: signal.Signals, resume: bool
) -> None:
    """n_epochs: 10**9 keeps the first update running for ever: the signal stops it within
    seconds (with `resume`, after `GRACE_SECONDS` waiting for the loop's top), in one line,
    exit 128 + N, nothing written but whole files."""
    _params(tmp_path, resume, epochs=10**9)
    with training(tmp_path) as proc:
        # A progress line late in the first rollout; the update starts at step 128 and the
        # rest of the rollout takes milliseconds.
        before = _wait_for_steps(proc, 100, timeout=300)
        time.sleep(3.0)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    stderr = before + rest.decode()
    errors = [line for line in stderr.splitlines() if not PROGRESS.match(line)]
    assert proc.returncode == 128 + signum, stderr
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"error: cartpole-ppo seed 0: stopped by {signum.name}")
    if resume:
        assert "in the middle of an update (5 s later); no snapshot was due yet" in errors[0]
    else:
        assert "nothing was written (params have no `resume` section)" in errors[0]
    assert took < 30, took
    assert not (tmp_path / "out").exists()
    snapshots = tmp_path / "snapshots"
    assert not snapshots.exists() or not list(snapshots.iterdir())  # no half-written file


@pytest.mark.slow
def test_a_signal_inside_a_snapshot_write_lets_it_finish_whole(tmp_path: Path) -> None:
    """SIGTERM arrives while the first snapshot is half written (`RLREPRO_FAULT=TERM@write:1`):
    the write finishes, the stage stops right after it, and the snapshot is whole."""
    _params(tmp_path, resume=True, epochs=1)
    with training(tmp_path, env={"RLREPRO_FAULT": "TERM@write:1"}) as proc:
        _, raw = proc.communicate(timeout=300)
    stderr = raw.decode()
    errors = [line for line in stderr.splitlines() if not PROGRESS.match(line)]
    assert proc.returncode == 143, stderr
    assert len(errors) == 1, stderr
    assert re.fullmatch(
        r"error: cartpole-ppo seed 0: stopped by SIGTERM at step 128; snapshot "
        r"snapshots/cartpole-ppo-0\.pkl written: rerun `dvc repro` to resume",
        errors[0],
    ), errors
    snapshots = list((tmp_path / "snapshots").iterdir())
    assert [p.name for p in snapshots] == ["cartpole-ppo-0.pkl"]  # no temporary file left
    header, body = snapshots[0].read_bytes().split(b"\n", 1)
    assert header.split()[1].decode() == hashlib.sha256(body).hexdigest()


# -- the runner -------------------------------------------------------------------------------


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _name(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _alive(processes: list[psutil.Process]) -> list[str]:
    left = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(_name(process)[:60])
    return left


def _default_int() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_stopped_runner_prints_one_line_and_leaves_no_process(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """`make repro` with a long training running as a Ray task gets the signal: SIGTERM and
    SIGINT end it with one line and exit 143 or 130; after any of the three (SIGKILL
    included), every process it started, Ray's agents included, is gone within 30 s."""
    data = tiny_params()
    data["seeds"] = [0]
    data["experiments"]["cartpole-ppo"]["budget"] = {"steps": 10**7}
    repo = make_project(tmp_path / "rlrepro", data)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "tools.run", "--jobs", "1"]
    # SIGINT as from a terminal (a background job of a script inherits it ignored)
    with subprocess.Popen(
        command, cwd=repo, env=env, stdout=PIPE, stderr=PIPE, text=True, preexec_fn=_default_int
    ) as proc:
        runner = psutil.Process(proc.pid)
        deadline = time.monotonic() + 300
        while not any("stages.train" in _name(p) for p in _descendants(runner)):
            assert time.monotonic() < deadline and proc.poll() is None, "no training started"
            time.sleep(0.5)
        time.sleep(2.0)
        started = _descendants(runner)
        assert any("ray::" in _name(p) for p in started), [_name(p) for p in started]
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + signum, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith(f"error: stopped by {signum.name}: "), lines
    deadline = time.monotonic() + 30
    while _alive(started):
        assert time.monotonic() < deadline, f"still running: {_alive(started)}"
        time.sleep(0.5)
