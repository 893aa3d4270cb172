// The portable kernels registered with ATen for the CPU, in C++: no Python call per op.
//
// `rl_install()` does what portable.py's Python registration does, with the same results:
// sqrt, exp, log, tanh and sigmoid (functional, out= and in-place), pow(x, 0.5), softplus and
// ELU and their gradients, for float32 and float64: a contiguous tensor goes to portable.c, any
// other layout to the ATen ops of portable.py's functions, called in the same order. And every
// float32 matrix product (matmul.c, any layout): mm, addmm, bmm, addmv (and so mv), dot, vdot,
// baddbmm and addbmm. Other dtypes go to ATen's own kernel, taken from the dispatcher before it
// is replaced.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

extern "C" {
int rl_sqrt_f32(const float *, float *, int64_t);
int rl_sqrt_f64(const double *, double *, int64_t);
int rl_exp_f32(const float *, float *, int64_t);
int rl_exp_f64(const double *, double *, int64_t);
int rl_log_f32(const float *, float *, int64_t);
int rl_log_f64(const double *, double *, int64_t);
int rl_tanh_f32(const float *, float *, int64_t);
int rl_tanh_f64(const double *, double *, int64_t);
int rl_softplus_f32(const float *, float *, int64_t, double, double);
int rl_softplus_f64(const double *, double *, int64_t, double, double);
int rl_softplus_backward_f32(const float *, const float *, float *, int64_t, double, double);
int rl_softplus_backward_f64(const double *, const double *, double *, int64_t, double, double);
int rl_sigmoid_f32(const float *, float *, int64_t);
int rl_sigmoid_f64(const double *, double *, int64_t);
int rl_elu_f32(const float *, float *, int64_t, double, double, double);
int rl_elu_f64(const double *, double *, int64_t, double, double, double);
int rl_elu_backward_f32(const float *, const float *, float *, int64_t, double, double, double);
int rl_elu_backward_f64(const double *, const double *, double *, int64_t, double, double, double);
struct rl_matrix {  // matmul.c's `matrix`: element (i, j) at p[i * rs + j * cs]
  const float *p;
  int64_t rs, cs;
};
int rl_matmul_f32(int64_t, int64_t, int64_t, rl_matrix, rl_matrix, float *, int64_t, int64_t, float,
                  float, const float *, int64_t, int64_t);
}

namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kSqrtHalf = 0.70710678118654757;  // math.sqrt(0.5)
constexpr double kExpOverflow = 709.782712893384;

using F32 = int (*)(const float *, float *, int64_t);
using F64 = int (*)(const double *, double *, int64_t);
using Strided = at::Tensor (*)(const at::Tensor &);

bool floating(const at::Tensor &x) {
  return x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble;
}

// portable.py's functions on a tensor of any layout, as ATen ops.
at::Tensor sqrt_strided(const at::Tensor &x) {
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  out.copy_(x);
  if (x.scalar_type() == at::kFloat) {
    rl_sqrt_f32(out.const_data_ptr<float>(), out.mutable_data_ptr<float>(), out.numel());
  } else {
    rl_sqrt_f64(out.const_data_ptr<double>(), out.mutable_data_ptr<double>(), out.numel());
  }
  return out;
}

// exp2 with every value through SLEEF: ATen sends the last n % 8 values of a contiguous tensor
// to the C library's exp2, so the values are padded to a multiple of 8 (portable._exp2).
at::Tensor exp2_padded(const at::Tensor &x) {
  at::Tensor flat = x.reshape({-1});
  int64_t n = flat.numel(), pad = (8 - n % 8) % 8;
  at::Tensor padded = at::cat({flat, at::zeros({pad}, flat.options())});
  return at::exp2(padded).narrow(0, 0, n).reshape(x.sizes());
}

at::Tensor exp_strided(const at::Tensor &x) {
  if (x.scalar_type() == at::kFloat) {
    return exp2_padded(x.to(at::kDouble) * kLog2e).to(at::kFloat);
  }
  at::Tensor k = at::round(x * kLog2e).clamp_(-1100.0, 1100.0);
  at::Tensor r = (x - k * kLn2Hi) - k * kLn2Lo;
  at::Tensor half = at::floor(k * 0.5);
  at::Tensor y = (at::expm1(r) + 1.0) * exp2_padded(half) * exp2_padded(k - half);
  return at::where(x > kExpOverflow, c10::Scalar(INFINITY), y);
}

