"""Anchor: a plain SB3 script training an experiment of params.yaml, nothing else.

    python -m benchmarks.sb3_train EXP SEED [PARAMS]

The same env, algorithm, network, normalization, hyperparameters, seed and budget as stage
`train`, without the pipeline: no numerics pins, no recording, no checkpoint canonicalisation, no
trace.
"""

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import stable_baselines3
import torch
import yaml
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecNormalize


def _plain(key: str, value: Any, env: VecEnv) -> Any:
    """A hyperparameter as a script passes it: a linear schedule as SB3's `LinearSchedule`, the
    action noise `{normal: sigma}` as a `NormalActionNoise`, anything else as it is."""
    if isinstance(value, dict) and value.get("schedule") == "linear":
        return LinearSchedule(value["start"], value["end"], 1.0)
    if key == "action_noise" and isinstance(value, dict):
        shape = env.action_space.shape or (1,)
        return NormalActionNoise(np.zeros(shape), value["normal"] * np.ones(shape))
    return value


def main(argv: list[str] | None = None) -> int:
    """Train experiment `argv[0]` with seed `argv[1]` as a plain SB3 script would."""
    args = argv or sys.argv[1:]
    name, seed = args[0], int(args[1])
    params_file = Path(args[2]) if len(args) > 2 else Path("params.yaml")
    exp = yaml.safe_load(params_file.read_text())["experiments"][name]
    torch.set_num_threads(1)
    env = make_vec_env(exp["env"], n_envs=exp.get("n_envs", 1), seed=seed)
    if exp.get("normalize"):
        scaling = exp["normalize"]
        env = VecNormalize(
            env,
            norm_obs=scaling["obs"],
            norm_reward=scaling["reward"],
            clip_obs=scaling["clip_obs"],
            gamma=exp["hyperparams"].get("gamma", 0.99),
        )
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[exp["policy"]["activation"]]
    model = getattr(stable_baselines3, exp["algo"].upper())(
        "MlpPolicy",
        env,
        seed=seed,
        device="cpu",
        policy_kwargs={"net_arch": exp["policy"]["hidden"], "activation_fn": activation},
        **{key: _plain(key, value, env) for key, value in exp["hyperparams"].items()},
    )
    model.learn(total_timesteps=exp["budget"]["steps"])
    model.save(io.BytesIO())  # as a script would save it, without touching the disk
    return 0


if __name__ == "__main__":
    sys.exit(main())
