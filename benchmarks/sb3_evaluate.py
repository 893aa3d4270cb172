"""Anchor: SB3's own `evaluate_policy` on a checkpoint, as a plain SB3 user would run it.

    python -m benchmarks.sb3_evaluate MODEL EPISODES

Loads the checkpoint with `PPO.load` (or the algorithm it names), wraps a fresh env with the saved
VecNormalize statistics applied (frozen), and evaluates the deterministic policy for EPISODES
episodes. Prints the mean and std of the returns.
"""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import stable_baselines3
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize


def main(argv: list[str] | None = None) -> int:
    """Evaluate the checkpoint `argv[0]` for `argv[1]` episodes with SB3's `evaluate_policy`."""
    model_path, episodes = (argv or sys.argv[1:])[:2]
    import zipfile

    with zipfile.ZipFile(model_path) as archive:
        meta = json.loads(archive.read("rlrepro.json"))
        stats = (
            json.loads(archive.read("vecnormalize.json"))
            if "vecnormalize.json" in archive.namelist()
            else None
        )
    model = getattr(stable_baselines3, meta["algo"].upper()).load(Path(model_path), device="cpu")
    env: VecEnv = DummyVecEnv([lambda: gym.make(meta["env"])])
    if stats is not None:
        normalized = VecNormalize(
            env, training=False, norm_reward=False, clip_obs=stats["clip_obs"]
        )
        rms = normalized.obs_rms
        assert isinstance(rms, RunningMeanStd)
        rms.mean, rms.var = np.array(stats["obs_mean"]), np.array(stats["obs_var"])
        env = normalized
    env.seed(1000)
    mean, std = evaluate_policy(model, env, n_eval_episodes=int(episodes), deterministic=True)
    print(f"evaluate_policy: {mean:.2f} +- {std:.2f} over {episodes} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