at::Tensor log_strided(const at::Tensor &x) {
  at::Tensor xd = x.to(at::kDouble);
  auto [mantissa, exponent] = at::frexp(xd);
  at::Tensor small = mantissa < kSqrtHalf;
  mantissa = at::where(small, mantissa * 2.0, mantissa);
  at::Tensor e = (exponent - small.to(exponent.scalar_type())).to(at::kDouble);
  at::Tensor y = (e * kLn2Hi + at::log1p(mantissa - 1.0)) + e * kLn2Lo;
  y = at::where(xd == INFINITY, c10::Scalar(INFINITY), y);
  return y.to(x.scalar_type());
}

at::Tensor tanh_strided(const at::Tensor &x) {
  at::Tensor xd = x.to(at::kDouble);
  at::Tensor t = at::expm1(xd.abs() * -2.0);
  return at::copysign(-t / (t + 2.0), xd).to(x.scalar_type());
}

// portable._sigmoid as ATen ops: exp goes to the portable kernel registered below.
at::Tensor sigmoid_strided(const at::Tensor &x) {
  return (1.0 / (1.0 + at::exp(-x.to(at::kDouble)))).to(x.scalar_type());
}

struct Portable {
  F32 f32;
  F64 f64;
  Strided strided;
};

// `op` of float32 or float64 `x`: portable.c on a contiguous tensor, else the ATen ops.
at::Tensor compute(const Portable &op, const at::Tensor &x) {
  if (!x.is_contiguous()) return op.strided(x);
  at::Tensor out = at::empty(x.sizes(), x.options());
  int failed = x.scalar_type() == at::kFloat
                   ? op.f32(x.const_data_ptr<float>(), out.mutable_data_ptr<float>(), x.numel())
                   : op.f64(x.const_data_ptr<double>(), out.mutable_data_ptr<double>(), x.numel());
  TORCH_CHECK(failed == 0, "portable kernel: no memory for ", x.numel(), " values");
  return out;
}

// ATen's own kernel of one overload, called boxed.
struct Original {
  c10::OperatorHandle op;
  c10::SafeKernelFunction kernel;

  void call(c10::DispatchKeySet keys, std::vector<c10::IValue> args, at::Tensor *result) const {
    torch::jit::Stack stack(std::move(args));
    kernel.callBoxed(op, keys, &stack);
    if (result != nullptr) *result = stack[0].toTensor();
  }
};

std::optional<Original> take(const char *name, const char *overload) {
  c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
  return Original{op, op.getComputedKernelForDispatchKey(c10::DispatchKey::CPU)};
}

// Resize `out` as ATen's out= forms do, then copy.
at::Tensor &write_out(const at::Tensor &result, at::Tensor &out) {
  if (out.sizes() != result.sizes()) out.resize_(result.sizes());
  return out.copy_(result);
}

// One unary op's three forms and their originals; `Index` tells the ops apart.
template <int Index>
struct Unary {
  static inline Portable portable;
  static inline std::optional<Original> functional, out_form, in_place;

  static at::Tensor call(c10::DispatchKeySet keys, const at::Tensor &x) {
    if (floating(x)) return compute(portable, x);
    at::Tensor result;
    functional->call(keys, {x}, &result);
    return result;
  }

  static at::Tensor &call_out(c10::DispatchKeySet keys, const at::Tensor &x, at::Tensor &out) {
    if (floating(x) && out.scalar_type() == x.scalar_type()) {
      return write_out(compute(portable, x), out);
    }
    out_form->call(keys, {x, out}, nullptr);
    return out;
  }

  static at::Tensor &call_(c10::DispatchKeySet keys, at::Tensor &x) {
    if (floating(x)) return x.copy_(compute(portable, x));
    in_place->call(keys, {x}, nullptr);
    return x;
  }

  static void install(torch::Library &lib, const char *name, Portable op) {
    std::string base = std::string("aten::") + name;
    portable = op;
    functional = take(base.c_str(), "");
    out_form = take(base.c_str(), "out");
    in_place = take((base + "_").c_str(), "");
    lib.impl(name, TORCH_FN(call));
    lib.impl((std::string(name) + ".out").c_str(), TORCH_FN(call_out));
    lib.impl((std::string(name) + "_").c_str(), TORCH_FN(call_));
  }
};

