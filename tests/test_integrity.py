"""Nothing restored is used unverified, through real DVC and the SeaweedFS S3 server of
`tests/test_sharing.py`: a corrupted cache object, a bad workspace file and a remote holding bad
bytes never reach a stage or a clone, each named in one line; every remote fault is one line and
exit 2; a read-only cache is refused before any training; a failed stage leaves its outputs; the
run-cache pushed by `make push` restores every stage in a fresh clone."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BUCKET, KEYS, clone, run, tiny_params, write_params
from tests.test_sharing import CHECKPOINT, add_s3_remote, locked_outputs, read_all
from tools import integrity
from tools.verify import lock_outs

EVALUATION = "data/eval/cartpole-ppo-0.csv"
QUARANTINE = integrity.QUARANTINE.as_posix()


def locked_md5(repo: Path, path: str) -> str:
    """dvc.lock's md5 of output file `path`."""
    lock = lock_outs((repo / "dvc.lock").read_text())
    return next(str(outs[path]) for outs in lock.values() if path in outs)


def cache_object(repo: Path, path: str) -> Path:
    """DVC's cache object of output file `path`, as dvc.lock names it."""
    oid = locked_md5(repo, path)
    return repo / ".dvc" / "cache" / "files" / "md5" / oid[:2] / oid[2:]


def flip_byte(file: Path) -> None:
    """Flip one bit of `file` in place, its mode and name kept (bit rot, a stray write)."""
    mode = file.stat().st_mode
    file.chmod(0o644)
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 1
    file.write_bytes(bytes(data))
    file.chmod(mode)


def corrupted(repo: Path) -> None:
    """In `repo`: the checkpoint's cache object damaged and checked out (DVC copies the bad
    bytes and records them as good), and an evaluation CSV edited in the workspace."""
    flip_byte(cache_object(repo, CHECKPOINT))
    (repo / CHECKPOINT).unlink()
    run(repo, "dvc", "checkout", "-q", CHECKPOINT)
    assert integrity.md5(repo / CHECKPOINT) != locked_md5(repo, CHECKPOINT)  # DVC's own way
    evaluation = repo / EVALUATION
    evaluation.write_text(evaluation.read_text().replace(",", ",9", 1))


def python(repo: Path, *args: str, env: dict[str, str] | None = None) -> "Completed":
    """`python -m ARGS` in `repo`, not checked."""
    return run(repo, sys.executable, "-m", *args, check=False, env=env)


Completed = subprocess.CompletedProcess[str]


def test_check_names_each_bad_file_and_cache_object(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "checked")
    assert python(repo, "tools.check").returncode == 0
    corrupted(repo)
    result = python(repo, "tools.check")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    obj = cache_object(repo, CHECKPOINT).relative_to(repo).as_posix()
    assert sorted(line.split(":")[0] for line in lines[:-1]) == sorted(
        [CHECKPOINT, CHECKPOINT, EVALUATION]
    )
    assert f"{CHECKPOINT}: DVC's cache object {obj} holds other bytes" in result.stdout
    assert f"{EVALUATION}: its bytes are not dvc.lock's" in result.stdout
    assert lines[-1].startswith("against dvc.lock in ") and "files checked, 3 differ" in lines[-1]


def test_pull_sets_bad_bytes_aside_and_fetches_them_again(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "pulled")
    corrupted(repo)
    result = python(repo, "tools.pull")
    assert result.returncode == 0, result.stdout + result.stderr
    aside = [line for line in result.stderr.splitlines() if f": set aside to {QUARANTINE}/" in line]
    assert len(aside) == 3, result.stderr  # the object, the file checked out of it, the CSV
    for path in (CHECKPOINT, EVALUATION):
        assert integrity.md5(repo / path) == locked_md5(repo, path)
    assert integrity.md5(cache_object(repo, CHECKPOINT)) == locked_md5(repo, CHECKPOINT)
    assert (repo / QUARANTINE / "workspace" / EVALUATION).is_file()  # moved, not deleted
    assert python(repo, "tools.check").returncode == 0


def test_push_sends_no_bad_object(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "pushing")
    other = tmp_path / "other-remote"
    run(repo, "dvc", "remote", "add", "--local", "-d", "other", str(other))
    obj = cache_object(repo, CHECKPOINT)
    flip_byte(obj)
    result = python(repo, "tools.push")
    assert result.returncode == 0, result.stdout + result.stderr
    name = obj.relative_to(repo).as_posix()
    assert f"{CHECKPOINT}: DVC's cache object {name} holds other bytes" in result.stderr
    sent = other / "files" / "md5" / obj.parent.name / obj.name  # from the good workspace file
    assert integrity.md5(sent) == locked_md5(repo, CHECKPOINT)


def read_only(repo: Path, folder: Path, *command: str) -> Completed:
    """Run `command` in `repo` with `folder` read-only: a read-only bind mount in a mount
    namespace of its own when this is root (whom permissions do not stop), else its mode."""
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        try:
            return run(repo, *command, check=False)
        finally:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount the cache read-only")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    result = run(repo, "unshare", "-m", "sh", "-c", script, str(folder), *command, check=False)
    if "mount:" in result.stderr or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount read-only here: {result.stderr.strip()}")
    return result


