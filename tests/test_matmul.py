"""rlrepro.numerics' float32 matrix product (matmul.c): the reference's bits on every shape class
in use, every product op (mm, addmm, bmm, mv, addmv, dot, vdot, baddbmm, addbmm and what
matmul, linear and einsum decompose into), every call form, both vector widths; the reference
itself against the C library's fmaf."""

import contextlib
import ctypes
import ctypes.util
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
from rlrepro.numerics import portable
from tests.conftest import ROOT

# (rows, inner, columns): one row (acting), tails of every tile size, one column (a value
# head), an empty inner dimension, and the layers of the pipelines (batches of 64 and 256).
SHAPES = [
    (1, 1, 1),
    (1, 4, 64),
    (1, 64, 2),
    (5, 7, 3),
    (6, 8, 16),
    (7, 17, 33),
    (8, 32, 32),
    (9, 1, 31),
    (13, 0, 9),
    (64, 4, 64),
    (64, 64, 2),
    (256, 10, 64),
    (256, 64, 1),
    (64, 256, 64),
    (256, 256, 256),
]


@pytest.fixture(autouse=True)
def _installed() -> None:
    portable.install()


def _lanes() -> list[int]:
    """The vector widths this CPU can run matmul.c with: 1 (the generic loop of other CPUs),
    8 (AVX2), and 16 if it has AVX-512."""
    native = portable._native_library
    assert native is not None, "the compiled kernels are not installed"
    widths = sorted({native.rl_matmul_lanes(w) for w in (1, 8, 16)})
    native.rl_matmul_lanes(0)
    return widths


@pytest.fixture(params=[1, 8, 16], ids=["generic", "avx2", "avx512"])
def lanes(request: pytest.FixtureRequest) -> object:
    """matmul.c at each vector width (skipped where the CPU lacks it), the widest after."""
    if request.param not in _lanes():
        pytest.skip("this CPU has no AVX-512")
    native = portable._native_library
    assert native is not None
    native.rl_matmul_lanes(request.param)
    yield request.param
    native.rl_matmul_lanes(0)


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    """Values over a wide range of magnitudes and both signs, with exact zeros."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape) * np.exp2(rng.integers(-12, 12, shape))
    values[rng.random(shape) < 0.05] = 0.0
    return torch.from_numpy(values.astype(np.float32))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same shape and the same bits (nan or not)."""
    ints = a.contiguous().view(torch.int32), b.contiguous().view(torch.int32)
    return a.shape == b.shape and torch.equal(*ints)


def _layouts(x: torch.Tensor) -> list[torch.Tensor]:
    """`x` contiguous, as the transpose of a contiguous matrix, and as a strided slice."""
    wide = torch.zeros(x.shape[0], 2 * x.shape[1] + 1)
    wide[:, 1::2] = x
    return [x, x.t().contiguous().t(), wide[:, 1::2]]


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_mm_gives_the_reference_bits(shape: tuple[int, int, int]) -> None:
    """torch.mm on every layout of both operands is the fixed-order reference, bit for bit."""
    m, k, n = shape
    a, b = _random(m, k, seed=1), _random(k, n, seed=2)
    expected = portable._matmul(a, b)
    for left in _layouts(a):
        for right in _layouts(b):
            assert _same(torch.mm(left, right), expected)
            out = torch.empty(0)
            assert _same(torch.mm(left, right, out=out), expected) and _same(out, expected)


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("beta, alpha", [(1, 1), (0, 1), (1, 0.5), (-2, 3), (0.25, 1)])
@pytest.mark.parametrize("shape", [(1, 64, 64), (7, 17, 33), (256, 64, 1)], ids=str)
def test_addmm_in_every_form_gives_the_reference_bits(
    shape: tuple[int, int, int], beta: float, alpha: float
) -> None:
    """addmm with a bias row (a linear layer), a full matrix, a column and a scalar to add,
    functional, out= and in-place, is `_addmm`; with beta 0 a nan in `self` is not read."""
    m, k, n = shape
    a, b = _random(m, k, seed=3), _random(k, n, seed=4)
    for s in (_random(n, seed=5), _random(m, n, seed=6), _random(m, 1, seed=7), torch.tensor(2.5)):
        s = s.clone()
        if beta == 0:
            s.view(-1)[0] = float("nan")
        expected = portable._addmm(s, a, b, beta, alpha)
        assert _same(torch.addmm(s, a, b, beta=beta, alpha=alpha), expected)
        out = torch.empty(3)
        torch.addmm(s, a, b, beta=beta, alpha=alpha, out=out)
        assert _same(out, expected)
        if s.shape == (m, n):
            assert _same(s.addmm_(a, b, beta=beta, alpha=alpha), expected)


