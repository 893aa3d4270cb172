"""Stage `train`: one agent for one experiment and seed.

Reads `numerics`, `trace` and `experiments.<exp>` from params; writes the canonical checkpoint
(`--model`, a zip that SB3's `load` opens for SB3 agents), the learning curve (`--curve`, CSV: one
row per finished episode with the global env step, the episode return and its length), the
training trace (`--trace`, CSV: after every `trace.every`-th update, short hashes of the policy
parameters and the latest observations, to find where two runs part), and the progress curve
(`--progress`, CSV: the deterministic evaluations during training, `periodic_eval`). The
wall-clock seconds go to `--timing` (JSON), which is not tracked: they differ on every run.

SIGTERM or SIGINT stops a training within seconds: the stage exits with 128 + the signal's
number and one line. With params `resume: {every: N}`, a snapshot is written to `snapshots/` every
N env steps and on such a stop (when the training loop reaches its top within
`snapshot.GRACE_SECONDS`); a rerun continues from a matching snapshot, with the same bytes as a
run never stopped (`rlrepro.training.snapshot`).
"""

import dataclasses
import sys
from pathlib import Path
from typing import Any

from rlrepro import console, numerics, training
from rlrepro.agents import checkpoint
from rlrepro.agents.rollout import CURVE_HEADER
from rlrepro.core import faults, layout, params
from rlrepro.core.errors import ParamsError
from rlrepro.core.files import write_csv, write_json
from rlrepro.training import snapshot
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
    """One training: experiment `name` (`experiment`) with `seed`, and the params it needs;
    `key` identifies its snapshots (`snapshot.run_key`), computed only with `resume`."""

    name: str
    seed: int
    experiment: params.Experiment
    numerics: params.Numerics
    tracing: params.Tracing
    resume: params.Resume | None
    key: str | None


def outputs(exp: str, seed: int) -> Paths:
    """The pipeline's files of run (`exp`, `seed`) (`rlrepro.core.layout`; dvc.yaml's outs).

    :raises ParamsError: for a name `layout.check_name` refuses.
    """
    folders = (layout.MODELS, layout.CURVES, layout.TRACES, layout.PROGRESS, layout.TIMING)
    suffixes = (".zip", ".csv", ".csv", ".csv", ".json")
    return Paths(
        *(layout.run_file(f, exp, seed, s) for f, s in zip(folders, suffixes, strict=True))
    )


def from_address(address: str, params_file: Path) -> tuple[dict[str, Any], Paths]:
    """The run (`exp`, `seed`) of the train stage at DVC address `address` (`--stage`) and its
    files (`outputs`), checked against params `params_file`.

    :raises StageError: for the address of no train stage; :raises ParamsError: for a name
        refused or a seed not in params' seeds.
    """
    exp, seed = layout.stage_run(address, "train", params.seeds(params.read(params_file)))
    return {"exp": exp, "seed": seed}, outputs(exp, seed)


def job(raw: dict[str, Any], name: str, seed: int) -> Job:
    """The training of experiment `name` with `seed` from params `raw`, checked.

    :raises ParamsError: naming the bad key.
    """
    if not 0 <= seed < params.SEED_LIMIT:
        raise ParamsError(f"seeds: expected integers in [0, 2**32), got {seed}")
    experiment = params.experiment(raw, name)
    pins = params.section(raw, params.Numerics, "numerics")
    tracing = params.section(raw, params.Tracing, "trace")
    resume, key = None, None
    if "resume" in raw:
        resume = params.section(raw, params.Resume, "resume")
        shaping = {key: raw.get(key) for key in ("numerics", "trace")}
        shaping.update(experiment=raw["experiments"][name], seed=seed)
        key = snapshot.run_key(shaping, snapshot.code_digest("train", str(raw.get("root", "."))))
    result = Job(name, seed, experiment, pins, tracing, resume, key)
    training.check(result.experiment, name)
    return result


def train(job: Job, paths: Paths) -> training.Result:
    """Check that `job`'s network uses only portable ops (`training.check_ops`), then train it;
    write the checkpoint, the curves, the trace and the timing to `paths`.

    :raises ParamsError: for an op outside the portable set that the experiment does not allow.
    """
    numerics.configure_torch(job.numerics.torch_threads)
    training.check_ops(job.experiment, job.name)
    numerics.seed_everything(job.seed)
    ((unit, amount),) = job.experiment.budget.items()
    label = f"{job.name} seed {job.seed}"
    snapshots = None
    if job.resume is not None and job.key is not None:
        where = layout.run_file(snapshot.FOLDER, job.name, job.seed, ".pkl")
        snapshots = snapshot.Snapshots(where, job.key, job.resume.every, label)
    progress = console.Progress(amount, unit, label)
    pace = training.pace(job.experiment, job.name)

    def on_progress(done: int) -> None:
        progress.update(done)
        pace(done)
        faults.at_progress(done)

    with snapshot.stop_on_signals(label, None if snapshots is None else snapshots.path):
        result = training.train(
            job.experiment, job.name, job.seed, job.tracing.every, on_progress, snapshots
        )
    progress.close()
    recording = result.recording
    checkpoint.write(paths.model, result.meta, result.entries)
    write_csv(paths.curve, CURVE_HEADER, recording.episodes)
    write_csv(paths.trace, TRACE_HEADER, recording.trace.points)
    write_csv(paths.progress, PROGRESS_HEADER, recording.progress_rows)
    write_json(paths.timing, {"experiment": job.name, "seed": job.seed, **recording.timing()})
    if snapshots is not None:
        snapshots.remove()
    return result


def main(argv: list[str] | None = None) -> int:
    """Train experiment `--exp` with seed `--seed`, or the run of DVC's stage `--stage`."""

    def work() -> training.Result:
        params_file, chosen, paths = console.parse(
            __doc__, Paths, argv, from_address, exp=str, seed=int
        )
        return train(job(params.read(params_file), chosen["exp"], chosen["seed"]), paths)

    return console.run(work)


if __name__ == "__main__":
    sys.exit(console.run(main))
