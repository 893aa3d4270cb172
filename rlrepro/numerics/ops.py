"""The portable op set: every ATen op allowed on a training or evaluation path, with why its bits
are the same on every machine, and the check that a run uses no other.

`PORTABLE` maps an op's name (`aten::addmm`, every overload) to one of `REASONS`. The op set is
what tiny trainings of every algorithm family (SB3's PPO, A2C, SAC, TD3, DDPG, DQN, our
REINFORCE) and every activation of params' `ACTIVATIONS` dispatch, logged with
`TorchDispatchMode` (tests/test_opset.py fails on any other), plus the product ops that a linear
layer, `matmul` or attention reach. Before training, the train stage runs one update of the
experiment's own network under `OpNames` and refuses an op outside the set unless the experiment
lists it in `allow_nonportable_ops` (`rlrepro.training.check_ops`).

Not listed: attention's fused kernels (`_native_multi_head_attention`, the fast path of an
`nn.MultiheadAttention` in eval mode without gradients, and `scaled_dot_product_attention`), whose
products and softmax are their own; and, though SB3 can reach it, `log1p` (SAC with gSDE,
`use_sde`, inverts its tanh with it), whose float32 values past ATen's last full vector come
from the C library's `log1pf`, which glibc 2.41 changed.
"""

from collections.abc import Callable
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

REASONS: dict[str, str] = {
    "ours": "rlrepro's own kernel (rlrepro.numerics.portable): bits fixed by its definition",
    "exact": "each element one or a few correctly rounded IEEE operations (+, -, *, /, compare, "
    "min, max, abs): one result on every CPU",
    "data": "no floating-point arithmetic: a copy, view, fill, cast, gather, concatenation, or "
    "integer or boolean values",
    "pinned": "ATen's own kernel (a reduction or a SLEEF function): one summation order and one "
    "code path on every x86-64 CPU, pinned to AVX2 by ATEN_CPU_CAPABILITY",
    "random": "ATen's CPU generator (mt19937) and its transforms, pinned to AVX2 like the above",
    "lapack": "MKL's LAPACK under MKL_CBWR=COMPATIBLE (orthogonal initialisation's QR)",
    "none": "no tensor values: the profiler's markers",
    "composite": "made of the ops above as torch decomposes it (under inference_mode a mode sees "
    "it whole): linear and matmul into the products, einsum into products and sums",
}

_OURS = (
    *("mm", "addmm", "bmm", "mv", "addmv", "dot", "vdot", "baddbmm", "addbmm"),
    *("sqrt", "exp", "log", "tanh", "sigmoid", "softplus", "softplus_backward"),
    *("elu", "elu_backward"),
)
_EXACT = (
    *("abs", "add", "add_", "clamp", "div", "minimum", "mul", "mul_"),
    *("neg", "reciprocal", "relu", "remainder", "rsub", "sign", "sub", "sub_", "where"),
    *("threshold_backward", "tanh_backward", "sigmoid_backward", "masked_fill_"),
    *("leaky_relu", "leaky_relu_backward", "eq", "ge", "gt", "le", "lt", "max", "min"),
    *("argmax", "_foreach_add_", "_foreach_mul_", "hardtanh", "hardtanh_backward"),
)
_DATA = (
    *("_is_all_true", "_local_scalar_dense", "_to_copy", "all", "bitwise_and", "cat", "clone"),
    *("copy_", "detach", "diagonal_copy", "empty", "expand", "fill_", "gather", "lift_fresh"),
    *("logical_and_", "new_empty", "new_zeros", "ones", "ones_like", "permute", "scalar_tensor"),
    *("scatter", "set_", "slice", "squeeze", "stack", "t", "t_", "unsqueeze", "view", "zeros"),
    *("zeros_like", "select", "transpose", "reshape", "_unsafe_view", "alias", "split"),
)
_PINNED = (
    *("_foreach_norm", "_fused_adam_", "_fused_adamw_", "_softmax", "_softmax_backward_data"),
    *("addcdiv_", "addcmul_"),
    *("linalg_vector_norm", "logsumexp", "mean", "mse_loss", "mse_loss_backward", "pow"),
    *("scatter_add", "smooth_l1_loss", "smooth_l1_loss_backward", "std", "sum"),
)
_RANDOM = ("multinomial", "normal_", "randn", "uniform_")

PORTABLE: dict[str, str] = {
    **{f"aten::{op}": "ours" for op in _OURS},
    **{f"aten::{op}": "exact" for op in _EXACT},
    **{f"aten::{op}": "data" for op in _DATA},
    **{f"aten::{op}": "pinned" for op in _PINNED},
    **{f"aten::{op}": "random" for op in _RANDOM},
    "aten::linalg_qr": "lapack",
    **{f"aten::{op}": "composite" for op in ("linear", "matmul", "einsum")},
    "profiler::_record_function_enter_new": "none",
    "profiler::_record_function_exit": "none",
}


class OpNames(TorchDispatchMode):
    """Records the name (`aten::addmm`) of every op dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.seen.add(func._schema.name)
        return func(*args, **(kwargs or {}))


def used(run: Callable[[], object]) -> set[str]:
    """The names of the ops that `run()` dispatches."""
    names = OpNames()
    with names:
        run()
    return names.seen


def unlisted(names: set[str], accepted: tuple[str, ...] = ()) -> list[str]:
    """The ops of `names` neither in `PORTABLE` nor in `accepted`, sorted."""
    return sorted(name for name in names if name not in PORTABLE and name not in accepted)
