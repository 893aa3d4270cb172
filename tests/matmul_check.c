/* Checks rlrepro/numerics/matmul.c against the reference's bits, on any CPU (tests/test_aarch64.py
 * builds it for aarch64 and runs it under qemu-aarch64, and for this machine).
 *
 *     matmul_check CASES [LANES]
 *
 * CASES (little-endian, written by tests/test_aarch64.py from portable.py's `_addmm`): an int64
 * count, then per case int64 m, n, k; float32 alpha, beta; int32 with_s (0 or 1); A (m x k), B
 * (k x n), S (m x n, when with_s) and the expected C (m x n), float32, row-major. Every case runs
 * with A, B and C each row-major and column-major (eight layouts); LANES sets matmul.c's vector
 * width first (`rl_matmul_lanes`). Prints "<same> of <total> products identical"; exit 0 when
 * every product has the expected bits, 1 when one differs, 2 on a bad file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const float *p;
    int64_t rs, cs;
} matrix;

int rl_matmul_f32(int64_t, int64_t, int64_t, matrix, matrix, float *, int64_t, int64_t, float,
                  float, const float *, int64_t, int64_t);
int rl_matmul_lanes(int);

static int read_all(FILE *f, void *to, size_t bytes) { return fread(to, 1, bytes, f) == bytes; }

/* `x` (rows x cols, row-major) column-major, in `to`. */
static void transpose(const float *x, int64_t rows, int64_t cols, float *to) {
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) to[j * rows + i] = x[i * cols + j];
}

/* One case in its eight layouts; :return: how many gave the expected bits. */
static int check(int64_t m, int64_t n, int64_t k, float alpha, float beta, const float *a,
                 const float *b, const float *s, const float *expected) {
    size_t mk = (size_t)(m * k), kn = (size_t)(k * n), mn = (size_t)(m * n);
    float *at = malloc(mk * sizeof(float) + 1), *bt = malloc(kn * sizeof(float) + 1);
    float *c = malloc(mn * sizeof(float) + 1), *ct = malloc(mn * sizeof(float) + 1);
    transpose(a, m, k, at);
    transpose(b, k, n, bt);
    int same = 0;
    for (int layout = 0; layout < 8; ++layout) {
        int a_cols = layout & 1, b_cols = layout & 2, c_cols = layout & 4;
        matrix av = a_cols ? (matrix){at, 1, m} : (matrix){a, k, 1};
        matrix bv = b_cols ? (matrix){bt, 1, k} : (matrix){b, n, 1};
        float *out = c_cols ? ct : c;
        int64_t c_rs = c_cols ? 1 : n, c_cs = c_cols ? m : 1;
        if (rl_matmul_f32(m, n, k, av, bv, out, c_rs, c_cs, alpha, beta, s, n, 1) != 0) continue;
        if (c_cols) transpose(ct, n, m, c);
        same += memcmp(c, expected, mn * sizeof(float)) == 0;
    }
    free(at), free(bt), free(c), free(ct);
    return same;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: matmul_check CASES [LANES]\n"), 2;
    if (argc > 2) rl_matmul_lanes(atoi(argv[2]));
    FILE *f = fopen(argv[1], "rb");
    int64_t count = 0;
    if (f == NULL || !read_all(f, &count, sizeof count)) return fprintf(stderr, "no cases\n"), 2;
    long same = 0, total = 0;
    for (int64_t i = 0; i < count; ++i) {
        int64_t shape[3];
        float scale[2];
        int32_t with_s;
        if (!read_all(f, shape, sizeof shape) || !read_all(f, scale, sizeof scale) ||
            !read_all(f, &with_s, sizeof with_s))
            return fprintf(stderr, "case %ld: truncated\n", (long)i), 2;
        int64_t m = shape[0], n = shape[1], k = shape[2];
        size_t floats = (size_t)(m * k + k * n + (with_s ? 2 : 1) * m * n);
        float *data = malloc(floats * sizeof(float) + 1);
        if (!read_all(f, data, floats * sizeof(float)))
            return fprintf(stderr, "case %ld: truncated\n", (long)i), 2;
        const float *a = data, *b = a + m * k, *s = with_s ? b + k * n : NULL;
        const float *expected = b + k * n + (with_s ? m * n : 0);
        same += check(m, n, k, scale[0], scale[1], a, b, s, expected);
        total += 8;
        free(data);
    }
    fclose(f);
    printf("%ld of %ld products identical (matmul.c, vector width %d)\n", same, total,
           rl_matmul_lanes(argc > 2 ? atoi(argv[2]) : 0));
    return same == total ? 0 : 1;
}
