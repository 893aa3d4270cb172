"""SB3's `VecNormalize` statistics in a checkpoint: saved as canonical JSON, applied frozen."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from rlrepro.core.files import canonical_json

if TYPE_CHECKING:  # training's; an evaluation does not import SB3
    from stable_baselines3.common.vec_env import VecNormalize

ENTRY = "vecnormalize.json"


def stats_json(env: VecNormalize) -> bytes:
    """`env`'s settings and running statistics, as canonical JSON (floats round-trip); the
    observations' statistics only where it normalises them (SB3 keeps none otherwise)."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    stats = {
        "norm_obs": env.norm_obs,
        "norm_reward": env.norm_reward,
        "clip_obs": env.clip_obs,
        "clip_reward": env.clip_reward,
        "epsilon": env.epsilon,
        "gamma": env.gamma,
        "ret_mean": env.ret_rms.mean.tolist(),
        "ret_var": env.ret_rms.var.tolist(),
        "ret_count": env.ret_rms.count,
    }
    if env.norm_obs:
        obs_rms = env.obs_rms
        assert isinstance(obs_rms, RunningMeanStd)  # a Box observation space, not a dict
        stats |= {
            "obs_mean": obs_rms.mean.tolist(),
            "obs_var": obs_rms.var.tolist(),
            "obs_count": obs_rms.count,
        }
    return canonical_json(stats).encode("utf-8")


def _identity(obs: np.ndarray) -> np.ndarray:
    return obs


def normalizer(stats: dict[str, Any] | None) -> Callable[[np.ndarray], np.ndarray]:
    """The observation normalisation of saved statistics (`stats_json`), as SB3 computes it in
    `VecNormalize.normalize_obs`: clip((obs - mean) / sqrt(var + epsilon)), as float32; the
    identity when there are none or they do not normalise observations."""
    if stats is None or not stats["norm_obs"]:
        return _identity
    mean, var = np.asarray(stats["obs_mean"]), np.asarray(stats["obs_var"])
    scale, clip = np.sqrt(var + stats["epsilon"]), stats["clip_obs"]
    return lambda obs: np.clip((obs - mean) / scale, -clip, clip).astype(np.float32)


def mismatch(stats: Any, shape: tuple[int, ...] | None) -> str | None:
    """What of saved statistics `stats` (`stats_json`, parsed) cannot normalise observations of
    `shape`: a missing or malformed value, statistics of another shape, a negative variance.

    :return: that, in words, or None when they can (or do not normalise observations).
    """
    if not isinstance(stats, dict) or not isinstance(stats.get("norm_obs"), bool):
        return f"`{ENTRY}` says not whether it normalises observations (`norm_obs`)"
    if not stats["norm_obs"]:
        return None
    try:
        mean, var = np.asarray(stats["obs_mean"], float), np.asarray(stats["obs_var"], float)
        epsilon, clip = float(stats["epsilon"]), float(stats["clip_obs"])
    except (KeyError, TypeError, ValueError) as err:
        return f"`{ENTRY}` has no readable statistics ({type(err).__name__}: {err})"
    if mean.shape != shape or var.shape != shape:
        return f"`{ENTRY}` holds statistics of shape {mean.shape}, the observations have {shape}"
    finite = np.isfinite(mean).all() and np.isfinite(var).all() and np.isfinite(clip)
    if not finite or (var < 0).any() or not epsilon > 0 or not clip > 0:
        return f"`{ENTRY}` holds a value out of range (not finite, or a variance below 0)"
    return None
