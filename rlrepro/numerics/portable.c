/* The portable kernels of portable.py, compiled: the same operations in the same order, so the
 * same bits, without a Python call per ATen op.
 *
 * portable.py computes each function from ATen ops on contiguous float64 tensors. With the AVX2
 * kernels that rlrepro pins, ATen computes expm1 and log1p of every value with SLEEF's
 * *d4_u10 vector functions (exported by libtorch_cpu), four at a time, the last ones padded
 * (`vector_all`). Its exp2 runs in blocks of 8 values through SLEEF and the last n % 8 through
 * the C library's exp2 (aten/src/ATen/native/cpu/Loops.h: vectorized_loop, then basic_loop), so
 * portable.py pads its exp2 inputs to a multiple of 8 and this file runs every value through
 * SLEEF: no value depends on the C library's math functions. Every other step is one IEEE
 * operation (+, -, *, /, rounding to float32, rint, floor, copysign, frexp), exact in C as in
 * ATen: build with -ffp-contract=off (no fused multiply-add) and without -ffast-math.
 * tests/test_portable.py compares both, bit for bit.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

__m256d Sleef_expm1d4_u10(__m256d);
__m256d Sleef_exp2d4_u10(__m256d);
__m256d Sleef_log1pd4_u10(__m256d);

typedef __m256d (*vector_fn)(__m256d);

#define LOG2E 1.4426950408889634
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define SQRT_HALF 0.70710678118654757
#define EXP_OVERFLOW 709.782712893384

/* `vector` over v[0..n) in place, four values at a time; the last group padded with zeros. */
static void vector_all(double *v, int64_t n, vector_fn vector) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(v + i, vector(_mm256_loadu_pd(v + i)));
    if (i == n) return;
    double last[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t j = i; j < n; ++j) last[j - i] = v[j];
    _mm256_storeu_pd(last, vector(_mm256_loadu_pd(last)));
    for (int64_t j = i; j < n; ++j) v[j] = last[j - i];
}

/* Room for `count` arrays of n doubles: `stack` (SMALL doubles per array) for the small tensors
 * of a policy's step, else the heap; NULL when the heap has none. */
#define SMALL 256

static double *scratch(int count, int64_t n, double *stack) {
    return n <= SMALL ? stack : malloc((size_t)count * (size_t)n * sizeof(double));
}

static void release(double *t, double *stack) {
    if (t != stack) free(t);
}

/* exp2(x * log2 e) in float64, rounded to float32 (portable._exp, float32). */
int rl_exp_f32(const float *x, float *y, int64_t n) {
    double stack[1 * SMALL], *t = scratch(1, n, stack);
    if (t == NULL) return -1;
    for (int64_t i = 0; i < n; ++i) t[i] = (double)x[i] * LOG2E;
    vector_all(t, n, Sleef_exp2d4_u10);
    for (int64_t i = 0; i < n; ++i) y[i] = (float)t[i];
    release(t, stack);
    return 0;
}

/* Cody-Waite: y = 2**k * (expm1(r) + 1) of x[0..n) in float64 (portable._exp, float64), with
 * `work` room for 3n doubles; y may be x. */
static void exp_f64(const double *x, double *y, int64_t n, double *work) {
    double *r = work, *a = work + n, *b = work + 2 * n;
    for (int64_t i = 0; i < n; ++i) {
        double ki = rint(x[i] * LOG2E);
        ki = ki < -1100.0 ? -1100.0 : (ki > 1100.0 ? 1100.0 : ki);
        double half = floor(ki * 0.5);
        r[i] = (x[i] - ki * LN2_HI) - ki * LN2_LO;
        a[i] = half;
        b[i] = ki - half;
    }
    vector_all(r, n, Sleef_expm1d4_u10);
    vector_all(a, n, Sleef_exp2d4_u10);
    vector_all(b, n, Sleef_exp2d4_u10);
    for (int64_t i = 0; i < n; ++i) {
        double value = (r[i] + 1.0) * a[i] * b[i];
        y[i] = x[i] > EXP_OVERFLOW ? INFINITY : value;
    }
}

int rl_exp_f64(const double *x, double *y, int64_t n) {
    double stack[3 * SMALL], *t = scratch(3, n, stack);
    if (t == NULL) return -1;
    exp_f64(x, y, n, t);
    release(t, stack);
    return 0;
}

/* e ln 2 + log1p(m - 1), m in [sqrt(1/2), sqrt(2)) (portable._log): `m` holds m - 1, then
 * log1p of it; `e` holds the exponent as a double. */