// pow(x, 0.5), which ATen computes with its (MKL) sqrt kernel directly.
struct PowHalf {
  static inline std::optional<Original> functional, out_form, in_place;
  static inline Portable sqrt{rl_sqrt_f32, rl_sqrt_f64, sqrt_strided};

  static bool half(const at::Tensor &x, const c10::Scalar &exponent) {
    return floating(x) && !exponent.isBoolean() && !exponent.isComplex() &&
           exponent.toDouble() == 0.5;
  }

  static at::Tensor call(c10::DispatchKeySet keys, const at::Tensor &x, const c10::Scalar &e) {
    if (half(x, e)) return compute(sqrt, x);
    at::Tensor result;
    functional->call(keys, {x, e}, &result);
    return result;
  }

  static at::Tensor &call_out(
      c10::DispatchKeySet keys, const at::Tensor &x, const c10::Scalar &e, at::Tensor &out) {
    if (half(x, e) && out.scalar_type() == x.scalar_type()) {
      return write_out(compute(sqrt, x), out);
    }
    out_form->call(keys, {x, e, out}, nullptr);
    return out;
  }

  static at::Tensor &call_(c10::DispatchKeySet keys, at::Tensor &x, const c10::Scalar &e) {
    if (half(x, e)) return x.copy_(compute(sqrt, x));
    in_place->call(keys, {x, e}, nullptr);
    return x;
  }

  static void install(torch::Library &lib) {
    functional = take("aten::pow", "Tensor_Scalar");
    out_form = take("aten::pow", "Tensor_Scalar_out");
    in_place = take("aten::pow_", "Scalar");
    lib.impl("pow.Tensor_Scalar", TORCH_FN(call));
    lib.impl("pow.Tensor_Scalar_out", TORCH_FN(call_out));
    lib.impl("pow_.Scalar", TORCH_FN(call_));
  }
};

// softplus and its gradient (portable._softplus, portable._softplus_backward), which ATen
// computes with the C library's expf and log1pf for the values its vector loop leaves over.
// Other layouts are made contiguous: the values, not the layout, set the bits.
struct Softplus {
  static inline std::optional<Original> functional, out_form, backward, backward_out;

  static bool ours(const at::Tensor &x) { return floating(x); }

  static at::Tensor forward(const at::Tensor &self, const c10::Scalar &beta, const c10::Scalar &threshold) {
    at::Tensor x = self.contiguous(), out = at::empty(x.sizes(), x.options());
    double b = beta.toDouble(), t = threshold.toDouble();
    int failed = x.scalar_type() == at::kFloat
                     ? rl_softplus_f32(x.const_data_ptr<float>(), out.mutable_data_ptr<float>(), x.numel(), b, t)
                     : rl_softplus_f64(x.const_data_ptr<double>(), out.mutable_data_ptr<double>(), x.numel(), b, t);
    TORCH_CHECK(failed == 0, "portable softplus: no memory for ", x.numel(), " values");
    return out;
  }

  static at::Tensor gradient(const at::Tensor &grad, const at::Tensor &self, const c10::Scalar &beta,
                             const c10::Scalar &threshold) {
    at::Tensor g = grad.contiguous(), x = self.contiguous(), out = at::empty(x.sizes(), x.options());
    double b = beta.toDouble(), t = threshold.toDouble();
    int failed = x.scalar_type() == at::kFloat
                     ? rl_softplus_backward_f32(g.const_data_ptr<float>(), x.const_data_ptr<float>(),
                                                out.mutable_data_ptr<float>(), x.numel(), b, t)
                     : rl_softplus_backward_f64(g.const_data_ptr<double>(), x.const_data_ptr<double>(),
                                                out.mutable_data_ptr<double>(), x.numel(), b, t);
    TORCH_CHECK(failed == 0, "portable softplus_backward: no memory for ", x.numel(), " values");
    return out;
  }

  // The gradient is ours when both tensors are of one floating dtype and shape (no broadcast).
  static bool ours(const at::Tensor &grad, const at::Tensor &self) {
    return floating(self) && grad.scalar_type() == self.scalar_type() && grad.sizes() == self.sizes();
  }

  static at::Tensor call(c10::DispatchKeySet keys, const at::Tensor &x, const c10::Scalar &beta,
                         const c10::Scalar &threshold) {
    if (ours(x)) return forward(x, beta, threshold);
    at::Tensor result;
    functional->call(keys, {x, beta, threshold}, &result);
    return result;
  }

