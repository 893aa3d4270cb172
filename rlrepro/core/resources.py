"""Estimates of what an experiment needs, refused over the limits before anything is built:
the memory of its replay or rollout buffer, its networks and the envs it builds at once, and the
time of one update (the `max_days` pace check acts between updates, never inside one).

`check` raises `ParamsError` with one line naming the key and the estimate. The env's sizes come
from its spaces once it is made (`space_sizes`); before that, `UNKNOWN_SIZES` (one byte each
way) refuses what is too large whatever the env.
"""

import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

from rlrepro.core.errors import ParamsError

if TYPE_CHECKING:
    from rlrepro.core.params import Experiment

# The most memory one estimate may come to: a third of the 24 GiB machine the results are made
# on, so that the two stages `make repro` runs at once fit. More is a typo, refused up front
# rather than ending in `MemoryError` (or the kernel's OOM killer) after the allocation.
MEMORY_LIMIT = 8 * 2**30
# The memory of one env instance, over the 560 KiB measured for InvertedDoublePendulum-v5 (and
# 6 KiB for CartPole-v1): training and evaluation build one per env or episode, all at once.
ENV_BYTES = 2**20
# The fastest a gradient step can be: 0.1 ms, a fiftieth of the 5 ms an SB3 PPO minibatch of 64
# on an 8-8 network took here; an update of more steps than `max_days` allows at this speed is
# refused (the `max_days` pace check acts between updates only).
FASTEST_GRADIENT_STEP = 1e-4
# Each network parameter's bytes: float32 weight, gradient and Adam's two moments.
PARAM_BYTES = 16
# Networks of the policy's size each algorithm holds (actors, critics and their target copies).
NETWORK_COPIES = {"reinforce": 1, "ppo": 2, "a2c": 2, "dqn": 2, "ddpg": 4, "sac": 5, "td3": 6}
# SB3's defaults of the hyperparameters the estimates use (tests/test_params.py checks them
# against SB3's signatures), by algorithm.
SB3_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 2048, "batch_size": 64, "n_epochs": 10},
    "a2c": {"n_steps": 5},
    "sac": {"buffer_size": 1_000_000, "batch_size": 256, "train_freq": 1, "gradient_steps": 1},
    "td3": {"buffer_size": 1_000_000, "batch_size": 256, "train_freq": 1, "gradient_steps": 1},
    "ddpg": {"buffer_size": 1_000_000, "batch_size": 256, "train_freq": 1, "gradient_steps": 1},
    "dqn": {"buffer_size": 1_000_000, "batch_size": 32, "train_freq": 4, "gradient_steps": 1},
}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """An env's flat observation and action sizes and their bytes per element."""

    obs: int
    obs_bytes: int
    act: int
    act_bytes: int


# What is known of an env without making it: at least one element of one byte each way.
UNKNOWN_SIZES = Sizes(1, 1, 1, 1)


def space_sizes(observation_space: Any, action_space: Any) -> Sizes:
    """The `Sizes` of an env's spaces (a Discrete space is one integer)."""
    import numpy as np

    def flat(space: Any) -> tuple[int, int]:
        shape = space.shape or (1,)
        return int(np.prod(shape)), max(np.dtype(space.dtype).itemsize, 1)

    return Sizes(*flat(observation_space), *flat(action_space))


def check(exp: "Experiment", where: str, sizes: Sizes) -> None:
    """Refuse an experiment whose buffers, networks or envs would need more than
    `MEMORY_LIMIT`, or whose single update would outlast `max_days` at `FASTEST_GRADIENT_STEP`.

    :param where: the experiment's key, `experiments.<name>`.
    :param sizes: the env's sizes, or `UNKNOWN_SIZES` (then only what is too large whatever
        the env is refused).
    :raises ParamsError: one line naming the key and the estimate.
    """
    hyper = {**SB3_DEFAULTS.get(exp.algo, {}), **exp.hyperparams}
    for key_path, what, need in _memory(exp, hyper, sizes):
        if need > MEMORY_LIMIT:
            raise ParamsError(
                f"{where}.{key_path}: {what} need about {bytes_text(need)}, over the "
                f"{bytes_text(MEMORY_LIMIT)} a stage may use"
            )
    steps, formula = _update_steps(exp, hyper)
    days = steps * FASTEST_GRADIENT_STEP / 86400
    if days > exp.max_days:
        raise ParamsError(
            f"{where}.hyperparams: one update is {formula} = {steps:,} gradient steps, at least "
            f"{days:,.1f} days at {FASTEST_GRADIENT_STEP * 1e6:g} µs each, over max_days: "
            f"{exp.max_days:g}"
        )