@pytest.mark.usefixtures("lanes")
def test_bmm_gives_the_reference_bits() -> None:
    """bmm (functional and out=, with a transposed batch) is `_matmul` of each pair."""
    a, b = _random(3, 7, 17, seed=8), _random(3, 17, 33, seed=9)
    expected = torch.stack([portable._matmul(x, y) for x, y in zip(a, b, strict=True)])
    assert _same(torch.bmm(a, b), expected)
    assert _same(torch.bmm(a, b.transpose(1, 2).contiguous().transpose(1, 2)), expected)
    out = torch.empty(0)
    torch.bmm(a, b, out=out)
    assert _same(out, expected)


@pytest.mark.usefixtures("lanes")
def test_a_linear_layer_forward_and_backward_use_it() -> None:
    """nn.Linear's output and its gradients, through autograd, are the reference's products."""
    x = _random(256, 10, seed=10)
    layer = torch.nn.Linear(10, 64)
    grad = _random(256, 64, seed=11)
    y = layer(x)
    y.backward(grad)
    weight, bias = layer.weight.detach(), layer.bias.detach()
    assert _same(y.detach(), portable._addmm(bias, x, weight.t(), 1, 1))
    assert layer.weight.grad is not None
    assert _same(layer.weight.grad, portable._matmul(grad.t(), x))


def _vector_layouts(v: torch.Tensor) -> list[torch.Tensor]:
    """`v` contiguous and as a strided slice."""
    wide = torch.zeros(2 * v.shape[0] + 1)
    wide[1::2] = v
    return [v, wide[1::2]]


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_mv_dot_and_vdot_give_the_reference_bits(shape: tuple[int, int, int]) -> None:
    """mv (functional and out=) on every layout of the matrix and the vector is `_addmv` with
    beta 0; dot and vdot (and their out= forms) of every layout are `_dot`."""
    m, k, _ = shape
    a, v, w = _random(m, k, seed=17), _random(k, seed=18), _random(k, seed=19)
    expected = portable._addmv(torch.zeros(m), a, v, 0, 1)
    products = portable._dot(v, w)
    for matrix in _layouts(a):
        for vector in _vector_layouts(v):
            assert _same(torch.mv(matrix, vector), expected)
            out = torch.empty(0)
            assert _same(torch.mv(matrix, vector, out=out), expected) and _same(out, expected)
    for x in _vector_layouts(v):
        for y in _vector_layouts(w):
            for op in (torch.dot, torch.vdot):
                assert _same(op(x, y), products)
                out = torch.empty(0)
                assert _same(op(x, y, out=out), products) and _same(out, products)


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("beta, alpha", [(1, 1), (0, 1), (1, 0.5), (-2, 3)])
def test_addmv_baddbmm_and_addbmm_in_every_form_give_the_reference_bits(
    beta: float, alpha: float
) -> None:
    """addmv, baddbmm and addbmm with every shape of `self` that broadcasts, functional, out=
    and in-place, are `_addmv`, `_baddbmm` and `_addbmm`; with beta 0 a nan in `self` is not
    read."""
    a, v = _random(7, 17, seed=20), _random(17, seed=21)
    b1, b2 = _random(3, 7, 17, seed=22), _random(3, 17, 33, seed=23)
    cases: list[tuple[Any, str, Callable[..., torch.Tensor], torch.Tensor, torch.Tensor, Any]] = [
        (torch.addmv, "addmv_", portable._addmv, a, v, [(7,), (1,), ()]),
        (torch.baddbmm, "baddbmm_", portable._baddbmm, b1, b2, [(33,), (7, 33), (3, 7, 33)]),
        (torch.addbmm, "addbmm_", portable._addbmm, b1, b2, [(33,), (7, 1), (7, 33), ()]),
    ]
    for op, in_place, reference, x, y, shapes in cases:
        for seed, shape in enumerate(shapes):
            s = _random(*shape, seed=24 + seed) if shape else torch.tensor(2.5)
            if beta == 0:
                s.view(-1)[0] = float("nan")
            expected = reference(s, x, y, beta, alpha)
            assert _same(op(s, x, y, beta=beta, alpha=alpha), expected), (op, shape)
            out = torch.empty(3)
            op(s, x, y, beta=beta, alpha=alpha, out=out)
            assert _same(out, expected), (op, shape)
            if s.shape == expected.shape:
                assert _same(getattr(s, in_place)(x, y, beta=beta, alpha=alpha), expected)


