"""rlrepro.numerics.portable: exact results, every call form of each op, autograd."""

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
from rlrepro import numerics
from rlrepro.numerics import portable
from tests.conftest import ROOT

OPS = ("sqrt", "exp", "log", "tanh", "sigmoid")
WITH_NUMPY = ("sqrt", "exp", "log", "tanh")  # with a numpy function of the same name
SIZE = 65_536


@pytest.fixture(autouse=True)
def _installed() -> None:
    portable.install()


def _inputs(dtype: torch.dtype) -> torch.Tensor:
    """Wide-range values made with exact arithmetic only, edge cases first: +-0, +-inf, nan,
    negatives, subnormals, +-1, the largest and the smallest normal of `dtype`."""
    rng = np.random.default_rng(2024)
    quarter = SIZE // 4
    values = np.concatenate(
        [
            rng.uniform(-20, 20, quarter),
            np.ldexp(
                rng.choice([-1.0, 1.0], quarter) * (1.0 + rng.random(quarter)),
                rng.integers(-149, 128, quarter),
            ),
            rng.uniform(-1, 1, quarter),
            rng.uniform(0, 100, SIZE - 3 * quarter),
        ]
    )
    info = np.finfo(np.float32 if dtype == torch.float32 else np.float64)
    subnormal = float(info.smallest_subnormal)
    special = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        subnormal,
        -subnormal,
        3 * subnormal,
        1.0,
        -1.0,
        -2.5,
        float(info.max),
        float(info.tiny),
        88.72,
        89.0,
        -103.9,
        -87.0,
    ]
    values[: len(special)] = special
    return torch.from_numpy(values).to(dtype)


