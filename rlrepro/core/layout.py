"""Names and paths of runs: one experiment trained with one seed is the run `<exp>-<seed>`.

Stages get their folders from `dvc.yaml` (the only other place a path is written) and ask this
module for the file of a run inside them; tools and benchmarks ask it for the pipeline's folders.
"""

from pathlib import Path

from rlrepro.core.errors import StageError

# A pipeline's folders, relative to its dvc.yaml (as dvc.yaml writes them).
MODELS = Path("models")
EVALS = Path("data/eval")
PROGRESS = Path("data/progress")
TRACES = Path("data/traces")
TIMING = Path("reports/timing")  # wall clock: untracked
FACTS = Path("reports/machine/facts.json")  # this machine: untracked
VIDEOS = Path("reports/videos")  # pixels: untracked
REFERENCES = Path("references/physics.json")  # relative to the code's root


def run_name(exp: str, seed: int) -> str:
    """The name of experiment `exp` trained with `seed`: `<exp>-<seed>`."""
    return f"{exp}-{seed}"


def run_file(folder: Path, exp: str, seed: int, suffix: str) -> Path:
    """The file of run (`exp`, `seed`) in `folder`, e.g. `data/eval/cartpole-ppo-0.csv`."""
    return folder / f"{run_name(exp, seed)}{suffix}"


def experiment_file(folder: Path, exp: str, suffix: str) -> Path:
    """The file of experiment `exp` (all its seeds) in `folder`, e.g. `reports/curves/x.csv`."""
    return folder / f"{exp}{suffix}"


def require(files: list[Path], what: str) -> list[Path]:
    """`files`, each checked to exist (inputs a stage needs from earlier stages).

    :param what: what they are, for the error, e.g. "evaluation".
    :raises StageError: naming the missing ones and how to make them.
    """
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise StageError(f"no {what} {', '.join(missing)}; run `dvc repro` to make it")
    return files
