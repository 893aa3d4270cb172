"""REINFORCE with a Gaussian policy, after Gymnasium's MuJoCo REINFORCE tutorial.

One AdamW update per episode on the return-weighted log-likelihood. It differs from the tutorial
in three ways:
- the small constant `std_eps` is added to the standard deviation only, never to the mean;
- the training env is reset with the run's seed once, then runs on (`env.reset(seed=seed)` before
  the first episode only); the tutorial resets it with its seed before every episode, so it trains
  from one fixed start;
- the committed experiments use InvertedPendulum-v5, which pays no reward on the terminating step;
  the tutorial uses InvertedPendulum-v4.
Sampling draws from a `torch.Generator` of its own, so that the whole random state of training is
known.
"""

import dataclasses
import io
from collections.abc import Callable
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional

from rlrepro import numerics
from rlrepro.agents.networks import GAUSSIAN_ENTRY, GaussianPolicy, box_dims, mean_actor
from rlrepro.agents.rollout import Episode
from rlrepro.core.params import Experiment, build
from rlrepro.training.recording import Recording
from rlrepro.training.snapshot import Snapshots


@dataclasses.dataclass(frozen=True)
class Config:
    """REINFORCE's hyperparameters (params `experiments.<name>.hyperparams`).

    :param learning_rate: AdamW's step size.
    :param weight_decay: AdamW's decoupled weight decay.
    :param gamma: the discount factor.
    :param std_eps: added to the softplus standard deviation, so that it is never zero.
    """

    learning_rate: float
    weight_decay: float
    gamma: float
    std_eps: float


def config(exp: Experiment, name: str) -> Config:
    """The hyperparameters of experiment `name`; :raises ParamsError: naming a bad key."""
    return build(Config, exp.hyperparams, f"experiments.{name}.hyperparams")


