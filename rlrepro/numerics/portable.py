"""CPU kernels whose bits depend on neither the CPU nor the C library, for the ops where ATen's
may depend on one of them.

ATen sends float32 and float64 `sqrt`, `exp`, `log` and `tanh` (and `pow(x, 0.5)`, which calls
the sqrt kernel directly) to MKL's vector math library (seen with gdb: vmsSqrt, vmsExp, vmsLn,
vmsTanh are what the training paths of every algorithm call), whose code is chosen by the CPU it
runs on and is not correctly rounded. Measured with `tools/op_audit.py`: sqrt gives other bits on
an AVX-512 AMD EPYC than on an emulated Haswell, Skylake or EPYC-Rome; exp, log and tanh gave the
same bits on those, but nothing holds them to it on other CPUs (AVX-512 Intel ones could not be
tried). And ATen computes the values its vector loops leave over (n % 8 or n % 16 of them, and
every value of a strided tensor) with the C library's float functions: softplus with `expf` and
`log1pf`, ELU with `expm1f` and `expf`, sigmoid with `expf`, exp2 with `exp2`. glibc 2.41 made
`log1pf` and `expm1f` correctly rounded, which changed every REINFORCE result
(`python -m tools.op_audit libc`). `install()` registers, for the CPU dispatch key, kernels that
call neither MKL nor the C library's math functions:

- sqrt: numpy's `np.sqrt` on the tensors' memory, i.e. the hardware's correctly rounded square
  root (IEEE 754 requires it), so float32 and float64 results are exact on every CPU;
- exp, log, tanh: computed in float64 from ATen's own SIMD kernels that do not go to MKL
  (`exp2`, `expm1`, `log1p`, `frexp`; pinned to AVX2 by `ATEN_CPU_CAPABILITY`), then rounded to
  the input's dtype. For float32 this is the correctly rounded result except in the rare case of
  a float64 value within ~1e-14 of a rounding midpoint; for float64 it is within a few ulps.
  exp2's inputs are padded to a multiple of 8 values, so that SLEEF computes every one;
- sigmoid, softplus and ELU (with the gradients of softplus and ELU): the same way, in float64
  from those pieces, rounded once.

The functions below define the results. Registered as Python kernels they cost 12 us per tanh
on 64 floats, against 1 us for MKL's. So `install()` compiles `portable.c` (the same values,
operation for operation, for contiguous tensors) and `portable_aten.cpp` (the registration, and
these functions as ATen calls for other layouts) once per source and torch version into the
environment's `lib/`, with the system's C and C++ compilers, and registers those, where ATen
runs its AVX2 kernels (whose SLEEF functions `portable.c` calls). Where it cannot (no compiler,
another CPU capability), it registers the functions below: the same bits, slower.

Other dtypes (integers, complex, half) go to ATen's own kernels unchanged. The autograd formulas
stay ATen's (registration is at the CPU key, below Autograd), and so do `out=` semantics
(resizing an empty or wrongly shaped `out`) and in-place forms. Ops not replaced here that also
go to MKL or the C library (log2, log10, sin, cos, tan, asin, acos, atan, erf, erfc, erfinv,
sinh, cosh, asinh, acosh, atanh, atan2, gelu, mish) are on none of the training or evaluation
paths of the pipeline's algorithms and activations.
"""

import ctypes
import hashlib
import math
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

_FLOATS = (torch.float32, torch.float64)
_LOG2E = 1.4426950408889634
# ln 2 split for Cody-Waite reduction: _LN2_HI has 32 significant bits, so k * _LN2_HI is exact
# for |k| < 2**21.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT_HALF = math.sqrt(0.5)
_EXP_OVERFLOW = 709.782712893384  # exp(x) is inf in float64 above this

