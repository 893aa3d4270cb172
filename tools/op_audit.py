"""Which torch and numpy ops give machine-dependent bits: record real inputs, rerun them, compare.

    python -m tools.op_audit record OUT.pt            # tiny train + evaluate of every algorithm
    python -m tools.op_audit check OUT.pt RESULT.json [--portable]
    python -m tools.op_audit elementwise RESULT.json [--portable]
    python -m tools.op_audit train RESULT.json [--portable]
    python -m tools.op_audit compare A.json B.json
    python -m tools.op_audit libc OUT.pt FOLDER [--suite trixie] [--portable]

`record` trains and evaluates PPO, A2C, DQN (CartPole-v1), PPO with two envs and `VecNormalize`,
SAC, TD3, DDPG and REINFORCE (InvertedPendulum-v5) for a few hundred steps (the runs that
tests/test_opset.py checks against the portable op set, `rlrepro.numerics.ops`, and lists the ops
outside it) under a `TorchDispatchMode` that keeps, for every distinct aten overload, a few of its
real calls (inputs cloned before the call, at most `MAX_SAMPLE_NUMEL` elements). `check` reruns
each kept call and writes the sha256 of its outputs (and of its tensor arguments after the call,
for in-place and out= forms); `elementwise` does the same for a fixed set of elementwise, reduction
and numpy ops on 65,536 inputs over a wide range; `train` digests the final parameters of tiny PPO,
TD3, SAC and REINFORCE trainings. Run `check`, `elementwise` and `train` natively and under
`qemu-x86_64 -cpu MODEL`, then `compare` the JSON files. `--portable` first calls
`rlrepro.numerics.portable.install()`.

`libc` is the C library's axis in one command: it runs `check`, `elementwise` and `train`
natively and under a Debian suite's glibc (`tools.machines.glibc`: its `libc6` in FOLDER, this
interpreter started through that library's own loader), writes both results to FOLDER and lists
the entries that differ.
"""

import argparse
import copy
import hashlib
import io
import json
import os
import pickle
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
from rlrepro.numerics import ops

# isort: split
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from rlrepro import console

MAX_SAMPLE_NUMEL = 50_000
# The call numbers (1-based) of each overload whose inputs are kept.
KEPT_CALLS = frozenset({1, 2, 10, 100, 1000})
# Overloads whose outputs are uninitialised memory or that only reshape metadata.
_SKIPPED = ("empty", "set_", "resize_", "_local_scalar_dense", "lift_fresh")
_GENERATOR = "<generator>"
ELEMENTWISE_SIZE = 65_536


def _digest_tensor(digest: "hashlib._Hash", tensor: torch.Tensor) -> None:
    array = np.ascontiguousarray(tensor.detach().resolve_conj().resolve_neg().numpy())
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(array.tobytes())