static void log_parts(double xd, double *m, double *e) {
    int exponent;
    double mantissa = frexp(xd, &exponent);
    int small = mantissa < SQRT_HALF;
    if (small) mantissa = mantissa * 2.0;
    *e = (double)(exponent - small);
    *m = mantissa - 1.0;
}

static double log_join(double xd, double log1p_m, double e) {
    double value = (e * LN2_HI + log1p_m) + e * LN2_LO;
    return xd == INFINITY ? INFINITY : value;
}

int rl_log_f32(const float *x, float *y, int64_t n) {
    double stack[2 * SMALL], *t = scratch(2, n, stack);
    if (t == NULL) return -1;
    double *m = t, *e = t + n;
    for (int64_t i = 0; i < n; ++i) log_parts((double)x[i], m + i, e + i);
    vector_all(m, n, Sleef_log1pd4_u10);
    for (int64_t i = 0; i < n; ++i) y[i] = (float)log_join((double)x[i], m[i], e[i]);
    release(t, stack);
    return 0;
}

int rl_log_f64(const double *x, double *y, int64_t n) {
    double stack[2 * SMALL], *t = scratch(2, n, stack);
    if (t == NULL) return -1;
    double *m = t, *e = t + n;
    for (int64_t i = 0; i < n; ++i) log_parts(x[i], m + i, e + i);
    vector_all(m, n, Sleef_log1pd4_u10);
    for (int64_t i = 0; i < n; ++i) y[i] = log_join(x[i], m[i], e[i]);
    release(t, stack);
    return 0;
}

/* t = expm1(-2|x|), tanh x = -t / (t + 2) with x's sign (portable._tanh). */
int rl_tanh_f32(const float *x, float *y, int64_t n) {
    double stack[1 * SMALL], *t = scratch(1, n, stack);
    if (t == NULL) return -1;
    for (int64_t i = 0; i < n; ++i) t[i] = fabs((double)x[i]) * -2.0;
    vector_all(t, n, Sleef_expm1d4_u10);
    for (int64_t i = 0; i < n; ++i) y[i] = (float)copysign(-t[i] / (t[i] + 2.0), (double)x[i]);
    release(t, stack);
    return 0;
}

int rl_tanh_f64(const double *x, double *y, int64_t n) {
    double stack[1 * SMALL], *t = scratch(1, n, stack);
    if (t == NULL) return -1;
    for (int64_t i = 0; i < n; ++i) t[i] = fabs(x[i]) * -2.0;
    vector_all(t, n, Sleef_expm1d4_u10);
    for (int64_t i = 0; i < n; ++i) y[i] = copysign(-t[i] / (t[i] + 2.0), x[i]);
    release(t, stack);
    return 0;
}

/* The correctly rounded square root (sqrtss, sqrtsd), as numpy's. */
int rl_sqrt_f32(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = sqrtf(x[i]);
    return 0;
}

int rl_sqrt_f64(const double *x, double *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = sqrt(x[i]);
    return 0;
}


/* softplus in float64 (portable._softplus): with t = x * beta, x where t > threshold, else
 * log1p(exp t) / beta, exp as rl_exp_f64. `t` holds x * beta on entry; `y` gets the result; `work`
 * has room for 4n doubles. */
static void softplus_f64(const double *x, const double *t, double *y, int64_t n, double beta,
                         double threshold, double *work) {
    double *z = work;
    exp_f64(t, z, n, work + n);
    vector_all(z, n, Sleef_log1pd4_u10);
    for (int64_t i = 0; i < n; ++i) y[i] = t[i] > threshold ? x[i] : z[i] / beta;
}

int rl_softplus_f32(const float *x, float *y, int64_t n, double beta, double threshold) {
    double stack[7 * SMALL], *t = scratch(7, n, stack);
    if (t == NULL) return -1;
    double *xd = t, *bx = t + n, *out = t + 2 * n;
    for (int64_t i = 0; i < n; ++i) xd[i] = (double)x[i], bx[i] = xd[i] * beta;
    softplus_f64(xd, bx, out, n, beta, threshold, t + 3 * n);
    for (int64_t i = 0; i < n; ++i) y[i] = (float)out[i];
    release(t, stack);
    return 0;
}

int rl_softplus_f64(const double *x, double *y, int64_t n, double beta, double threshold) {
    double stack[5 * SMALL], *t = scratch(5, n, stack);
    if (t == NULL) return -1;
    for (int64_t i = 0; i < n; ++i) t[i] = x[i] * beta;
    softplus_f64(x, t, y, n, beta, threshold, t + n);
    release(t, stack);
    return 0;
}

/* softplus' gradient in float64 (portable._softplus_backward): with t = x * beta and z = exp t,
 * g where t > threshold, else g * z / (z + 1). `t` holds x * beta; `work` has room for 4n. */