  static at::Tensor &call_out(c10::DispatchKeySet keys, const at::Tensor &x, const c10::Scalar &beta,
                              const c10::Scalar &threshold, at::Tensor &out) {
    if (ours(x) && out.scalar_type() == x.scalar_type()) return write_out(forward(x, beta, threshold), out);
    out_form->call(keys, {x, beta, threshold, out}, nullptr);
    return out;
  }

  static at::Tensor call_backward(c10::DispatchKeySet keys, const at::Tensor &grad, const at::Tensor &x,
                                  const c10::Scalar &beta, const c10::Scalar &threshold) {
    if (ours(grad, x)) return gradient(grad, x, beta, threshold);
    at::Tensor result;
    backward->call(keys, {grad, x, beta, threshold}, &result);
    return result;
  }

  static at::Tensor &call_backward_out(c10::DispatchKeySet keys, const at::Tensor &grad, const at::Tensor &x,
                                       const c10::Scalar &beta, const c10::Scalar &threshold,
                                       at::Tensor &grad_input) {
    if (ours(grad, x) && grad_input.scalar_type() == x.scalar_type()) {
      return write_out(gradient(grad, x, beta, threshold), grad_input);
    }
    backward_out->call(keys, {grad, x, beta, threshold, grad_input}, nullptr);
    return grad_input;
  }

  static void install(torch::Library &lib) {
    functional = take("aten::softplus", "");
    out_form = take("aten::softplus", "out");
    backward = take("aten::softplus_backward", "");
    backward_out = take("aten::softplus_backward", "grad_input");
    lib.impl("softplus", TORCH_FN(call));
    lib.impl("softplus.out", TORCH_FN(call_out));
    lib.impl("softplus_backward", TORCH_FN(call_backward));
    lib.impl("softplus_backward.grad_input", TORCH_FN(call_backward_out));
  }
};

// ELU and its gradient from the input (portable._elu, portable._elu_backward): ATen's call the C
// library's expm1f and expf for the values its vector loop leaves over (and for every value of
// a strided tensor). The gradient from the result (`is_result`, in-place ELU) calls no math
// function and stays ATen's.
struct Elu {
  static inline std::optional<Original> functional, out_form, in_place, backward, backward_out;

  static at::Tensor forward(const at::Tensor &self, const c10::Scalar &alpha, const c10::Scalar &scale,
                            const c10::Scalar &input_scale) {
    at::Tensor x = self.contiguous(), out = at::empty(x.sizes(), x.options());
    double a = alpha.toDouble(), s = scale.toDouble(), i = input_scale.toDouble();
    int failed = x.scalar_type() == at::kFloat
                     ? rl_elu_f32(x.const_data_ptr<float>(), out.mutable_data_ptr<float>(), x.numel(), a, s, i)
                     : rl_elu_f64(x.const_data_ptr<double>(), out.mutable_data_ptr<double>(), x.numel(), a, s, i);
    TORCH_CHECK(failed == 0, "portable elu: no memory for ", x.numel(), " values");
    return out;
  }

  static at::Tensor gradient(const at::Tensor &grad, const c10::Scalar &alpha, const c10::Scalar &scale,
                             const c10::Scalar &input_scale, const at::Tensor &self) {
    at::Tensor g = grad.contiguous(), x = self.contiguous(), out = at::empty(x.sizes(), x.options());
    double a = alpha.toDouble(), s = scale.toDouble(), i = input_scale.toDouble();
    int failed = x.scalar_type() == at::kFloat
                     ? rl_elu_backward_f32(g.const_data_ptr<float>(), x.const_data_ptr<float>(),
                                           out.mutable_data_ptr<float>(), x.numel(), a, s, i)
                     : rl_elu_backward_f64(g.const_data_ptr<double>(), x.const_data_ptr<double>(),
                                           out.mutable_data_ptr<double>(), x.numel(), a, s, i);
    TORCH_CHECK(failed == 0, "portable elu_backward: no memory for ", x.numel(), " values");
    return out;
  }

  static bool ours(const at::Tensor &grad, const at::Tensor &self) {
    return floating(self) && grad.scalar_type() == self.scalar_type() && grad.sizes() == self.sizes();
  }

  static at::Tensor call(c10::DispatchKeySet keys, const at::Tensor &x, const c10::Scalar &alpha,
                         const c10::Scalar &scale, const c10::Scalar &input_scale) {
    if (floating(x)) return forward(x, alpha, scale, input_scale);
    at::Tensor result;
    functional->call(keys, {x, alpha, scale, input_scale}, &result);
    return result;
  }

