"""Stable-Baselines3's algorithms by name: their classes, the action spaces they take, their
deterministic actor, and that actor rebuilt from a checkpoint's weights alone.

`stable_baselines3` is imported only where one of its classes is needed: an evaluation of the
usual networks never needs one (`policy_actor`).
"""

from __future__ import annotations

import importlib
import io
import itertools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional

from rlrepro.agents import checkpoint
from rlrepro.agents.networks import GaussianPolicy, activation
from rlrepro.agents.rollout import Actor
from rlrepro.core.errors import CheckpointError
from rlrepro.core.params import SB3_ALGORITHMS

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

# The action spaces an algorithm takes, where it does not take both Box and Discrete.
ACTION_SPACES: dict[str, type[gym.Space[Any]]] = {
    "dqn": gym.spaces.Discrete,
    "sac": gym.spaces.Box,
    "td3": gym.spaces.Box,
    "ddpg": gym.spaces.Box,
    "reinforce": gym.spaces.Box,
}


def sb3_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of algorithm name `algo` (one of `SB3_ALGORITHMS`), e.g. `PPO` for `ppo`."""
    if algo not in SB3_ALGORITHMS:
        raise KeyError(f"{algo!r} is not an SB3 algorithm; known: {', '.join(SB3_ALGORITHMS)}")
    import stable_baselines3

    cls: type[BaseAlgorithm] = getattr(stable_baselines3, algo.upper())
    return cls


def _constant(_: float) -> float:
    return 0.0


# How SB3 writes a class beside its pickle: "<class 'torch.optim.rmsprop.RMSprop'>".
_TORCH_CLASS = re.compile(r"<class '(torch(?:\.\w+)+)\.(\w+)'>")


def _readable(value: Any) -> Any:
    """A value SB3 wrote beside the pickle, rebuilt without it: plain JSON as it is, a torch
    class from its name (only from `torch`'s own modules), anything else None."""
    if isinstance(value, bool | int | float | list | dict):
        return value
    found = _TORCH_CLASS.fullmatch(value) if isinstance(value, str) else None
    return getattr(importlib.import_module(found[1]), found[2]) if found else None


def _policy_kwargs(saved: dict[str, Any], network: dict[str, Any]) -> dict[str, Any]:
    """The policy's keyword arguments from what SB3 wrote beside the pickle (numbers, lists,
    torch classes by name: `n_critics`, `use_sde`, `optimizer_class`, ...), with the network
    from `network` (`{hidden, activation}`)."""
    readable = {key: _readable(value) for key, value in saved.items() if not key.startswith(":")}
    plain = {key: value for key, value in readable.items() if value is not None}
    return plain | {
        "net_arch": list(network["hidden"]),
        "activation_fn": activation(network["activation"]),
    }


def safe_load(
    loaded: checkpoint.Checkpoint, weights: dict[str, torch.Tensor], env: gym.Env[Any, Any]
) -> BaseAlgorithm:
    """The SB3 agent of checkpoint `loaded`, for acting only, without unpickling anything.

    SB3's `load` unpickles (cloudpickle) every `:serialized:` field of the checkpoint's `data`
    entry: code that runs on load. Here each one is replaced (SB3's `custom_objects`) by what
    this project knows without it: the spaces of `env`, the policy class and `network`
    (`{hidden, activation}`, from the checkpoint's own `rlrepro.json`), and inert values for the
    rest (schedules, buffers, noise: training state that acting never reads; the buffers' sizes
    1). The weights are read with `torch.load(weights_only=True)`, as SB3 does. SB3 reads the
    entries `loaded` holds, already checked and bounded (`checkpoint.load`), not the file again.

    :param weights: `loaded`'s policy state dict (`checkpoint.weights`), already checked against
        `network` (`mismatch`): SAC's and TD3's critics are counted in it.
    :raises CheckpointError: when SB3 cannot load them (weights that do not fit `env`).
    """
    cls = sb3_class(loaded.meta["algo"])
    network = loaded.meta["network"]
    fields = json.loads(checkpoint.entry(loaded.entries, "data", loaded.path))
    saved = fields.get("policy_kwargs")
    replaced: dict[str, Any] = {
        key: None
        for key, value in fields.items()
        if isinstance(value, dict) and ":serialized:" in value
    }
    replaced |= {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "policy_class": cls.policy_aliases["MlpPolicy"],
        "policy_kwargs": _policy_kwargs(saved if isinstance(saved, dict) else {}, network),
        "learning_rate": 0.0,
        "lr_schedule": _constant,
    }
    for key in ("clip_range", "clip_range_vf", "exploration_schedule"):
        if key in replaced:
            replaced[key] = _constant
    if "train_freq" in replaced:  # off-policy algorithms check it when they set up
        replaced["train_freq"] = 1
    for key in ("buffer_size", "n_steps", "n_envs"):  # what SB3 sizes its buffers by
        if key in fields:
            replaced[key] = 1
    critics = len({key.split(".")[1] for key in weights if key.startswith("critic.")})
    if replaced["policy_kwargs"].get("n_critics", critics) != critics:
        raise CheckpointError(
            f"{loaded.path}: `data` says {replaced['policy_kwargs']['n_critics']} critics, "
            f"`policy.pth` holds {critics}; retrain it with `dvc repro`"
        )
    zipped = io.BytesIO(checkpoint.canonical_zip(loaded.entries))
    try:
        return cls.load(zipped, device="cpu", custom_objects=replaced)
    except (RuntimeError, ValueError, KeyError, TypeError) as err:  # SB3's and torch's checks
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(
            f"{loaded.path}: SB3 cannot load it ({why}); retrain it with `dvc repro`"
        ) from None


def sb3_actor(model: BaseAlgorithm, normalize: Callable[[np.ndarray], np.ndarray]) -> Actor:
    """`model`'s deterministic policy on raw observations, `normalize`d first."""

    def act(obs: np.ndarray) -> Any:
        action, _ = model.predict(normalize(obs), deterministic=True)
        return action

    return act


# Where each algorithm's deterministic actor sits in its SB3 policy's state dict: the prefix of its
# hidden layers (`<prefix><index>.weight` and `.bias`, in index order) and its output layer (None:
# the last one under the prefix). SB3 follows every layer but the last with the activation.
_ACTOR_LAYERS: dict[str, tuple[str, str | None]] = {
    "ppo": ("mlp_extractor.policy_net.", "action_net"),
    "a2c": ("mlp_extractor.policy_net.", "action_net"),
    "dqn": ("q_net.q_net.", None),
    "sac": ("actor.latent_pi.", "actor.mu"),
    "td3": ("actor.mu.", None),
    "ddpg": ("actor.mu.", None),
}
# The modules at the top of each algorithm's policy state dict (besides a Gaussian's `log_std`).
_ON_POLICY = frozenset({"mlp_extractor", "action_net", "value_net"})
_TWIN_ACTORS = frozenset({"actor", "actor_target", "critic", "critic_target"})
_MODULES: dict[str, frozenset[str]] = {
    "ppo": _ON_POLICY,
    "a2c": _ON_POLICY,
    "dqn": frozenset({"q_net", "q_net_target"}),
    "sac": frozenset({"actor", "critic", "critic_target"}),
    "td3": _TWIN_ACTORS,
    "ddpg": _TWIN_ACTORS,
    "reinforce": frozenset({"shared", "mean", "std"}),
}


def _layer_names(algo: str, weights: dict[str, torch.Tensor]) -> list[str] | None:
    """The names of the linear layers of `algo`'s actor in policy state dict `weights`, input
    side first (each has `.weight` and `.bias`); None when it holds the actor in another layout
    (SAC with gSDE clips its mean in an `actor.mu` Sequential)."""
    prefix, output = _ACTOR_LAYERS[algo]
    hidden = re.compile(re.escape(prefix) + r"(\d+)\.weight")
    indices = sorted(int(found[1]) for key in weights if (found := hidden.fullmatch(key)))
    names = [f"{prefix}{index}" for index in indices] + ([output] if output else [])
    if not indices or any(
        f"{name}.weight" not in weights or f"{name}.bias" not in weights for name in names
    ):
        return None
    return names


def _linear_layers(
    algo: str, weights: dict[str, torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """The (weight, bias) of each linear layer of `algo`'s actor in SB3 policy state dict
    `weights`, input side first; None when it holds the actor in another layout."""
    names = _layer_names(algo, weights)
    if names is None:
        return None
    return [(weights[f"{name}.weight"], weights[f"{name}.bias"]) for name in names]


def _size(space: gym.Space[Any]) -> int | None:
    """The values of an observation or action of `space` (a Box's, flat), or a Discrete's
    choices; None for other spaces."""
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else None


def _name(env: gym.Env[Any, Any]) -> str:
    """`env`'s id, for a message."""
    return env.spec.id if env.spec is not None else str(env)


def mismatch(
    algo: str, weights: dict[str, torch.Tensor], network: dict[str, Any], env: gym.Env[Any, Any]
) -> str | None:
    """What of policy state dict `weights` does not fit the checkpoint's `rlrepro.json` (its
    `algo` and `network`) and `env` (made from its `env`): the modules another algorithm's
    policy has, or an actor layer of another shape than `env`'s observations, actions and
    `network.hidden` make. Weights of another env with spaces of the same sizes fit.

    :return: that, in words, or None when everything fits.
    """
    name = _name(env)
    accepted = ACTION_SPACES.get(algo)
    if accepted is not None and not isinstance(env.action_space, accepted):
        found = type(env.action_space).__name__
        return f"{algo} takes {accepted.__name__} actions, {name} has {found} actions"
    modules = {key.split(".")[0] for key in weights} - {"log_std"}  # a Gaussian's, in any
    if modules != _MODULES[algo]:
        owners = " or ".join(sorted(a for a, known in _MODULES.items() if known == modules))
        return (
            f"`policy.pth` holds modules {', '.join(sorted(modules))}, "
            f"{owners or 'no algorithm'}'s, not {algo}'s"
        )
    too_big = _oversized(weights, network, env)
    if too_big is not None:
        return too_big
    if algo == "reinforce":
        with torch.device("meta"):  # shapes only: nothing allocated, no generator drawn from
            expected = GaussianPolicy(
                int(network["obs_dim"]),
                int(network["act_dim"]),
                tuple(network["hidden"]),
                str(network["activation"]),
                float(network["std_eps"]),
            ).state_dict()
        sizes = (network["obs_dim"], network["act_dim"])
        spaces = (_size(env.observation_space), _size(env.action_space))
        if sizes != spaces:
            return (
                f"network.obs_dim and act_dim are {sizes}, "
                f"{name}'s observation and action sizes {spaces}"
            )
        for key, tensor in expected.items():
            if key not in weights or weights[key].shape != tensor.shape:
                got = tuple(weights[key].shape) if key in weights else "missing"
                return f"`policy.pth`'s `{key}` is {got}, the network needs {tuple(tensor.shape)}"
        return None
    return _chain_mismatch(algo, weights, network, env)


def _oversized(
    weights: dict[str, torch.Tensor], network: dict[str, Any], env: gym.Env[Any, Any]
) -> str | None:
    """Whether `network.hidden` describes a network larger than `weights` hold: more layers than
    they have tensors, or more values in an actor of those layers between `env`'s observations
    and actions than they have. Checked before anything is built from `network` (the Gaussian's
    shapes, SB3's agent in `safe_load`), so that a crafted `rlrepro.json` never builds a network
    larger than the weights it came with (SB3's, actor and critics: a few times them)."""
    hidden = [int(width) for width in network["hidden"]]
    ends = [_size(env.observation_space) or 1, *hidden, _size(env.action_space) or 1]
    smallest = sum(a * b + b for a, b in itertools.pairwise(ends))  # the actor's alone
    held = sum(tensor.numel() for tensor in weights.values())
    if 2 * len(hidden) > len(weights) or smallest > held:
        shown = hidden if len(hidden) <= 8 else [*hidden[:8], "..."]
        return f"network.hidden {shown} needs more than the {held:,} values `policy.pth` holds"
    return None


def _chain_mismatch(
    algo: str, weights: dict[str, torch.Tensor], network: dict[str, Any], env: gym.Env[Any, Any]
) -> str | None:
    """`mismatch` of an SB3 actor whose layers `_layer_names` finds: each layer's shape."""
    names = _layer_names(algo, weights)
    obs, act = _size(env.observation_space), _size(env.action_space)
    if names is None or obs is None or act is None:
        return None  # not rebuilt here: SB3's load checks the shapes (`safe_load`)
    hidden = list(network["hidden"])
    sizes = [obs, *hidden, act]
    if len(names) != len(sizes) - 1:
        return f"`policy.pth`'s actor has {len(names) - 1} hidden layers, network.hidden {hidden}"
    for layer, n_in, n_out in zip(names, sizes, sizes[1:], strict=False):
        weight, bias = weights[f"{layer}.weight"], weights[f"{layer}.bias"]
        if weight.shape != (n_out, n_in) or bias.shape != (n_out,):
            return (
                f"`policy.pth`'s `{layer}.weight` is {tuple(weight.shape)}, not ({n_out}, {n_in}) "
                f"as {_name(env)}'s {obs} observation values, {act} actions and network.hidden "
                f"{hidden} make"
            )
    return None


def policy_actor(
    algo: str,
    weights: dict[str, torch.Tensor],
    activation_name: str,
    env: gym.Env[Any, Any],
    normalize: Callable[[np.ndarray], np.ndarray],
) -> Actor | None:
    """`sb3_actor` of an agent, rebuilt from its policy's state dict `weights` without SB3: the
    same torch operations on the same tensors, so the same actions, bit for bit
    (tests/test_algorithms.py), without building the agent, its optimizers and its buffers.

    :param activation_name: the hidden layers' activation (params `policy.activation`).
    :return: the actor; None for what it does not cover (observations other than a Box, action
        spaces other than a Box or Discrete, other layouts), which `safe_load` does.
    """
    layers = _linear_layers(algo, weights)
    obs_space, act_space = env.observation_space, env.action_space
    if layers is None or not isinstance(obs_space, gym.spaces.Box):
        return None
    if not isinstance(act_space, gym.spaces.Box | gym.spaces.Discrete):
        return None
    activate = activation(activation_name)()
    squashed = algo in ("sac", "td3", "ddpg")  # a tanh output, scaled to the action bounds

    def act(obs: np.ndarray) -> Any:
        with torch.no_grad():
            out = torch.as_tensor(normalize(obs)).float()  # SB3's preprocess_obs for a Box
            for weight, bias in layers[:-1]:
                out = activate(functional.linear(out, weight, bias))
            out = functional.linear(out, *layers[-1])
            if algo == "dqn":
                return out.argmax(dim=1).reshape(-1).numpy()
            if isinstance(act_space, gym.spaces.Discrete):  # SB3: the mode of Categorical(logits)
                return torch.distributions.Categorical(logits=out).probs.argmax(dim=1).numpy()
            if not squashed:  # the Gaussian's mean, clipped as SB3's `predict` does
                return np.clip(out.numpy(), act_space.low, act_space.high)
            scaled = torch.tanh(out).numpy()  # SB3's `unscale_action`
            low, high = act_space.low, act_space.high
            return low + (0.5 * (scaled + 1.0) * (high - low))

    return act
