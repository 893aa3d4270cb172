"""Policy networks: layers from params, and REINFORCE's Gaussian policy with its mean actor."""

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional

from rlrepro.agents.rollout import Actor
from rlrepro.core.params import ACTIVATIONS

GAUSSIAN_ENTRY = "policy.pth"  # the Gaussian policy's weights in a checkpoint


def activation(name: str) -> type[nn.Module]:
    """The `torch.nn` module class of activation `name` (a key of params' `ACTIVATIONS`)."""
    cls: type[nn.Module] = getattr(nn, ACTIVATIONS[name])
    return cls


def mlp(sizes: tuple[int, ...], activation_name: str) -> nn.Sequential:
    """Linear layers between consecutive `sizes`, each followed by the activation."""
    act = activation(activation_name)
    layers: list[nn.Module] = []
    for size_in, size_out in itertools.pairwise(sizes):
        layers += [nn.Linear(size_in, size_out), act()]
    return nn.Sequential(*layers)


def box_dims(env: gym.Env[Any, Any]) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The flat observation and action sizes of `env` and its action bounds (low, high).

    :raises ValueError: when the action space is not continuous (a Box).
    """
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(act_space, gym.spaces.Box) or obs_space.shape is None:
        raise ValueError(f"a continuous (Box) action space is needed; {env} has {act_space}")
    obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))
    return obs_dim, act_dim, act_space.low, act_space.high


class GaussianPolicy(nn.Module):
    """obs -> (mean, std) of a diagonal Gaussian over actions: shared hidden layers feed a mean
    head and a softplus std head, plus `std_eps` so that the std is never zero."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str, std_eps: float
    ) -> None:
        super().__init__()
        self.shared = mlp((obs_dim, *hidden), activation)
        self.mean = nn.Linear(hidden[-1], act_dim)
        self.std = nn.Linear(hidden[-1], act_dim)
        self.std_eps = std_eps
        self.description = {
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "hidden": list(hidden),
            "activation": activation,
            "std_eps": std_eps,
        }

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:return: the mean and the standard deviation (softplus + `std_eps`) of the action.

        Layers are applied through their `forward`, without `nn.Module.__call__`'s hooks: the same
        operations, without its overhead, which dominates a one-observation call.
        """
        features = obs
        for layer in self.shared:
            features = layer.forward(features)
        mean, std = self.mean.forward(features), self.std.forward(features)
        return mean, functional.softplus(std) + self.std_eps


def load_gaussian(weights: dict[str, torch.Tensor], description: dict[str, Any]) -> GaussianPolicy:
    """The `GaussianPolicy` of `description` (its `.description`, saved in the checkpoint's meta)
    with state dict `weights` (`checkpoint.weights`)."""
    policy = GaussianPolicy(
        int(description["obs_dim"]),
        int(description["act_dim"]),
        tuple(description["hidden"]),
        str(description["activation"]),
        float(description["std_eps"]),
    )
    policy.load_state_dict(weights)
    return policy.eval()


def mean_actor(policy: GaussianPolicy, env: gym.Env[Any, Any]) -> Actor:
    """The deterministic policy: the Gaussian's mean, clipped to `env`'s action bounds."""
    _, _, low, high = box_dims(env)

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            mean, _ = policy(torch.as_tensor(obs, dtype=torch.float32))
        return np.clip(mean.numpy(), low, high)

    return act