  static at::Tensor &call_out(c10::DispatchKeySet keys, const at::Tensor &x, const c10::Scalar &alpha,
                              const c10::Scalar &scale, const c10::Scalar &input_scale, at::Tensor &out) {
    if (floating(x) && out.scalar_type() == x.scalar_type()) {
      return write_out(forward(x, alpha, scale, input_scale), out);
    }
    out_form->call(keys, {x, alpha, scale, input_scale, out}, nullptr);
    return out;
  }

  static at::Tensor &call_(c10::DispatchKeySet keys, at::Tensor &x, const c10::Scalar &alpha,
                           const c10::Scalar &scale, const c10::Scalar &input_scale) {
    if (floating(x)) return x.copy_(forward(x, alpha, scale, input_scale));
    in_place->call(keys, {x, alpha, scale, input_scale}, nullptr);
    return x;
  }

  static at::Tensor call_backward(c10::DispatchKeySet keys, const at::Tensor &grad, const c10::Scalar &alpha,
                                  const c10::Scalar &scale, const c10::Scalar &input_scale, bool is_result,
                                  const at::Tensor &self_or_result) {
    if (!is_result && ours(grad, self_or_result)) return gradient(grad, alpha, scale, input_scale, self_or_result);
    at::Tensor result;
    backward->call(keys, {grad, alpha, scale, input_scale, is_result, self_or_result}, &result);
    return result;
  }

  static at::Tensor &call_backward_out(c10::DispatchKeySet keys, const at::Tensor &grad, const c10::Scalar &alpha,
                                       const c10::Scalar &scale, const c10::Scalar &input_scale, bool is_result,
                                       const at::Tensor &self_or_result, at::Tensor &grad_input) {
    if (!is_result && ours(grad, self_or_result) && grad_input.scalar_type() == self_or_result.scalar_type()) {
      return write_out(gradient(grad, alpha, scale, input_scale, self_or_result), grad_input);
    }
    backward_out->call(keys, {grad, alpha, scale, input_scale, is_result, self_or_result, grad_input}, nullptr);
    return grad_input;
  }

  static void install(torch::Library &lib) {
    functional = take("aten::elu", "");
    out_form = take("aten::elu", "out");
    in_place = take("aten::elu_", "");
    backward = take("aten::elu_backward", "");
    backward_out = take("aten::elu_backward", "grad_input");
    lib.impl("elu", TORCH_FN(call));
    lib.impl("elu.out", TORCH_FN(call_out));
    lib.impl("elu_", TORCH_FN(call_));
    lib.impl("elu_backward", TORCH_FN(call_backward));
    lib.impl("elu_backward.grad_input", TORCH_FN(call_backward_out));
  }
};

// float32 mm, addmm and bmm (functional, out= and in-place) as matmul.c's fixed-order product;
// other dtypes, shapes ATen refuses and unbroadcastable biases to ATen's own kernels (and their
// errors).
struct Matmul {
  static inline std::optional<Original> mm, mm_out, addmm, addmm_out, addmm_, bmm, bmm_out;

  static bool ours(const at::Tensor &a, const at::Tensor &b, int64_t dim) {
    return a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.dim() == dim &&
           b.dim() == dim && a.size(dim - 1) == b.size(dim - 2) &&
           (dim == 2 || a.size(0) == b.size(0));
  }

  static bool scalars(const c10::Scalar &beta, const c10::Scalar &alpha) {
    return !beta.isComplex() && !alpha.isComplex();
  }

  // c = beta * self + alpha * (a b), self broadcast to c's shape (unread when beta is 0).
  static void into(at::Tensor &c, const at::Tensor &a, const at::Tensor &b, float alpha, float beta,
                   const at::Tensor *self) {
    int64_t m = a.size(0), k = a.size(1), n = b.size(1);
    at::Tensor s;
    if (beta != 0.0f) s = self->expand({m, n});
    rl_matrix av{a.const_data_ptr<float>(), a.stride(0), a.stride(1)};
    rl_matrix bv{b.const_data_ptr<float>(), b.stride(0), b.stride(1)};
    int failed = rl_matmul_f32(m, n, k, av, bv, c.mutable_data_ptr<float>(), c.stride(0), c.stride(1),
                               alpha, beta, beta != 0.0f ? s.const_data_ptr<float>() : nullptr,
                               beta != 0.0f ? s.stride(0) : 0, beta != 0.0f ? s.stride(1) : 0);
    TORCH_CHECK(failed == 0, "portable matmul: no memory for ", m, "x", k, " times ", k, "x", n);
  }

