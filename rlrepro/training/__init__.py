"""Training one agent: `train` runs the algorithm family of an experiment and returns what the
`train` stage writes (checkpoint entries, learning curve, trace, progress rows, timing).

SB3's algorithms are in `rlrepro.training.sb3`, our REINFORCE in `rlrepro.training.reinforce`;
both record into the same `Recording` (curve, trace, periodic evaluations, clock).
"""

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rlrepro.agents.algorithms import ACTION_SPACES
from rlrepro.core.errors import ParamsError
from rlrepro.core.params import Experiment, check_resources
from rlrepro.core.resources import space_sizes
from rlrepro.numerics import ops
from rlrepro.training import reinforce, sb3
from rlrepro.training.recording import Recording
from rlrepro.training.snapshot import Snapshots


@dataclasses.dataclass(frozen=True)
class Result:
    """What one training produced.

    :param meta: what the agent is, for the checkpoint's `rlrepro.json`.
    :param entries: the checkpoint's other entries, by name.
    :param recording: the learning curve, trace, progress rows and clock of the run.
    """

    meta: dict[str, Any]
    entries: dict[str, bytes]
    recording: Recording


def check(exp: Experiment, name: str) -> None:
    """Reject an algorithm that does not take the env's action space, hyperparameters the
    algorithm does not take, and resources over the limits with the env's sizes.

    :raises ParamsError: naming the key and what is accepted.
    """
    env = gym.make(exp.env)
    space = env.action_space
    sizes = space_sizes(env.observation_space, space)
    env.close()
    needed = ACTION_SPACES.get(exp.algo)
    if needed is not None and not isinstance(space, needed):
        raise ParamsError(
            f"experiments.{name}.algo: {exp.algo} needs a {needed.__name__} action space; "
            f"{exp.env} has {space}"
        )
    if exp.algo == "reinforce":
        reinforce.config(exp, name)
    else:
        sb3.check(exp, name, space)
    check_resources(exp, name, sizes)


def check_ops(exp: Experiment, name: str) -> None:
    """Run a few updates of `exp`'s own network (`sb3.probe`, `reinforce.probe`) and refuse an op
    outside the portable op set (`rlrepro.numerics.ops`) that `exp.allow_nonportable_ops` does
    not list. Call it before seeding: SB3 seeds the global generators of python, numpy and
    torch when it builds a model.

    :raises ParamsError: naming the first such op and the key that would accept it.
    """
    probe = reinforce.probe if exp.algo == "reinforce" else sb3.probe
    names = ops.used(lambda: probe(exp, name))
    refused = ops.unlisted(names, exp.allow_nonportable_ops)
    if refused:
        raise ParamsError(
            f"experiment {name} uses {refused[0]}, which has no portable kernel: its bytes would "
            f"differ between machines; list it under experiments.{name}.allow_nonportable_ops "
            "to accept that"
        )


def pace(exp: Experiment, name: str, measure: float = 5.0) -> Callable[[int], None]:
    """A progress listener that refuses a budget that would take more than `exp.max_days`: it
    measures the speed over the first `measure` seconds after the first report, once.

    :raises ParamsError: naming the budget, the estimate and the speed measured.
    """
    ((unit, amount),) = exp.budget.items()
    first: tuple[int, float] | None = None
    done_checking = False

    def check(done: int) -> None:
        nonlocal first, done_checking
        if done_checking:
            return
        now = time.perf_counter()
        if first is None:
            first = (done, now)
            return
        seconds = now - first[1]
        if seconds < measure:
            return
        done_checking = True
        rate = (done - first[0]) / seconds
        days = (amount - done) / rate / 86400 if rate > 0 else math.inf
        if days > exp.max_days:
            raise ParamsError(
                f"experiments.{name}.budget.{unit}: {amount:,} would take about {_span(days)} "
                f"at the {rate:,.0f} {unit}/s measured here, over max_days: {exp.max_days:g}; "
                f"lower it, or raise experiments.{name}.max_days if it is intended"
            )

    return check


def _span(days: float) -> str:
    if days >= 730:
        return f"{days / 365.25:,.0f} years"
    return f"{days:,.1f} days"


def train(
    exp: Experiment,
    name: str,
    seed: int,
    trace_every: int,
    on_progress: Callable[[int], None],
    snapshots: Snapshots | None = None,
) -> Result:
    """Train experiment `name` (`exp`) with `seed`, hashing the policy every `trace_every`
    updates; `on_progress` is told the budget spent so far (in the budget's unit). With
    `snapshots`, continue from a matching snapshot if there is one, and write snapshots on."""
    resumed = snapshots.load() if snapshots is not None else None
    if resumed is not None:
        recording: Recording = resumed["recording"]
    else:
        recording = Recording(exp.env, exp.periodic_eval, trace_every)
    meta: dict[str, Any] = {"algo": exp.algo, "env": exp.env, "experiment": name, "seed": seed}
    try:
        if exp.algo == "reinforce":
            network, entries = reinforce.train(
                exp, name, seed, recording, on_progress, snapshots, resumed
            )
            meta["network"] = network
        else:
            entries = sb3.train(exp, name, seed, recording, on_progress, snapshots, resumed)
            meta["network"] = {
                "hidden": list(exp.policy.hidden),
                "activation": exp.policy.activation,
            }
    finally:
        recording.close()
    return Result(meta, entries, recording)
