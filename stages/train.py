"""Stage `train`: one agent for one experiment and seed.

Reads `numerics`, `trace` and `experiments.<exp>` from params; writes the canonical checkpoint
(`--model`, a zip that SB3's `load` opens for SB3 agents), the learning curve (`--curve`, CSV: one
row per finished episode with the global env step, the episode return and its length), the
training trace (`--trace`, CSV: after every `trace.every`-th update, short hashes of the policy
parameters and the latest observations, to find where two runs part), and the progress curve
(`--progress`, CSV: the deterministic evaluations during training, `periodic_eval`). The
wall-clock seconds go to `--timing` (JSON), which is not tracked: they differ on every run.
"""

import dataclasses
import sys
from pathlib import Path
from typing import Any

from rlrepro import console, numerics, training
from rlrepro.agents import checkpoint
from rlrepro.agents.rollout import CURVE_HEADER
from rlrepro.core import params
from rlrepro.core.errors import ParamsError
from rlrepro.core.files import write_csv, write_json
from rlrepro.training.recording import PROGRESS_HEADER
from rlrepro.training.trace import TRACE_HEADER


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `train` writes."""

    model: Path
    curve: Path
    trace: Path
    progress: Path
    timing: Path


@dataclasses.dataclass(frozen=True)
class Job:
    """One training: experiment `name` (`experiment`) with `seed`, and the params it needs."""

    name: str
    seed: int
    experiment: params.Experiment
    numerics: params.Numerics
    tracing: params.Tracing


def job(raw: dict[str, Any], name: str, seed: int) -> Job:
    """The training of experiment `name` with `seed` from params `raw`, checked.

    :raises ParamsError: naming the bad key.
    """
    if seed < 0:
        raise ParamsError(f"seeds: expected integers >= 0, got {seed}")
    result = Job(
        name,
        seed,
        params.experiment(raw, name),
        params.section(raw, params.Numerics, "numerics"),
        params.section(raw, params.Tracing, "trace"),
    )
    training.check(result.experiment, name)
    return result


def train(job: Job, paths: Paths) -> training.Result:
    """Train `job`; write the checkpoint, the curves, the trace and the timing to `paths`."""
    numerics.configure_torch(job.numerics.torch_threads)
    numerics.seed_everything(job.seed)
    ((unit, amount),) = job.experiment.budget.items()
    progress = console.Progress(amount, unit, f"{job.name} seed {job.seed}")
    result = training.train(job.experiment, job.name, job.seed, job.tracing.every, progress.update)
    progress.close()
    recording = result.recording
    checkpoint.write(paths.model, result.meta, result.entries)
    write_csv(paths.curve, CURVE_HEADER, recording.episodes)
    write_csv(paths.trace, TRACE_HEADER, recording.trace.points)
    write_csv(paths.progress, PROGRESS_HEADER, recording.progress_rows)
    write_json(paths.timing, {"experiment": job.name, "seed": job.seed, **recording.timing()})
    return result


def main(argv: list[str] | None = None) -> int:
    """Train experiment `--exp` with seed `--seed`."""
    params_file, chosen, paths = console.parse(__doc__, Paths, argv, exp=str, seed=int)
    return console.run(
        lambda: train(job(params.read(params_file), chosen["exp"], chosen["seed"]), paths)
    )


if __name__ == "__main__":
    sys.exit(main())
