"""Training with Stable-Baselines3's algorithms: params to SB3's arguments, and `learn` with a
callback that records the run.

Hyperparameters are SB3's keyword arguments, checked against the algorithm's signature; a
learning rate or clip range may be `{schedule: linear, start, end}` (SB3's `LinearSchedule`) and
`action_noise: {normal: sigma}` a `NormalActionNoise`. The checkpoint is SB3's own zip, made
canonical, plus the `VecNormalize` statistics when training used them.
"""

import dataclasses
import inspect
import io
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rlrepro import numerics
from rlrepro.agents import checkpoint, normalize
from rlrepro.agents.algorithms import sb3_actor, sb3_class
from rlrepro.agents.networks import activation
from rlrepro.agents.rollout import Actor, Episode
from rlrepro.core.errors import ParamsError
from rlrepro.core.params import Experiment, unknown_key
from rlrepro.training.recording import Recording
from rlrepro.training.snapshot import Snapshots

# Hyperparameters that may be a schedule of the training progress, `{schedule: linear, ...}`.
_SCHEDULABLE = ("learning_rate", "clip_range", "clip_range_vf")
# Arguments of an SB3 algorithm that the pipeline sets itself, never from hyperparams.
_RESERVED = frozenset(
    {
        "self",
        "policy",
        "env",
        "seed",
        "device",
        "policy_kwargs",
        "verbose",
        "tensorboard_log",
        "_init_setup_model",
        "kwargs",
    }
)


def check(exp: Experiment, name: str, action_space: gym.Space[Any]) -> None:
    """Reject a hyperparameter that `exp.algo` does not take, or a number written as text.

    :raises ParamsError: naming the key and what is accepted.
    """
    where = f"experiments.{name}.hyperparams"
    signature = inspect.signature(sb3_class(exp.algo)).parameters
    accepted = sorted(set(signature) - _RESERVED)
    for key in sorted(exp.hyperparams):
        if key not in accepted:
            raise ParamsError(
                f"{where}.{unknown_key(key, accepted, f'hyperparameter of {exp.algo}')}"
            )
        default, value = signature[key].default, exp.hyperparams[key]
        if isinstance(default, int | float) and isinstance(value, str):
            raise ParamsError(
                f"{where}.{key}: expected a number, got {value!r} "
                "(YAML reads 1e-4 as text: write 1.0e-4)"
            )
        integer = isinstance(default, int) and not isinstance(default, bool)
        if integer and isinstance(value, bool | float):
            raise ParamsError(f"{where}.{key}: expected an integer, got {value!r}")
    kwargs(exp, name, action_space)


def kwargs(exp: Experiment, name: str, action_space: gym.Space[Any]) -> dict[str, Any]:
    """The SB3 keyword arguments of `exp.hyperparams`: schedules become `LinearSchedule`s,
    `action_noise: {normal: sigma}` a `NormalActionNoise`, lists (`train_freq`) tuples.

    :raises ParamsError: for a schedule or noise that is not one of these.
    """
    where = f"experiments.{name}.hyperparams"
    result: dict[str, Any] = {}
    for key, value in exp.hyperparams.items():
        if isinstance(value, dict) and key in _SCHEDULABLE:
            if sorted(value) != ["end", "schedule", "start"] or value["schedule"] != "linear":
                raise ParamsError(
                    f"{where}.{key}: expected a number or "
                    f"{{schedule: linear, start: <number>, end: <number>}}, got {value!r}"
                )
            result[key] = LinearSchedule(float(value["start"]), float(value["end"]), 1.0)
        elif key == "action_noise" and value is not None:
            if not isinstance(value, dict) or sorted(value) != ["normal"]:
                raise ParamsError(f"{where}.{key}: expected {{normal: <sigma>}}, got {value!r}")
            shape = action_space.shape or (1,)
            sigma = float(value["normal"]) * np.ones(shape)
            result[key] = NormalActionNoise(mean=np.zeros(shape), sigma=sigma)
        elif isinstance(value, list):
            result[key] = tuple(value)
        else:
            result[key] = value
    return result