  static at::Tensor product(const at::Tensor &a, const at::Tensor &b, float alpha, float beta,
                            const at::Tensor *self) {
    at::Tensor c = at::empty({a.size(0), b.size(1)}, a.options());
    into(c, a, b, alpha, beta, self);
    return c;
  }

  static at::Tensor batched(const at::Tensor &a, const at::Tensor &b) {
    at::Tensor c = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
    for (int64_t i = 0; i < a.size(0); ++i) {
      at::Tensor ci = c.select(0, i);
      into(ci, a.select(0, i), b.select(0, i), 1.0f, 0.0f, nullptr);
    }
    return c;
  }

  static bool addable(const at::Tensor &self, const at::Tensor &a, const at::Tensor &b,
                      const c10::Scalar &beta, const c10::Scalar &alpha) {
    return ours(a, b, 2) && self.scalar_type() == at::kFloat && scalars(beta, alpha) &&
           at::is_expandable_to(self.sizes(), {a.size(0), b.size(1)});
  }

  static at::Tensor call_mm(c10::DispatchKeySet keys, const at::Tensor &a, const at::Tensor &b) {
    if (ours(a, b, 2)) return product(a, b, 1.0f, 0.0f, nullptr);
    at::Tensor result;
    mm->call(keys, {a, b}, &result);
    return result;
  }

  static at::Tensor &call_mm_out(c10::DispatchKeySet keys, const at::Tensor &a, const at::Tensor &b,
                                 at::Tensor &out) {
    if (ours(a, b, 2) && out.scalar_type() == at::kFloat) {
      return write_out(product(a, b, 1.0f, 0.0f, nullptr), out);
    }
    mm_out->call(keys, {a, b, out}, nullptr);
    return out;
  }

  static at::Tensor call_addmm(c10::DispatchKeySet keys, const at::Tensor &self, const at::Tensor &a,
                               const at::Tensor &b, const c10::Scalar &beta, const c10::Scalar &alpha) {
    if (addable(self, a, b, beta, alpha)) {
      return product(a, b, alpha.to<float>(), beta.to<float>(), &self);
    }
    at::Tensor result;
    addmm->call(keys, {self, a, b, beta, alpha}, &result);
    return result;
  }

  static at::Tensor &call_addmm_out(c10::DispatchKeySet keys, const at::Tensor &self,
                                    const at::Tensor &a, const at::Tensor &b, const c10::Scalar &beta,
                                    const c10::Scalar &alpha, at::Tensor &out) {
    if (addable(self, a, b, beta, alpha) && out.scalar_type() == at::kFloat) {
      return write_out(product(a, b, alpha.to<float>(), beta.to<float>(), &self), out);
    }
    addmm_out->call(keys, {self, a, b, beta, alpha, out}, nullptr);
    return out;
  }

  static at::Tensor &call_addmm_(c10::DispatchKeySet keys, at::Tensor &self, const at::Tensor &a,
                                 const at::Tensor &b, const c10::Scalar &beta, const c10::Scalar &alpha) {
    if (addable(self, a, b, beta, alpha) && self.sizes() == at::IntArrayRef{a.size(0), b.size(1)}) {
      return self.copy_(product(a, b, alpha.to<float>(), beta.to<float>(), &self));
    }
    addmm_->call(keys, {self, a, b, beta, alpha}, nullptr);
    return self;
  }

  static at::Tensor call_bmm(c10::DispatchKeySet keys, const at::Tensor &a, const at::Tensor &b) {
    if (ours(a, b, 3)) return batched(a, b);
    at::Tensor result;
    bmm->call(keys, {a, b}, &result);
    return result;
  }

  static at::Tensor &call_bmm_out(c10::DispatchKeySet keys, const at::Tensor &a, const at::Tensor &b,
                                  at::Tensor &out) {
    if (ours(a, b, 3) && out.scalar_type() == at::kFloat) return write_out(batched(a, b), out);
    bmm_out->call(keys, {a, b, out}, nullptr);
    return out;
  }