static void softplus_backward_f64(const double *g, const double *t, double *y, int64_t n,
                                  double threshold, double *work) {
    double *z = work;
    exp_f64(t, z, n, work + n);
    for (int64_t i = 0; i < n; ++i) y[i] = t[i] > threshold ? g[i] : g[i] * z[i] / (z[i] + 1.0);
}

int rl_softplus_backward_f32(const float *g, const float *x, float *y, int64_t n, double beta,
                             double threshold) {
    double stack[7 * SMALL], *t = scratch(7, n, stack);
    if (t == NULL) return -1;
    double *gd = t, *bx = t + n, *out = t + 2 * n;
    for (int64_t i = 0; i < n; ++i) gd[i] = (double)g[i], bx[i] = (double)x[i] * beta;
    softplus_backward_f64(gd, bx, out, n, threshold, t + 3 * n);
    for (int64_t i = 0; i < n; ++i) y[i] = (float)out[i];
    release(t, stack);
    return 0;
}

int rl_softplus_backward_f64(const double *g, const double *x, double *y, int64_t n, double beta,
                             double threshold) {
    double stack[5 * SMALL], *t = scratch(5, n, stack);
    if (t == NULL) return -1;
    for (int64_t i = 0; i < n; ++i) t[i] = x[i] * beta;
    softplus_backward_f64(g, t, y, n, threshold, t + n);
    release(t, stack);
    return 0;
}

/* ELU in float64 (portable._elu): x < 0 ? expm1(x * input_scale) * (alpha * scale) : x * scale,
 * expm1 by SLEEF for every value. */
#define ELU(T, NAME)                                                                          \
    int NAME(const T *x, T *y, int64_t n, double alpha, double scale, double input_scale) {   \
        double stack[1 * SMALL], *t = scratch(1, n, stack);                                   \
        if (t == NULL) return -1;                                                             \
        double negcoef = alpha * scale;                                                       \
        for (int64_t i = 0; i < n; ++i) t[i] = (double)x[i] * input_scale;                    \
        vector_all(t, n, Sleef_expm1d4_u10);                                                  \
        for (int64_t i = 0; i < n; ++i) {                                                     \
            double xd = (double)x[i];                                                         \
            y[i] = (T)(xd < 0.0 ? t[i] * negcoef : xd * scale);                               \
        }                                                                                     \
        release(t, stack);                                                                    \
        return 0;                                                                             \
    }
ELU(float, rl_elu_f32)
ELU(double, rl_elu_f64)

/* ELU's gradient from its input, in float64 (portable._elu_backward): x <= 0 ?
 * g * input_scale * (alpha * scale) * exp(x * input_scale) : g * scale, exp as rl_exp_f64. */
#define ELU_BACKWARD(T, NAME)                                                                 \
    int NAME(const T *g, const T *x, T *y, int64_t n, double alpha, double scale,             \
             double input_scale) {                                                            \
        double stack[4 * SMALL], *t = scratch(4, n, stack);                                   \
        if (t == NULL) return -1;                                                             \
        double negcoef = alpha * scale;                                                       \
        for (int64_t i = 0; i < n; ++i) t[i] = (double)x[i] * input_scale;                    \
        exp_f64(t, t, n, t + n);                                                              \
        for (int64_t i = 0; i < n; ++i) {                                                     \
            double gd = (double)g[i];                                                         \
            y[i] = (T)((double)x[i] <= 0.0 ? gd * input_scale * negcoef * t[i] : gd * scale); \
        }                                                                                     \
        release(t, stack);                                                                    \
        return 0;                                                                             \
    }
ELU_BACKWARD(float, rl_elu_backward_f32)
ELU_BACKWARD(double, rl_elu_backward_f64)

/* sigmoid in float64 (portable._sigmoid): 1 / (1 + exp(-x)), exp as rl_exp_f64. */
#define SIGMOID(T, NAME)                                                                      \
    int NAME(const T *x, T *y, int64_t n) {                                                   \
        double stack[4 * SMALL], *t = scratch(4, n, stack);                                   \
        if (t == NULL) return -1;                                                             \
        for (int64_t i = 0; i < n; ++i) t[i] = -(double)x[i];                                 \
        exp_f64(t, t, n, t + n);                                                              \
        for (int64_t i = 0; i < n; ++i) y[i] = (T)(1.0 / (1.0 + t[i]));                       \
        release(t, stack);                                                                    \
        return 0;                                                                             \
    }
SIGMOID(float, rl_sigmoid_f32)
SIGMOID(double, rl_sigmoid_f64)