def discounted_returns(rewards: list[float], gamma: float) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, for every step of one episode."""
    returns = np.empty(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def acting(
    policy: GaussianPolicy, low: np.ndarray, high: np.ndarray
) -> Callable[[np.ndarray, torch.Tensor], tuple[torch.Tensor, np.ndarray]]:
    """`policy`'s sampling step for one observation, lean: `(obs, noise) -> (action, clipped)`,
    the action mean + std * noise (a row of shape (1, act_dim)) and it clipped to the bounds.

    The observation is a row, so that each layer is one `addmm` with its bias (a 1-d input
    costs a `mm`, views and an `add`: 25 ops a step instead of 13). The bits are those of
    `policy.forward` on the one observation (tests/test_helpers.py), as they are for that row in
    any batch: the products' elements are computed one by one (`rlrepro.numerics`' matmul).
    The calls go straight to the parameter tensors, which the optimizer updates in place,
    without `nn.Module`'s overhead.
    """
    layers = list(policy.shared)  # Linear, activation, Linear, activation, ... (`networks.mlp`)
    hidden: list[tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]] = [
        (cast(torch.nn.Linear, linear).weight.t(), cast(torch.nn.Linear, linear).bias, act.forward)
        for linear, act in zip(layers[::2], layers[1::2], strict=True)
    ]
    mean_w, mean_b = policy.mean.weight.t(), policy.mean.bias
    std_w, std_b = policy.std.weight.t(), policy.std.bias
    eps = policy.std_eps
    low_t, high_t = torch.from_numpy(low), torch.from_numpy(high)

    def act(obs: np.ndarray, noise: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        features = torch.from_numpy(obs[np.newaxis]).float()
        for weight, bias, activate in hidden:
            features = activate(torch.addmm(bias, features, weight))
        std = functional.softplus(torch.addmm(std_b, features, std_w)) + eps
        action = torch.addmm(mean_b, features, mean_w) + std * noise
        return action, torch.clamp(action, low_t, high_t).numpy()[0]

    return act


def _run_episode(
    env: gym.Env[np.ndarray, np.ndarray],
    obs: np.ndarray,
    policy: GaussianPolicy,
    generator: torch.Generator,
) -> tuple[list[np.ndarray], list[torch.Tensor], list[float]]:
    """Sample one episode from `obs` on; :return: its observations, actions (rows) and rewards.

    Log-likelihoods are recomputed in one batch at the update, which is faster than keeping a
    graph per step and gives the same gradient.
    """
    _, act_dim, low, high = box_dims(env)
    act = acting(policy, low, high)
    observations, actions, rewards, done = [], [], [], False
    with torch.no_grad():
        while not done:
            action, clipped = act(obs, torch.randn(act_dim, generator=generator))
            observations.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(clipped)
            rewards.append(float(reward))
            done = terminated or truncated
    return observations, actions, rewards


def _update(
    policy: GaussianPolicy,
    optimizer: torch.optim.Optimizer,
    episode: tuple[list[np.ndarray], list[torch.Tensor], list[float]],
    gamma: float,
) -> None:
    """One AdamW step on the return-weighted log-likelihood of `episode`."""
    observations, actions, rewards = episode
    returns = torch.as_tensor(discounted_returns(rewards, gamma), dtype=torch.float32)
    mean, std = policy(torch.as_tensor(np.array(observations), dtype=torch.float32))
    log_probs = (
        torch.distributions.Normal(mean, std, validate_args=False)
        .log_prob(torch.cat(actions))
        .sum(-1)
    )
    loss = -(log_probs * returns).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def probe(exp: Experiment, name: str, steps: int = 3) -> None:
    """One update of `exp`'s own policy on its first `steps` steps, then its mean actor on one
    observation: the ops a training and an evaluation of `exp` dispatch."""
    settings = config(exp, name)
    env: gym.Env[np.ndarray, np.ndarray] = gym.make(exp.env)
    obs_dim, act_dim, low, high = box_dims(env)
    policy = GaussianPolicy(
        obs_dim, act_dim, exp.policy.hidden, exp.policy.activation, settings.std_eps
    )
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.learning_rate)
    numerics.fuse(optimizer)
    act, generator = acting(policy, low, high), torch.Generator().manual_seed(0)
    obs, _ = env.reset(seed=0)
    observations, actions, rewards = [], [], []
    with torch.no_grad():
        for _ in range(steps):
            action, clipped = act(obs, torch.randn(act_dim, generator=generator))
            observations.append(obs)
            actions.append(action)
            obs, reward, *_ = env.step(clipped)
            rewards.append(float(reward))
    _update(policy, optimizer, (observations, actions, rewards), settings.gamma)
    mean_actor(policy, env)(obs)
    env.close()


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def train(
    exp: Experiment,
    name: str,
    seed: int,
    recording: Recording,
    on_progress: Callable[[int], None],
    snapshots: Snapshots | None = None,
    resumed: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Train REINFORCE experiment `exp` with `seed` until its budget (episodes or env steps) is
    spent; the first episode starts from `env.reset(seed=seed)`. The trace records the
    parameters and last observation after update 0 (none), 1, 2, ... With `resumed` (a
    snapshot's state), continue from it; with `snapshots`, write them between episodes.

    :return: the policy's description (for the checkpoint's meta) and the checkpoint entries:
        policy weights, optimizer state and the sampler's RNG state.
    """
    settings = config(exp, name)
    if resumed is None:
        env: gym.Env[np.ndarray, np.ndarray] = gym.make(exp.env)
        obs_dim, act_dim, _, _ = box_dims(env)
        policy = GaussianPolicy(
            obs_dim, act_dim, exp.policy.hidden, exp.policy.activation, settings.std_eps
        )
        optimizer = torch.optim.AdamW(
            policy.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        numerics.fuse(optimizer)
        generator = torch.Generator().manual_seed(seed)
        steps = episodes = 0
        obs, _ = env.reset(seed=seed)
        last_obs = obs
    else:
        env, policy, optimizer = resumed["env"], resumed["policy"], resumed["optimizer"]
        generator = torch.Generator()
        generator.set_state(resumed["generator"])
        steps, episodes = resumed["step"], resumed["episodes"]
        obs, last_obs = resumed["obs"], resumed["last_obs"]

    def actor() -> Callable[[np.ndarray], np.ndarray]:
        return mean_actor(policy, env)

    def state() -> dict[str, Any]:
        return {
            "env": env,
            "policy": policy,
            "optimizer": optimizer,
            "generator": generator.get_state(),
            "episodes": episodes,
            "obs": obs,
            "last_obs": last_obs,
            "recording": recording,
        }

    ((unit, amount),) = exp.budget.items()
    if resumed is None:
        recording.evaluate(0, actor)
        recording.trace.record(0, 0, policy.parameters(), obs)
    while (episodes if unit == "episodes" else steps) < amount:
        if snapshots is not None:
            snapshots.at_top(steps, state)
        episode = _run_episode(env, obs, policy, generator)
        _update(policy, optimizer, episode, settings.gamma)
        steps += len(episode[2])
        episodes += 1
        last_obs = episode[0][-1]
        recording.episode(Episode(steps, sum(episode[2]), len(episode[2])))
        recording.evaluate(steps, actor)
        on_progress(episodes if unit == "episodes" else steps)
        recording.trace.record(episodes, steps, policy.parameters(), last_obs)
        obs, _ = env.reset()
    recording.trace.record(episodes, steps, policy.parameters(), last_obs, force=True)
    recording.evaluate(steps, actor, last=True)
    env.close()
    entries = {
        GAUSSIAN_ENTRY: _torch_bytes(policy.state_dict()),
        "policy.optimizer.pth": _torch_bytes(optimizer.state_dict()),
        "rng.pth": _torch_bytes({"sampler": generator.get_state()}),
    }
    return policy.description, entries
