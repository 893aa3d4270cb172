"""Damaged inputs: each file a stage reads, empty, header-only, cut short, with text or a
non-finite value in it, is one line naming the file and exit 2 (issue 31), never a traceback and
never used silently."""

import re
import shutil
from pathlib import Path

import pytest

from benchmarks import bench
from rlrepro.core import readers
from rlrepro.core.errors import StageError
from rlrepro.results import EVAL_COLUMNS, STATS_SHAPE
from rlrepro.training.trace import TRACE_HEADER
from tests.stage_files import files, make_project, run_stage
from tools.verify import episode_parting, trace_parting


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project whose stages have all run once."""
    return make_project(tmp_path_factory.mktemp("readers") / "project")


@pytest.fixture
def copy(project: Path, tmp_path: Path) -> Path:
    """A copy of the project, to damage."""
    return Path(shutil.copytree(project, tmp_path / "project", symlinks=True))


def _fails(root: Path, stage: str, pattern: str) -> None:
    """Stage `stage` in `root` exits 2 with one line matching `pattern`, and changes no file."""
    before = files(root)
    outcome = run_stage(root, stage)
    assert outcome.code == 2, outcome
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert files(root) == before


EVAL = "data/eval/cartpole-ppo-1.csv"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", rf"^error: {EVAL}: empty; expected an evaluation CSV with header `episode,"),
        (
            "episode,episode_return,episode_length\n",
            rf"^error: {EVAL}: a header and no rows; expected an evaluation CSV with rows",
        ),
        (
            "episode,episode_return,episode_length\n0,abc,12\n1,9.0,9\n",
            rf"^error: {EVAL}: line 2, column `episode_return`: 'abc', expected a finite number",
        ),
        (
            "episode,episode_return,episode_length\n0,nan,12\n1,9.0,9\n",
            rf"^error: {EVAL}: line 2, column `episode_return`: 'nan', expected a finite number",
        ),
        ("hello, world\n", rf"^error: {EVAL}: header 'hello, world'; expected"),
        (
            "episode,episode_return,episode_length\n0,9.0,9\n1,9.",
            rf"^error: {EVAL}: line 3 is cut short \(no line end\): the file is truncated",
        ),
        (
            "episode,episode_return,episode_length\n0,9.0,9\n1,9.0\n",
            rf"^error: {EVAL}: line 3 has 2 field\(s\), expected 3 .*: the file is truncated",
        ),
        (
            "episode,episode_return,episode_length\n0,9.0,9\n",
            rf"^error: {EVAL}: 1 row\(s\), expected 2 \(params `evaluate.episodes`\): the file is "
            "truncated",
        ),
    ],
    ids=[
        "empty",
        "header-only",
        "text",
        "nan",
        "other-header",
        "partial-line",
        "short-row",
        "rows",
    ],
)
def test_a_damaged_evaluation_csv_is_one_line(copy: Path, text: str, pattern: str) -> None:
    (copy / EVAL).write_text(text)
    _fails(copy, "metrics", pattern)


def test_a_non_utf8_evaluation_csv_is_one_line(copy: Path) -> None:
    (copy / EVAL).write_bytes(b"episode,episode_return,episode_length\n0,\xff9.0,9\n")
    _fails(copy, "metrics", rf"^error: {EVAL}: not UTF-8 text \(byte 0xff at offset 40\)")


def test_a_missing_progress_csv_is_one_line(copy: Path) -> None:
    (copy / "data/progress/cartpole-ppo-1.csv").unlink()
    _fails(
        copy, "metrics", r"^error: no progress data/progress/cartpole-ppo-1.csv; run `dvc repro`"
    )


def test_a_progress_csv_cut_at_a_line_end_is_one_line(copy: Path) -> None:
    progress = copy / "data/progress/cartpole-ppo-0.csv"
    lines = progress.read_text().splitlines(keepends=True)
    progress.write_text("".join(lines[:-1]))
    _fails(copy, "metrics", r"progress/cartpole-ppo-0.csv: evaluations from step 0 to step 128 ")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"^error: data/curves/pendulum-reinforce-0.csv: empty; expected a learning curve CSV"),
        (
            "step,episode_return,episode_length\n",
            r"^error: data/curves/pendulum-reinforce-0.csv: a header and no rows; no finished "
            "episode; raise the training budget$",
        ),
        (
            "step,episode_return,episode_length\n5,5.0,5\n9,4.0\n",
            r"^error: data/curves/pendulum-reinforce-0.csv: line 3 has 2 field\(s\)",
        ),
        (
            "step,episode_return,episode_length\n9,5.0,5\n5,4.0,4\n",
            r"^error: data/curves/pendulum-reinforce-0.csv: line 3, column `step`: 5 after 9; "
            "expected values in order",
        ),
    ],
    ids=["empty", "header-only", "truncated-row", "unordered"],
)
def test_a_damaged_curve_csv_is_one_line(copy: Path, text: str, pattern: str) -> None:
    (copy / "data/curves/pendulum-reinforce-0.csv").write_text(text)
    _fails(copy, "plot", pattern)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"stats/cartpole-ppo.json: not valid JSON \(Expecting value, line 1 column 1\)"),
        ('{"runs": 2', r"stats/cartpole-ppo.json: not valid JSON"),
        ("[]", r"stats/cartpole-ppo.json: the top level is a list, expected an object"),
        ('{"runs": NaN}', r"stats/cartpole-ppo.json: NaN where a finite number belongs"),
        ('{"runs": true}', r"stats/cartpole-ppo.json: `runs` is a boolean \(true\), expected an "),
        ("[" * 100_000 + "]" * 100_000, r"stats/cartpole-ppo.json: nested too deeply"),
        (None, r"stats/cartpole-ppo.json: `return_mean_ci_low` without `return_mean_ci_high`"),
    ],
    ids=["empty", "truncated", "list", "nan", "bool", "deep", "half-interval"],
)
@pytest.mark.parametrize("stage", ["plot", "report"])
def test_a_damaged_stats_json_is_one_line(
    copy: Path, stage: str, text: str | None, pattern: str
) -> None:
    """None: the statistics with one end of an interval dropped (found by the fuzzer)."""
    stats = copy / "reports/stats/cartpole-ppo.json"
    if text is None:
        lines = stats.read_text().splitlines(keepends=True)
        text = "".join(line for line in lines if "return_mean_ci_high" not in line)
    stats.write_text(text)
    _fails(copy, stage, pattern)


def test_damaged_physics_references_are_one_line(copy: Path) -> None:
    (copy / "references/physics.json").write_text('{"CartPole-v1": {"seed": 0, "steps": "2000"}}')
    _fails(
        copy,
        "env_check",
        r"^error: references/physics.json: `CartPole-v1.steps` is a string \('2000'\), expected "
        "an integer",
    )


def test_a_damaged_lock_file_is_one_line(copy: Path) -> None:
    (copy / "requirements.txt").write_bytes(b"torch==2.13.0+cpu\n\x80garbage\n")
    _fails(copy, "report", r"^error: requirements.txt: not UTF-8 text \(byte 0x80 at offset 18\)")
    (copy / "requirements.txt").write_text("torch==2.13.0+cpu\nnot a requirement!\n")
    _fails(copy, "report", r"^error: requirements.txt: 'not a requirement!' is not a requirement")


def test_a_garbage_snapshot_starts_over(copy: Path) -> None:
    """A snapshot that is not one of this run's is ignored: the training starts over."""
    before = files(copy)
    (copy / "snapshots/cartpole-ppo-0.pkl").write_bytes(b"\xff" * 300)
    outcome = run_stage(copy, "train")
    assert outcome.code == 0, outcome
    after = files(copy)
    assert "snapshots/cartpole-ppo-0.pkl" not in after
    before.pop("snapshots/cartpole-ppo-0.pkl")
    assert {k: v for k, v in after.items() if not k.startswith("reports/timing")} == {
        k: v for k, v in before.items() if not k.startswith("reports/timing")
    }