_library: torch.library.Library | None = None
_native_library: ctypes.CDLL | None = None
_HERE = Path(__file__).parent
_SOURCES = (_HERE / "portable.c", _HERE / "matmul.c", _HERE / "portable_aten.cpp")
# No fused multiply-add (contraction would change bits), no fast math; AVX2 for SLEEF's types.
_CFLAGS = ("-O3", "-mavx2", "-mfma", "-ffp-contract=off", "-fno-math-errno")
_CXXFLAGS = ("-O2", "-std=c++17")


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root (numpy's, i.e. the sqrtps/sqrtpd instruction)."""
    out = torch.empty(x.shape, dtype=x.dtype)
    with np.errstate(invalid="ignore"):  # torch gives nan for negatives without a warning
        np.sqrt(x.detach().numpy(), out=out.numpy())
    return out


def _exp2(x: torch.Tensor) -> torch.Tensor:
    """ATen's exp2 with every value through its SLEEF kernel: ATen sends the last n % 8 values
    of a tensor to the C library's exp2, so the values are padded to a multiple of 8."""
    flat = x.reshape(-1)
    padded = torch.cat([flat, flat.new_zeros((-flat.numel()) % 8)])
    return torch.exp2(padded)[: flat.numel()].reshape(x.shape)


def _exp(x: torch.Tensor) -> torch.Tensor:
    """exp: float32 as exp2(x * log2 e) in float64; float64 reduced by Cody-Waite to
    2**k * (expm1(r) + 1) with |r| <= ln(2) / 2."""
    if x.dtype == torch.float32:
        return _exp2(x.double() * _LOG2E).float()
    k = torch.round(x * _LOG2E).clamp_(-1100.0, 1100.0)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    half = torch.floor(k * 0.5)
    # Two powers of two, each exact and finite, so that 2**k * m neither overflows nor
    # underflows early.
    y = (torch.expm1(r) + 1.0) * _exp2(half) * _exp2(k - half)
    return torch.where(x > _EXP_OVERFLOW, math.inf, y)


def _log(x: torch.Tensor) -> torch.Tensor:
    """log in float64: x = m * 2**e with m in [sqrt(1/2), sqrt(2)), log x = e ln 2 + log1p(m - 1)
    (m - 1 is exact there); then rounded to x's dtype."""
    xd = x.double()
    mantissa, exponent = torch.frexp(xd)
    small = mantissa < _SQRT_HALF
    mantissa = torch.where(small, mantissa * 2.0, mantissa)
    e = (exponent - small.to(exponent.dtype)).double()
    y = (e * _LN2_HI + torch.log1p(mantissa - 1.0)) + e * _LN2_LO
    y = torch.where(xd == math.inf, math.inf, y)
    return y.to(x.dtype)


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh in float64: with t = expm1(-2|x|), tanh|x| = -t / (t + 2), signed like x."""
    xd = x.double()
    t = torch.expm1(xd.abs() * -2.0)
    return torch.copysign(-t / (t + 2.0), xd).to(x.dtype)


def _softplus(x: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    """softplus in float64: with t = x * beta, x where t > threshold, else log1p(exp t) / beta
    (exp as `_exp`; ATen's own calls the C library's expf and log1pf for its loop tails)."""
    xd = x.double()
    t = xd * beta
    return torch.where(t > threshold, xd, torch.log1p(_exp(t)) / beta).to(x.dtype)


def _softplus_backward(
    grad: torch.Tensor, x: torch.Tensor, beta: float, threshold: float
) -> torch.Tensor:
    """softplus' gradient in float64: with t = x * beta and z = exp t, grad where t > threshold,
    else grad * z / (z + 1)."""
    t = x.double() * beta
    z = _exp(t)
    g = grad.double()
    return torch.where(t > threshold, g, g * z / (z + 1.0)).to(x.dtype)


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    """sigmoid in float64: 1 / (1 + exp(-x)), exp as `_exp` (ATen's calls the C library's expf
    for its loop tails)."""
    return (1.0 / (1.0 + _exp(-x.double()))).to(x.dtype)


def _elu(
    x: torch.Tensor, alpha: float = 1.0, scale: float = 1.0, input_scale: float = 1.0
) -> torch.Tensor:
    """ELU in float64: x < 0 ? expm1(x * input_scale) * (alpha * scale) : x * scale (ATen's
    calls the C library's expm1f for its loop tails, and expm1f changed in glibc 2.41)."""
    xd = x.double()
    negative = torch.expm1(xd * input_scale) * (alpha * scale)
    return torch.where(xd < 0.0, negative, xd * scale).to(x.dtype)


def _elu_backward(
    grad: torch.Tensor, alpha: float, scale: float, input_scale: float, x: torch.Tensor
) -> torch.Tensor:
    """ELU's gradient from its input x, in float64: x <= 0 ?
    grad * input_scale * (alpha * scale) * exp(x * input_scale) : grad * scale."""
    xd, g = x.double(), grad.double()
    negative = g * input_scale * (alpha * scale) * _exp(xd * input_scale)
    return torch.where(xd <= 0.0, negative, g * scale).to(x.dtype)


# Halfway between float32's largest value and 2**128: a sum from there on rounds to infinity.
_FLOAT32_OVERFLOW = float.fromhex("0x1.ffffffp+127")


def _fma32(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """float32 x * y + z rounded once (IEEE 754's fusedMultiplyAdd, as the FMA instruction and
    the C library's fmaf give it), elementwise with broadcasting.

    In float64 the product is exact (24 + 24 bits) and the sum s is within half a float64 ulp of
    the exact x * y + z, its error e exact too (TwoSum). Rounding s to float32 is then the correct
    result except where s lies exactly halfway between two float32 values while e is not 0: the
    exact value is on e's side of the midpoint, so it rounds to the neighbour on that side.
    """
    product = x.astype(np.float64) * y.astype(np.float64)
    addend = z.astype(np.float64)
    s = product + addend
    t = s - product
    with np.errstate(invalid="ignore"):
        error = (product - (s - t)) + (addend - t)  # nan where s is not finite: s is the result
        rounded = s.astype(np.float32)
        towards = np.nextafter(rounded, np.where(s > rounded, np.inf, -np.inf).astype(np.float32))
        overflow = np.isinf(rounded) & np.isfinite(s)
        towards = np.where(overflow, np.copysign(np.finfo(np.float32).max, s), towards)
        middle = np.where(
            overflow,
            np.copysign(_FLOAT32_OVERFLOW, s),
            (rounded.astype(np.float64) + towards.astype(np.float64)) * 0.5,
        )
        on_side = (error > 0) == (towards > rounded)
        beyond = np.isfinite(s) & (s == middle) & (error != 0) & on_side
    return np.where(beyond, towards, rounded).astype(np.float32)


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float32 a @ b (m x k times k x n) with each element accumulated in matmul.c's order:
    acc = +0, then acc = fma(a[i, p], b[p, j], acc) for p = 0 .. k-1."""
    x, y = a.detach().numpy(), b.detach().numpy()
    acc = np.zeros((x.shape[0], y.shape[1]), dtype=np.float32)
    for p in range(x.shape[1]):
        acc = _fma32(x[:, p : p + 1], y[p : p + 1, :], acc)
    return torch.from_numpy(acc)


def _addmm(
    s: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: Any, alpha: Any
) -> torch.Tensor:
    """ATen's addmm in matmul.c's order: alpha * (a @ b), then beta * s added (s unread when beta
    is 0); each step rounded to float32, skipped when its factor is 1."""
    alpha32, beta32 = np.float32(float(alpha)), np.float32(float(beta))
    y = _matmul(a, b).numpy()
    if alpha32 != 1:
        y = alpha32 * y
    if beta32 != 0:
        bias = np.broadcast_to(s.detach().numpy(), y.shape)
        y = (bias if beta32 == 1 else beta32 * bias) + y
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float32 batched a @ b as `_matmul` of each pair."""
    out = torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=torch.float32)
    for i in range(a.shape[0]):
        out[i] = _matmul(a[i], b[i])
    return out


def _addmv(s: torch.Tensor, mat: torch.Tensor, vec: torch.Tensor, beta: Any, alpha: Any) -> Any:
    """ATen's addmv (mv is addmv with beta 0) as `_addmm` with `vec` as one column."""
    column = s.reshape(-1, 1) if s.dim() == 1 else s
    return _addmm(column, mat, vec.reshape(-1, 1), beta, alpha).reshape(mat.shape[0])


def _dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """float32 dot (and vdot) of two vectors as `_matmul` of a row and a column."""
    return _matmul(x.reshape(1, -1), y.reshape(-1, 1)).reshape(())


def _baddbmm(s: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: Any, alpha: Any) -> Any:
    """ATen's baddbmm as `_addmm` of each pair, with `s` broadcast to the result's shape."""
    shaped = s.expand(a.shape[0], a.shape[1], b.shape[2])
    return torch.stack([_addmm(shaped[i], a[i], b[i], beta, alpha) for i in range(a.shape[0])])


def _addbmm(s: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: Any, alpha: Any) -> Any:
    """ATen's addbmm (s plus the sum of the batches' products) as one `_addmm` over the batches'
    inner dimensions laid end to end, batch 0's first."""
    inner = a.shape[0] * a.shape[2]
    left = a.permute(1, 0, 2).reshape(a.shape[1], inner)
    return _addmm(s, left, b.reshape(inner, b.shape[2]), beta, alpha)


def _pow_half(x: torch.Tensor, exponent: Any) -> bool:
    """Whether `pow(x, exponent)` is the one ATen computes with its (MKL) sqrt kernel."""
    return x.dtype in _FLOATS and not isinstance(exponent, bool) and exponent == 0.5


def _write_out(result: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Copy `result` into `out` as ATen's out= forms do: resize `out` when its shape differs."""
    if out.shape != result.shape:
        out.resize_(result.shape)
    return out.copy_(result)


def _register_unary(lib: torch.library.Library, name: str, compute: Callable[..., Any]) -> None:
    """Register `name`, `name.out` and `name_` so that float32/float64 go through `compute` and
    other dtypes to ATen's CPU kernels."""
    functional = torch.library.get_kernel(f"aten::{name}", "CPU")
    out_form = torch.library.get_kernel(f"aten::{name}.out", "CPU")
    in_place = torch.library.get_kernel(f"aten::{name}_", "CPU")

    def impl(keys: Any, x: torch.Tensor) -> torch.Tensor:
        return compute(x) if x.dtype in _FLOATS else functional.call_boxed(keys, x)

    def impl_out(keys: Any, x: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
        if x.dtype in _FLOATS and out.dtype == x.dtype:
            return _write_out(compute(x), out)
        return out_form.call_boxed(keys, x, out=out)

    def impl_(keys: Any, x: torch.Tensor) -> torch.Tensor:
        return x.copy_(compute(x)) if x.dtype in _FLOATS else in_place.call_boxed(keys, x)

    lib.impl(name, impl, "CPU", with_keyset=True)
    lib.impl(f"{name}.out", impl_out, "CPU", with_keyset=True)
    lib.impl(f"{name}_", impl_, "CPU", with_keyset=True)


def _register_pow(lib: torch.library.Library) -> None:
    """pow(x, 0.5) in its three forms as `_sqrt`: ATen computes it with its sqrt kernel, bypassing
    the `sqrt` op."""
    functional = torch.library.get_kernel("aten::pow.Tensor_Scalar", "CPU")
    out_form = torch.library.get_kernel("aten::pow.Tensor_Scalar_out", "CPU")
    in_place = torch.library.get_kernel("aten::pow_.Scalar", "CPU")

    def impl(keys: Any, x: torch.Tensor, exponent: Any) -> torch.Tensor:
        if _pow_half(x, exponent):
            return _sqrt(x)
        return functional.call_boxed(keys, x, exponent)

    def impl_out(keys: Any, x: torch.Tensor, exponent: Any, *, out: torch.Tensor) -> torch.Tensor:
        if _pow_half(x, exponent) and out.dtype == x.dtype:
            return _write_out(_sqrt(x), out)
        return out_form.call_boxed(keys, x, exponent, out=out)

    def impl_(keys: Any, x: torch.Tensor, exponent: Any) -> torch.Tensor:
        if _pow_half(x, exponent):
            return x.copy_(_sqrt(x))
        return in_place.call_boxed(keys, x, exponent)

    lib.impl("pow.Tensor_Scalar", impl, "CPU", with_keyset=True)
    lib.impl("pow.Tensor_Scalar_out", impl_out, "CPU", with_keyset=True)
    lib.impl("pow_.Scalar", impl_, "CPU", with_keyset=True)


def _register_softplus(lib: torch.library.Library) -> None:
    """softplus and softplus_backward (functional and out= forms) as `_softplus` and
    `_softplus_backward` for float32 and float64 (the gradient without broadcasting)."""
    names = ("softplus", "softplus.out", "softplus_backward", "softplus_backward.grad_input")
    originals = {name: torch.library.get_kernel(f"aten::{name}", "CPU") for name in names}

    def ours(x: torch.Tensor, grad: torch.Tensor | None = None) -> bool:
        same = grad is None or (grad.dtype == x.dtype and grad.shape == x.shape)
        return x.dtype in _FLOATS and same

    def impl(keys: Any, x: torch.Tensor, beta: Any = 1, threshold: Any = 20) -> torch.Tensor:
        if ours(x):
            return _softplus(x, float(beta), float(threshold))
        return originals["softplus"].call_boxed(keys, x, beta, threshold)

    def impl_out(
        keys: Any, x: torch.Tensor, beta: Any = 1, threshold: Any = 20, *, out: torch.Tensor
    ) -> torch.Tensor:
        if ours(x) and out.dtype == x.dtype:
            return _write_out(_softplus(x, float(beta), float(threshold)), out)
        return originals["softplus.out"].call_boxed(keys, x, beta, threshold, out=out)

    def impl_backward(
        keys: Any, grad: torch.Tensor, x: torch.Tensor, beta: Any, threshold: Any
    ) -> torch.Tensor:
        if ours(x, grad):
            return _softplus_backward(grad, x, float(beta), float(threshold))
        return originals["softplus_backward"].call_boxed(keys, grad, x, beta, threshold)

    def impl_backward_out(
        keys: Any,
        grad: torch.Tensor,
        x: torch.Tensor,
        beta: Any,
        threshold: Any,
        *,
        grad_input: torch.Tensor,
    ) -> torch.Tensor:
        if ours(x, grad) and grad_input.dtype == x.dtype:
            result = _softplus_backward(grad, x, float(beta), float(threshold))
            return _write_out(result, grad_input)
        original = originals["softplus_backward.grad_input"]
        return original.call_boxed(keys, grad, x, beta, threshold, grad_input=grad_input)

    lib.impl("softplus", impl, "CPU", with_keyset=True)
    lib.impl("softplus.out", impl_out, "CPU", with_keyset=True)
    lib.impl("softplus_backward", impl_backward, "CPU", with_keyset=True)
    lib.impl("softplus_backward.grad_input", impl_backward_out, "CPU", with_keyset=True)


def _register_elu(lib: torch.library.Library) -> None:
    """elu (functional, out= and in-place) and elu_backward from the input (functional and
    out=) as `_elu` and `_elu_backward` for float32 and float64; the gradient from the result
    (in-place ELU) calls no math function and stays ATen's."""
    names = ("elu", "elu.out", "elu_", "elu_backward", "elu_backward.grad_input")
    originals = {name: torch.library.get_kernel(f"aten::{name}", "CPU") for name in names}

    def coefficients(*scalars: Any) -> tuple[float, float, float]:
        alpha, scale, input_scale = (float(s) for s in scalars)
        return alpha, scale, input_scale

    def impl(keys: Any, x: torch.Tensor, alpha: Any = 1, scale: Any = 1, ins: Any = 1) -> Any:
        if x.dtype in _FLOATS:
            return _elu(x, *coefficients(alpha, scale, ins))
        return originals["elu"].call_boxed(keys, x, alpha, scale, ins)

    def impl_out(
        keys: Any, x: torch.Tensor, alpha: Any = 1, scale: Any = 1, ins: Any = 1, *, out: Any
    ) -> Any:
        if x.dtype in _FLOATS and out.dtype == x.dtype:
            return _write_out(_elu(x, *coefficients(alpha, scale, ins)), out)
        return originals["elu.out"].call_boxed(keys, x, alpha, scale, ins, out=out)

    def impl_(keys: Any, x: torch.Tensor, alpha: Any = 1, scale: Any = 1, ins: Any = 1) -> Any:
        if x.dtype in _FLOATS:
            return x.copy_(_elu(x, *coefficients(alpha, scale, ins)))
        return originals["elu_"].call_boxed(keys, x, alpha, scale, ins)

    def ours(grad: torch.Tensor, x: torch.Tensor, is_result: bool) -> bool:
        same = grad.dtype == x.dtype and grad.shape == x.shape
        return not is_result and x.dtype in _FLOATS and same

    def impl_backward(
        keys: Any, grad: Any, alpha: Any, scale: Any, ins: Any, is_result: bool, x: Any
    ) -> Any:
        if ours(grad, x, is_result):
            return _elu_backward(grad, *coefficients(alpha, scale, ins), x)
        return originals["elu_backward"].call_boxed(keys, grad, alpha, scale, ins, is_result, x)

    def impl_backward_out(
        keys: Any,
        grad: Any,
        alpha: Any,
        scale: Any,
        ins: Any,
        is_result: bool,
        x: Any,
        *,
        grad_input: Any,
    ) -> Any:
        if ours(grad, x, is_result) and grad_input.dtype == x.dtype:
            result = _elu_backward(grad, *coefficients(alpha, scale, ins), x)
            return _write_out(result, grad_input)
        original = originals["elu_backward.grad_input"]
        return original.call_boxed(
            keys, grad, alpha, scale, ins, is_result, x, grad_input=grad_input
        )

    lib.impl("elu", impl, "CPU", with_keyset=True)
    lib.impl("elu.out", impl_out, "CPU", with_keyset=True)
    lib.impl("elu_", impl_, "CPU", with_keyset=True)
    lib.impl("elu_backward", impl_backward, "CPU", with_keyset=True)
    lib.impl("elu_backward.grad_input", impl_backward_out, "CPU", with_keyset=True)


def _register_matmul(lib: torch.library.Library) -> None:
    """float32 mm, addmm and bmm (functional, out= and in-place) as `_matmul`, `_addmm` and
    `_bmm`, and addmv (so mv), baddbmm, addbmm, dot and vdot as theirs; other dtypes, shapes
    ATen refuses and biases that do not broadcast to ATen's."""
    names = ("mm", "mm.out", "addmm", "addmm.out", "addmm_", "bmm", "bmm.out")
    originals = {name: torch.library.get_kernel(f"aten::{name}", "CPU") for name in names}

    def ours(a: torch.Tensor, b: torch.Tensor, dim: int = 2, *others: torch.Tensor) -> bool:
        floats = all(t.dtype == torch.float32 for t in (a, b, *others))
        shaped = a.dim() == b.dim() == dim and a.shape[-1] == b.shape[-2]
        return floats and shaped and (dim == 2 or a.shape[0] == b.shape[0])

    def addable(s: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *others: Any) -> bool:
        if not ours(a, b, 2, s, *others):
            return False
        try:
            torch.broadcast_shapes(s.shape, (a.shape[0], b.shape[1]))
        except RuntimeError:
            return False
        return s.dim() <= 2

    def mm(keys: Any, a: Any, b: Any) -> Any:
        return _matmul(a, b) if ours(a, b) else originals["mm"].call_boxed(keys, a, b)

    def mm_out(keys: Any, a: Any, b: Any, *, out: Any) -> Any:
        if ours(a, b, 2, out):
            return _write_out(_matmul(a, b), out)
        return originals["mm.out"].call_boxed(keys, a, b, out=out)

    def addmm(keys: Any, s: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
        if addable(s, a, b):
            return _addmm(s, a, b, beta, alpha)
        return originals["addmm"].call_boxed(keys, s, a, b, beta=beta, alpha=alpha)

    def addmm_out(
        keys: Any, s: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1, out: Any
    ) -> Any:
        if addable(s, a, b, out):
            return _write_out(_addmm(s, a, b, beta, alpha), out)
        return originals["addmm.out"].call_boxed(keys, s, a, b, beta=beta, alpha=alpha, out=out)

    def addmm_(keys: Any, s: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
        if addable(s, a, b) and s.shape == (a.shape[0], b.shape[1]):
            return s.copy_(_addmm(s, a, b, beta, alpha))
        return originals["addmm_"].call_boxed(keys, s, a, b, beta=beta, alpha=alpha)

    def bmm(keys: Any, a: Any, b: Any) -> Any:
        return _bmm(a, b) if ours(a, b, 3) else originals["bmm"].call_boxed(keys, a, b)

    def bmm_out(keys: Any, a: Any, b: Any, *, out: Any) -> Any:
        if ours(a, b, 3, out):
            return _write_out(_bmm(a, b), out)
        return originals["bmm.out"].call_boxed(keys, a, b, out=out)

    for name, kernel in zip(
        names, (mm, mm_out, addmm, addmm_out, addmm_, bmm, bmm_out), strict=True
    ):
        lib.impl(name, kernel, "CPU", with_keyset=True)

    def addmv_shape(s: Any, a: Any, b: Any) -> tuple[int, ...] | None:
        return (a.shape[0],) if s.dim() <= 1 and b.dim() == 1 and ours(a, b[:, None]) else None

    def baddbmm_shape(_: Any, a: Any, b: Any) -> tuple[int, ...] | None:
        return (a.shape[0], a.shape[1], b.shape[2]) if ours(a, b, 3) else None

    def addbmm_shape(s: Any, a: Any, b: Any) -> tuple[int, ...] | None:
        return (a.shape[1], b.shape[2]) if s.dim() <= 2 and ours(a, b, 3) else None

    _register_scaled(lib, "addmv", _addmv, addmv_shape)
    _register_scaled(lib, "baddbmm", _baddbmm, baddbmm_shape)
    _register_scaled(lib, "addbmm", _addbmm, addbmm_shape)
    for name in ("dot", "vdot"):
        _register_dot(lib, name)


def _register_scaled(
    lib: torch.library.Library,
    name: str,
    compute: Callable[..., torch.Tensor],
    shape_of: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[int, ...] | None],
) -> None:
    """`name`, `name.out` and `name_` (self + a product, scaled by beta and alpha) as `compute`
    where the three tensors are float32, `shape_of` gives the result's shape and `self`
    broadcasts to it; otherwise ATen's kernels (and their errors)."""
    originals = {f: torch.library.get_kernel(f"aten::{f}", "CPU") for f in (name, f"{name}.out")}
    in_place = torch.library.get_kernel(f"aten::{name}_", "CPU")

    def result(s: Any, a: Any, b: Any, beta: Any, alpha: Any) -> torch.Tensor | None:
        floats = all(t.dtype == torch.float32 for t in (s, a, b))
        shape = shape_of(s, a, b) if floats and not isinstance(beta, complex) else None
        if shape is None:
            return None
        try:
            broadcast = torch.broadcast_shapes(s.shape, shape)
        except RuntimeError:
            return None
        return compute(s, a, b, beta, alpha) if broadcast == shape else None

    def impl(keys: Any, s: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
        out = result(s, a, b, beta, alpha)
        if out is not None:
            return out
        return originals[name].call_boxed(keys, s, a, b, beta=beta, alpha=alpha)

    def impl_out(
        keys: Any, s: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1, out: Any
    ) -> Any:
        got = result(s, a, b, beta, alpha) if out.dtype == torch.float32 else None
        if got is not None:
            return _write_out(got, out)
        original = originals[f"{name}.out"]
        return original.call_boxed(keys, s, a, b, beta=beta, alpha=alpha, out=out)

    def impl_(keys: Any, s: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
        got = result(s, a, b, beta, alpha)
        if got is not None and got.shape == s.shape:
            return s.copy_(got)
        return in_place.call_boxed(keys, s, a, b, beta=beta, alpha=alpha)

    lib.impl(name, impl, "CPU", with_keyset=True)
    lib.impl(f"{name}.out", impl_out, "CPU", with_keyset=True)
    lib.impl(f"{name}_", impl_, "CPU", with_keyset=True)


def _register_dot(lib: torch.library.Library, name: str) -> None:
    """float32 `name` (dot or vdot) of two vectors of one length as `_dot`; else ATen's."""
    original = torch.library.get_kernel(f"aten::{name}", "CPU")

    def impl(keys: Any, x: Any, y: Any) -> Any:
        vectors = x.dim() == y.dim() == 1 and x.shape == y.shape
        if vectors and x.dtype == y.dtype == torch.float32:
            return _dot(x, y)
        return original.call_boxed(keys, x, y)

    lib.impl(name, impl, "CPU", with_keyset=True)


def _run(command: list[str]) -> None:
    """Run a compiler; :raises OSError: with its message when it fails or is missing."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"{command[0]} failed: {done.stderr.strip()}")


def _compile() -> Path:
    """`_SOURCES` as one shared library in this environment's `lib/`, compiled when missing.

    Its name holds the sha256 of the sources, the flags and torch's version, so a changed one is
    compiled anew; it is linked to a temporary name and renamed, so stages that start together
    never load a half-written one.

    :raises OSError: when there is no compiler or it fails (its message in the exception).
    """
    torch_dir = Path(torch.__file__).parent
    key = hashlib.sha256(b"".join(source.read_bytes() for source in _SOURCES))
    key.update(" ".join((*_CFLAGS, *_CXXFLAGS, torch.__version__)).encode())
    target = Path(sys.prefix) / "lib" / f"rlrepro-portable-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}"
    cc, cxx, lib = os.environ.get("CC", "cc"), os.environ.get("CXX", "c++"), torch_dir / "lib"
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        objects = [f"{folder}/{source.stem}.o" for source in _SOURCES]
        for source, built in zip(_SOURCES, objects, strict=True):
            if source.suffix == ".c":
                _run([cc, *_CFLAGS, "-fPIC", "-c", str(source), "-o", built])
            else:
                include = f"-I{torch_dir / 'include'}"
                _run([cxx, *_CXXFLAGS, "-fPIC", include, abi, "-c", str(source), "-o", built])
        linked = f"{folder}/lib.so"
        link = [f"-L{lib}", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{lib}"]
        _run([cxx, "-shared", *objects, "-o", linked, *link])
        Path(linked).replace(target)
    for old in target.parent.glob("rlrepro-portable-*.so"):  # of other sources: never used again
        if old != target:
            old.unlink(missing_ok=True)
    return target


def _install_compiled() -> bool:
    """Compile and register the C++ kernels where ATen runs its AVX2 kernels; :return: whether
    they are registered. Warns, once, when they cannot be compiled."""
    global _native_library
    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        return False
    try:
        native = ctypes.CDLL(str(_compile()))
    except OSError as error:
        warnings.warn(
            f"rlrepro: the portable kernels run in Python, slower (same bits): {error}; "
            "install C and C++ compilers (Debian: apt-get install g++)",
            stacklevel=3,
        )
        return False
    if native.rl_install() != 0:
        raise RuntimeError("rlrepro: the compiled portable kernels failed to register")
    _native_library = native
    return True


def kernels() -> str:
    """Which portable kernels this process runs: "compiled", "python" or "none" (not installed)."""
    if _library is None:
        return "none"
    return "compiled" if _native_library is not None else "python"


REPLACED: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sqrt": _sqrt,
    "exp": _exp,
    "log": _log,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
}


def install() -> None:
    """Register the portable CPU kernels for `REPLACED` (each with its out= and in-place forms)
    and for pow(x, 0.5), for this process: the compiled ones where they can be (see above), else
    the Python ones. A second call does nothing.

    `_foreach_sqrt` and the other foreach forms on CPU call these ops one tensor at a time, so
    they use the portable kernels too.
    """
    global _library
    if _library is not None:
        return
    lib = torch.library.Library("aten", "IMPL")  # kept: the Python kernels live as long as it
    if not _install_compiled():
        with warnings.catch_warnings():
            # "Overriding a previously registered kernel": that is what this does.
            warnings.simplefilter("ignore", UserWarning)
            for name, compute in REPLACED.items():
                _register_unary(lib, name, compute)
            _register_pow(lib)
            _register_softplus(lib)
            _register_elu(lib)
            _register_matmul(lib)
    _library = lib