@pytest.mark.usefixtures("lanes")
def test_matmul_linear_einsum_and_attention_reach_only_our_products() -> None:
    """torch.matmul over every combination of ranks, F.linear on a vector and on a batch of
    sequences, einsum and a multi-head attention's forward and backward all give the bits of
    products computed one by one with the reference."""
    f = torch.nn.functional
    v, w, a = _random(17, seed=30), _random(17, seed=31), _random(7, 17, seed=32)
    b, batch = _random(17, 5, seed=33), _random(3, 7, 17, seed=34)
    assert _same(v @ w, portable._dot(v, w))
    assert _same(a @ v, portable._addmv(torch.zeros(7), a, v, 0, 1))
    assert _same(v @ b, portable._matmul(v[None], b)[0])
    assert _same(batch @ b, torch.stack([portable._matmul(x, b) for x in batch]))
    assert _same(
        batch @ batch.transpose(1, 2),
        portable._baddbmm(torch.zeros(()), batch, batch.transpose(1, 2), 0, 1),
    )
    weight, bias = _random(5, 17, seed=35), _random(5, seed=36)
    assert _same(f.linear(v, weight, bias), portable._addmm(bias, v[None], weight.t(), 1, 1)[0])
    expected = portable._addmm(bias, batch.reshape(21, 17), weight.t(), 1, 1).reshape(3, 7, 5)
    assert _same(f.linear(batch, weight, bias), expected)
    assert _same(torch.einsum("bij,jk->bik", batch, b), batch @ b)
    attention = torch.nn.MultiheadAttention(17, 1, batch_first=True)
    ours = _digests_of_attention(attention, batch)
    reference = _digests_of_attention(attention, batch, reference=True)
    assert ours == reference


def _digests_of_attention(
    attention: torch.nn.MultiheadAttention, x: torch.Tensor, reference: bool = False
) -> list[bytes]:
    """The bytes of a multi-head attention's output and of its input projection's gradient;
    with `reference`, under a mode that computes every product op with portable.py's
    reference instead of the registered kernels."""
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    references: dict[Any, Callable[..., torch.Tensor]] = {
        aten.mm.default: portable._matmul,
        aten.bmm.default: portable._bmm,
        aten.addmm.default: lambda s, a, b, beta=1, alpha=1: portable._addmm(s, a, b, beta, alpha),
        aten.baddbmm.default: lambda s, a, b, beta=1, alpha=1: portable._baddbmm(
            s, a, b, beta, alpha
        ),
    }

    class Reference(TorchDispatchMode):
        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            if func in references:
                return references[func](*args, **(kwargs or {}))
            return func(*args, **(kwargs or {}))

    attention.zero_grad()
    x = x.clone().requires_grad_(True)
    with Reference() if reference else contextlib.nullcontext():
        out, weights = attention(x, x, x, need_weights=True)
        (out.sum() + weights.sum()).backward()
    assert attention.in_proj_weight.grad is not None
    return [t.detach().numpy().tobytes() for t in (out, weights, attention.in_proj_weight.grad)]


def test_other_dtypes_and_bad_shapes_go_to_aten() -> None:
    """float64 and integer products are ATen's; a shape mismatch raises ATen's own error."""
    a64, b64 = _random(5, 7).double(), _random(7, 3).double()
    assert torch.allclose(torch.mm(a64, b64), torch.from_numpy(a64.numpy() @ b64.numpy()))
    ints = torch.arange(6).reshape(2, 3)
    assert torch.equal(torch.mm(ints, ints.t()), torch.tensor([[5, 14], [14, 50]]))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        torch.mm(_random(2, 3), _random(4, 5))


