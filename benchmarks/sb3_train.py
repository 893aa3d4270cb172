"""Anchor: a plain SB3 script training an experiment of params.yaml, nothing else.

    python -m benchmarks.sb3_train EXP SEED [PARAMS]

The same env, algorithm, network, hyperparameters, seed and budget as stage `train`, without the
pipeline: no numerics pins, no recording, no checkpoint canonicalisation, no trace.
"""

import io
import sys
from pathlib import Path

import stable_baselines3
import torch
import yaml
from stable_baselines3.common.env_util import make_vec_env


def main(argv: list[str] | None = None) -> int:
    """Train experiment `argv[0]` with seed `argv[1]` as a plain SB3 script would."""
    args = argv or sys.argv[1:]
    name, seed = args[0], int(args[1])
    params_file = Path(args[2]) if len(args) > 2 else Path("params.yaml")
    exp = yaml.safe_load(params_file.read_text())["experiments"][name]
    torch.set_num_threads(1)
    env = make_vec_env(exp["env"], n_envs=exp.get("n_envs", 1), seed=seed)
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[exp["policy"]["activation"]]
    model = getattr(stable_baselines3, exp["algo"].upper())(
        "MlpPolicy",
        env,
        seed=seed,
        device="cpu",
        policy_kwargs={"net_arch": exp["policy"]["hidden"], "activation_fn": activation},
        **exp["hyperparams"],
    )
    model.learn(total_timesteps=exp["budget"]["steps"])
    model.save(io.BytesIO())  # as a script would save it, without touching the disk
    return 0


if __name__ == "__main__":
    sys.exit(main())