  static void install(torch::Library &lib) {
    mm = take("aten::mm", "");
    mm_out = take("aten::mm", "out");
    addmm = take("aten::addmm", "");
    addmm_out = take("aten::addmm", "out");
    addmm_ = take("aten::addmm_", "");
    bmm = take("aten::bmm", "");
    bmm_out = take("aten::bmm", "out");
    lib.impl("mm", TORCH_FN(call_mm));
    lib.impl("mm.out", TORCH_FN(call_mm_out));
    lib.impl("addmm", TORCH_FN(call_addmm));
    lib.impl("addmm.out", TORCH_FN(call_addmm_out));
    lib.impl("addmm_", TORCH_FN(call_addmm_));
    lib.impl("bmm", TORCH_FN(call_bmm));
    lib.impl("bmm.out", TORCH_FN(call_bmm_out));
  }
};

bool float32(const at::Tensor &x) { return x.scalar_type() == at::kFloat; }

// The other products as matmul.c's: `compute` gives the result, or nothing when the arguments
// are not ours (other dtypes, shapes ATen refuses: its kernel then runs, with its errors).
using Scaled = std::optional<at::Tensor> (*)(const at::Tensor &, const at::Tensor &,
                                             const at::Tensor &, const c10::Scalar &,
                                             const c10::Scalar &);

// addmv: self + mat vec, the vector as a one-column matrix (mv is ATen's addmv with beta 0).
std::optional<at::Tensor> addmv(const at::Tensor &self, const at::Tensor &mat, const at::Tensor &vec,
                                const c10::Scalar &beta, const c10::Scalar &alpha) {
  if (vec.dim() != 1 || !float32(self) || !Matmul::ours(mat, vec.unsqueeze(1), 2) ||
      !Matmul::scalars(beta, alpha) || self.dim() > 1 ||
      !at::is_expandable_to(self.sizes(), {mat.size(0)})) {
    return std::nullopt;
  }
  at::Tensor c = at::empty({mat.size(0), 1}, mat.options());
  at::Tensor column = self.dim() == 1 ? self.unsqueeze(1) : self;
  Matmul::into(c, mat, vec.unsqueeze(1), alpha.to<float>(), beta.to<float>(), &column);
  return c.view({mat.size(0)});
}

// baddbmm: self[i] + batch1[i] batch2[i] for each i, self broadcast to the result's shape.
std::optional<at::Tensor> baddbmm(const at::Tensor &self, const at::Tensor &a, const at::Tensor &b,
                                  const c10::Scalar &beta, const c10::Scalar &alpha) {
  if (!float32(self) || !Matmul::ours(a, b, 3) || !Matmul::scalars(beta, alpha) ||
      !at::is_expandable_to(self.sizes(), {a.size(0), a.size(1), b.size(2)})) {
    return std::nullopt;
  }
  at::Tensor c = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
  at::Tensor s = self.expand(c.sizes());
  for (int64_t i = 0; i < a.size(0); ++i) {
    at::Tensor ci = c.select(0, i), si = s.select(0, i);
    Matmul::into(ci, a.select(0, i), b.select(0, i), alpha.to<float>(), beta.to<float>(), &si);
  }
  return c;
}

// addbmm: self + the sum of batch1[i] batch2[i], as one product over the batches' inner
// dimensions laid end to end (batch 0's first), so each element is one chain of fmas.
std::optional<at::Tensor> addbmm(const at::Tensor &self, const at::Tensor &a, const at::Tensor &b,
                                 const c10::Scalar &beta, const c10::Scalar &alpha) {
  if (!float32(self) || !Matmul::ours(a, b, 3) || !Matmul::scalars(beta, alpha) ||
      self.dim() > 2 || !at::is_expandable_to(self.sizes(), {a.size(1), b.size(2)})) {
    return std::nullopt;
  }
  int64_t inner = a.size(0) * a.size(2);
  at::Tensor left = a.permute({1, 0, 2}).reshape({a.size(1), inner});
  return Matmul::product(left, b.reshape({inner, b.size(2)}), alpha.to<float>(), beta.to<float>(),
                         &self);
}

// One scaled product's three forms (self + product, its out= form, in place on self).
template <int Index>
struct ScaledProduct {
  static inline Scaled compute;
  static inline std::optional<Original> functional, out_form, in_place;

  static at::Tensor call(c10::DispatchKeySet keys, const at::Tensor &self, const at::Tensor &a,
                         const at::Tensor &b, const c10::Scalar &beta, const c10::Scalar &alpha) {
    if (auto result = compute(self, a, b, beta, alpha)) return *result;
    at::Tensor result;
    functional->call(keys, {self, a, b, beta, alpha}, &result);
    return result;
  }