def _reference_f32(name: str, x: torch.Tensor) -> torch.Tensor:
    """numpy's float64 value rounded to float32: the correctly rounded float32 result but for
    values a float64 ulp from a float32 rounding midpoint (none among `_inputs`)."""
    with np.errstate(all="ignore"):
        return torch.from_numpy(getattr(np, name)(x.double().numpy()).astype(np.float32))


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise: the same bits, or both nan."""
    ints = torch.int32 if a.dtype == torch.float32 else torch.int64
    return (a.view(ints) == b.view(ints)) | (a.isnan() & b.isnan())


@pytest.mark.parametrize("name", WITH_NUMPY)
def test_float32_is_correctly_rounded(name: str) -> None:
    x = _inputs(torch.float32)
    got = getattr(torch, name)(x)
    assert got.dtype == torch.float32 and got.shape == x.shape
    wrong = (~_same_bits(got, _reference_f32(name, x))).nonzero().flatten()
    assert wrong.numel() == 0, f"{wrong.numel()} wrong, first inputs {x[wrong[:5]].tolist()}"


def test_float64_sqrt_is_exact() -> None:
    x = _inputs(torch.float64)
    with np.errstate(invalid="ignore"):
        expected = torch.from_numpy(np.sqrt(x.numpy()))
    assert bool(_same_bits(torch.sqrt(x), expected).all())


@pytest.mark.parametrize("name", ["exp", "log", "tanh"])
def test_float64_is_within_a_few_ulps(name: str) -> None:
    x = _inputs(torch.float64)
    got = getattr(torch, name)(x).numpy()
    with np.errstate(all="ignore"):
        expected = getattr(np, name)(x.numpy())
    special = ~np.isfinite(expected) | (expected == 0) | (np.abs(expected) < 1e-300)
    np.testing.assert_array_equal(got[special], expected[special])
    got, expected = got[~special], expected[~special]
    ulps = np.abs(got - expected) / np.spacing(np.abs(expected))
    assert ulps.max() <= 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", OPS)
def test_layouts_out_and_in_place_match_the_functional_form(name: str, dtype: torch.dtype) -> None:
    op = getattr(torch, name)
    x = _inputs(dtype)[:4096].reshape(64, 64)
    full = op(x)
    assert bool(_same_bits(op(x.T), full.T).all())  # non-contiguous
    assert bool(_same_bits(op(x[:, ::3]), full[:, ::3]).all())  # strided
    scalar = op(x[3, 5])
    assert scalar.dim() == 0 and bool(_same_bits(scalar, full[3, 5]))
    assert op(x[:0]).shape == (0, 64)
    out = torch.empty(0, dtype=dtype)
    assert op(x, out=out) is out and bool(_same_bits(out, full).all())  # resized
    out = torch.full_like(x, 7.0)
    op(x, out=out)
    assert bool(_same_bits(out, full).all())
    y = x.clone()
    assert getattr(y, f"{name}_")() is y and bool(_same_bits(y, full).all())
    y = x.clone()
    getattr(y.T, f"{name}_")()  # in place through a non-contiguous view
    assert bool(_same_bits(y, full).all())
    assert bool(_same_bits(op(x, out=x.clone()), full).all())


def test_pow_half_and_foreach_sqrt_use_the_exact_sqrt() -> None:
    x = _inputs(torch.float32)
    expected = _reference_f32("sqrt", x)
    assert bool(_same_bits(x**0.5, expected).all())
    assert bool(_same_bits(torch.pow(x, 0.5), expected).all())
    out = torch.empty(0)
    torch.pow(x, 0.5, out=out)
    assert bool(_same_bits(out, expected).all())
    y = x.clone()
    y.pow_(0.5)
    assert bool(_same_bits(y, expected).all())
    for got in torch._foreach_sqrt([x, x.flip(0)]):
        assert bool(_same_bits(got, expected).all()) or bool(
            _same_bits(got, expected.flip(0)).all()
        )
    tensors = [x.clone(), x[::2].clone()]
    torch._foreach_sqrt_(tensors)
    assert bool(_same_bits(tensors[0], expected).all())
    assert bool(_same_bits(tensors[1], expected[::2]).all())
    assert bool(_same_bits(x**2.0, x * x).all())  # other exponents are ATen's


def test_other_dtypes_go_to_aten() -> None:
    ints = torch.arange(10)
    assert torch.sqrt(ints).dtype == torch.float32
    assert torch.equal(torch.sqrt(ints), torch.sqrt(ints.float()))
    assert torch.exp(torch.ones(3, dtype=torch.bfloat16)).dtype == torch.bfloat16
    z = torch.tensor([-4.0 + 0.0j, 3.0 + 4.0j])
    torch.testing.assert_close(torch.sqrt(z), torch.tensor([2.0j, 2.0 + 1.0j]))
    torch.testing.assert_close(
        torch.tanh(torch.ones(2, dtype=torch.float16)).float(),
        torch.full((2,), 0.7616),
        atol=1e-3,
        rtol=0,
    )


@pytest.mark.parametrize("name", [*OPS, "softplus", "elu"])
def test_gradients_flow(name: str) -> None:
    functional: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "softplus": torch.nn.functional.softplus,
        "elu": torch.nn.functional.elu,
    }
    op = functional[name] if name in functional else getattr(torch, name)
    x = torch.linspace(0.1, 3.0, 17, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    x32 = x.detach().float().requires_grad_()
    y = op(x32)
    y.sum().backward()
    expected = {
        "sqrt": 0.5 / y,
        "exp": y,
        "log": 1.0 / x32,
        "tanh": 1.0 - y * y,
        "softplus": torch.sigmoid(x32),
        "sigmoid": y * (1.0 - y),
        "elu": torch.ones_like(x32),
    }[name].detach()
    torch.testing.assert_close(x32.grad, expected)


def test_install_is_idempotent_and_configure_torch_installs() -> None:
    library = portable._library
    portable.install()
    numerics.configure_torch(1)
    assert portable._library is library is not None
    x = _inputs(torch.float32)
    assert bool(_same_bits(torch.sqrt(x), _reference_f32("sqrt", x)).all())


def _in_new_process(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python `code` in a fresh interpreter from the project's root (nothing installed yet);
    :return: its result, with stdout and stderr as text. Fails the test when it fails."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )


def test_configure_torch_turns_on_deterministic_algorithms_without_the_compiler() -> None:
    """The flag that `torch.use_deterministic_algorithms` sets is on, as its public getter reads
    it, and torch's compiler (dynamo, inductor) was not imported to get there."""
    code = (
        "import sys, rlrepro, torch\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "rlrepro.numerics.configure_torch(1)\n"
        "print(torch.are_deterministic_algorithms_enabled(),"
        " sorted(m for m in ('torch._inductor', 'torch._dynamo') if m in sys.modules))\n"
    )
    assert _in_new_process(code).stdout == "True []\n"


