/* rlrepro's float32 matrix product: every element's bits fixed by its definition, not by the CPU.
 *
 * C = A B, with A m x k and B k x n, each element accumulated in one order:
 *
 *     acc = +0; for p in 0 .. k-1: acc = fma(A[i][p], B[p][j], acc)
 *
 * then scaled and added as ATen's addmm does (`finish`). A fused multiply-add rounds once, as
 * IEEE 754 defines it, so every element is a fixed sequence of correctly rounded operations: the
 * same bits on any CPU with FMA, whatever the SIMD width that computes it. MKL's products sum in
 * blocks whose order depends on the CPU's instruction set (hence `MKL_CBWR=COMPATIBLE`, which
 * made them portable but 1.9x to 2.5x slower).
 *
 * The loops are BLIS's: B in panels of NR columns, A in blocks of MR rows, an MR x NR tile of
 * registers accumulated over the whole inner dimension; the last block and panel zero-padded, so
 * that no element needs a scalar tail: 6 x 16 with AVX2, 8 x 32 where the CPU has
 * AVX-512. Elements are independent of each other, so the tile shape, the vector width, the
 * padding and the orientation (C or its transpose, whichever pads less) change the speed, never
 * the bits. portable.py's `_matmul` is the same definition in numpy; tests/test_matmul.py
 * compares both, and both vector widths, bit for bit. Built with -ffp-contract=off: a multiply
 * and an add stay two roundings.
 *
 * On other CPUs (aarch64) the same elements come from a plain C loop of `fmaf`, which the
 * compiler turns into the CPU's fused multiply-add (one rounding, as IEEE 754 defines it):
 * tests/test_aarch64.py cross-compiles this file and checks it under qemu-aarch64 against the
 * reference's bits.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define RL_X86 1
#endif

/* A matrix of float32 in memory: element (i, j) at p[i * rs + j * cs]. */
typedef struct {
    const float *p;
    int64_t rs, cs;
} matrix;

/* What happens after the products: C = alpha * P + beta * S, S read like C. */
typedef struct {
    float *c;
    int64_t c_rs, c_cs;
    float alpha, beta;
    const float *s;
    int64_t s_rs, s_cs;
} output;

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

/* Rows [i0, i0 + mr) of `a` (m x k) as k groups of mr values, rows past m zero. */
static void pack_rows(matrix a, int64_t m, int64_t k, int64_t i0, int64_t mr, float *to) {
    for (int64_t p = 0; p < k; ++p)
        for (int64_t r = 0; r < mr; ++r, ++to)
            *to = i0 + r < m ? a.p[(i0 + r) * a.rs + p * a.cs] : 0.0f;
}

#ifdef RL_X86
/* The 8 x 8 block at `from` (row q at from + q * stride) transposed into `to` (row q at
 * to + q * width): eight loads, 24 shuffles, eight stores. */