  static at::Tensor &call_out(c10::DispatchKeySet keys, const at::Tensor &self, const at::Tensor &a,
                              const at::Tensor &b, const c10::Scalar &beta, const c10::Scalar &alpha,
                              at::Tensor &out) {
    if (float32(out)) {
      if (auto result = compute(self, a, b, beta, alpha)) return write_out(*result, out);
    }
    out_form->call(keys, {self, a, b, beta, alpha, out}, nullptr);
    return out;
  }

  static at::Tensor &call_(c10::DispatchKeySet keys, at::Tensor &self, const at::Tensor &a,
                           const at::Tensor &b, const c10::Scalar &beta, const c10::Scalar &alpha) {
    auto result = compute(self, a, b, beta, alpha);
    if (result && result->sizes() == self.sizes()) return self.copy_(*result);
    in_place->call(keys, {self, a, b, beta, alpha}, nullptr);
    return self;
  }

  static void install(torch::Library &lib, const char *name, Scaled op) {
    std::string base = std::string("aten::") + name;
    compute = op;
    functional = take(base.c_str(), "");
    out_form = take(base.c_str(), "out");
    in_place = take((base + "_").c_str(), "");
    lib.impl(name, TORCH_FN(call));
    lib.impl((std::string(name) + ".out").c_str(), TORCH_FN(call_out));
    lib.impl((std::string(name) + "_").c_str(), TORCH_FN(call_));
  }
};

// dot and vdot of float32 vectors (vdot conjugates nothing in real numbers): a 1 x k times k x 1
// product. Their out= forms are ATen's composites, which call these.
template <int Index>
struct Dot {
  static inline std::optional<Original> original;

  static at::Tensor call(c10::DispatchKeySet keys, const at::Tensor &x, const at::Tensor &y) {
    if (float32(x) && float32(y) && x.dim() == 1 && y.dim() == 1 && x.size(0) == y.size(0)) {
      return Matmul::product(x.unsqueeze(0), y.unsqueeze(1), 1.0f, 0.0f, nullptr).view(at::IntArrayRef{});
    }
    at::Tensor result;
    original->call(keys, {x, y}, &result);
    return result;
  }

  static void install(torch::Library &lib, const char *name) {
    original = take((std::string("aten::") + name).c_str(), "");
    lib.impl(name, TORCH_FN(call));
  }
};

std::unique_ptr<torch::Library> library;

// Drops warnings: "Overriding a previously registered kernel" is what rl_install does.
struct Quiet : c10::WarningHandler {
  void process(const c10::Warning & /*warning*/) override {}
};

}  // namespace

// Register the kernels for this process (once); 0 when done, 1 on an error (printed).
extern "C" int rl_install() {
  if (library) return 0;
  Quiet quiet;
  c10::WarningUtils::WarningHandlerGuard guard(&quiet);
  try {
    auto lib = std::make_unique<torch::Library>(
        torch::Library::IMPL, "aten", c10::DispatchKey::CPU, __FILE__, __LINE__);
    Unary<0>::install(*lib, "sqrt", {rl_sqrt_f32, rl_sqrt_f64, sqrt_strided});
    Unary<1>::install(*lib, "exp", {rl_exp_f32, rl_exp_f64, exp_strided});
    Unary<2>::install(*lib, "log", {rl_log_f32, rl_log_f64, log_strided});
    Unary<3>::install(*lib, "tanh", {rl_tanh_f32, rl_tanh_f64, tanh_strided});
    Unary<4>::install(*lib, "sigmoid", {rl_sigmoid_f32, rl_sigmoid_f64, sigmoid_strided});
    PowHalf::install(*lib);
    Softplus::install(*lib);
    Elu::install(*lib);
    Matmul::install(*lib);
    ScaledProduct<0>::install(*lib, "addmv", addmv);
    ScaledProduct<1>::install(*lib, "baddbmm", baddbmm);
    ScaledProduct<2>::install(*lib, "addbmm", addbmm);
    Dot<0>::install(*lib, "dot");
    Dot<1>::install(*lib, "vdot");
    library = std::move(lib);
    return 0;
  } catch (const std::exception &error) {
    fprintf(stderr, "rlrepro: portable kernels: %s\n", error.what());
    return 1;
  }
}