def test_without_install_mkl_sqrt_is_not_correctly_rounded() -> None:
    """The reference check can fail: in a process without `install()`, ATen's sqrt (MKL) gives
    other bits than the correctly rounded root for some inputs (measured: 7,026 of these 65,536
    on an AMD EPYC Zen 5; about 15% of random floats on emulated Haswell and EPYC-Rome)."""
    code = (
        "import rlrepro, torch\n"
        "from tests.test_portable import _inputs, _reference_f32, _same_bits\n"
        "assert rlrepro.numerics.portable._library is None\n"
        "x = _inputs(torch.float32)\n"
        "print(int((~_same_bits(torch.sqrt(x), _reference_f32('sqrt', x))).sum()))\n"
    )
    assert int(_in_new_process(code).stdout.strip()) > 0


def test_the_compiled_kernels_are_registered_quietly_on_avx2() -> None:
    """On a CPU where ATen runs its AVX2 kernels (every x86-64 CPU the pipeline supports, as it
    pins them), the compiled kernels are in use (the Python ones are several times slower), and
    registering them prints nothing (ATen warns of every kernel it sees replaced)."""
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    code = (
        "import rlrepro, torch\n"
        "from rlrepro import numerics\n"
        "from rlrepro.numerics import portable\n"
        "numerics.configure_torch(1)\n"
        "torch.tanh(torch.ones(3))\n"
        "print(portable.kernels())\n"
    )
    done = _in_new_process(code)
    assert (done.stdout, done.stderr) == ("compiled\n", "")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", OPS)
def test_compiled_kernels_give_the_python_kernels_bits(name: str, dtype: torch.dtype) -> None:
    """The registered (compiled) kernels against the Python definition, on every length up to 70
    (the vector body and the scalar tail of ATen's loops), a few long ones, and other layouts.
    float64 results show a SLEEF value taken for a libm one (they part in the last bit for
    about 1% of values); float32 mostly not."""
    op, python = getattr(torch, name), portable.REPLACED[name]
    rng = np.random.default_rng(7)
    for n in [*range(71), 255, 256, 257, 1000, 4099, 70_001]:
        for _ in range(2):
            values = rng.uniform(-30, 30, (n, 3))
            if name in ("log", "sqrt"):
                values = np.abs(values) * rng.uniform(0, 5, (n, 3)) ** 8
            x = torch.from_numpy(values).to(dtype)
            for layout in (x, x.T, x[:, ::2], x.reshape(-1)):
                got, expected = op(layout), python(layout)
                layouts = [
                    [st for st, size in zip(t.stride(), t.shape, strict=True) if size > 1]
                    for t in (got, expected)
                ]
                assert layouts[0] == layouts[1], f"{name} {dtype} {n}: layout"
                assert bool(_same_bits(got, expected).all()), f"{name} {dtype} length {n}"
    x = _inputs(dtype)
    assert bool(_same_bits(op(x), python(x)).all())


def _softplus_reference(x: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:
    """numpy's float64 softplus rounded to x's dtype."""
    xd = x.double().numpy()
    with np.errstate(all="ignore"):
        value = np.where(xd * beta > threshold, xd, np.log1p(np.exp(xd * beta)) / beta)
    return torch.from_numpy(value).to(x.dtype)


@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 5.0)])
def test_float32_softplus_is_correctly_rounded(beta: float, threshold: float) -> None:
    """softplus in float64, rounded once: ATen's own computes it in float32 with the C library's
    expf and log1pf for its loop tails, whose bits changed with glibc 2.41."""
    x = _inputs(torch.float32)
    got = torch.nn.functional.softplus(x, beta, threshold)
    wrong = (~_same_bits(got, _softplus_reference(x, beta, threshold))).nonzero().flatten()
    assert wrong.numel() == 0, f"{wrong.numel()} wrong, first inputs {x[wrong[:5]].tolist()}"


