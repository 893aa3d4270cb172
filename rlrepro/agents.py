"""Agents by algorithm name: train one, save it canonically, load it back as a deterministic actor.

`ppo`, `a2c`, `sac`, `td3`, `ddpg` and `dqn` come from Stable-Baselines3, with their keyword
arguments from params; `reinforce` is ours (`rlrepro.reinforce`). A checkpoint's `rlrepro.json`
names its algorithm and env, and holds the `VecNormalize` statistics when training used them, so
loading needs nothing but the file.
"""

import inspect
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rlrepro import checkpoint, reinforce
from rlrepro.episodes import Actor, Episode
from rlrepro.files import canonical_json
from rlrepro.networks import activation
from rlrepro.params import Experiment, ParamsError, build
from rlrepro.periodic import Evaluator
from rlrepro.progress import Progress
from rlrepro.trace import Trace

SB3_ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "dqn": DQN,
}
# The action spaces each algorithm takes (the others take both).
_ACTION_SPACES: dict[str, type[gym.Space[Any]]] = {
    "dqn": gym.spaces.Discrete,
    "sac": gym.spaces.Box,
    "td3": gym.spaces.Box,
    "ddpg": gym.spaces.Box,
    "reinforce": gym.spaces.Box,
}
# Hyperparameters that may be a schedule of the training progress, `{schedule: linear, ...}`.
_SCHEDULABLE = ("learning_rate", "clip_range", "clip_range_vf")
NORMALIZE_ENTRY = "vecnormalize.json"
# Arguments of an SB3 algorithm that the pipeline sets itself, never from hyperparams.
_SB3_RESERVED = frozenset(
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


def check_hyperparams(exp: Experiment, name: str) -> None:
    """Reject a hyperparameter that experiment `name`'s algorithm does not take (or a number
    written as text), and an algorithm that does not take the env's action space.

    :raises ParamsError: naming the key and what is accepted.
    """
    where = f"experiments.{name}.hyperparams"
    space = gym.make(exp.env).action_space
    needed = _ACTION_SPACES.get(exp.algo)
    if needed is not None and not isinstance(space, needed):
        raise ParamsError(
            f"experiments.{name}.algo: {exp.algo} needs a {needed.__name__} action space; "
            f"{exp.env} has {space}"
        )
    if exp.algo == "reinforce":
        build(reinforce.ReinforceConfig, exp.hyperparams, where)
        return
    signature = inspect.signature(SB3_ALGORITHMS[exp.algo]).parameters
    accepted = sorted(set(signature) - _SB3_RESERVED)
    for key in sorted(exp.hyperparams):
        if key not in accepted:
            raise ParamsError(
                f"{where}.{key}: unknown hyperparameter of {exp.algo}; "
                f"accepted: {', '.join(accepted)}"
            )
        default, value = signature[key].default, exp.hyperparams[key]
        if isinstance(default, int | float) and isinstance(value, str):
            raise ParamsError(
                f"{where}.{key}: expected a number, got {value!r} "
                "(YAML reads 1e-4 as text: write 1.0e-4)"
            )
    sb3_kwargs(exp, name, space)


def sb3_kwargs(exp: Experiment, name: str, action_space: gym.Space[Any]) -> dict[str, Any]:
    """The SB3 keyword arguments of `exp.hyperparams`: schedules become `LinearSchedule`s,
    `action_noise: {normal: sigma}` a `NormalActionNoise`, lists (`train_freq`) tuples.

    :raises ParamsError: for a schedule or noise that is not one of these.
    """
    where = f"experiments.{name}.hyperparams"
    kwargs: dict[str, Any] = {}
    for key, value in exp.hyperparams.items():
        if isinstance(value, dict) and key in _SCHEDULABLE:
            if sorted(value) != ["end", "schedule", "start"] or value["schedule"] != "linear":
                raise ParamsError(
                    f"{where}.{key}: expected a number or "
                    f"{{schedule: linear, start: <number>, end: <number>}}, got {value!r}"
                )
            kwargs[key] = LinearSchedule(float(value["start"]), float(value["end"]), 1.0)
        elif key == "action_noise" and value is not None:
            if not isinstance(value, dict) or sorted(value) != ["normal"]:
                raise ParamsError(f"{where}.{key}: expected {{normal: <sigma>}}, got {value!r}")
            shape = action_space.shape or (1,)
            sigma = float(value["normal"]) * np.ones(shape)
            kwargs[key] = NormalActionNoise(mean=np.zeros(shape), sigma=sigma)
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return kwargs


class _Recorder(BaseCallback):
    """Collects every finished episode (from SB3's Monitor infos), traces updates, evaluates when
    due and reports progress. A rollout starts after each update, so the k-th rollout start
    (from 0) follows update k.
    """

    def __init__(self, progress: Progress, trace: Trace, evaluator: Evaluator) -> None:
        super().__init__()
        self.progress, self.trace, self.evaluator = progress, trace, evaluator
        self.episodes: list[Episode] = []
        self.updates = 0

    def _on_training_start(self) -> None:
        self.evaluator.maybe(0, 0, self._actor)

    def _on_rollout_start(self) -> None:
        self._record(force=False)
        self.updates += 1

    def _on_training_end(self) -> None:
        self._record(force=True)
        self.evaluator.maybe(self.num_timesteps, len(self.episodes), self._actor, last=True)

    def _record(self, force: bool) -> None:
        params = self.model.policy.parameters()
        obs = self.model._last_obs
        self.trace.record(self.updates, self.num_timesteps, params, obs, force=force)

    def _actor(self) -> Actor:
        normalize = self.model.get_vec_normalize_env()
        return sb3_actor(self.model, normalize.normalize_obs if normalize else _identity)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                ep = info["episode"]
                self.episodes.append(Episode(self.num_timesteps, float(ep["r"]), int(ep["l"])))
        self.evaluator.maybe(self.num_timesteps, len(self.episodes), self._actor)
        self.progress.update(self.num_timesteps)
        return True


def train(
    exp: Experiment, name: str, seed: int, trace: Trace
) -> tuple[dict[str, Any], dict[str, bytes], list[Episode], Evaluator]:
    """Train experiment `name` with `seed`, recording its updates in `trace`.

    :return: the checkpoint's meta and entries (see `rlrepro.checkpoint`), the learning curve
        and the evaluator (its progress rows and the training clock).
    """
    ((unit, amount),) = exp.budget.items()
    progress = Progress(amount, unit, f"{name} seed {seed}")
    meta = {"algo": exp.algo, "env": exp.env, "experiment": name, "seed": seed}
    evaluator = Evaluator(exp.env, exp.periodic_eval)
    if exp.algo == "reinforce":
        entries, episodes = _train_reinforce(exp, name, seed, progress, trace, evaluator, meta)
    else:
        entries, episodes = _train_sb3(exp, name, seed, amount, progress, trace, evaluator)
    progress.close()
    return meta, entries, episodes, evaluator


def _train_sb3(
    exp: Experiment,
    name: str,
    seed: int,
    steps: int,
    progress: Progress,
    trace: Trace,
    evaluator: Evaluator,
) -> tuple[dict[str, bytes], list[Episode]]:
    env: VecEnv = make_vec_env(exp.env, n_envs=exp.n_envs, seed=seed)
    if exp.normalize is not None:
        env = VecNormalize(
            env,
            norm_obs=exp.normalize.obs,
            norm_reward=exp.normalize.reward,
            clip_obs=exp.normalize.clip_obs,
            gamma=float(exp.hyperparams.get("gamma", 0.99)),
        )
    policy_kwargs = {
        "net_arch": list(exp.policy.hidden),
        "activation_fn": activation(exp.policy.activation),
    }
    model = SB3_ALGORITHMS[exp.algo](
        "MlpPolicy",
        env,
        seed=seed,
        device="cpu",
        verbose=0,
        policy_kwargs=policy_kwargs,
        **sb3_kwargs(exp, name, env.action_space),
    )
    recorder = _Recorder(progress, trace, evaluator)
    model.learn(total_timesteps=steps, callback=recorder)
    env.close()
    saved = io.BytesIO()
    model.save(saved)
    entries = checkpoint.sb3_entries(saved.getvalue())
    if isinstance(env, VecNormalize):
        entries[NORMALIZE_ENTRY] = _normalize_stats(env)
    return entries, recorder.episodes


def _normalize_stats(env: VecNormalize) -> bytes:
    """`VecNormalize`'s settings and running statistics, as canonical JSON (floats round-trip)."""
    obs_rms = env.obs_rms
    assert isinstance(obs_rms, RunningMeanStd)  # a Box observation space, not a dict
    stats = {
        "norm_obs": env.norm_obs,
        "norm_reward": env.norm_reward,
        "clip_obs": env.clip_obs,
        "clip_reward": env.clip_reward,
        "epsilon": env.epsilon,
        "gamma": env.gamma,
        "obs_mean": obs_rms.mean.tolist(),
        "obs_var": obs_rms.var.tolist(),
        "obs_count": obs_rms.count,
        "ret_mean": env.ret_rms.mean.tolist(),
        "ret_var": env.ret_rms.var.tolist(),
        "ret_count": env.ret_rms.count,
    }
    return canonical_json(stats).encode("utf-8")


def _identity(obs: Any) -> Any:
    return obs


def normalizer(stats: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """The observation normalisation of saved `VecNormalize` statistics, as SB3 computes it
    (`VecNormalize.normalize_obs`: clip((obs - mean) / sqrt(var + epsilon)), as float32)."""
    if not stats["norm_obs"]:
        return _identity
    mean, var = np.asarray(stats["obs_mean"]), np.asarray(stats["obs_var"])
    scale, clip = np.sqrt(var + stats["epsilon"]), stats["clip_obs"]
    return lambda obs: np.clip((obs - mean) / scale, -clip, clip).astype(np.float32)


def sb3_actor(model: BaseAlgorithm, normalize: Callable[[Any], Any]) -> Actor:
    """`model`'s deterministic policy on raw observations, `normalize`d first."""

    def act(obs: np.ndarray) -> Any:
        action, _ = model.predict(normalize(obs), deterministic=True)
        return action

    return act


def _train_reinforce(
    exp: Experiment,
    name: str,
    seed: int,
    progress: Progress,
    trace: Trace,
    evaluator: Evaluator,
    meta: dict[str, Any],
) -> tuple[dict[str, bytes], list[Episode]]:
    config = build(reinforce.ReinforceConfig, exp.hyperparams, f"experiments.{name}.hyperparams")
    episodes: list[Episode] = []
    env = gym.make(exp.env)
    policy, optimizer, generator = reinforce.setup(exp, config, seed, env)

    def actor() -> Actor:
        return reinforce.mean_actor(policy, env)

    def on_episode(episode: Episode, done: int) -> None:
        episodes.append(episode)
        evaluator.maybe(episode.step, done, actor)
        progress.update(done if "episodes" in exp.budget else episode.step)

    evaluator.maybe(0, 0, actor)
    reinforce.train(exp, config, seed, env, (policy, optimizer, generator), on_episode, trace)
    evaluator.maybe(episodes[-1].step if episodes else 0, len(episodes), actor, last=True)
    env.close()
    meta["network"] = {
        "obs_dim": policy.shared[0].in_features,
        "act_dim": policy.mean.out_features,
        "hidden": list(exp.policy.hidden),
        "activation": exp.policy.activation,
        "std_eps": config.std_eps,
    }
    return reinforce.checkpoint_entries(policy, optimizer, generator), episodes


def load_actor(path: Path, env: gym.Env[Any, Any]) -> Actor:
    """The deterministic policy saved in checkpoint `path` (argmax, or the Gaussian mean), on raw
    observations: SB3 agents trained with `VecNormalize` normalise them as in training."""
    meta = checkpoint.read_meta(path)
    entries = checkpoint.read_entries(path)
    if meta["algo"] == "reinforce":
        policy = reinforce.load_policy(entries, meta)
        return reinforce.mean_actor(policy, env)
    model = SB3_ALGORITHMS[meta["algo"]].load(path, device="cpu")
    stats = entries.get(NORMALIZE_ENTRY)
    return sb3_actor(model, normalizer(json.loads(stats)) if stats else _identity)
