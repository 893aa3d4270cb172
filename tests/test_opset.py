"""The portable op set (rlrepro.numerics.ops): tiny trainings of every algorithm family and
activation dispatch only listed ops; an op outside the list fails the check, and the train stage
refuses an experiment whose network uses one unless the experiment allows it."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
from rlrepro import numerics, training
from rlrepro.core import params
from rlrepro.core.errors import ParamsError
from rlrepro.numerics import ops
from stages import train
from tests.conftest import ROOT, tiny_params, train_paths
from tools import op_audit

RUNS: dict[str, Callable[[], object]] = {
    **dict(op_audit._sb3_runs()),
    "reinforce": op_audit._reinforce_run,
}


@pytest.fixture(autouse=True)
def _configured() -> None:
    numerics.configure_torch(1)


def test_every_listed_op_has_a_known_reason() -> None:
    """Each entry names one of `REASONS`; the products and the replaced math functions are
    ours."""
    assert set(ops.PORTABLE.values()) <= set(ops.REASONS)
    for op in ("mm", "addmm", "bmm", "mv", "addmv", "dot", "vdot", "baddbmm", "tanh", "exp"):
        assert ops.PORTABLE[f"aten::{op}"] == "ours", op


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_tiny_training_and_evaluation_uses_only_portable_ops(run: str) -> None:
    """SB3's PPO (with and without VecNormalize), A2C, DQN, SAC, TD3, DDPG and our REINFORCE,
    trained for a few hundred steps and then acting, dispatch no op outside the list."""
    torch.manual_seed(0)
    assert ops.unlisted(ops.used(RUNS[run])) == []


@pytest.mark.parametrize("activation", sorted(params.ACTIVATIONS))
def test_every_activation_uses_only_portable_ops(activation: str) -> None:
    """Each activation of params, forward and backward, in the check's REINFORCE update."""
    exp = params.experiment(_with_activation(activation), "pendulum-reinforce")
    assert ops.unlisted(ops.used(lambda: training.reinforce.probe(exp, "x"))) == []


def _conv_step() -> None:
    """One training step of a network with a 1-d convolution before its linear head."""
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    net(torch.ones(5, 1, 6)).sum().backward()


def _mv_step() -> None:
    """A value head computed as a matrix-vector product."""
    weight = torch.ones(3, 4, requires_grad=True)
    torch.mv(weight, torch.ones(4)).sum().backward()


def test_an_unlisted_op_fails_the_check() -> None:
    """A convolution is outside the list (ATen's convolution kernels give other bits on other
    CPUs), and so is `mv` once taken off it: the check names them."""
    assert "aten::convolution" in ops.unlisted(ops.used(_conv_step))
    assert ops.unlisted(ops.used(_mv_step)) == []
    without_mv = {k: v for k, v in ops.PORTABLE.items() if k != "aten::mv"}
    names = ops.used(_mv_step)
    assert sorted(n for n in names if n not in without_mv) == ["aten::mv"]


def _with_activation(activation: str, allowed: list[str] | None = None) -> dict[str, object]:
    raw = tiny_params()
    experiment = raw["experiments"]["pendulum-reinforce"]
    experiment["policy"]["activation"] = activation
    if allowed is not None:
        experiment["allow_nonportable_ops"] = allowed
    return raw


def test_the_train_stage_refuses_a_network_with_an_unlisted_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activation with no portable kernel (GELU: ATen computes erf with SLEEF or the C
    library) is refused before training, in one line naming the op and the key; listed under
    `allow_nonportable_ops`, the experiment trains."""
    monkeypatch.setitem(params.ACTIVATIONS, "gelu", "GELU")
    paths = train_paths(tmp_path, "pendulum-reinforce")
    raw = _with_activation("gelu")
    with pytest.raises(ParamsError) as refused:
        train.train(train.job(raw, "pendulum-reinforce", 0), paths)
    assert str(refused.value) == (
        "experiment pendulum-reinforce uses aten::gelu, which has no portable kernel: its bytes "
        "would differ between machines; list it under "
        "experiments.pendulum-reinforce.allow_nonportable_ops to accept that"
    )
    assert not paths.model.exists()
    accepted = _with_activation("gelu", ["aten::gelu", "aten::gelu_backward"])
    train.train(train.job(accepted, "pendulum-reinforce", 0), paths)
    assert paths.model.exists()


def test_the_probe_is_cheap() -> None:
    """Once SB3 and the envs are loaded, the check of each default experiment takes well under
    a second (measured: 0.01 to 0.4 s)."""
    raw = params.read(ROOT / "params.yaml")
    for name in raw["experiments"]:
        exp = params.experiment(raw, name)
        training.check_ops(exp, name)  # loads what the training would load anyway
        start = time.perf_counter()
        training.check_ops(exp, name)
        assert time.perf_counter() - start < 2.0, name


@pytest.mark.parametrize("exp", ["cartpole-ppo", "pendulum-reinforce"])
def test_the_check_changes_no_byte_of_the_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exp: str
) -> None:
    """A training checked first writes the bytes of one never checked: the check's update runs
    before the seeding and leaves nothing behind (seed 1: the check's models take seed 0)."""
    raw = tiny_params()
    checked = train_paths(tmp_path / "checked", exp, seed=1)
    train.train(train.job(raw, exp, 1), checked)
    monkeypatch.setattr(training, "check_ops", lambda *_: None)
    unchecked = train_paths(tmp_path / "unchecked", exp, seed=1)
    train.train(train.job(raw, exp, 1), unchecked)
    for field in ("model", "curve", "trace", "progress"):
        assert getattr(checked, field).read_bytes() == getattr(unchecked, field).read_bytes()


def test_sac_with_gsde_needs_log1p_allowed() -> None:
    """SB3's SAC with gSDE inverts its tanh with log1p, which has no portable kernel yet: the
    check names it, and it alone."""
    raw = tiny_params()
    raw["experiments"] = {
        "sac-gsde": {
            "env": "InvertedPendulum-v5",
            "algo": "sac",
            "budget": {"steps": 300},
            "policy": {"hidden": [8], "activation": "relu"},
            "hyperparams": {"use_sde": True},
        }
    }
    exp = params.experiment(raw, "sac-gsde")
    assert ops.unlisted(ops.used(lambda: training.sb3.probe(exp, "sac-gsde"))) == ["aten::log1p"]


def test_inference_mode_composites_are_listed_and_fused_attention_is_not() -> None:
    """Under inference_mode a mode sees linear and matmul whole (listed: they decompose into
    our products); an attention's fused fast path has products of its own (refused)."""
    x, w = torch.ones(5, 17), torch.ones(4, 17)
    attention = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()
    q = torch.ones(2, 5, 16)
    with torch.inference_mode():
        names = ops.used(lambda: (torch.nn.functional.linear(x, w), x @ w.t(), x[0] @ x[1]))
        assert {"aten::linear", "aten::matmul"} <= names and ops.unlisted(names) == []
        fused = ops.used(lambda: attention(q, q, q, need_weights=False))
        assert ops.unlisted(fused) == ["aten::_native_multi_head_attention"]