def gamma(exp: Experiment) -> float:
    """The discount factor of `exp`: its `gamma` hyperparameter, else the algorithm's default."""
    default = inspect.signature(sb3_class(exp.algo)).parameters["gamma"].default
    return float(exp.hyperparams.get("gamma", default))


class _Recorder(BaseCallback):
    """Records every finished episode (from SB3's Monitor infos), traces updates, evaluates when
    due and reports progress. A rollout starts after each update, so the k-th rollout start
    (from 0) follows update k.
    """

    def __init__(
        self, recording: Recording, on_progress: Callable[[int], None], updates: int = 0
    ) -> None:
        super().__init__()
        self.recording, self.on_progress = recording, on_progress
        self.updates = updates

    def _on_training_start(self) -> None:
        # The parameters' memory, as numpy arrays: the optimizers update them in place, so the
        # trace hashes these without walking the policy's modules after every update.
        self._weights = [p.detach().numpy() for p in self.model.policy.parameters()]
        if self.model.num_timesteps == 0:  # not when resumed
            self.recording.evaluate(0, self._actor)

    def _on_rollout_start(self) -> None:
        self._trace(force=False)
        self.updates += 1

    def _on_training_end(self) -> None:
        self._trace(force=True)
        self.recording.evaluate(self.num_timesteps, self._actor, last=True)

    def _trace(self, force: bool) -> None:
        obs = self.model._last_obs
        self.recording.trace.record(self.updates, self.num_timesteps, self._weights, obs, force)

    def _actor(self) -> Actor:
        return _actor(self.model)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                ep = info["episode"]
                self.recording.episode(Episode(self.num_timesteps, float(ep["r"]), int(ep["l"])))
        self.recording.evaluate(self.num_timesteps, self._actor)
        self.on_progress(self.num_timesteps)
        return True


def _identity(obs: np.ndarray) -> np.ndarray:
    return obs


def _actor(model: BaseAlgorithm) -> Actor:
    """`model`'s deterministic actor, normalising observations as its `VecNormalize` does."""
    env = model.get_vec_normalize_env()
    return sb3_actor(model, env.normalize_obs if env else _identity)  # type: ignore[arg-type]


def _model(exp: Experiment, name: str, seed: int) -> BaseAlgorithm:
    env: VecEnv = make_vec_env(exp.env, n_envs=exp.n_envs, seed=seed)
    if exp.normalize is not None:
        env = VecNormalize(
            env,
            norm_obs=exp.normalize.obs,
            norm_reward=exp.normalize.reward,
            clip_obs=exp.normalize.clip_obs,
            gamma=gamma(exp),
        )
    policy_kwargs = {
        "net_arch": list(exp.policy.hidden),
        "activation_fn": activation(exp.policy.activation),
    }
    try:
        model = sb3_class(exp.algo)(
            "MlpPolicy",
            env,
            seed=seed,
            device="cpu",
            verbose=0,
            policy_kwargs=policy_kwargs,
            **kwargs(exp, name, env.action_space),
        )
    except (AssertionError, ValueError) as err:  # SB3 checks its arguments with these
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ParamsError(
            f"experiments.{name}.hyperparams: {exp.algo} rejects them: {why}"
        ) from err
    for optimizer in _optimizers(model):
        numerics.fuse(optimizer)
    return model


def _optimizers(model: BaseAlgorithm) -> list[th.optim.Optimizer]:
    """Every optimizer of `model`: its policy's modules' (policy, actor, critic) and its own
    (SAC's entropy coefficient)."""
    owners: list[Any] = [model, *model.policy.modules()]
    found = [v for o in owners for v in vars(o).values() if isinstance(v, th.optim.Optimizer)]
    return list(dict.fromkeys(found))


