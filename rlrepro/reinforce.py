"""REINFORCE with a Gaussian policy, after Gymnasium's MuJoCo REINFORCE tutorial.

Shared hidden layers feed a mean head and a softplus std head; one AdamW update per episode on
the return-weighted log-likelihood. Unlike the tutorial, the small constant `std_eps` is added to
the standard deviation only, never to the mean. Sampling draws from a `torch.Generator` of its own,
so that the whole random state of training is known (and can later be saved for exact resume).
"""

import dataclasses
import io
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional

from rlrepro.episodes import Episode
from rlrepro.networks import mlp
from rlrepro.params import Experiment
from rlrepro.trace import Trace


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
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


class GaussianPolicy(nn.Module):
    """obs -> (mean, std) of a diagonal Gaussian over actions."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str, std_eps: float
    ) -> None:
        super().__init__()
        self.shared = mlp((obs_dim, *hidden), activation)
        self.mean = nn.Linear(hidden[-1], act_dim)
        self.std = nn.Linear(hidden[-1], act_dim)
        self.std_eps = std_eps

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:return: the mean and the standard deviation (softplus + `std_eps`) of the action."""
        features = self.shared(obs)
        return self.mean(features), functional.softplus(self.std(features)) + self.std_eps


def discounted_returns(rewards: list[float], gamma: float) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, for every step of one episode."""
    returns = np.empty(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def _spaces(env: gym.Env[np.ndarray, np.ndarray]) -> tuple[int, int, np.ndarray, np.ndarray]:
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(act_space, gym.spaces.Box) or obs_space.shape is None:
        raise ValueError(
            "reinforce needs a continuous (Box) action space; "
            f"{env.spec.id if env.spec else env} has {act_space}"
        )
    return (
        int(np.prod(obs_space.shape)),
        int(np.prod(act_space.shape)),
        act_space.low,
        act_space.high,
    )


def setup(
    exp: Experiment, config: ReinforceConfig, seed: int, env: gym.Env[np.ndarray, np.ndarray]
) -> tuple[GaussianPolicy, torch.optim.Optimizer, torch.Generator]:
    """A fresh `GaussianPolicy` for `env`, its AdamW optimizer and a sampler seeded with `seed`."""
    obs_dim, act_dim, _, _ = _spaces(env)
    policy = GaussianPolicy(
        obs_dim, act_dim, exp.policy.hidden, exp.policy.activation, config.std_eps
    )
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    return policy, optimizer, torch.Generator().manual_seed(seed)


def train(
    exp: Experiment,
    config: ReinforceConfig,
    seed: int,
    env: gym.Env[np.ndarray, np.ndarray],
    state: tuple[GaussianPolicy, torch.optim.Optimizer, torch.Generator],
    on_episode: Callable[[Episode, int], None],
    trace: Trace,
) -> None:
    """Train the policy in `state` (from `setup`) on `env` until the budget in `exp.budget` is
    spent; the first episode starts from `env.reset(seed=seed)`.

    :param on_episode: called after each update with the finished episode and the episodes done.
    :param trace: records the parameters and last observation after update 0 (none), 1, 2, ...
    """
    policy, optimizer, generator = state
    _, _, low, high = _spaces(env)
    ((unit, amount),) = exp.budget.items()
    steps = episodes = 0
    obs, _ = env.reset(seed=seed)
    trace.record(0, 0, policy.parameters(), obs)
    while (episodes if unit == "episodes" else steps) < amount:
        observations, actions, rewards = _run_episode(env, obs, policy, generator, low, high)
        returns = torch.as_tensor(discounted_returns(rewards, config.gamma), dtype=torch.float32)
        mean, std = policy(torch.as_tensor(np.array(observations), dtype=torch.float32))
        log_probs = torch.distributions.Normal(mean, std).log_prob(torch.stack(actions)).sum(-1)
        loss = -(log_probs * returns).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += len(rewards)
        episodes += 1
        on_episode(Episode(steps, sum(rewards), len(rewards)), episodes)
        trace.record(episodes, steps, policy.parameters(), observations[-1])
        obs, _ = env.reset()
    trace.record(episodes, steps, policy.parameters(), observations[-1], force=True)


def _run_episode(
    env: gym.Env[np.ndarray, np.ndarray],
    obs: np.ndarray,
    policy: GaussianPolicy,
    generator: torch.Generator,
    low: np.ndarray,
    high: np.ndarray,
) -> tuple[list[np.ndarray], list[torch.Tensor], list[float]]:
    """Sample one episode from `obs` on; :return: its observations, actions and rewards.

    Log-likelihoods are recomputed in one batch at the update, which is faster than keeping a
    graph per step and gives the same gradient.
    """
    observations, actions, rewards, done = [], [], [], False
    while not done:
        with torch.no_grad():
            mean, std = policy(torch.as_tensor(obs, dtype=torch.float32))
            action = mean + std * torch.randn(mean.shape, generator=generator)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(np.clip(action.numpy(), low, high))
        rewards.append(float(reward))
        done = terminated or truncated
    return observations, actions, rewards


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def checkpoint_entries(
    policy: GaussianPolicy, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> dict[str, bytes]:
    """The checkpoint entries: policy weights, optimizer state and the sampler's RNG state."""
    return {
        "policy.pth": _torch_bytes(policy.state_dict()),
        "policy.optimizer.pth": _torch_bytes(optimizer.state_dict()),
        "rng.pth": _torch_bytes({"sampler": generator.get_state()}),
    }


def load_policy(entries: dict[str, bytes], meta: dict[str, object]) -> GaussianPolicy:
    """Rebuild the `GaussianPolicy` described by checkpoint `meta` with its saved weights."""
    net = meta["network"]
    assert isinstance(net, dict)
    policy = GaussianPolicy(
        int(net["obs_dim"]),
        int(net["act_dim"]),
        tuple(net["hidden"]),
        str(net["activation"]),
        float(net["std_eps"]),
    )
    state = torch.load(io.BytesIO(entries["policy.pth"]), weights_only=True)
    policy.load_state_dict(state)
    return policy.eval()


def mean_actor(
    policy: GaussianPolicy, env: gym.Env[np.ndarray, np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic policy: the Gaussian's mean, clipped to `env`'s action bounds."""
    _, _, low, high = _spaces(env)

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            mean, _ = policy(torch.as_tensor(obs, dtype=torch.float32))
        return np.clip(mean.numpy(), low, high)

    return act
