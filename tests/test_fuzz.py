"""The fuzzer: property-based tests (Hypothesis) that damage every file a stage reads and mutate
the params, run the stage, and check the property of issue 31:
- it exits 0, or 2 or 3 with exactly one line on stderr;
- it writes nothing outside its project (the project's parent folder holds the project only, and
  no file named by the input appears under the temporary folder);
- an exit other than 0 changes no file (a failed stage leaves every earlier output as it was);
  an exit 0 changes only the stage's own outputs;
- it ends within a deadline.

In the default run (`make test`) each target runs a fixed number of derandomized examples (the
same ones on every run: `derandomize=True`); `make test-slow` runs many more (`@pytest.mark.slow`).
A failure Hypothesis found stays as an `@example`. Stages run in-process through their `main(argv)`
(as `python -m stages.<name>` would), a few as real processes.
"""

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from rlrepro.core import faults
from tests.conftest import ROOT
from tests.stage_files import STAGES, Outcome, files, make_project, params_data, run_stage

# Examples per target: (default run, slow run).
EXAMPLES = {
    "metrics": (30, 600),
    "plot": (10, 200),
    "report": (30, 600),
    "env_check": (6, 60),
    "train": (4, 40),
    "evaluate": (6, 100),
    "params": (25, 1000),
}
DEADLINE = 60  # seconds per example: a hang fails the example
STOP_AT = 1024  # env steps after which a training is stopped (SIGTERM): a long budget is valid
# A name the fuzzer gives to files and experiments: nothing so named may appear outside the
# project.
MARK = "fuzzmark"


