/*
 * int8 matrix-vector product y = A x with int32 results, computed by a scalar
 * reference and (when built for RVV) a strip-mined RVV kernel.
 *
 * stdin (little-endian): uint32 m, uint32 n, int8 A[m][n], int8 x[n]
 * stdout: int32 y_scalar[m], then int32 y_rvv[m] when built with RVV.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __riscv_vector
#include <riscv_vector.h>
#endif

/* clang auto-vectorizes for RVV at -O2; keep the reference scalar. */
#ifdef __clang__
#define NO_VECTORIZE _Pragma("clang loop vectorize(disable) interleave(disable)")
#else
#define NO_VECTORIZE
#endif

__attribute__((noinline)) int32_t dot_scalar(const int8_t *a, const int8_t *b, size_t n)
{
    int32_t acc = 0;
    NO_VECTORIZE
    for (size_t i = 0; i < n; i++) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

#ifdef __riscv_vector
__attribute__((noinline)) int32_t dot_rvv(const int8_t *a, const int8_t *b, size_t n)
{
    size_t vlmax = __riscv_vsetvlmax_e8m1();
    vint32m4_t acc = __riscv_vmv_v_x_i32m4(0, vlmax);
    for (size_t vl; n > 0; n -= vl, a += vl, b += vl) {
        vl = __riscv_vsetvl_e8m1(n);
        vint8m1_t va = __riscv_vle8_v_i8m1(a, vl);
        vint8m1_t vb = __riscv_vle8_v_i8m1(b, vl);
        /* i8*i8 -> i16 is exact; accumulate widening into i32 lanes. Tail-
         * undisturbed keeps lanes past a short last vl from being clobbered. */
        vint16m2_t prod = __riscv_vwmul_vv_i16m2(va, vb, vl);
        acc = __riscv_vwadd_wv_i32m4_tu(acc, acc, prod, vl);
    }
    vint32m1_t zero = __riscv_vmv_s_x_i32m1(0, 1);
    return __riscv_vmv_x_s_i32m1_i32(__riscv_vredsum_vs_i32m4_i32m1(acc, zero, vlmax));
}
#endif

static void read_exact(void *buf, size_t size)
{
    if (size && fread(buf, 1, size, stdin) != size) {
        fprintf(stderr, "dot: short input\n");
        exit(2);
    }
}

static void write_all(const int32_t *y, size_t m)
{
    if (m && fwrite(y, sizeof(*y), m, stdout) != m) {
        fprintf(stderr, "dot: write failed\n");
        exit(2);
    }
}

int main(void)
{
    uint32_t dims[2];
    read_exact(dims, sizeof(dims));
    size_t m = dims[0], n = dims[1];
    int8_t *a = malloc(m * n + 1);
    int8_t *x = malloc(n + 1);
    int32_t *y = malloc(m * sizeof(*y) + 1);
    if (!a || !x || !y) {
        fprintf(stderr, "dot: out of memory\n");
        return 2;
    }
    read_exact(a, m * n);
    read_exact(x, n);

    for (size_t i = 0; i < m; i++) {
        y[i] = dot_scalar(a + i * n, x, n);
    }
    write_all(y, m);
#ifdef __riscv_vector
    for (size_t i = 0; i < m; i++) {
        y[i] = dot_rvv(a + i * n, x, n);
    }
    write_all(y, m);
#endif
    free(a);
    free(x);
    free(y);
    return 0;
}
