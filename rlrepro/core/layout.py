"""Names and paths of runs: one experiment trained with one seed is the run `<exp>-<seed>`.

Stages get their folders from `dvc.yaml` (the only other place a path is written) and ask this
module for the file of a run inside them; tools and benchmarks ask it for the pipeline's folders.
"""

import os
import re
from collections.abc import Sequence
from pathlib import Path

from rlrepro.core.errors import ParamsError, StageError

# A pipeline's folders, relative to its dvc.yaml (as dvc.yaml writes them).
MODELS = Path("models")
CURVES = Path("data/curves")
EVALS = Path("data/eval")
PROGRESS = Path("data/progress")
TRACES = Path("data/traces")
TIMING = Path("reports/timing")  # wall clock: untracked
FACTS = Path("reports/machine/facts.json")  # this machine: untracked
VIDEOS = Path("reports/videos")  # pixels: untracked
REFERENCES = Path("references/physics.json")  # relative to the code's root


# Names of experiments: a file name (`models/<name>-<seed>.zip`), a DVC stage name
# (`train@<name>-<seed>`) and a word no shell splits or expands, on every file system: lower-case
# letters (two names differing in case only are one file on macOS and Windows), digits and
# `_ . -`, starting with a letter or digit (never an option, never hidden), no `..` (never a
# parent folder), at most 64 characters (a run's longest file name stays far under 255 bytes).
# The one rule: params' schema checks it too (`params.check_name`).
NAME = re.compile(r"(?!.*\.\.)[a-z0-9][a-z0-9_.-]{0,63}")
NAME_TEXT = (
    "lower-case letters, digits, `_`, `.`, `-`, starting with a letter or digit, no `..`, "
    "at most 64"
)


def check_name(name: object, where: str | None = None) -> str:
    """`name` (an experiment's), checked against `NAME`: safe as part of a file name, a DVC
    stage name and a shell word.

    :param where: the key the message names (default: `experiments.<name>`).
    :raises ParamsError: naming the key and the rule.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        plain = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name)
        label = name if plain else shown(name)
        raise ParamsError(
            f"{where or f'experiments.{label}'}: not a valid name: expected {NAME_TEXT} characters"
        )
    return name


def shown(value: object, limit: int = 40) -> str:
    """`value`'s repr, cut to `limit` characters (with its length) for a one-line message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f", {len(value)} characters" if isinstance(value, str) else ""
    return f"{text[: limit - 3]}...{size}"


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, checked to stay inside `folder` once `..` and absolute parts are
    resolved (lexically: a symlink DVC made for a cached output, `cache.type: symlink`,
    may point into `.dvc/cache` and is allowed).

    :raises StageError: naming the path and the folder.
    """
    path = folder / name
    base = Path(os.path.normpath(folder))
    if Path(os.path.normpath(path)).parent != base or name in ("", ".", ".."):
        raise StageError(f"{shown(str(path), 80)}: not a file directly in {base}; refused")
    return path


def run_name(exp: str, seed: int) -> str:
    """The name of experiment `exp` trained with `seed`: `<exp>-<seed>`.

    :raises ParamsError: for a name `check_name` refuses.
    """
    return f"{check_name(exp)}-{seed}"


def run_file(folder: Path, exp: str, seed: int, suffix: str) -> Path:
    """The file of run (`exp`, `seed`) in `folder`, e.g. `data/eval/cartpole-ppo-0.csv`.

    :raises ParamsError: for a name `check_name` refuses; :raises StageError: for a path that
        would leave `folder` (`inside`).
    """
    return inside(folder, f"{run_name(exp, seed)}{suffix}")


def experiment_file(folder: Path, exp: str, suffix: str) -> Path:
    """The file of experiment `exp` (all its seeds) in `folder`, e.g. `reports/curves/x.csv`.

    :raises ParamsError: for a name `check_name` refuses; :raises StageError: for a path that
        would leave `folder` (`inside`).
    """
    return inside(folder, f"{check_name(exp)}{suffix}")


# A run in a matrix stage's DVC address (`train@<exp>-<seed>`): its seed, decimal digits as DVC
# writes an integer (no sign, no leading zero).
SEED = re.compile(r"0|[1-9][0-9]{0,9}")


def stage_run(address: str, stage: str, seeds: Sequence[int]) -> tuple[str, int]:
    """The run (experiment, seed) of matrix stage `stage` (`train`, `evaluate`) from its DVC
    address `address` (`$DVC_STAGE`, e.g. `train@cartpole-ppo-0`, or
    `studies/network/dvc.yaml:train@network-16-32-tanh-0` for a study): the part after the last
    `:`, `stage` before its `@`, the run after it, split at its last `-`.

    :param seeds: params' seeds, one of which the run's must be.
    :raises StageError: for an address of another stage or of no run; :raises ParamsError: for
        a name `check_name` refuses or a seed not in `seeds`.
    """
    name, at, run = address.rpartition(":")[2].partition("@")
    exp, dash, seed = run.rpartition("-")
    if name != stage or not at or not dash or not SEED.fullmatch(seed):
        raise StageError(
            f"stage {shown(address, 80)}: expected {stage}@<experiment>-<seed>, the address of "
            f"a run of stage {stage} (as `dvc repro` sets DVC_STAGE)"
        )
    check_name(exp)
    if int(seed) not in seeds:
        raise ParamsError(
            f"seeds: stage {shown(address, 80)} has seed {int(seed)}, not one of params' seeds"
        )
    return exp, int(seed)


def require(files: list[Path], what: str) -> list[Path]:
    """`files`, each checked to exist (inputs a stage needs from earlier stages).

    :param what: what they are, for the error, e.g. "evaluation".
    :raises StageError: naming the missing ones and how to make them.
    """
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise StageError(f"no {what} {', '.join(missing)}; run `dvc repro`, which writes them")
    return files