def _settings(target: str, slow: bool) -> settings:
    return settings(
        max_examples=EXAMPLES[target][1 if slow else 0],
        derandomize=True,
        deadline=None,  # the stages' own deadline is `DEADLINE`, checked by an alarm
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


TALLY: Counter[str] = Counter()
INTERNAL: set[str] = set()


@pytest.fixture(scope="module", autouse=True)
def tally() -> Iterator[None]:
    """After the module: how the examples ended, per stage (shown with `pytest -s`)."""
    began = time.monotonic()
    yield
    print(f"\nfuzzer: {sum(TALLY.values())} examples in {time.monotonic() - began:.0f} s")
    for key, count in sorted(TALLY.items()):
        print(f"  {key}: {count}")
    for line in sorted(INTERNAL):
        print(f"  internal error: {line}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project whose stages have all run once (and a snapshot of a stopped training)."""
    return make_project(tmp_path_factory.mktemp("fuzz") / "project")


@contextlib.contextmanager
def _copy(project: Path) -> Iterator[Path]:
    """A copy of `project` in a fresh folder of its own, removed afterwards; on leaving, that
    folder must hold the project only (nothing was written beside it)."""
    parent = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        root = Path(shutil.copytree(project, parent / "project", symlinks=True))
        yield root
        assert sorted(p.name for p in parent.iterdir()) == ["project"], "wrote beside the project"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _marked() -> set[str]:
    """The entries of the temporary folder (and the filesystem root) named by the fuzzer."""
    folders = [Path(tempfile.gettempdir()), Path("/")]
    return {str(p) for folder in folders for p in folder.iterdir() if MARK in p.name}


def check(
    outcome: Outcome, before: dict[str, bytes], after: dict[str, bytes], writes: tuple[str, ...]
) -> None:
    """The property, for a stage run that ended with `outcome`, with the project's files
    `before` and `after` it, and the stage's own outputs `writes`."""
    lines = outcome.stderr.splitlines()
    assert outcome.code in (0, 2, 3), f"exit {outcome.code}: {outcome.stderr}"
    if outcome.code != 0:
        assert len(lines) == 1, f"exit {outcome.code} with {len(lines)} lines:\n{outcome.stderr}"
        assert re.match(r"(internal )?error: ", lines[0]), lines[0]
        scratch = [k for k in after if k.startswith(".dvc/tmp/") and k not in before]
        assert {k: v for k, v in after.items() if k not in scratch} == before, "changed files"
        return
    own = tuple(w.rstrip("/") for w in writes)
    changed = {
        k
        for k in set(before) | set(after)
        if before.get(k) != after.get(k) and not k.startswith(".dvc/tmp/")
    }
    strays = [k for k in changed if not any(k == w or k.startswith(f"{w}/") for w in own)]
    assert not strays, f"exit 0 but changed files that are not its outputs: {strays}"


def _run(root: Path, stage: str, damage: Callable[[Path], object]) -> Outcome:
    """Damage the project `root` with `damage`, run `stage` and check the property. A training
    is stopped by SIGTERM after `STOP_AT` env steps (then it exits 143 with one line)."""
    damage(root)
    before = files(root)
    marked = _marked()
    began = time.monotonic()
    os.environ[faults.VARIABLE] = f"TERM@progress:{STOP_AT}"
    try:
        outcome = run_stage(root, stage, DEADLINE)
    finally:
        os.environ.pop(faults.VARIABLE, None)
    event(f"{stage}: exit {outcome.code}")
    TALLY[f"{stage}: exit {outcome.code}"] += 1
    if outcome.code == 3:  # allowed, but a bug to fix: shown after the module
        INTERNAL.add(f"{stage}: {outcome.stderr.strip()}")
    assert time.monotonic() - began < DEADLINE
    if outcome.code == 128 + signal.SIGTERM and stage == "train":
        outcome = Outcome(2, outcome.stderr)  # stopped as asked: one line, a snapshot written
        before = {k: v for k, v in before.items() if not k.startswith("snapshots/")}
        after = {k: v for k, v in files(root).items() if not k.startswith("snapshots/")}
        check(outcome, before, after, STAGES[stage].writes)
    else:
        check(outcome, before, files(root), STAGES[stage].writes)
    assert _marked() <= marked, f"new files named by the input: {_marked() - marked}"
    return outcome


# --- corruptions of the files a stage reads --------------------------------------------------

TOKENS = [
    b"",
    b"nan",
    b"NaN",
    b"inf",
    b"-Infinity",
    b"1e999",
    b"-1",
    b"0",
    b"99999999999999999999999",
    b"abc",
    b"true",
    b"null",
    b",",
    b"\n",
    b'"',
    b"{",
    b"]",
    b"\x00",
    b"\xff\xfe",
    "é✓".encode(),
    MARK.encode(),
]


@st.composite
def corruptions(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` damaged: emptied, truncated, bytes flipped, a token spliced in, a line dropped,
    doubled or swapped, or replaced by garbage."""
    kind = draw(
        st.sampled_from(["empty", "truncate", "flip", "token", "lines", "garbage", "append"])
    )
    size = len(data)
    if kind == "empty":
        return b""
    if kind == "truncate":
        return data[: draw(st.integers(0, max(size - 1, 0)))]
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=512))
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64) | st.sampled_from(TOKENS))
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            if out:
                at = draw(st.integers(0, len(out) - 1))
                out[at] ^= draw(st.integers(1, 255))
        return bytes(out)
    if kind == "token":
        start = draw(st.integers(0, size))
        end = draw(st.integers(start, min(size, start + 12)))
        return data[:start] + draw(st.sampled_from(TOKENS)) + data[end:]
    lines = data.split(b"\n")
    if len(lines) > 1:
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "double", "swap"]))
        if op == "drop":
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _inputs(project: Path, stage: str) -> list[str]:
    """The files `stage` reads in `project`, relative to it."""
    return sorted(
        p.relative_to(project).as_posix()
        for pattern in STAGES[stage].reads
        for p in project.glob(pattern)
        if p.is_file()
    )


def _file_target(project: Path, stage: str, data: st.DataObject) -> None:
    """One example: damage one file `stage` reads, run it, check the property."""
    name = data.draw(st.sampled_from(_inputs(project, stage)), label="file")
    original = (project / name).read_bytes()
    damaged = data.draw(corruptions(original), label="bytes")
    with _copy(project) as root:
        outcome = _run(root, stage, lambda r: (r / name).write_bytes(damaged))
        if stage == "train" and outcome.code == 0:
            # a damaged snapshot is never used: the training starts over, to the same bytes
            for out in ("models/cartpole-ppo-0.zip", "data/curves/cartpole-ppo-0.csv"):
                assert (root / out).read_bytes() == (project / out).read_bytes(), out


def _fuzz_files(stage: str, slow: bool) -> Callable[..., None]:
    @_settings(stage, slow)
    @given(data=st.data())
    def fuzz(project: Path, data: st.DataObject) -> None:
        _file_target(project, stage, data)

    return fuzz


FILE_STAGES = ["metrics", "plot", "report", "env_check", "train", "evaluate"]


@pytest.mark.parametrize("stage", FILE_STAGES)
def test_damaged_inputs(project: Path, stage: str) -> None:
    """Each stage, on every file it reads, damaged: the property holds."""
    _fuzz_files(stage, slow=False)(project)


@pytest.mark.slow
@pytest.mark.parametrize("stage", FILE_STAGES)
def test_damaged_inputs_at_length(project: Path, stage: str) -> None:
    """`test_damaged_inputs` with many more examples (`make test-slow`)."""
    _fuzz_files(stage, slow=True)(project)


# --- mutations of params.yaml ------------------------------------------------------------------

NAMES = [
    f"x$(touch${{IFS}}{MARK})",
    f"/tmp/{MARK}/pwned",
    f"../{MARK}",
    "..",
    ".",
    "a b",
    "-rf",
    f"{MARK};echo",
    "x" * 300,
    "",
    "é✓",
    "\u202e",
    "a\nb",
    "$HOME",
    "*",
]
NUMBERS: list[Any] = [
    True,
    None,
    math.nan,
    math.inf,
    -math.inf,
    -1,
    0,
    2**32,
    2**64,
    10**12,
    1e12,
    -1e308,
    "abc",
    "1",
    [],
    {},
    [1000000, 1000000],
]
RAW = [
    b"",
    b"\xff\xfe\x00garbage",
    b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
    b"[" * 5000 + b"]" * 5000,
    b"seeds: [0\n",
    b"\t- not yaml: [",
    b"!!python/object/apply:os.system ['touch " + MARK.encode() + b"']\n",
]


def _paths(node: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in `node`, parents before children."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*where, key)
            yield from _paths(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*where, index)
            yield from _paths(value, (*where, index))


@st.composite
def params_texts(draw: st.DrawFn) -> bytes:
    """A params file: the tiny params with a few values swapped (types, NaN and inf, huge and
    negative numbers, deep nesting), an experiment renamed (shell, path and Unicode characters),
    a key dropped or added; or raw bytes (garbage, aliases, deep nesting, non-UTF-8)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(RAW) | st.binary(max_size=256))
    data = params_data()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "rename", "drop", "add", "nest"]))
        paths = list(_paths(data))
        if not paths:
            break
        where = draw(st.sampled_from(paths))
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        last = where[-1]
        experiments = data.get("experiments")
        if kind == "rename" and isinstance(experiments, dict) and experiments:
            old = draw(st.sampled_from(sorted(experiments)))
            new = draw(st.sampled_from(NAMES) | st.text(min_size=1, max_size=20))
            experiments[new] = experiments.pop(old)
        elif kind == "drop" and isinstance(parent, dict):
            del parent[last]
        elif kind == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", MARK, "1"]))] = draw(st.sampled_from(NUMBERS))
        elif kind == "nest":
            deep: Any = 1
            for _ in range(draw(st.integers(10, 200))):
                deep = {"a": deep}
            parent[last] = deep
        else:
            parent[last] = draw(
                st.sampled_from(NUMBERS)
                | st.floats()
                | st.integers(-(2**70), 2**70)
                | st.text(max_size=20)
            )
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()))
    return text.encode("utf-8")


PARAMS_STAGES = ["env_check", "metrics", "report", "train"]


def _renamed(name: str) -> bytes:
    """The params with experiment cartpole-ppo renamed `name`."""
    data = params_data()
    data["experiments"][name] = data["experiments"].pop("cartpole-ppo")
    return yaml.safe_dump(data, sort_keys=False).encode("utf-8")


def _params_target(project: Path, text: bytes, stage: str) -> None:
    with _copy(project) as root:
        _run(root, stage, lambda r: (r / "params.yaml").write_bytes(text))
        assert not (root / MARK).exists(), "a name reached a shell or a path"


def _changed(change: Callable[[dict[str, Any]], None]) -> bytes:
    """The params with `change` applied, as YAML."""
    data = params_data()
    change(data)
    return yaml.safe_dump(data, sort_keys=False).encode("utf-8")


def _experiment(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["experiments"]["cartpole-ppo"].__setitem__(key, value)


# Issue 31's cases, always run (each found by hand before the fuzzer existed).
KNOWN = [
    (_changed(_experiment("max_days", math.nan)), "train"),
    (_changed(_experiment("max_days", math.inf)), "train"),
    (_changed(lambda d: d.__setitem__("seeds", [2**32])), "train"),
    (_changed(lambda d: d["experiments"].__setitem__(f"/tmp/{MARK}/pwned", {})), "env_check"),
    (_renamed(f"/tmp/{MARK}/pwned"), "env_check"),
    (_renamed("x" * 300), "env_check"),
    (
        _changed(lambda d: d["experiments"]["cartpole-ppo"]["hyperparams"].update(n_steps=None)),
        "train",
    ),
    (RAW[1], "metrics"),
    (RAW[2], "report"),
]


def _fuzz_params(slow: bool) -> Callable[..., None]:
    @_settings("params", slow)
    @given(text=params_texts(), stage=st.sampled_from(PARAMS_STAGES))
    def fuzz(project: Path, text: bytes, stage: str) -> None:
        _params_target(project, text, stage)

    for text, stage in KNOWN:
        fuzz = example(text=text, stage=stage)(fuzz)
    return fuzz


def test_mutated_params(project: Path) -> None:
    """The stages that read params, on mutated params: the property holds."""
    _fuzz_params(slow=False)(project)


@pytest.mark.slow
def test_mutated_params_at_length(project: Path) -> None:
    """`test_mutated_params` with many more examples (`make test-slow`)."""
    _fuzz_params(slow=True)(project)


# --- a few as real processes ------------------------------------------------------------------


PROCESS_CASES = [
    ("metrics", "data/eval/cartpole-ppo-0.csv", b"episode,episode_return,episode_length\n0,1.0"),
    ("plot", "data/curves/cartpole-ppo-1.csv", b""),
    ("report", "reports/stats/cartpole-ppo.json", b"\xff"),
    ("env_check", "params.yaml", _renamed(f"/tmp/{MARK}/x")),
    ("metrics", "params.yaml", b"a: &a [1,1,1,1,1,1,1,1]\nb: [*a,*a,*a,*a,*a,*a,*a,*a]\n"),
]


@pytest.mark.parametrize(("stage", "name", "data"), PROCESS_CASES)
def test_damaged_inputs_in_a_process(project: Path, stage: str, name: str, data: bytes) -> None:
    """`python -m stages.<stage>` on a damaged input: the property, for a real process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = STAGES[stage].argv
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    with _copy(project) as root:
        (root / name).write_bytes(data)
        before = files(root)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                f"stages.{stage}",
                "--params",
                "params.yaml",
                *argv,
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        outcome = Outcome(done.returncode, done.stderr)
        assert outcome.code != 0, "a damaged input was used"
        check(outcome, before, files(root), STAGES[stage].writes)
    assert not any(MARK in p.name for p in Path(tempfile.gettempdir()).iterdir())