def test_read_only_cache_is_refused_before_training(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "read-only")
    data = tiny_params()
    data["experiments"]["cartpole-ppo"]["budget"]["steps"] = 384  # a training to run
    write_params(repo / "params.yaml", data)
    before = read_all(repo, locked_outputs(repo))
    cache = repo / ".dvc" / "cache"
    start = time.monotonic()
    result = read_only(repo, cache, sys.executable, "-m", "tools.run", "--jobs", "1")
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stdout + result.stderr
    why = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert result.stderr.splitlines() == [
        f"error: .dvc/cache/files/md5: cannot write in it ({why}); it is DVC's cache: outputs are "
        "recorded there, so nothing could be recorded: fix its permissions or mount (or move "
        "DVC's cache: dvc cache dir PATH), then rerun"
    ], result.stderr
    assert "start" not in result.stdout, result.stdout
    assert seconds < 20, seconds
    pulled = read_only(repo, cache, sys.executable, "-m", "tools.pull")
    assert pulled.returncode == 2, pulled.stdout + pulled.stderr
    assert pulled.stderr.startswith("error: .dvc/cache/files/md5: cannot write"), pulled.stderr
    assert read_all(repo, locked_outputs(repo)) == before


@pytest.mark.slow
def test_a_failed_stage_leaves_its_outputs(reproduced: Path, tmp_path: Path) -> None:
    repo = clone(reproduced, tmp_path / "failed")
    data = tiny_params()
    data["experiments"]["cartpole-ppo"]["budget"]["steps"] = 384
    write_params(repo / "params.yaml", data)
    before = read_all(repo, locked_outputs(repo))
    env = {"RLREPRO_FAULT": "KILL@progress:1"}  # a train stage killed at its first report
    result = python(repo, "tools.run", "--jobs", "1", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED  train@cartpole-ppo-0" in result.stdout, result.stdout
    assert "kept    train@cartpole-ppo-0  its outputs of dvc.lock" in result.stdout
    assert read_all(repo, locked_outputs(repo)) == before  # every output, byte for byte
    assert python(repo, "tools.check").returncode == 0


def s3_clone(reproduced: Path, endpoint: str, folder: Path, verify: bool = False) -> Path:
    """A clone of `reproduced` whose outputs went to folder `folder.name` of the S3 remote at
    `endpoint` (with DVC's `verify` when asked), committed."""
    team = clone(reproduced, folder / "team")
    add_s3_remote(team, endpoint, folder.name)
    if verify:
        run(team, "dvc", "remote", "modify", "s3", "verify", "true")
        run(team, "git", "commit", "-qm", "verify", ".dvc/config")
    run(team, "dvc", "push", "-q", env=KEYS)
    return team


def fresh(team: Path, dest: Path) -> Path:
    """A git clone of `team`, nothing pulled."""
    run(team.parent, "git", "clone", "-q", str(team), str(dest))
    return dest


def damage_on_s3(endpoint: str, prefix: str, oid: str) -> None:
    """Flip one bit of object `oid` in folder `prefix` of the S3 remote, under its good name."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=KEYS["AWS_ACCESS_KEY_ID"],
        secret=KEYS["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": endpoint},
    )
    path = f"{BUCKET}/{prefix}/files/md5/{oid[:2]}/{oid[2:]}"
    data = bytearray(fs.cat_file(path))
    data[len(data) // 2] ^= 1
    fs.pipe_file(path, bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("verify", [False, True])
def test_bad_bytes_on_the_remote_never_reach_a_clone(
    reproduced: Path, s3: str, tmp_path: Path, verify: bool
) -> None:
    team = s3_clone(reproduced, s3, tmp_path, verify)
    oid = locked_md5(team, CHECKPOINT)
    damage_on_s3(s3, tmp_path.name, oid)
    clean = fresh(team, tmp_path / "fresh")
    result = python(clean, "tools.pull", env=KEYS)
    assert result.returncode == 2, result.stdout + result.stderr
    source = f"{BUCKET}/{tmp_path.name}/files/md5/{oid[:2]}/{oid[2:]}"
    assert f"{CHECKPOINT}: the remote's object {source} holds other bytes" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        f"error: DVC remote s3 (s3://{BUCKET}/{tmp_path.name} at {s3}): pull "
    )
    assert "1 still missing (dvc.yaml: 1; first: models/cartpole-ppo-0.zip)" in result.stderr
    assert not (clean / CHECKPOINT).exists()  # never the bad bytes
    assert not Path(clean / ".dvc/cache/files/md5" / oid[:2] / oid[2:]).exists()
    repro = python(clean, "tools.run", "--jobs", "1", env=KEYS)  # regenerates it instead
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert "start   train@cartpole-ppo-0" in repro.stdout
    assert read_all(clean, locked_outputs(clean)) == read_all(team, locked_outputs(team))


# Each remote fault: how to make it, then the start of its line.
FAULTS = {
    "missing bucket": (
        ["url", "s3://no-such-bucket/x"],
        "list it: no such bucket or folder (no bucket `no-such-bucket`)",
    ),
    "wrong port": (["endpointurl", "http://127.0.0.1:1"], "connect: unreachable (Connection"),
    "refused keys": ([], "list it: refused the keys (PermissionError: Forbidden)"),
}


@pytest.mark.slow
def test_each_remote_fault_is_one_line(reproduced: Path, s3: str, tmp_path: Path) -> None:
    team = s3_clone(reproduced, s3, tmp_path)
    repo = fresh(team, tmp_path / "faulty")
    run(repo, "dvc", "pull", "-q", env=KEYS)
    (repo / CHECKPOINT).unlink()  # something to pull, and a stage to restore
    outputs = [p for p in locked_outputs(repo) if p != CHECKPOINT]
    before = read_all(repo, outputs)
    config = (repo / ".dvc" / "config").read_text()
    for fault, (change, what) in FAULTS.items():
        if change:
            run(repo, "dvc", "remote", "modify", "s3", *change)
        keys = {**KEYS, "AWS_SECRET_ACCESS_KEY": "wrong"} if fault == "refused keys" else KEYS
        for command in (["tools.pull"], ["tools.run", "--jobs", "1"]):
            start = time.monotonic()
            result = python(repo, *command, env=keys)
            seconds = time.monotonic() - start
            lines = result.stderr.splitlines()
            assert result.returncode == 2, (fault, command, result.stdout, result.stderr)
            assert len(lines) == 1 and lines[0].startswith("error: DVC remote s3 ("), lines
            assert what in lines[0], (fault, lines)
            assert "start   train" not in result.stdout
            assert seconds < 60, (fault, command, seconds)
        (repo / ".dvc" / "config").write_text(config)
        assert read_all(repo, outputs) == before, fault  # nothing in the workspace lost
    broken = {
        "remote s3: endpoint_url: unknown key; did you mean `endpointurl`?": config.replace(
            "endpointurl", "endpoint_url"
        ),
        "remote s3: url s4://... is no kind of remote DVC knows": config.replace("s3://", "s4://"),
    }
    for what, text in broken.items():
        (repo / ".dvc" / "config").write_text(text)
        for command in (["tools.pull"], ["tools.run", "--jobs", "1"]):
            result = python(repo, *command, env=KEYS)
            assert result.returncode == 2, (what, result.stdout, result.stderr)
            assert result.stderr.splitlines() == [
                f"error: DVC's config (.dvc/config, .dvc/config.local): {what}"
                + result.stderr.split(what, 1)[-1].rstrip("\n")
            ], result.stderr
        (repo / ".dvc" / "config").write_text(config)
    assert read_all(repo, outputs) == before


@pytest.mark.slow
def test_an_empty_remote_is_said_before_training(reproduced: Path, s3: str, tmp_path: Path) -> None:
    team = s3_clone(reproduced, s3, tmp_path)
    repo = fresh(team, tmp_path / "typo")
    run(repo, "dvc", "remote", "modify", "s3", "url", f"s3://{BUCKET}/{tmp_path.name}-typo")
    pulled = python(repo, "tools.pull", env=KEYS)
    assert pulled.returncode == 2
    assert "it holds nothing at its URL; check its URL" in pulled.stderr, pulled.stderr
    result = python(repo, "tools.run", "--jobs", "1", env=KEYS)
    assert result.returncode == 0, result.stdout + result.stderr
    said = result.stdout.index(f"DVC remote s3 (s3://{BUCKET}/{tmp_path.name}-typo at ")
    assert "holds nothing at its URL" in result.stdout
    assert said < result.stdout.index("start   train@")


@pytest.mark.slow
def test_pushed_run_cache_restores_every_stage_in_a_fresh_clone(
    reproduced: Path, s3: str, tmp_path: Path
) -> None:
    team = s3_clone(reproduced, s3, tmp_path)
    data = tiny_params()
    data["experiments"]["cartpole-ppo"]["budget"]["steps"] = 384
    write_params(team / "params.yaml", data)
    trained = python(team, "tools.run", "--jobs", "1", env=KEYS)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    pushed = python(team, "tools.push", env=KEYS)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    other = fresh(team, tmp_path / "other")  # the commit of 256 steps, nothing pulled
    write_params(other / "params.yaml", data)
    result = python(other, "tools.run", "--jobs", "1", env=KEYS)
    assert result.returncode == 0, result.stdout + result.stderr
    started = [line for line in result.stdout.splitlines() if line.startswith("start")]
    assert [line.split()[1] for line in started] == ["env_check"], result.stdout
    for stage in ("train@cartpole-ppo-0", "metrics", "plot", "report"):
        assert f"cached  {stage}  from DVC's run-cache" in result.stdout, result.stdout
    assert (other / "dvc.lock").read_bytes() == (team / "dvc.lock").read_bytes()
    assert read_all(other, locked_outputs(other)) == read_all(team, locked_outputs(team))