def _libm_fmaf() -> Callable[[float, float, float], float]:
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.fmaf.restype = ctypes.c_float
    libm.fmaf.argtypes = [ctypes.c_float] * 3
    return libm.fmaf


def _double_rounding_cases(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triples whose float64 sum lands exactly halfway between two float32 values while the
    exact sum does not: c has an odd last bit and x * y = ulp(c) / 2 * (1 - 2**-46), so rounding
    the float64 sum to float32 rounds up to even where the fused result rounds down."""
    rng = np.random.default_rng(12)
    odd = rng.integers(2**22, 2**23, count) * 2 + 1  # odd 24-bit significands
    exponent = rng.integers(-100, 100, count)
    sign = rng.choice([-1.0, 1.0], count)
    c = sign * np.ldexp(odd.astype(np.float64), exponent - 23)
    x = sign * np.float64(1 + 2.0**-23)
    y = np.ldexp(np.float64(1 - 2.0**-23), exponent - 24)
    return x.astype(np.float32), y.astype(np.float32), c.astype(np.float32)


def test_the_reference_fma_is_the_c_librarys_fmaf() -> None:
    """`_fma32` against glibc's fmaf (correctly rounded, as C requires) on random triples over
    float32's whole range (subnormals, overflow, inf, nan) and on double-rounding cases, where
    rounding the float64 sum alone gives other bits: the check can fail."""
    rng = np.random.default_rng(13)
    count = 20_000
    with np.errstate(over="ignore"):  # some overflow to inf, as wanted
        triples = [
            np.ldexp(rng.standard_normal(count), rng.integers(-160, 130, count)).astype(np.float32)
            for _ in range(3)
        ]
    triples[2][:5] = [np.inf, -np.inf, np.nan, 0.0, -0.0]
    crafted = _double_rounding_cases(2_000)
    fmaf = _libm_fmaf()
    for x, y, z in (triples, crafted):
        with np.errstate(over="ignore", invalid="ignore"):
            expected = np.array([fmaf(*t) for t in zip(x, y, z, strict=True)], dtype=np.float32)
            got = portable._fma32(x, y, z)
        assert _same(torch.from_numpy(got), torch.from_numpy(expected))
    x, y, z = crafted
    naive = (x.astype(np.float64) * y + z).astype(np.float32)
    assert not np.array_equal(naive.view(np.int32), portable._fma32(x, y, z).view(np.int32))


def _digests_in_new_process(setup: str) -> list[str]:
    """The sha256 of every product op's results on fixed inputs, in a fresh interpreter that runs
    `setup` first."""
    code = (
        "import hashlib, rlrepro, torch\n"
        "from tests.test_matmul import _random\n"
        f"{setup}\n"
        "a, b, s = _random(256, 64, seed=14), _random(64, 64, seed=15), _random(64, seed=16)\n"
        "for r in (torch.mm(a, b), torch.addmm(s, a, b.t()), torch.bmm(a[None], b[None]),\n"
        "          torch.mv(b, s), torch.dot(s, b[0]), torch.vdot(s, b[1]),\n"
        "          torch.baddbmm(s, a[None], b[None]), torch.addbmm(s, a[None], b[None])):\n"
        "    print(hashlib.sha256(r.numpy().tobytes()).hexdigest())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_the_python_kernels_give_the_same_bits_and_mkl_does_not() -> None:
    """Registered as Python kernels (where nothing can be compiled), the products have the
    compiled ones' bits; ATen's own (MKL) products have other bits on the same inputs."""
    compiled = _digests_in_new_process("rlrepro.numerics.portable.install()")
    python = _digests_in_new_process(
        "from rlrepro.numerics import portable\n"
        "library = torch.library.Library('aten', 'IMPL')  # kept: its kernels live as long\n"
        "portable._register_matmul(library)"
    )
    aten = _digests_in_new_process("")
    assert compiled == python
    assert all(ours != theirs for ours, theirs in zip(compiled, aten, strict=True))