# Hyperparameters that make `probe`'s training one or two updates long, by family.
_PROBE_SIZES: dict[str, dict[str, Any]] = {
    "on_policy": {"n_epochs": 1},
    "off_policy": {"learning_starts": 4, "buffer_size": 16, "train_freq": 1, "gradient_steps": 2},
}


def probe(exp: Experiment, name: str) -> None:
    """A few updates of `exp`'s own model (its network, hyperparameters and normalisation; one
    env, a few steps; TD3's delayed actor update included), then its deterministic actor on one
    observation: the ops a training and an evaluation of `exp` dispatch. The batch size stays
    the experiment's (an on-policy rollout is one batch long), so SB3 refuses a bad one here
    as it would in the training."""
    taken = inspect.signature(sb3_class(exp.algo)).parameters
    family = "off_policy" if "learning_starts" in taken else "on_policy"
    sizes = {k: v for k, v in _PROBE_SIZES[family].items() if k in taken}
    steps = 8
    if family == "on_policy":
        batch = exp.hyperparams.get(
            "batch_size", taken["batch_size"].default if "batch_size" in taken else 4
        )
        steps = sizes["n_steps"] = max(int(batch), 2)
    small = dataclasses.replace(exp, n_envs=1, hyperparams={**exp.hyperparams, **sizes})
    model = _model(small, name, seed=0)
    model.learn(total_timesteps=steps)
    env = model.get_env()
    assert env is not None
    _actor(model)(np.asarray(env.reset()))
    env.close()


# Attributes of a model that a snapshot leaves out: the logger (open streams; `learn` makes a new
# one) and the snapshotting wrapper that `train` puts on the instance.
_NOT_SNAPSHOT = ("_logger", "collect_rollouts")


def train(
    exp: Experiment,
    name: str,
    seed: int,
    recording: Recording,
    on_progress: Callable[[int], None],
    snapshots: Snapshots | None = None,
    resumed: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    """Train SB3 agent `exp` with `seed` for its budget of env steps, recording into
    `recording`, from the `resumed` snapshot state if given, writing `snapshots` if given.

    A snapshot is taken where SB3's `learn` loop starts a rollout (after the previous update,
    before anything of the next rollout runs), so that `learn(reset_num_timesteps=False)`
    continues from it exactly.

    :return: the checkpoint entries (SB3's zip, canonical, and VecNormalize's).
    """
    if resumed is None:
        model, updates = _model(exp, name, seed), 0
    else:
        cls = sb3_class(exp.algo)
        model, updates = cls.__new__(cls), resumed["updates"]
        model.__dict__.update(resumed["model"])
    recorder = _Recorder(recording, on_progress, updates)
    if snapshots is not None:
        collect = model.collect_rollouts  # type: ignore[attr-defined]

        def state() -> dict[str, Any]:
            attrs = {k: v for k, v in model.__dict__.items() if k not in _NOT_SNAPSHOT}
            return {"model": attrs, "updates": recorder.updates, "recording": recording}

        def snapshotting(*args: Any, **kwargs: Any) -> Any:
            snapshots.at_top(model.num_timesteps, state)
            return collect(*args, **kwargs)

        model.collect_rollouts = snapshotting  # type: ignore[attr-defined]
    model.learn(
        total_timesteps=exp.budget["steps"] - model.num_timesteps,
        callback=recorder,
        reset_num_timesteps=resumed is None,
    )
    model.__dict__.pop("collect_rollouts", None)
    model._num_timesteps_at_start = 0  # where this `learn` began, saved: as if never stopped
    env = model.get_env()
    assert env is not None
    env.close()
    saved = io.BytesIO()
    model.save(saved)
    entries = checkpoint.sb3_entries(saved.getvalue())
    normalizing = model.get_vec_normalize_env()
    if normalizing is not None:
        entries[normalize.ENTRY] = normalize.stats_json(normalizing)
    return entries