def test_a_file_over_its_limit_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as file:
        file.truncate(readers.CSV_LIMIT + 1)  # sparse: nothing is written
    with pytest.raises(StageError, match=r"big.csv: 268,435,457 bytes, more than the 256 MiB"):
        readers.read_csv(big, "evaluation CSV", EVAL_COLUMNS)


def test_json_shapes_name_the_key(tmp_path: Path) -> None:
    stats = tmp_path / "x.json"
    stats.write_text('{"runs": 2, "improvement_over": {"b": {"probability": 1e999}}}')
    shape = {"runs": int, "improvement_over": STATS_SHAPE["improvement_over?"]}
    with pytest.raises(StageError, match=r"`improvement_over.b.probability` is inf, expected a"):
        readers.read_json(stats, "statistics JSON", shape)
    stats.write_text('{"runs": 2, "extra": {"x": [1, -1e999]}}')
    with pytest.raises(StageError, match=r"`extra.x.1` is -inf, expected a finite number"):
        readers.read_json(stats, "statistics JSON", {"runs": int})


def test_verify_names_a_damaged_trace_or_evaluation_instead_of_failing(tmp_path: Path) -> None:
    header = ",".join(TRACE_HEADER)
    rerun = tmp_path / "trace.csv"
    rerun.write_text(f"{header}\n0,0,aa,bb\n")
    damaged = f"{header}\n0,0,aa,bb\n1,12"
    assert trace_parting(damaged, rerun) == (
        f"traces cannot be compared: not a training trace: line 3 is not `{header}`"
    )
    episodes = tmp_path / "eval.csv"
    episodes.write_bytes(b"episode,episode_return,episode_length\n0,\xff\n")
    assert (episode_parting("x", episodes) or "").startswith(
        f"episodes cannot be compared: {episodes}: not UTF-8 text"
    )


def test_bench_reads_the_project_and_names_a_damaged_timing(copy: Path) -> None:
    row = bench.seed_row(copy, "cartpole-ppo", 0, 475.0)
    assert row["eval_mean"] is not None and row["evaluated"] and row["train_seconds"] is not None
    (copy / "reports/timing/cartpole-ppo-0.json").write_text('{"steps": "many"}')
    with pytest.raises(StageError, match=r"cartpole-ppo-0.json: no `experiment`; expected the "):
        bench.seed_row(copy, "cartpole-ppo", 0, 475.0)