def _memory(exp: "Experiment", hyper: dict[str, Any], sizes: Sizes) -> list[tuple[str, str, float]]:
    """(key, what, bytes) of each memory estimate of `exp`."""
    estimates: list[tuple[str, str, float]] = []
    n_envs = exp.n_envs
    if exp.algo in ("sac", "td3", "ddpg", "dqn"):
        copies = 1 if hyper.get("optimize_memory_usage") else 2
        per = copies * sizes.obs * sizes.obs_bytes + sizes.act * max(sizes.act_bytes, 4) + 12
        count = _int(hyper.get("buffer_size"))
        estimates.append(
            ("hyperparams.buffer_size", f"{count:,} transitions of {per:,} bytes", count * per)
        )
    if exp.algo in ("ppo", "a2c"):
        per = 4 * (sizes.obs + sizes.act + 6)
        count = _int(hyper.get("n_steps")) * n_envs
        estimates.append(
            (
                "hyperparams.n_steps",
                f"n_steps x n_envs = {count:,} samples of {per:,} bytes",
                count * per,
            )
        )
    layers = [sizes.obs + sizes.act, *exp.policy.hidden, max(sizes.act, 1)]
    weights = sum(a * b + b for a, b in itertools.pairwise(layers))
    copies = NETWORK_COPIES[exp.algo]
    batch = (
        _int(hyper.get("batch_size", 1))
        if exp.algo != "a2c"
        else _int(hyper.get("n_steps", 1)) * n_envs
    )
    activations = batch * sum(exp.policy.hidden) * 4 * 2 * copies
    estimates.append(
        (
            "policy.hidden",
            f"{copies} networks of {weights:,} weights (with gradients, optimizer state and "
            f"a batch of {batch:,})",
            weights * PARAM_BYTES * copies + activations,
        )
    )
    envs = n_envs + (exp.periodic_eval.episodes if exp.periodic_eval else 0)
    estimates.append(
        ("n_envs", f"{envs:,} envs (n_envs + periodic_eval.episodes)", envs * ENV_BYTES)
    )
    return estimates


def _int(value: Any) -> int:
    """An integer hyperparameter for an estimate (its type was checked before; 1 otherwise)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _update_steps(exp: "Experiment", hyper: dict[str, Any]) -> tuple[int, str]:
    """The gradient steps of one update of `exp`, and how they are counted."""
    if exp.algo == "ppo":
        samples = _int(hyper.get("n_steps")) * exp.n_envs
        minibatches = -(-samples // _int(hyper.get("batch_size")))
        return _int(
            hyper.get("n_epochs")
        ) * minibatches, "n_epochs x ceil(n_steps x n_envs / batch_size)"
    if exp.algo in ("sac", "td3", "ddpg", "dqn"):
        steps = hyper.get("gradient_steps")
        if isinstance(steps, int) and steps < 0:  # as many as env steps since the last update
            freq = hyper.get("train_freq")
            every = freq[0] if isinstance(freq, list) else freq
            return _int(every) * exp.n_envs, "train_freq x n_envs (gradient_steps: -1)"
        return _int(steps), "gradient_steps"
    return 1, "1"


def bytes_text(count: float) -> str:
    """`count` bytes as `16 TiB`, `9.5 TiB`, `8 GiB`."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= size:
            amount = count / size
            text = f"{amount:,.0f}" if amount >= 10 else f"{amount:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{count:,.0f} bytes"


def check_bootstrap(samples: int, runs: int, where: str) -> None:
    """Refuse a bootstrap over `MEMORY_LIMIT`: the improvement of one experiment over another
    compares every pair of runs in each replicate, `samples x runs^2` float64s, twice.

    :raises ParamsError: naming `where` and the estimate.
    """
    need = samples * runs * runs * 8 * 2
    if need > MEMORY_LIMIT:
        raise ParamsError(
            f"{where}: {samples:,} replicates over {runs} seeds need about {bytes_text(need)}, "
            f"over the {bytes_text(MEMORY_LIMIT)} a stage may use"
        )
