"""The error boundary (`rlrepro.console.run`) and what goes through it: one line and an exit code
for every expected error, one line and a traceback file for a bug, DVC's own errors in one
line from the runner, and names that could reach a path or a shell refused before they do
(`docs/errors.md` lists each case with its test)."""

import ast
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rlrepro import console
from rlrepro.core import layout
from rlrepro.core.errors import ParamsError, StageError
from stages import env_check
from tests.conftest import ROOT, make_project, run, tiny_params, write_params

INJECTION = "x$(touch${IFS}INJECTED)"
# Commands that do not go through `console.run`, and why.
OUTSIDE_THE_BOUNDARY = {
    # run by the Makefile in a venv that has nothing installed yet: the standard library only
    "tools/reachable.py",
    # anchors: plain SB3 scripts, without the numerics pins that importing rlrepro sets
    "benchmarks/sb3_train.py",
    "benchmarks/sb3_evaluate.py",
    # runs itself as a plain script whose MKL must not be pinned: importing rlrepro pins it
    "benchmarks/gemm.py",
    # times the anchors in subprocesses that inherit its environment: rlrepro would pin it
    "benchmarks/speed.py",
}


def one_error_line(stderr: str) -> str:
    """The single line of `stderr` (the test fails when there are more or none)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- the boundary itself ------------------------------------------------------------------------


def test_a_user_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def work() -> None:
        raise ParamsError("experiments.x.gamma: expected a number in [0, 1], got 3")

    assert console.run(work) == 2
    assert (
        capsys.readouterr().err
        == "error: experiments.x.gamma: expected a number in [0, 1], got 3\n"
    )


def test_a_command_returns_its_own_exit_code() -> None:
    assert console.run(lambda: 1) == 1
    assert console.run(lambda: None) == 0
    assert console.run(lambda: True) == 0  # a result, not an exit code


def test_a_bug_is_one_line_exit_3_and_its_traceback_in_a_file_under_dvc_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the project is found upward

    def work() -> None:
        found: dict[str, int] = {}
        print(found["missing key\nsecond line " + "x" * 500])

    codes = [console.run(work), console.run(work)]
    assert codes == [3, 3]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    pattern = r"^internal error: KeyError: (.*); traceback in (\S+)$"
    found = [match.groups() for line in lines if (match := re.match(pattern, line))]
    assert len(found) == 2, lines
    message, where = found[0]
    assert "\n" not in message and len(message) <= 160 and message.endswith("...")
    file = (tmp_path / "sub" / where).resolve()
    assert file.parent == tmp_path / ".dvc" / "tmp" / "rlrepro-errors"
    text = file.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError" in text
    assert found[1][1] != where  # one file per error


def test_without_a_project_the_traceback_goes_to_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again

    def work() -> None:
        raise RuntimeError("boom")

    assert console.run(work) == 3
    line = one_error_line(capsys.readouterr().err)
    where = Path(line.rsplit("; traceback in ", 1)[1])
    assert where.resolve().is_relative_to(tmp_path / "tmp")
    assert "RuntimeError: boom" in where.read_text()


def test_ctrl_c_is_one_line_and_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    def work() -> None:
        raise KeyboardInterrupt

    assert console.run(work) == 130
    assert capsys.readouterr().err == "error: stopped by SIGINT (Ctrl-C)\n"


def test_sigterm_to_a_command_is_one_line_and_exit_143() -> None:
    """A command busy in Python code (here a tool's main loop, simulated by a sleep inside
    `console.run`) gets SIGTERM: one line, exit 143, no traceback."""
    code = (
        "import os, signal, sys, time; from rlrepro import console; "
        "sys.exit(console.run(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(30))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 143
    assert one_error_line(done.stderr) == "error: stopped by SIGTERM"


def _main_blocks() -> Iterator[tuple[str, str]]:
    """Each module with a `__main__` block, and that block's source."""
    for folder in ("stages", "tools", "benchmarks"):
        for file in sorted((ROOT / folder).glob("*.py")):
            tree = ast.parse(file.read_text())
            for node in tree.body:
                if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                    yield f"{folder}/{file.name}", ast.unparse(node)


def test_every_command_goes_through_the_boundary() -> None:
    blocks = dict(_main_blocks())
    assert len(blocks) > 15
    through = {name for name, block in blocks.items() if "console.run(main)" in block}
    assert set(blocks) - through == OUTSIDE_THE_BOUNDARY


# -- names and paths ----------------------------------------------------------------------------