def test_float32_sigmoid_and_elu_are_correctly_rounded() -> None:
    """Both in float64, rounded once: ATen's call the C library's expf and expm1f for their loop
    tails (expm1f changed in glibc 2.41), and for every value of a strided tensor."""
    x = _inputs(torch.float32)
    xd = x.double().numpy()
    with np.errstate(all="ignore"):
        sigmoid = torch.from_numpy((1.0 / (1.0 + np.exp(-xd))).astype(np.float32))
        elu = torch.from_numpy(np.where(xd < 0, np.expm1(xd), xd))
    assert bool(_same_bits(torch.sigmoid(x), sigmoid).all())
    got = torch.nn.functional.elu(x)
    assert bool(_same_bits(got, elu.float()).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_elu_gives_the_python_kernels_bits(dtype: torch.dtype) -> None:
    """ELU and its gradient, registered (compiled) against the Python definitions, on every
    length up to 70, long ones and other layouts, through nn.ELU, the out= and in-place forms
    and autograd (elu_backward from the input)."""
    rng = np.random.default_rng(13)
    for n in [*range(1, 71), 257, 4099, 70_001]:
        x = torch.from_numpy(rng.uniform(-30, 10, (n, 3))).to(dtype)
        grad = torch.from_numpy(rng.uniform(-2, 2, (n, 3))).to(dtype)
        for layout in (x, x.T, x[:, ::2]):
            got = torch.nn.ELU()(layout)
            assert bool(_same_bits(got, portable._elu(layout)).all()), f"elu {dtype} {n}"
        expected = portable._elu(x, 0.7, 1.3, 0.9)
        out = torch.empty(0, dtype=dtype)
        torch.ops.aten.elu.out(x, 0.7, 1.3, 0.9, out=out)
        assert bool(_same_bits(out, expected).all())
        y = x.clone()
        torch.ops.aten.elu_(y, 0.7, 1.3, 0.9)
        assert bool(_same_bits(y, expected).all())
        leaf = x.clone().requires_grad_()
        torch.nn.functional.elu(leaf).backward(grad)
        backward = portable._elu_backward(grad, 1.0, 1.0, 1.0, x)
        assert leaf.grad is not None and bool(_same_bits(leaf.grad, backward).all()), n


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_softplus_gives_the_python_kernels_bits(dtype: torch.dtype) -> None:
    """softplus and its gradient, registered (compiled) against the Python definitions, on every
    length up to 70, long ones and other layouts, through F.softplus, its out= form and
    autograd (softplus_backward)."""
    rng = np.random.default_rng(11)
    for n in [*range(1, 71), 257, 4099, 70_001]:
        x = torch.from_numpy(rng.uniform(-40, 40, (n, 3))).to(dtype)
        grad = torch.from_numpy(rng.uniform(-2, 2, (n, 3))).to(dtype)
        for beta, threshold in ((1.0, 20.0), (0.5, 3.0)):
            for layout in (x, x.T, x[:, ::2]):
                got = torch.nn.functional.softplus(layout, beta, threshold)
                expected = portable._softplus(layout, beta, threshold)
                assert bool(_same_bits(got, expected).all()), f"softplus {dtype} {n}"
            out = torch.empty(0, dtype=dtype)
            torch._C._nn.softplus(x, beta, threshold, out=out)  # type: ignore[call-arg]
            assert bool(_same_bits(out, portable._softplus(x, beta, threshold)).all())
            leaf = x.clone().requires_grad_()
            torch.nn.functional.softplus(leaf, beta, threshold).backward(grad)
            expected = portable._softplus_backward(grad, x, beta, threshold)
            assert leaf.grad is not None and bool(_same_bits(leaf.grad, expected).all())
            direct = torch.ops.aten.softplus_backward(grad.T, x.T, beta, threshold)
            assert bool(_same_bits(direct, expected.T).all()), f"backward {dtype} {n}"


def test_exp2_tails_do_not_reach_the_c_library() -> None:
    """ATen's float64 exp2 sends the last n % 8 values of a tensor to the C library's exp2, so a
    value's bits depend on where it sits (SLEEF and glibc part in the last bit for about 1% of
    values); `_exp2`, which the exp kernels use, pads every tensor to a multiple of 8 values, so
    SLEEF computes them all and the place does not matter."""
    rng = np.random.default_rng(3)
    values = torch.from_numpy(rng.uniform(-60, 60, 4096))
    sleef, ours = torch.exp2(values), portable._exp2(values)
    assert bool(_same_bits(ours, sleef).all())  # 4,096 values: no tail
    aten_moved = ours_moved = 0
    for start in range(0, 4096 - 13, 13):
        part = values[start : start + 13]
        aten_moved += int((~_same_bits(torch.exp2(part), sleef[start : start + 13])).sum())
        ours_moved += int((~_same_bits(portable._exp2(part), sleef[start : start + 13])).sum())
    assert aten_moved > 0 and ours_moved == 0, (aten_moved, ours_moved)
