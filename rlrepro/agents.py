"""Agents by algorithm name: train one, save it canonically, load it back as a deterministic actor.

`ppo` comes from Stable-Baselines3; `reinforce` is ours (`rlrepro.reinforce`). A checkpoint's
`rlrepro.json` names its algorithm and env, so loading needs nothing but the file.
"""

import inspect
import io
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from rlrepro import checkpoint, reinforce
from rlrepro.episodes import Actor, Episode
from rlrepro.networks import activation
from rlrepro.params import Experiment, ParamsError, build
from rlrepro.progress import Progress
from rlrepro.trace import Trace

SB3_ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO}
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
    """Reject a hyperparameter that experiment `name`'s algorithm does not take.

    :raises ParamsError: naming the key and the accepted ones.
    """
    where = f"experiments.{name}.hyperparams"
    if exp.algo == "reinforce":
        build(reinforce.ReinforceConfig, exp.hyperparams, where)
        return
    accepted = sorted(set(inspect.signature(SB3_ALGORITHMS[exp.algo]).parameters) - _SB3_RESERVED)
    for key in sorted(exp.hyperparams):
        if key not in accepted:
            raise ParamsError(
                f"{where}.{key}: unknown hyperparameter of {exp.algo}; "
                f"accepted: {', '.join(accepted)}"
            )


class _EpisodeRecorder(BaseCallback):
    """Collects every finished episode (from SB3's Monitor infos), traces updates, reports progress.

    A rollout starts after each update, so the k-th rollout start (from 0) follows update k.
    """

    def __init__(self, progress: Progress, trace: Trace) -> None:
        super().__init__()
        self.progress, self.trace = progress, trace
        self.episodes: list[Episode] = []
        self.updates = 0

    def _on_rollout_start(self) -> None:
        self._record(force=False)
        self.updates += 1

    def _on_training_end(self) -> None:
        self._record(force=True)

    def _record(self, force: bool) -> None:
        params = self.model.policy.parameters()
        obs = self.model._last_obs
        self.trace.record(self.updates, self.num_timesteps, params, obs, force=force)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                ep = info["episode"]
                self.episodes.append(Episode(self.num_timesteps, float(ep["r"]), int(ep["l"])))
        self.progress.update(self.num_timesteps)
        return True


def train(
    exp: Experiment, name: str, seed: int, trace: Trace
) -> tuple[dict[str, Any], dict[str, bytes], list[Episode]]:
    """Train experiment `name` with `seed`, recording its updates in `trace`.

    :return: the checkpoint's meta and entries (see `rlrepro.checkpoint`) and the learning curve.
    """
    ((unit, amount),) = exp.budget.items()
    progress = Progress(amount, unit, f"{name} seed {seed}")
    meta = {"algo": exp.algo, "env": exp.env, "experiment": name, "seed": seed}
    if exp.algo == "reinforce":
        entries, episodes = _train_reinforce(exp, name, seed, progress, trace, meta)
    else:
        entries, episodes = _train_sb3(exp, seed, amount, progress, trace)
    progress.close()
    return meta, entries, episodes


def _train_sb3(
    exp: Experiment, seed: int, steps: int, progress: Progress, trace: Trace
) -> tuple[dict[str, bytes], list[Episode]]:
    env = make_vec_env(exp.env, n_envs=1, seed=seed)
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
        **exp.hyperparams,
    )
    recorder = _EpisodeRecorder(progress, trace)
    model.learn(total_timesteps=steps, callback=recorder)
    env.close()
    saved = io.BytesIO()
    model.save(saved)
    return checkpoint.sb3_entries(saved.getvalue()), recorder.episodes


def _train_reinforce(
    exp: Experiment,
    name: str,
    seed: int,
    progress: Progress,
    trace: Trace,
    meta: dict[str, Any],
) -> tuple[dict[str, bytes], list[Episode]]:
    config = build(reinforce.ReinforceConfig, exp.hyperparams, f"experiments.{name}.hyperparams")
    episodes: list[Episode] = []

    def on_episode(episode: Episode, done: int) -> None:
        episodes.append(episode)
        progress.update(done if "episodes" in exp.budget else episode.step)

    env = gym.make(exp.env)
    policy, optimizer, generator = reinforce.train(exp, config, seed, env, on_episode, trace)
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
    """The deterministic policy saved in checkpoint `path` (argmax, or the Gaussian mean)."""
    meta = checkpoint.read_meta(path)
    if meta["algo"] == "reinforce":
        policy = reinforce.load_policy(checkpoint.read_entries(path), meta)
        return reinforce.mean_actor(policy, env)
    model = SB3_ALGORITHMS[meta["algo"]].load(path, device="cpu")

    def act(obs: np.ndarray) -> Any:
        action, _ = model.predict(obs, deterministic=True)
        return action

    return act