BAD_NAMES = [INJECTION, "/tmp/somewhere/pwned", "..", "a/../../b", "x" * 300, "", "-x", "a b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_could_reach_a_shell_or_leave_its_folder_is_refused(name: str) -> None:
    with pytest.raises(
        ParamsError, match=r"^experiments\..*: not a valid name: expected lower-case"
    ):
        layout.experiment_file(Path("data/env_check"), name, ".json")
    with pytest.raises(ParamsError):
        layout.run_file(Path("models"), name, 0, ".zip")


def test_a_long_name_is_shown_cut_in_its_line() -> None:
    with pytest.raises(ParamsError) as caught:
        layout.check_name("x" * 300)
    assert "300 characters" in str(caught.value) and len(str(caught.value)) < 240


@pytest.mark.parametrize("name", ["..", "../x.json", "/etc/passwd", "a/b.json", ""])
def test_a_path_outside_its_folder_is_refused_even_without_the_name_rule(name: str) -> None:
    with pytest.raises(StageError, match="not a file directly in data/eval; refused"):
        layout.inside(Path("data/eval"), name)
    assert layout.inside(Path("data/eval"), "cartpole-ppo-0.csv") == Path(
        "data/eval/cartpole-ppo-0.csv"
    )


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "long", "injection"])
def test_env_check_refuses_a_bad_name_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """The first stage of `dvc repro` (upstream of every `train`, whose shell command holds the
    name) refuses it before it runs a check or writes a report: the earlier reports stay."""
    outside = tmp_path / "somewhere" / "pwned"
    name = {"absolute": str(outside), "dotdot": "..", "long": "x" * 300, "injection": INJECTION}
    data = tiny_params()
    data["experiments"][name[kind]] = data["experiments"]["cartpole-ppo"]
    params_file = write_params(tmp_path / "params.yaml", data)
    reports = tmp_path / "data" / "env_check"
    reports.mkdir(parents=True)
    (reports / "cartpole-ppo.json").write_text("earlier\n")
    paths = env_check.Paths(
        ROOT / "requirements.txt", ROOT / "references/physics.json", tmp_path / "f.json", reports
    )
    args = ["--params", str(params_file), "--requirements", str(paths.requirements)]
    args += ["--references", str(paths.references), "--facts", str(paths.facts)]
    assert env_check.main([*args, "--reports", str(reports)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: experiments.") and "not a valid name" in line
    assert [p.name for p in reports.iterdir()] == ["cartpole-ppo.json"]
    assert not outside.parent.exists() and not paths.facts.exists()


# -- the runner: DVC's errors, names, Ray's address ---------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git + DVC project with the tiny params, nothing reproduced."""
    return make_project(tmp_path / "rlrepro", tiny_params())


def runner(repo: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`python -m tools.run ARGS` in `repo`: its exit code and its one line on stderr."""
    done = run(repo, sys.executable, "-m", "tools.run", *args, check=False, env=env)
    return done.returncode, one_error_line(done.stderr)


def _break(repo: Path, case: str) -> None:
    """Break `repo` as `case` says."""
    if case == "lock-yaml":
        (repo / "dvc.lock").write_text('schema: "2.0"\nstages: [\n')
    elif case == "lock-schema":
        (repo / "dvc.lock").write_text('schema: "2.0"\nstages:\n  env_check:\n    cmd: 3\n')
    elif case == "no-dvc-yaml":
        (repo / "dvc.yaml").unlink()
    elif case == "dvc-yaml-yaml":
        (repo / "dvc.yaml").write_text("stages:\n  a: [\n")
    elif case == "dvc-yaml-schema":
        (repo / "dvc.yaml").write_text("stages:\n  a:\n    cmdd: echo\n")


DVC_CASES = {
    # case: (arguments, what the line says after "error: dvc: ")
    "no-such-stage": (["train@nope"], "Stage 'train@nope' not found inside 'dvc.yaml' file"),
    "lock-yaml": ([], "unable to read: 'dvc.lock', YAML file structure is corrupted"),
    "lock-schema": ([], "'./dvc.lock' validation failed"),
    "no-dvc-yaml": ([], "dvc.yaml' does not exist"),
    "dvc-yaml-yaml": ([], "unable to read: 'dvc.yaml', YAML file structure is corrupted"),
    "dvc-yaml-schema": ([], "'./dvc.yaml' validation failed"),
}


@pytest.mark.parametrize("case", sorted(DVC_CASES))
def test_dvc_errors_are_one_line_as_plain_dvc_prints_them(project: Path, case: str) -> None:
    args, words = DVC_CASES[case]
    _break(project, case)
    code, line = runner(project, *args)
    assert code == 2, line
    assert line.startswith("error: dvc: ") and words in line, line
    assert not (project / ".dvc" / "tmp" / "rlrepro-errors").exists()  # no bug on the way


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` bind-mounted read-only onto itself while inside (the test skips where mounting
    is not allowed); root ignores file modes, not a read-only mount."""
    steps = [["mount", "--bind", str(folder), str(folder)]]
    steps.append(["mount", "-o", "remount,bind,ro", str(folder)])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            if step is not steps[0]:
                subprocess.run(["umount", str(folder)], check=True)
            pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_repository_is_one_line(project: Path, tmp_path: Path) -> None:
    with read_only(project):
        code, line = runner(project, env={"TMPDIR": str(tmp_path)})
    assert code == 2, line
    assert re.fullmatch(
        r"error: \S+/\.dvc/tmp(/lock)?: cannot write it \(Read-only file system\); .*", line
    ), line


@pytest.mark.parametrize("kind", ["injection", "absolute", "dotdot", "long"])
def test_the_runner_refuses_a_bad_name_before_asking_dvc(
    project: Path, tmp_path: Path, kind: str
) -> None:
    outside = tmp_path / "somewhere" / "pwned"
    name = {"absolute": str(outside), "dotdot": "..", "long": "x" * 300, "injection": INJECTION}
    data = tiny_params()
    data["experiments"][name[kind]] = data["experiments"]["cartpole-ppo"]
    write_params(project / "params.yaml", data)
    code, line = runner(project)
    assert code == 2
    assert line.startswith("error: params.yaml: experiments.") and "not a valid name" in line, line
    assert not (project / "INJECTED").exists() and not outside.parent.exists()
    assert run(project, "git", "status", "--porcelain").stdout == " M params.yaml\n"


def _injected(project: Path) -> Path:
    """`project` with an experiment named `INJECTION`, committed."""
    data = tiny_params()
    data["experiments"][INJECTION] = data["experiments"]["cartpole-ppo"]
    write_params(project / "params.yaml", data)
    run(project, "git", "commit", "-qam", "a name with a shell command")
    return project


@pytest.mark.parametrize(
    "command",
    [
        ["dvc", "repro"],
        ["dvc", "repro", "-s", f"train@{INJECTION}-0"],
        ["dvc", "exp", "run", "-S", "evaluate.episodes=3"],
        [sys.executable, "-m", "tools.run"],
        ["dvc", "repro", "-s", "--force", f"train@{INJECTION}-0"],
        ["dvc", "exp", "run", "-s", "-f", f"train@{INJECTION}-0"],
        ["dvc", "repro", "-s", "--force", f"evaluate@{INJECTION}-0"],
    ],
    ids=[
        "dvc-repro",
        "dvc-repro-s",
        "dvc-exp-run-S",
        "tools-run",
        "dvc-repro-s-force",
        "dvc-exp-run-s-f",
        "dvc-repro-s-force-evaluate",
    ],
)
def test_a_name_holding_a_shell_command_runs_nothing(project: Path, command: list[str]) -> None:
    """`dvc repro` and `dvc exp run` stop at env_check, which refuses the name; `dvc repro -s`
    of the train stage stops at its missing dep (DVC hashes deps before it runs a command);
    with `--force` DVC runs the stage's command, which holds no name (`--stage
    "$DVC_STAGE"`), and the stage refuses the name in its address; `make repro` refuses the
    name before asking DVC."""
    repo = _injected(project)
    done = run(repo, *command, check=False)
    assert done.returncode != 0
    assert not (repo / "INJECTED").exists(), done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (repo / "data" / "env_check" / f"{INJECTION}.json").exists()
    if "-f" in command or "--force" in command:
        refusal = f"error: experiments.{INJECTION!r}: not a valid name: expected "
        stage = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(stage) == 1 and stage[0].startswith(refusal), done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("ERROR: failed to reproduce")


def test_an_unparseable_ray_address_is_one_line(project: Path) -> None:
    code, line = runner(project, env={"RAY_ADDRESS": "not a host"})
    assert code == 2
    assert line.startswith("error: RAY_ADDRESS='not a host': expected HOST:PORT"), line


@pytest.mark.slow
def test_an_unreachable_ray_address_is_one_line_within_30_seconds(project: Path) -> None:
    began = time.monotonic()
    code, line = runner(project, env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert time.monotonic() - began < 30
    assert code == 2
    assert line.startswith("error: RAY_ADDRESS=127.0.0.1:1: cannot reach that Ray cluster"), line


def test_dvc_message_joins_causes_on_one_line() -> None:
    from dvc.exceptions import DvcException

    from tools.run import dvc_message

    try:
        try:
            raise OSError("disk\nfull")
        except OSError as cause:
            raise DvcException("failed to reproduce 'x'") from cause
    except DvcException as err:
        assert dvc_message(err) == "failed to reproduce 'x': disk | full"