def digest_of(*values: Any) -> str:
    """The sha256 (hex) of every tensor and array in `values` (pytrees), with dtypes and shapes;
    numbers, strings, dtypes and devices enter through their `repr`, other leaves by type name."""
    digest = hashlib.sha256()
    leaves, _ = tree_flatten(values)
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            _digest_tensor(digest, leaf)
        elif isinstance(leaf, np.ndarray | np.generic):
            array = np.ascontiguousarray(leaf)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        elif isinstance(leaf, int | float | bool | str | torch.dtype | torch.device | None):
            digest.update(repr(leaf).encode())
        else:  # e.g. a generator, whose repr holds an address
            digest.update(type(leaf).__name__.encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------- record


class OpRecorder(TorchDispatchMode):
    """Counts the calls of every aten overload and keeps clones of the inputs of calls number
    `KEPT_CALLS` (when they hold at most `MAX_SAMPLE_NUMEL` elements), with their outputs' digest.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}
        self.samples: dict[str, list[dict[str, Any]]] = {}

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = str(func)
        count = self.calls[name] = self.calls.get(name, 0) + 1
        keep = (
            name.startswith("aten.")
            and count in KEPT_CALLS
            and not any(s in name for s in _SKIPPED)
        )
        if keep:
            leaves, _ = tree_flatten((args, kwargs))
            numel = sum(x.numel() for x in leaves if isinstance(x, torch.Tensor))
            keep = numel <= MAX_SAMPLE_NUMEL
        saved = tree_map(_clone_arg, (args, kwargs)) if keep else None
        out = func(*args, **kwargs)
        if saved is not None and _picklable(saved):
            self.samples.setdefault(name, []).append(
                {"args": saved[0], "kwargs": saved[1], "digest": digest_of(out, args, kwargs)}
            )
        return out


def _picklable(value: Any) -> bool:
    try:
        torch.save(value, io.BytesIO())
    except (TypeError, RuntimeError, pickle.PicklingError) as error:
        print(f"not kept: {error}", file=sys.stderr)
        return False
    return True


def _clone_arg(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, torch.Generator):
        return _GENERATOR
    return value


def _sb3_runs() -> Iterator[tuple[str, Callable[[], None]]]:
    """(name, run) for each SB3 configuration: a tiny training, then a few deterministic and
    stochastic predictions."""
    from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import VecNormalize

    from rlrepro import numerics
    from rlrepro.training import sb3

    net = {"net_arch": [8, 8]}
    off_policy: dict[str, Any] = {"learning_starts": 50, "batch_size": 16, "policy_kwargs": net}

    def run(
        algo: Any, env_id: str, steps: int, n_envs: int = 1, normalize: bool = False, **kwargs: Any
    ) -> Callable[[], None]:
        def go() -> None:
            env = make_vec_env(env_id, n_envs=n_envs, seed=0)
            if normalize:
                env = VecNormalize(env, norm_obs=True, norm_reward=True)
            # SB3 adds keys to policy_kwargs: each run gets its own copy.
            model = algo("MlpPolicy", env, seed=0, device="cpu", **copy.deepcopy(kwargs))
            for optimizer in sb3._optimizers(model):  # Adam's fused step, as the stages run it
                numerics.fuse(optimizer)
            model.learn(steps)
            obs = env.reset()
            for deterministic in (True, True, False, False):
                action, _ = model.predict(obs, deterministic=deterministic)
                obs, _, _, _ = env.step(action)
            env.close()

        return go

    yield (
        "ppo",
        run(PPO, "CartPole-v1", 128, n_steps=64, batch_size=32, n_epochs=2, policy_kwargs=net),
    )
    yield "a2c", run(A2C, "CartPole-v1", 64, n_steps=8, policy_kwargs=net)
    yield "dqn", run(DQN, "CartPole-v1", 128, train_freq=4, buffer_size=1000, **off_policy)
    yield (
        "ppo-vecnormalize",
        run(
            PPO,
            "InvertedPendulum-v5",
            128,
            n_envs=2,
            normalize=True,
            n_steps=32,
            batch_size=32,
            n_epochs=2,
            policy_kwargs=net,
        ),
    )
    yield "sac", run(SAC, "InvertedPendulum-v5", 100, buffer_size=1000, **off_policy)
    noise = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    yield (
        "td3",
        run(TD3, "InvertedPendulum-v5", 100, action_noise=noise, buffer_size=1000, **off_policy),
    )
    yield "ddpg", run(DDPG, "InvertedPendulum-v5", 100, buffer_size=1000, **off_policy)


def _reinforce_run(episodes: int = 3, hidden: tuple[int, ...] = (8, 8)) -> dict[str, torch.Tensor]:
    """Train REINFORCE on InvertedPendulum-v5 for `episodes`, then act with the mean actor.

    :return: the final parameters.
    """
    import gymnasium as gym

    from rlrepro.agents.networks import GAUSSIAN_ENTRY, load_gaussian, mean_actor
    from rlrepro.core.params import Experiment, Policy
    from rlrepro.training import reinforce
    from rlrepro.training.recording import Recording

    exp = Experiment(
        env="InvertedPendulum-v5",
        algo="reinforce",
        budget={"episodes": episodes},
        policy=Policy(hidden=hidden, activation="tanh"),
        hyperparams={"learning_rate": 1e-3, "weight_decay": 0.01, "gamma": 0.99, "std_eps": 1e-6},
    )
    description, entries = reinforce.train(
        exp, "audit", 0, Recording(exp.env, None, 1), lambda _: None
    )
    weights = torch.load(io.BytesIO(entries[GAUSSIAN_ENTRY]), weights_only=True)
    policy = load_gaussian(weights, description)
    env = gym.make(exp.env)
    act = mean_actor(policy, env)
    obs, _ = env.reset(seed=1)
    for _ in range(5):
        obs, *_ = env.step(act(obs))
    env.close()
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def _configure(portable: bool) -> None:
    """Torch as the pipeline runs it (one thread, deterministic algorithms); `portable` installs
    the portable kernels too."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if portable:
        from rlrepro.numerics import portable as portable_kernels

        portable_kernels.install()


def record(out: Path, portable: bool) -> dict[str, int]:
    """Run every algorithm under an `OpRecorder`; save the kept calls to `out` (torch.save).

    :return: the number of calls of each overload.
    """
    _configure(portable)
    recorder = OpRecorder()
    runs: list[tuple[str, Callable[[], object]]] = [*_sb3_runs(), ("reinforce", _reinforce_run)]
    by_run: dict[str, list[str]] = {}
    for name, go in runs:
        torch.manual_seed(0)
        np.random.seed(0)
        before = set(recorder.calls)
        with recorder:
            go()
        by_run[name] = sorted(set(recorder.calls) - before)
        print(f"{name}: {len(recorder.calls)} overloads so far", file=sys.stderr)
    torch.save({"calls": recorder.calls, "samples": recorder.samples, "new_by_run": by_run}, out)
    names = {str(name).replace(".", "::", 1).rsplit(".", 1)[0] for name in recorder.calls}
    for name in ops.unlisted(names):
        print(f"not in the portable op set: {name}", file=sys.stderr)
    return recorder.calls


def _state_digest(state: dict[str, torch.Tensor]) -> str:
    return digest_of([(key, state[key]) for key in sorted(state)])


def train_digests(result: Path, portable: bool) -> dict[str, str]:
    """Train tiny PPO (CartPole-v1, 2,048 steps), TD3 and SAC (InvertedPendulum-v5, 500 steps,
    learning starts 100, batch 32) and REINFORCE (InvertedPendulum-v5, 20 episodes), all with
    hidden layers [16, 16]; write the sha256 of each one's final parameters to `result`."""
    from stable_baselines3 import PPO, SAC, TD3
    from stable_baselines3.common.env_util import make_vec_env

    _configure(portable)
    net = {"net_arch": [16, 16]}
    off_policy = {"learning_starts": 100, "batch_size": 32, "buffer_size": 1000}
    runs: dict[str, tuple[Any, str, int, dict[str, Any]]] = {
        "ppo": (PPO, "CartPole-v1", 2048, {"n_steps": 256, "batch_size": 64, "n_epochs": 4}),
        "td3": (TD3, "InvertedPendulum-v5", 500, off_policy),
        "sac": (SAC, "InvertedPendulum-v5", 500, off_policy),
    }
    digests: dict[str, str] = {}
    for name, (algo, env_id, steps, kwargs) in runs.items():
        torch.manual_seed(0)
        env = make_vec_env(env_id, n_envs=1, seed=0)
        model = algo("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net), **kwargs)
        model.learn(steps)
        digests[name] = _state_digest(model.policy.state_dict())
        print(f"{name}: {digests[name][:16]}", file=sys.stderr)
    torch.manual_seed(0)
    digests["reinforce"] = _state_digest(_reinforce_run(episodes=20, hidden=(16, 16)))
    print(f"reinforce: {digests['reinforce'][:16]}", file=sys.stderr)
    _write(result, digests)
    return digests


# ------------------------------------------------------------------------------------ check


def _resolve(name: str) -> Any:
    """`aten.sqrt.out` -> `torch.ops.aten.sqrt.out`."""
    namespace, op, overload = name.split(".")
    return getattr(getattr(getattr(torch.ops, namespace), op), overload)


def _fresh(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, str) and value == _GENERATOR:
        return torch.Generator().manual_seed(0)
    return value


def check(recorded: Path, result: Path, portable: bool) -> dict[str, str]:
    """Rerun every kept call in `recorded` (from `record`); write {overload: sha256} to `result`.

    Each call runs on fresh clones of its inputs after `torch.manual_seed(0)` (random ops draw
    from a generator seeded with 0), so one machine always gives one digest per overload.
    """
    _configure(portable)
    data = torch.load(recorded, weights_only=False)
    digests: dict[str, str] = {}
    for name in sorted(data["samples"]):
        func = _resolve(name)
        digest = hashlib.sha256()
        for sample in data["samples"][name]:
            args, kwargs = tree_map(_fresh, (sample["args"], sample["kwargs"]))
            torch.manual_seed(0)
            try:
                out = func(*args, **kwargs)
            except Exception as error:  # reported in the digest, not raised
                digest.update(f"error {type(error).__name__}".encode())
                continue
            digest.update(digest_of(out, args, kwargs).encode())
        digests[name] = digest.hexdigest()
    _write(result, digests)
    return digests


# ------------------------------------------------------------------------------ elementwise


def elementwise_inputs(dtype: torch.dtype, size: int = ELEMENTWISE_SIZE) -> torch.Tensor:
    """`size` fixed values of `dtype`: a quarter each uniform in [-10, 10], of magnitude
    2**U{-126..126} with either sign, uniform in [-1, 1] and in [0, 100]; the first few are
    0, -0, +-inf, nan, +-denormal, +-1 and the extremes of `dtype`. Made with exact arithmetic
    only, so that every machine makes the same bits."""
    rng = np.random.default_rng(12345)
    quarter = size // 4
    values = np.concatenate(
        [
            rng.uniform(-10, 10, quarter),
            # sign * (1 + mantissa) * 2**exponent: exact arithmetic only (10.0**u is not portable)
            np.ldexp(
                rng.choice([-1.0, 1.0], quarter) * (1.0 + rng.random(quarter)),
                rng.integers(-126, 127, quarter),
            ),
            rng.uniform(-1, 1, quarter),
            rng.uniform(0, 100, size - 3 * quarter),
        ]
    )
    info = np.finfo(np.float32 if dtype == torch.float32 else np.float64)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 1.0, -1.0, info.max, info.tiny]
    values[: len(special)] = special
    return torch.from_numpy(values).to(dtype)


def _unary_torch_ops() -> dict[str, Callable[[torch.Tensor], Any]]:
    f = torch.nn.functional
    names = [
        *("sqrt", "rsqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh"),
        *("sinh", "cosh", "sin", "cos", "tan", "asin", "acos", "atan", "asinh", "acosh"),
        *("atanh", "erf", "erfc", "erfinv", "sigmoid", "reciprocal", "lgamma", "digamma"),
    ]
    ops: dict[str, Callable[[torch.Tensor], Any]] = {n: getattr(torch, n) for n in names}
    ops |= {
        "softplus": f.softplus,
        "elu": f.elu,
        "gelu": f.gelu,
        "silu": f.silu,
        "logsigmoid": f.logsigmoid,
        "mish": f.mish,
        "pow_0.5": lambda x: x**0.5,
        "pow_2": lambda x: x**2,
        "pow_1.5": lambda x: x.abs() ** 1.5,
        "pow_tensor": lambda x: x.abs() ** x.flip(0),
        "atan2": lambda x: torch.atan2(x, x.flip(0)),
        "div": lambda x: x / x.flip(0),
        "tanh_backward": lambda x: torch.ops.aten.tanh_backward(x.flip(0), torch.tanh(x)),
        "sigmoid_backward": lambda x: torch.ops.aten.sigmoid_backward(x.flip(0), torch.sigmoid(x)),
        "softplus_backward": lambda x: torch.ops.aten.softplus_backward(x.flip(0), x, 1.0, 20.0),
        "addcdiv": lambda x: torch.addcdiv(x, x.flip(0), x.abs().sqrt() + 1e-8, value=-1e-3),
        "foreach_sqrt": lambda x: torch._foreach_sqrt([x, x.flip(0)]),
        "clamp": lambda x: x.clamp(-1.5, 2.5),
    }
    return ops


def _reduction_torch_ops() -> dict[str, Callable[[torch.Tensor], Any]]:
    def rows(x: torch.Tensor) -> torch.Tensor:
        return x.nan_to_num(0.0, 0.0, 0.0).clamp(-1e3, 1e3).reshape(-1, 64)

    return {
        "log_softmax": lambda x: torch.log_softmax(rows(x), -1),
        "softmax": lambda x: torch.softmax(rows(x), -1),
        "logsumexp": lambda x: torch.logsumexp(rows(x), -1),
        "sum": lambda x: (rows(x).sum(-1), rows(x).sum()),
        "mean": lambda x: (rows(x).mean(-1), rows(x).mean(0)),
        "var": lambda x: (rows(x).var(-1), rows(x).var()),
        "std": lambda x: rows(x).std(0),
        "norm": lambda x: torch.linalg.vector_norm(rows(x), dim=-1),
        "cumsum": lambda x: rows(x).cumsum(-1),
        "addmm": lambda x: torch.addmm(rows(x)[0], rows(x)[:256], rows(x)[256:320]),
        "mm_t": lambda x: rows(x)[:256] @ rows(x)[256:320].T.contiguous().T,
        # SB3's orthogonal initialisation (QR through MKL's LAPACK), on 64-wide layers
        "linalg_qr": lambda x: (torch.linalg.qr(rows(x)[:64]), torch.linalg.qr(rows(x)[:64, :3])),
        "orthogonal_init": lambda _: torch.nn.init.orthogonal_(
            torch.empty(64, 64), generator=torch.Generator().manual_seed(0)
        ),
        "mm_64": lambda x: rows(x)[:64] @ rows(x)[64:128] @ rows(x)[128:192, :2],
        "mse_loss": lambda x: torch.nn.functional.mse_loss(rows(x)[0], rows(x)[1]),
        "normal_log_prob": lambda x: torch.distributions.Normal(
            rows(x)[:128], rows(x)[128:256].abs() + 0.1
        ).log_prob(rows(x)[256:384]),
    }


def _numpy_ops() -> dict[str, Callable[[np.ndarray], Any]]:
    def finite(x: np.ndarray) -> np.ndarray:
        return np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -1e3, 1e3)

    def rows(x: np.ndarray) -> np.ndarray:
        return finite(x).reshape(-1, 64 if x.size % 64 == 0 else x.size)

    ops: dict[str, Callable[[np.ndarray], Any]] = {
        n: getattr(np, n)
        for n in ("sqrt", "exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "arctan")
    }
    ops |= {
        "power_0.5": lambda x: np.power(np.abs(x), 0.5),
        "square": np.square,
        "divide": lambda x: x / x[::-1],
        "clip": lambda x: np.clip(x, -10.0, 10.0),
        "mean": lambda x: (finite(x).mean(), rows(x).mean(axis=0)),
        "var": lambda x: (finite(x).var(), rows(x).var(axis=0)),
        "std": lambda x: rows(x).std(axis=0),
        "sum": lambda x: (finite(x).sum(), rows(x).sum(axis=1)),
        "normalize_obs": lambda x: np.clip(
            (x - finite(x).mean()) / np.sqrt(finite(x).var() + 1e-8), -10.0, 10.0
        ),
    }
    return ops


def _running_mean_std() -> dict[str, str]:
    """SB3's `RunningMeanStd` over fixed batches and `VecNormalize.normalize_obs`, float64."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    rng = np.random.default_rng(7)
    rms = RunningMeanStd(shape=(11,))
    normalized = []
    scales = np.ldexp(1.0, rng.integers(-10, 10, 11))
    for _ in range(200):
        batch = (3.0 + 5.0 * rng.uniform(-1.0, 1.0, (2, 11))) * scales
        rms.update(batch)
        normalized.append(
            np.clip((batch - rms.mean) / np.sqrt(rms.var + 1e-8), -10.0, 10.0).astype(np.float32)
        )
    return {"sb3.RunningMeanStd": digest_of(rms.mean, rms.var, np.float64(rms.count), normalized)}


_WITH_REFERENCE = frozenset(
    [
        *("sqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "sinh"),
        *("cosh", "sin", "cos", "tan", "asin", "acos", "atan", "asinh", "acosh", "atanh"),
    ]
)


def _reference_f32(name: str, x: torch.Tensor) -> torch.Tensor | None:
    """float64 numpy's value rounded to float32, for the unary ops numpy has (near the correctly
    rounded one: double rounding is rare)."""
    np_name = {
        "asin": "arcsin",
        "acos": "arccos",
        "atan": "arctan",
        "asinh": "arcsinh",
        "acosh": "arccosh",
        "atanh": "arctanh",
    }.get(name, name)
    func = getattr(np, np_name, None)
    if name not in _WITH_REFERENCE or func is None:
        return None
    with np.errstate(all="ignore"):
        return torch.from_numpy(func(x.double().numpy()).astype(np.float32))


def elementwise(result: Path, portable: bool) -> dict[str, Any]:
    """Digest the fixed elementwise/reduction torch ops (float32 and float64; contiguous, strided,
    7 elements and 0-dim) and numpy ops on `elementwise_inputs`; write them to `result`.

    Entries of float32 torch ops also count the elements that differ from float64 numpy rounded
    to float32 (`off_reference`), a machine-independent measure of how far from correct they are.
    """
    _configure(portable)
    results: dict[str, Any] = {}
    for dtype in (torch.float32, torch.float64):
        x = elementwise_inputs(dtype)
        tag = str(dtype).removeprefix("torch.")
        results[f"inputs/{tag}"] = digest_of(x)
        for name, op in _unary_torch_ops().items():
            layouts = {"contiguous": x, "strided": x[::2], "small": x[16:23], "0-dim": x[20]}
            for layout, value in layouts.items():
                with np.errstate(all="ignore"):
                    results[f"torch.{name}/{tag}/{layout}"] = digest_of(op(value))
            reference = _reference_f32(name, x) if dtype == torch.float32 else None
            if reference is not None:
                out = op(x)
                same = (out.view(torch.int32) == reference.view(torch.int32)) | (
                    out.isnan() & reference.isnan()
                )
                results[f"off_reference:torch.{name}/{tag}"] = int((~same).sum())
        for name, op in _reduction_torch_ops().items():
            results[f"torch.{name}/{tag}"] = digest_of(op(x))
        xn = x.numpy()
        for name, np_op in _numpy_ops().items():
            with np.errstate(all="ignore"):
                results[f"numpy.{name}/{tag}"] = digest_of(
                    np_op(xn), np_op(xn[::2]), np_op(xn[16:23])
                )
    results |= _running_mean_std()
    _write(result, results)
    return results


# ---------------------------------------------------------------------------------- compare


def other_libc(recorded: Path, folder: Path, suite: str, portable: bool) -> list[str]:
    """`check`, `elementwise` and `train` natively and under Debian `suite`'s C library, results
    in `folder`; :return: the entries that differ."""
    from tools import machines

    machine = machines.glibc(folder / f"libc-{suite}", suite)
    root = str(Path(__file__).resolve().parents[1])
    differing = []
    for command, args in (("check", [str(recorded)]), ("elementwise", []), ("train", [])):
        results = []
        for tag, python, path in (
            ("native", (sys.executable,), root),
            (suite, machine.python, f"{root}:{machine.pythonpath}"),
        ):
            out = folder / f"{command}-{tag}.json"
            flags = ["--portable"] if portable else []
            run = [*python, "-m", "tools.op_audit", command, *args, str(out), *flags]
            subprocess.run(run, check=True, env={**os.environ, "PYTHONPATH": path})
            results.append(out)
        differing += [f"{command}: {key}" for key in compare(*results)]
    print(f"{machine.name} against {platform.libc_ver()[1]} (native)", file=sys.stderr)
    return differing


def compare(first: Path, second: Path) -> list[str]:
    """The keys whose values differ between two result files (or are in only one of them)."""
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); `compare` exits 1 when anything differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="tiny runs of every algorithm; keep op inputs")
    rec.add_argument("out", type=Path)
    chk = commands.add_parser("check", help="rerun recorded ops; write their digests")
    chk.add_argument("recorded", type=Path)
    chk.add_argument("result", type=Path)
    ele = commands.add_parser("elementwise", help="digest fixed ops on 65,536 wide-range inputs")
    ele.add_argument("result", type=Path)
    for sub in (rec, chk, ele):
        sub.add_argument("--portable", action="store_true", help="install the portable kernels")
    trn = commands.add_parser("train", help="digest the final parameters of tiny trainings")
    trn.add_argument("result", type=Path)
    trn.add_argument("--portable", action="store_true", help="install the portable kernels")
    libc = commands.add_parser("libc", help="check, elementwise, train under another glibc")
    libc.add_argument("recorded", type=Path)
    libc.add_argument("folder", type=Path)
    libc.add_argument("--suite", default="trixie", help="the Debian suite of the C library")
    libc.add_argument("--portable", action="store_true", help="install the portable kernels")
    cmp = commands.add_parser("compare", help="list the entries that differ")
    cmp.add_argument("first", type=Path)
    cmp.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    if args.command == "record":
        calls = record(args.out, args.portable)
        print(f"{len(calls)} overloads, {sum(calls.values())} calls -> {args.out}")
    elif args.command == "check":
        digests = check(args.recorded, args.result, args.portable)
        print(f"{len(digests)} overloads -> {args.result}")
    elif args.command == "elementwise":
        results = elementwise(args.result, args.portable)
        print(f"{len(results)} entries -> {args.result}")
    elif args.command == "train":
        train_digests(args.result, args.portable)
    elif args.command == "libc":
        args.folder.mkdir(parents=True, exist_ok=True)
        differing = other_libc(args.recorded, args.folder, args.suite, args.portable)
        for key in differing:
            print(key)
        print(f"{len(differing)} differ", file=sys.stderr)
        return 1 if differing else 0
    else:
        differing = compare(args.first, args.second)
        for key in differing:
            print(key)
        print(f"{len(differing)} differ", file=sys.stderr)
        return 1 if differing else 0
    return 0


if __name__ == "__main__":
    sys.exit(console.run(main))