static void transpose8(const float *from, int64_t stride, float *to, int64_t width) {
    __m256 r[8], t[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(from + q * stride);
    for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
        r[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
        r[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
        r[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
        r[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
    }
    for (int q = 0; q < 4; ++q) {
        _mm256_storeu_ps(to + q * width, _mm256_permute2f128_ps(r[q], r[q + 4], 0x20));
        _mm256_storeu_ps(to + (q + 4) * width, _mm256_permute2f128_ps(r[q], r[q + 4], 0x31));
    }
}
#endif

#ifdef RL_X86
/* Columns [j0, j0 + nr) of `b` (k x n) as k rows of nr values, columns past n zero. Columns
 * whose values are contiguous (b.rs == 1: B is a transposed row-major matrix, a linear layer's
 * weight) are transposed 8 x 8 at a time. */
static void pack_columns(matrix b, int64_t k, int64_t n, int64_t j0, int64_t nr, float *to) {
    int64_t cols = n - j0 < nr ? n - j0 : nr, c = 0, p0 = 0;
#ifdef RL_X86
    if (b.rs == 1)
        for (; c + 8 <= cols; c += 8)
            for (p0 = 0; p0 + 8 <= k; p0 += 8)
                transpose8(b.p + (j0 + c) * b.cs + p0, b.cs, to + p0 * nr + c, nr);
#endif
    for (int64_t q = 0; q < cols; ++q) {
        const float *from = b.p + (j0 + q) * b.cs;
        for (int64_t p = q < c ? p0 : 0; p < k; ++p) to[p * nr + q] = from[p * b.rs];
    }
    for (int64_t p = 0; p < k; ++p)
        for (int64_t q = cols; q < nr; ++q) to[p * nr + q] = 0.0f;
}
#endif

/* ATen's addmm after the product, one element: alpha * P, then beta * S added (S unread when
 * beta is 0, as BLAS does); each step one rounding, skipped when its factor is 1. */
static float finish(float product, const output *o, int64_t i, int64_t j) {
    float y = o->alpha == 1.0f ? product : o->alpha * product;
    if (o->beta == 0.0f) return y;
    float s = o->s[i * o->s_rs + j * o->s_cs];
    return (o->beta == 1.0f ? s : o->beta * s) + y;
}

/* Rows [i0, i0 + rows) and columns [j0, j0 + cols) of C from a tile of products (row stride
 * `width`), one element at a time. */
static void finish_tile(const float *tile, int64_t width, int64_t rows, int64_t cols,
                        const output *o, int64_t i0, int64_t j0) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = 0; q < cols; ++q)
            o->c[(i0 + r) * o->c_rs + (j0 + q) * o->c_cs] =
                finish(tile[r * width + q], o, i0 + r, j0 + q);
}

#ifdef RL_X86
/* The tile loops, once per vector width: V is the vector type, L its lanes, MR x NR the tile
 * (NR = 2 L), the operations' names given. A full block of A is read where it is (row r, step p
 * at a[r * ar + p * ap]), a block with rows past m from `tail` (packed once); a panel of B where
 * it is when its rows are contiguous and it is full, else packed into `panel`. A full tile over
 * contiguous rows of C (and of S, or a broadcast bias) is finished in registers, with the same
 * operations as `finish`. */
#define TILE_FUNCTION(NAME, TARGET, V, L, MR, ZERO, LOAD, STORE, BROADCAST, FMA, MUL, ADD, SET1) \
    __attribute__((target(TARGET))) static void NAME(int64_t m, int64_t n, int64_t k, matrix a,  \
                                                     matrix b, const float *tail, float *panel,  \
                                                     const output *o) {                          \
        enum { NR = 2 * L };                                                                     \
        float spill[MR * NR];                                                                    \
        for (int64_t j0 = 0; j0 < n; j0 += NR) {                                                 \
            const float *bj = b.p + j0 * b.cs;                                                   \
            int64_t bp = b.rs;                                                                   \
            if (b.cs != 1 || j0 + NR > n) {                                                      \
                pack_columns(b, k, n, j0, NR, panel);                                            \
                bj = panel, bp = NR;                                                             \
            }                                                                                    \
            for (int64_t i0 = 0; i0 < m; i0 += MR) {                                             \
                const float *ai = a.p + i0 * a.rs, *bk = bj;                                     \
                int64_t ar = a.rs, ap = a.cs;                                                    \
                if (i0 + MR > m) ai = tail, ar = 1, ap = MR;                                     \
                V acc[MR][2];                                                                    \
                for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = ZERO();                     \
                for (int64_t p = 0; p < k; ++p, ai += ap, bk += bp) {                            \
                    V b0 = LOAD(bk), b1 = LOAD(bk + L);                                          \
                    for (int r = 0; r < MR; ++r) {                                               \
                        V x = BROADCAST(ai + r * ar);                                            \
                        acc[r][0] = FMA(x, b0, acc[r][0]);                                       \
                        acc[r][1] = FMA(x, b1, acc[r][1]);                                       \
                    }                                                                            \
                }                                                                                \
                int full = i0 + MR <= m && j0 + NR <= n && o->c_cs == 1 &&                       \
                           (o->beta == 0.0f || o->s_cs == 1);                                    \
                if (!full) {                                                                     \
                    for (int r = 0; r < MR; ++r) {                                               \
                        STORE(spill + r * NR, acc[r][0]);                                        \
                        STORE(spill + r * NR + L, acc[r][1]);                                    \
                    }                                                                            \
                    int64_t rows = m - i0 < MR ? m - i0 : MR, cols = n - j0 < NR ? n - j0 : NR;  \
                    finish_tile(spill, NR, rows, cols, o, i0, j0);                               \
                    continue;                                                                    \
                }                                                                                \
                V alpha = SET1(o->alpha), beta = SET1(o->beta);                                  \
                for (int r = 0; r < MR; ++r) {                                                   \
                    float *c = o->c + (i0 + r) * o->c_rs + j0;                                   \
                    for (int h = 0; h < 2; ++h) {                                                \
                        V y = o->alpha == 1.0f ? acc[r][h] : MUL(alpha, acc[r][h]);              \
                        if (o->beta != 0.0f) {                                                   \
                            V s = LOAD(o->s + (i0 + r) * o->s_rs + j0 + h * L);                  \
                            y = ADD(o->beta == 1.0f ? s : MUL(beta, s), y);                      \
                        }                                                                        \
                        STORE(c + h * L, y);                                                     \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

TILE_FUNCTION(tiles_avx2, "avx2,fma", __m256, 8, 6, _mm256_setzero_ps, _mm256_loadu_ps,
              _mm256_storeu_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_mul_ps,
              _mm256_add_ps, _mm256_set1_ps)

#define broadcast512(x) _mm512_set1_ps(*(x))

TILE_FUNCTION(tiles_avx512, "avx512f", __m512, 16, 8, _mm512_setzero_ps, _mm512_loadu_ps,
              _mm512_storeu_ps, broadcast512, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_add_ps,
              _mm512_set1_ps)

#endif

/* The tile loop of other CPUs: an MR x NR tile of C at a time, read where A and B are, each
 * element accumulated with `fmaf` over the whole inner dimension (vectorised by the compiler,
 * or not: the same bits). */
static void tiles_generic(int64_t m, int64_t n, int64_t k, matrix a, matrix b, const output *o) {
    enum { MR = 4, NR = 16 };
    float acc[MR][NR];
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
        int64_t cols = n - j0 < NR ? n - j0 : NR;
        for (int64_t i0 = 0; i0 < m; i0 += MR) {
            int64_t rows = m - i0 < MR ? m - i0 : MR;
            for (int r = 0; r < MR; ++r)
                for (int q = 0; q < NR; ++q) acc[r][q] = 0.0f;
            for (int64_t p = 0; p < k; ++p) {
                const float *bp = b.p + p * b.rs + j0 * b.cs;
                for (int64_t r = 0; r < rows; ++r) {
                    float x = a.p[(i0 + r) * a.rs + p * a.cs];
                    for (int64_t q = 0; q < cols; ++q) acc[r][q] = fmaf(x, bp[q * b.cs], acc[r][q]);
                }
            }
            finish_tile(&acc[0][0], NR, rows, cols, o, i0, j0);
        }
    }
}

/* The vector width in use: 16 lanes where the CPU has AVX-512 (unless set), else 8; 1 for
 * the generic loop (on other CPUs, or when set). */
static int lanes = 0;

/* Set the vector width (1: the generic loop; 8: AVX2; 16: AVX-512, where the CPU has it; 0: the
 * widest there is) and :return: the one now in use (always 1 on CPUs other than x86-64). For
 * tests: every width gives the same bits. */
int rl_matmul_lanes(int wanted) {
#ifdef RL_X86
    int wide = __builtin_cpu_supports("avx512f");
    lanes = wanted == 1 ? 1
            : wanted == 8 || (wanted == 16 && !wide) ? 8
            : wanted == 16 || wide                  ? 16
                                                    : 8;
#else
    (void)wanted;
    lanes = 1;
#endif
    return lanes;
}

/* The packed copies of A and B: one buffer per thread, grown as needed, kept. */
static __thread float *buffer = NULL;
static __thread size_t capacity = 0;

static float *room(size_t floats) {
    if (floats <= capacity) return buffer;
    free(buffer);
    capacity = 0;
    if (posix_memalign((void **)&buffer, 64, floats * sizeof(float)) != 0) return buffer = NULL;
    capacity = floats;
    return buffer;
}

/* C (m x n, element (i, j) at c[i * c_rs + j * c_cs]) = alpha * A B + beta * S, S read like C
 * (NULL when beta is 0), C apart from A and B (S may be C itself: addmm_).
 * :return: 0, or -1 when there is no memory for the packed copies. */
int rl_matmul_f32(int64_t m, int64_t n, int64_t k, matrix a, matrix b, float *c, int64_t c_rs,
                  int64_t c_cs, float alpha, float beta, const float *s, int64_t s_rs,
                  int64_t s_cs) {
    if (m == 0 || n == 0) return 0;
    if (lanes == 0) rl_matmul_lanes(0);
    output o = {c, c_rs, c_cs, alpha, beta, s, s_rs, s_cs};
    if (lanes == 1) {
        tiles_generic(m, n, k, a, b, &o);
        return 0;
    }
    int64_t mr = lanes == 16 ? 8 : 6, nr = 2 * lanes;
    if (round_up(n, mr) * round_up(m, nr) < round_up(m, mr) * round_up(n, nr)) {
        /* C' = B' A' pads less (few columns, many rows): the same products, the same order. */
        matrix t = {b.p, b.cs, b.rs};
        b = (matrix){a.p, a.cs, a.rs}, a = t;
        int64_t swap = m;
        m = n, n = swap;
        o = (output){c, c_cs, c_rs, alpha, beta, s, s_cs, s_rs};
    }
    /* Room for the last block of A (when m is not a multiple of mr) and one panel of B. */
    float *tail = room((size_t)(mr + nr) * (size_t)(k > 0 ? k : 1));
    if (tail == NULL) return -1;
    float *panel = tail + mr * k;
    if (m % mr != 0) pack_rows(a, m, k, m - m % mr, mr, tail);
#ifdef RL_X86
    if (lanes == 16)
        tiles_avx512(m, n, k, a, b, tail, panel, &o);
    else
        tiles_avx2(m, n, k, a, b, tail, panel, &o);
#else
    (void)panel;
#endif
    return 0;
}
