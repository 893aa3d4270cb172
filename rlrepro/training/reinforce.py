"""REINFORCE with a Gaussian policy, after Gymnasium's MuJoCo REINFORCE tutorial.

One AdamW update per episode on the return-weighted log-likelihood. Unlike the tutorial, the small
constant `std_eps` is added to the standard deviation only, never to the mean. Sampling draws from
a `torch.Generator` of its own, so that the whole random state of training is known.
"""

import dataclasses
import functools
import io
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional

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


def _lean(policy: GaussianPolicy) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """`policy.forward` as plain calls on its parameter tensors: the same operations in the same
    order (so the same bits), without the per-call attribute look-ups of `nn.Module`, which cost
    more than the arithmetic on one observation. The optimizer updates the tensors in place, so
    the calls stay current."""
    steps: list[Callable[[torch.Tensor], torch.Tensor]] = [
        functools.partial(functional.linear, weight=layer.weight, bias=layer.bias)
        if isinstance(layer, torch.nn.Linear)
        else layer.forward
        for layer in policy.shared
    ]
    mean_w, mean_b, std_w, std_b = (
        policy.mean.weight,
        policy.mean.bias,
        policy.std.weight,
        policy.std.bias,
    )
    eps = policy.std_eps

    def forward(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for step in steps:
            obs = step(obs)
        std = functional.softplus(functional.linear(obs, std_w, std_b)) + eps
        return functional.linear(obs, mean_w, mean_b), std

    return forward


def _run_episode(
    env: gym.Env[np.ndarray, np.ndarray],
    obs: np.ndarray,
    policy: GaussianPolicy,
    generator: torch.Generator,
) -> tuple[list[np.ndarray], list[torch.Tensor], list[float]]:
    """Sample one episode from `obs` on; :return: its observations, actions and rewards.

    Log-likelihoods are recomputed in one batch at the update, which is faster than keeping a
    graph per step and gives the same gradient.
    """
    _, _, low, high = box_dims(env)
    forward = _lean(policy)
    observations, actions, rewards, done = [], [], [], False
    with torch.no_grad():
        while not done:
            mean, std = forward(torch.from_numpy(obs).float())
            action = mean + std * torch.randn(mean.shape, generator=generator)
            observations.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(np.clip(action.numpy(), low, high))
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
    log_probs = torch.distributions.Normal(mean, std).log_prob(torch.stack(actions)).sum(-1)
    loss = -(log_probs * returns).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


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
