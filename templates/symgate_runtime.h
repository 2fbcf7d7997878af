/* symgate_runtime.h: the C helpers every file symgate generates shares, shipped with symgate. Do
 * not edit a copy: an exported library's copy is symgate's own, written again at every export.
 *
 * One plain C99 header for every number type. The file including it first defines:
 *   SG_REAL            the type of every number (double, float, double _Complex)
 *   SG_MATH_SUFFIX     the suffix of libm's functions for it (f for float; empty otherwise)
 *   SG_LITERAL_SUFFIX  the suffix of its literals (F for float; empty otherwise)
 * and, where they apply:
 *   SG_COMPLEX         the type is complex: the sg_c* activations instead of the real ones
 *                      (the real helpers of functions with kinks stay, on real parts: SG_RE)
 *   SG_ACCELERATED     a kernel built for Python: BLAS (SYMGATE_BLAS, SYMGATE_MKL) and glibc's
 *                      libmvec (SYMGATE_VECTOR_MATH) where the compiler is told to use them, with
 *   SG_BLAS_LETTER     the letter of BLAS's routines for the type (d, s).
 * Without SG_ACCELERATED (an exported library, the complex-step kernel) every helper is plain C
 * with libm, whatever the compiler is told.
 *
 * Every helper is static inline (the matrix products static and marked unused), so a file compiles
 * without warnings whichever helpers it calls.
 * Every name defined here starts with sg_, SG_ or SYMGATE_, which no name of a cell takes in C.
 */
#ifndef SYMGATE_RUNTIME_H
#define SYMGATE_RUNTIME_H

#include <math.h>
#include <stddef.h>
#ifdef SG_COMPLEX
#include <complex.h>
#endif

/* a##b, after expanding a and b (so that SG_MATH(exp) is expf when SG_MATH_SUFFIX is f) */
#define SG_PASTE(a, b) a##b
#define SG_JOIN(a, b) SG_PASTE(a, b)
#define SG_MATH(name) SG_JOIN(name, SG_MATH_SUFFIX)
#define SG_LITERAL(number) SG_JOIN(number, SG_LITERAL_SUFFIX)
#define SG_ZERO SG_LITERAL(0.0)
#define SG_ONE SG_LITERAL(1.0)

/* What a kernel built for Python calls, as the build's switches say: MKL (SYMGATE_MKL),
 * scipy-openblas32 (SYMGATE_BLAS; with MKL too, for the smaller products), libmvec. */
#ifdef SG_ACCELERATED
#ifdef SYMGATE_MKL
#define SG_WITH_MKL
#endif
#ifdef SYMGATE_BLAS
#define SG_WITH_OPENBLAS
#endif
#if defined(SG_WITH_MKL) || defined(SG_WITH_OPENBLAS)
#define SG_WITH_CBLAS
#endif
#ifdef SYMGATE_VECTOR_MATH
#define SG_WITH_VECTOR_MATH
#endif
#define SG_CBLAS(name) SG_JOIN(SG_JOIN(cblas_, SG_BLAS_LETTER), name)
#define SG_SCIPY_CBLAS(name) SG_JOIN(SG_JOIN(scipy_cblas_, SG_BLAS_LETTER), name)

#ifdef SG_WITH_MKL
#include <stdint.h>
#include <mkl_cblas.h>
#include <mkl_service.h>
/* scipy-openblas32's functions, for products under SG_MKL_MIN and transpositions, and its thread
 * count (its cblas.h declares MKL's enums again) */
void SG_SCIPY_CBLAS(gemm)(CBLAS_LAYOUT layout, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int m, int n,
    int k, SG_REAL alpha, const SG_REAL *A, int lda, const SG_REAL *B, int ldb, SG_REAL beta, SG_REAL *C, int ldc);
void SG_SCIPY_CBLAS(gemv)(CBLAS_LAYOUT layout, CBLAS_TRANSPOSE trans, int m, int n, SG_REAL alpha, const SG_REAL *A,
    int lda, const SG_REAL *x, int incx, SG_REAL beta, SG_REAL *y, int incy);
void SG_SCIPY_CBLAS(omatcopy)(CBLAS_LAYOUT layout, CBLAS_TRANSPOSE trans, int rows, int cols, SG_REAL alpha,
    const SG_REAL *A, int lda, SG_REAL *B, int ldb);
int scipy_openblas_get_num_threads(void);
#elif defined(SG_WITH_OPENBLAS)
#include <cblas.h>
#endif

/* Matrix products of at least this many multiply-adds go to BLAS when built with SYMGATE_BLAS
 * (scipy-openblas32); smaller ones run as plain loops, which win at those sizes. */
#ifndef SG_BLAS_MIN
#define SG_BLAS_MIN 16384
#endif

/* Built with SYMGATE_BLAS, a product C = A op(B) of at most this many rows of A (a step of one to
 * three samples) goes to OpenBLAS's matrix-vector product, one row at a time, when op(B) has at
 * least SG_GEMV_MIN numbers and the product is not MKL's: OpenBLAS's gemm is slow on so few rows,
 * and from that size gemv beats the loops too (benchmarks/MEASUREMENTS.md, "Products of few
 * rows"). 0 turns it off. */
#ifndef SG_GEMV_ROWS
#define SG_GEMV_ROWS 3
#endif
#ifndef SG_GEMV_MIN
#define SG_GEMV_MIN 1024
#endif

/* Built with SYMGATE_MKL, products of at least this many multiply-adds go to MKL instead, and
 * the matrix of such a product made at every step is packed once per call (sg_pack_weights). */
#ifndef SG_MKL_MIN
#define SG_MKL_MIN 1048576
#endif

/* Built with OpenBLAS alone, products of at least this many multiply-adds run on all of
 * OpenBLAS's threads and smaller ones on one (sg_openblas_threads_for). */
#ifndef SG_THREADS_MIN
#define SG_THREADS_MIN 1048576
#endif
#endif /* SG_ACCELERATED */

/* The units of a fused loop never depend on each other (every array is distinct): tell the
 * compiler, so it vectorizes without run-time overlap checks. */
#if defined(__GNUC__) && !defined(__clang__)
#define SG_UNITS_INDEPENDENT _Pragma("GCC ivdep")
#else
#define SG_UNITS_INDEPENDENT
#endif

#ifdef SG_WITH_VECTOR_MATH
/* glibc's libmvec has SIMD versions of these functions (same results to within a few ulp, the
 * same handling of inf and NaN); declaring them lets the compiler vectorize the fused loops. */
__attribute__((simd("notinbranch"))) SG_REAL SG_MATH(exp)(SG_REAL);
__attribute__((simd("notinbranch"))) SG_REAL SG_MATH(tanh)(SG_REAL);
__attribute__((simd("notinbranch"))) SG_REAL SG_MATH(log1p)(SG_REAL);
#endif

/* The real numbers of the kernel: SG_REAL, or the real parts (double) of a complex kernel's. */
#ifdef SG_COMPLEX
#define SG_RE double
#else
#define SG_RE SG_REAL
#endif

/* The functions with kinks or jumps and their derivatives (symgate/frontend/piecewise.py), as
 * PyTorch computes and differentiates them. NaN is kept, in values and in derivatives: C's fmax and
 * fmin would return the other number and hide a diverged step. */

/* max(a, b); NaN if either is (as torch.maximum, not fmax). */
static inline SG_RE sg_max(SG_RE a, SG_RE b)
{
    return a < b || b != b ? b : a;
}

/* min(a, b); NaN if either is (as torch.minimum, not fmin). */
static inline SG_RE sg_min(SG_RE a, SG_RE b)
{
    return b < a || b != b ? b : a;
}

/* a limited to [lo, hi], NaN kept: min(max(a, lo), hi), so hi where lo > hi (as torch.clamp). */
static inline SG_RE sg_clip(SG_RE a, SG_RE lo, SG_RE hi)
{
    const SG_RE m = a < lo ? lo : a;
    return m > hi ? hi : m;
}

/* a - b floor(a/b), with the sign of b, as torch.remainder computes it: fmod is exact, and the sign
 * fix adds b once, where a - b*floor(a/b) would lose the digits of a large quotient. */
static inline SG_RE sg_mod(SG_RE a, SG_RE b)
{
    const SG_RE r = SG_MATH(fmod)(a, b);
    return r != SG_ZERO && (r < SG_ZERO) != (b < SG_ZERO) ? r + b : r;
}

/* floor(a/b) as torch.div(a, b, rounding_mode="floor") computes it: (a - fmod(a, b))/b, one less
 * where sg_mod adds b, rounded to the nearest integer (the division can land a rounding error
 * beside it); so a - b*sg_floordiv(a, b) is sg_mod(a, b). Minus the derivative of sg_mod by b. */
static inline SG_RE sg_floordiv(SG_RE a, SG_RE b)
{
    if (b == SG_ZERO) {
        return a / b;
    }
    const SG_RE r = SG_MATH(fmod)(a, b);
    SG_RE q = (a - r) / b;
    if (r != SG_ZERO && (r < SG_ZERO) != (b < SG_ZERO)) {
        q -= SG_ONE;
    }
    if (q == SG_ZERO) {
        return SG_MATH(copysign)(SG_ZERO, a / b);
    }
    const SG_RE f = SG_MATH(floor)(q);
    return q - f > SG_LITERAL(0.5) ? f + SG_ONE : f;
}

/* Derivative of max(a, b) by a: 1 where a > b, 1/2 on a tie (torch.maximum splits it), 0 where
 * a < b; NaN at NaN. */
static inline SG_RE sg_above(SG_RE a, SG_RE b)
{
    return a > b ? SG_ONE : a < b ? SG_ZERO : a == b ? SG_LITERAL(0.5) : a + b;
}

/* Derivative of abs(a): 1, -1, or 0 at 0 (as torch.abs); NaN at NaN. */
static inline SG_RE sg_sign(SG_RE a)
{
    return a > SG_ZERO ? SG_ONE : a < SG_ZERO ? -SG_ONE : a == SG_ZERO ? SG_ZERO : a;
}

/* Derivative of clip(a, lo, hi) by a: 1 on [lo, hi], bounds included (as torch.clamp), else 0;
 * NaN at NaN. */
static inline SG_RE sg_within(SG_RE a, SG_RE lo, SG_RE hi)
{
    return a < lo || a > hi ? SG_ZERO : a == a ? SG_ONE : a;
}

#ifndef SG_COMPLEX
/* Logistic function; calls exp only with -|a|, so it cannot overflow. Branch-free, so loops
 * calling it vectorize. */
static inline SG_REAL sg_sigmoid(SG_REAL a)
{
    const SG_REAL e = SG_MATH(exp)(-SG_MATH(fabs)(a));
    const SG_REAL s = SG_ONE / (SG_ONE + e);
    return a >= SG_ZERO ? s : e * s;
}

/* max(a, 0), with NaN kept as NaN (a comparison with NaN is false). */
static inline SG_REAL sg_relu(SG_REAL a)
{
    return a < SG_ZERO ? SG_ZERO : a;
}

/* Derivative of relu at its output: 1 where positive, 0 where not, NaN at NaN. */
static inline SG_REAL sg_step(SG_REAL a)
{
    return a > SG_ZERO ? SG_ONE : a <= SG_ZERO ? SG_ZERO : a;
}

/* log(1 + exp(a)) without overflow. */
static inline SG_REAL sg_softplus(SG_REAL a)
{
    return a > SG_ZERO ? a + SG_MATH(log1p)(SG_MATH(exp)(-a)) : SG_MATH(log1p)(SG_MATH(exp)(a));
}
#else
/* sg_sigmoid of a complex argument, analytic: calls cexp only where the real part is at most 0. */
static inline SG_REAL sg_csigmoid(SG_REAL a)
{
    const int positive = creal(a) >= SG_ZERO;
    const SG_REAL e = cexp(positive ? -a : a);
    const SG_REAL s = SG_ONE / (SG_ONE + e);
    return positive ? s : e * s;
}

/* sg_relu of a complex argument: the branch of the real part, the imaginary part carried through
 * it (dropped at 0, where relu's derivative is taken as 0); NaN kept. */
static inline SG_REAL sg_crelu(SG_REAL a)
{
    return creal(a) > SG_ZERO ? a : creal(a) <= SG_ZERO ? SG_ZERO : a;
}

/* sg_step of a complex argument: 1 or 0 by the real part (flat, so no imaginary part); NaN kept. */
static inline SG_REAL sg_cstep(SG_REAL a)
{
    return creal(a) > SG_ZERO ? SG_ONE : creal(a) <= SG_ZERO ? SG_ZERO : a;
}

/* sg_softplus of a complex argument, analytic: calls cexp only where the real part is at most 0. */
static inline SG_REAL sg_csoftplus(SG_REAL a)
{
    return creal(a) > SG_ZERO ? a + clog(SG_ONE + cexp(-a)) : clog(SG_ONE + cexp(a));
}

/* The functions with kinks of a complex argument: the branch of the real part, the imaginary part
 * carried through it, so that the complex step sees the derivative the backward pass takes. */

/* sg_max of complex arguments: the one with the larger real part; on a tie the mean of both, whose
 * imaginary part takes 1/2 of each, as the derivative does. */
static inline SG_REAL sg_cmax(SG_REAL a, SG_REAL b)
{
    return creal(a) > creal(b) ? a : creal(a) < creal(b) ? b : a + SG_LITERAL(0.5) * (b - a);
}

/* sg_min of complex arguments: the one with the smaller real part; on a tie the mean of both. */
static inline SG_REAL sg_cmin(SG_REAL a, SG_REAL b)
{
    return creal(a) < creal(b) ? a : creal(a) > creal(b) ? b : a + SG_LITERAL(0.5) * (b - a);
}

/* fabs of a complex argument: a or -a by the sign of the real part; at 0 no imaginary part (the
 * derivative is 0 there). */
static inline SG_REAL sg_cabs(SG_REAL a)
{
    return creal(a) > SG_ZERO ? a : creal(a) < SG_ZERO ? -a : SG_MATH(fabs)(creal(a));
}

/* sg_clip of a complex argument: a bound where the real part is beyond it, else a (bounds
 * included, where the derivative is 1). */
static inline SG_REAL sg_cclip(SG_REAL a, SG_REAL lo, SG_REAL hi)
{
    const SG_REAL m = creal(a) < creal(lo) ? lo : a;
    return creal(m) > creal(hi) ? hi : m;
}

/* floor of a complex argument: floor of the real part, no imaginary part (the derivative is 0). */
static inline SG_REAL sg_cfloor(SG_REAL a)
{
    return SG_MATH(floor)(creal(a));
}

/* sg_mod of complex arguments: sg_mod of the real parts; the imaginary parts carried by the
 * derivatives, 1 by a and -floordiv(a, b) by b. */
static inline SG_REAL sg_cmod(SG_REAL a, SG_REAL b)
{
    const SG_RE q = sg_floordiv(creal(a), creal(b));
    return sg_mod(creal(a), creal(b)) + (cimag(a) - q * cimag(b)) * (SG_REAL)I;
}

/* The derivatives of the functions with kinks, of complex arguments: their values at the real
 * parts, with no imaginary part (they are flat). */
static inline SG_REAL sg_cabove(SG_REAL a, SG_REAL b)
{
    return sg_above(creal(a), creal(b));
}

static inline SG_REAL sg_csign(SG_REAL a)
{
    return sg_sign(creal(a));
}

static inline SG_REAL sg_cwithin(SG_REAL a, SG_REAL lo, SG_REAL hi)
{
    return sg_within(creal(a), creal(lo), creal(hi));
}

static inline SG_REAL sg_cfloordiv(SG_REAL a, SG_REAL b)
{
    return sg_floordiv(creal(a), creal(b));
}
#endif /* SG_COMPLEX */

/* Variable lengths. A pass given batch_sizes (T numbers, none larger than the one before) runs
 * batch_sizes[t] samples at step t: the samples are sorted by length, longest first, and every
 * sequence is packed, step after step, each step's rows those of the samples still running (the
 * layout of PyTorch's PackedSequence and cuDNN's packed sequences). Without them (NULL) every step
 * runs all B samples and a sequence is (T, B, size). */

/* The samples step t runs. */
static inline int sg_step_batch(const int *batch_sizes, int t, int B)
{
    return batch_sizes != NULL ? batch_sizes[t] : B;
}

/* The rows of all T steps of a sequence. */
static inline int sg_all_rows(int T, int B, const int *batch_sizes)
{
    if (batch_sizes == NULL) {
        return T * B;
    }
    int rows = 0;
    for (int t = 0; t < T; ++t) {
        rows += batch_sizes[t];
    }
    return rows;
}

/* The first row of step t - 1 of a sequence, given step_row, the first row of step t (0 at t = 0,
 * where the previous state is the initial one). */
static inline size_t sg_previous_row(size_t step_row, const int *batch_sizes, int t, int B)
{
    return t == 0 ? 0 : step_row - (size_t)sg_step_batch(batch_sizes, t - 1, B);
}

/* Sums in SG_LANES partial sums, added together at the end: independent additions, which the
 * compiler vectorizes (one running sum is a chain it must keep in order). */
#define SG_LANES 8

/* sum_j a[j] b[j] (b NULL: sum_j a[j]) */
static inline SG_REAL sg_dot(int n, const SG_REAL *a, const SG_REAL *b)
{
    SG_REAL part[SG_LANES];
    for (int l = 0; l < SG_LANES; ++l) {
        part[l] = SG_ZERO;
    }
    int j = 0;
    for (; j + SG_LANES <= n; j += SG_LANES) {
        for (int l = 0; l < SG_LANES; ++l) {
            part[l] += b != NULL ? a[j + l] * b[j + l] : a[j + l];
        }
    }
    SG_REAL total = SG_ZERO;
    for (; j < n; ++j) {
        total += b != NULL ? a[j] * b[j] : a[j];
    }
    for (int l = 0; l < SG_LANES; ++l) {
        total += part[l];
    }
    return total;
}

/* out[b] = sum_j v[b, j] (rows of v ldv apart) */
static inline void sg_sum(int batch, int n, const SG_REAL *v, int ldv, SG_REAL *out)
{
    for (int b = 0; b < batch; ++b) {
        out[b] = sg_dot(n, v + (size_t)b * ldv, NULL);
    }
}

/* out[b] = mean_j v[b, j] (rows of v ldv apart); the mean of no units (n = 0) is NaN, as in NumPy
   and PyTorch, where the sum of none (sg_sum) is 0 */
static inline void sg_mean(int batch, int n, const SG_REAL *v, int ldv, SG_REAL *out)
{
    for (int b = 0; b < batch; ++b) {
        const SG_REAL total = sg_dot(n, v + (size_t)b * ldv, NULL);
        out[b] = n > 0 ? total / (SG_REAL)n : (SG_REAL)NAN;
    }
}

/* Per-sample matrices: sample b's matrix S (rows x cols, row after row) starts at S + b * lds. */

/* out[b] = S[b] v[b]: out[b, i] = sum_j S[b, i, j] v[b, j] */
static inline void sg_sample_gemv(int batch, int rows, int cols, const SG_REAL *S, int lds, const SG_REAL *v,
                                  int ldv, SG_REAL *out, int ldout)
{
    for (int b = 0; b < batch; ++b) {
        const SG_REAL *const matrix = S + (size_t)b * lds;
        const SG_REAL *const vector = v + (size_t)b * ldv;
        for (int i = 0; i < rows; ++i) {
            out[(size_t)b * ldout + i] = sg_dot(cols, matrix + (size_t)i * cols, vector);
        }
    }
}

/* out[b] = S[b]^T v[b]: out[b, j] = sum_i S[b, i, j] v[b, i] */
static inline void sg_sample_gemv_t(int batch, int rows, int cols, const SG_REAL *S, int lds, const SG_REAL *v,
                                    int ldv, SG_REAL *out, int ldout)
{
    for (int b = 0; b < batch; ++b) {
        const SG_REAL *const matrix = S + (size_t)b * lds;
        const SG_REAL *const vector = v + (size_t)b * ldv;
        SG_REAL *const result = out + (size_t)b * ldout;
        for (int j = 0; j < cols; ++j) {
            result[j] = SG_ZERO;
        }
        for (int i = 0; i < rows; ++i) {
            const SG_REAL *const row = matrix + (size_t)i * cols;
            const SG_REAL scale = vector[i];
            for (int j = 0; j < cols; ++j) {
                result[j] += scale * row[j];
            }
        }
    }
}

/* out[b, i] = sum_j S[b, i, j]: each row of each sample's matrix summed */
static inline void sg_rowsum(int batch, int rows, int cols, const SG_REAL *S, int lds, SG_REAL *out, int ldout)
{
    for (int b = 0; b < batch; ++b) {
        sg_sum(rows, cols, S + (size_t)b * lds, cols, out + (size_t)b * ldout);
    }
}

/* out[b, j] = sum_i S[b, i, j]: each column of each sample's matrix summed */
static inline void sg_colsum(int batch, int rows, int cols, const SG_REAL *S, int lds, SG_REAL *out, int ldout)
{
    for (int b = 0; b < batch; ++b) {
        const SG_REAL *const matrix = S + (size_t)b * lds;
        SG_REAL *const result = out + (size_t)b * ldout;
        for (int j = 0; j < cols; ++j) {
            result[j] = SG_ZERO;
        }
        for (int i = 0; i < rows; ++i) {
            for (int j = 0; j < cols; ++j) {
                result[j] += matrix[(size_t)i * cols + j];
            }
        }
    }
}

/* out[n] += v[n] for n < count */
static inline void sg_add(size_t count, const SG_REAL *v, SG_REAL *out)
{
    for (size_t n = 0; n < count; ++n) {
        out[n] += v[n];
    }
}

/* out[j, i] += v[i, j]: a (rows, cols) block added transposed to a (cols, rows) matrix (the
 * gradient of W from the stacked gradient of W.T) */
static inline void sg_add_t(int rows, int cols, const SG_REAL *v, SG_REAL *out)
{
    for (int j = 0; j < cols; ++j) {
        for (int i = 0; i < rows; ++i) {
            out[(size_t)j * rows + i] += v[(size_t)i * cols + j];
        }
    }
}

/* out[i, j] = W[i, j]: a (rows, cols) matrix copied row by row into rows of out ldo apart (the
 * transpose of W.T, for a product with W.T packed as columns side by side) */
static inline void sg_pack(int rows, int cols, const SG_REAL *W, SG_REAL *out, int ldo)
{
    for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < cols; ++j) {
            out[(size_t)i * ldo + j] = W[(size_t)i * cols + j];
        }
    }
}

/* out[j, i] = W[i, j]: a (rows, cols) matrix written transposed into columns of out (rows ldo
 * apart): OpenBLAS's omatcopy where linked, else 32 x 32 tiles, each written row by row, so that
 * a large matrix's transposition does not miss the cache at every element (benchmarks/
 * MEASUREMENTS.md, "Transposition"). */
static inline void sg_pack_t(int rows, int cols, const SG_REAL *W, SG_REAL *out, int ldo)
{
#ifdef SG_WITH_OPENBLAS
    if (rows > 0 && cols > 0) {
        SG_SCIPY_CBLAS(omatcopy)(CblasRowMajor, CblasTrans, rows, cols, SG_ONE, W, cols, out, ldo);
    }
    return;
#endif
    const int tile = 32;
    for (int i0 = 0; i0 < rows; i0 += tile) {
        const int i1 = rows - i0 < tile ? rows : i0 + tile;
        for (int j0 = 0; j0 < cols; j0 += tile) {
            const int j1 = cols - j0 < tile ? cols : j0 + tile;
            for (int j = j0; j < j1; ++j) {
                for (int i = i0; i < i1; ++i) {
                    out[(size_t)j * ldo + i] = W[(size_t)i * cols + j];
                }
            }
        }
    }
}

/* Which library makes a product of `work` multiply-adds: MKL from SG_MKL_MIN (when built with
 * SYMGATE_MKL), OpenBLAS from SG_BLAS_MIN, else the caller's loops. A sum of products (one per
 * run of steps of a packed batch) is given one choice, by its total: pieces on both libraries in
 * one call leave OpenBLAS's threads spinning beside MKL's on the same cores (benchmarks/
 * MEASUREMENTS.md, "One library a product"). */
typedef enum { SG_LOOPS, SG_OPENBLAS, SG_MKL } sg_library;

static inline sg_library sg_library_for(double work)
{
#ifdef SG_WITH_MKL
    if (work >= SG_MKL_MIN) {
        return SG_MKL;
    }
#endif
#ifdef SG_WITH_OPENBLAS
    if (work >= SG_BLAS_MIN) {
        return SG_OPENBLAS;
    }
#endif
    (void)work;
    return SG_LOOPS;
}

#ifdef SG_WITH_CBLAS
#include <stdlib.h>
/* Is environment variable `name` set to something? */
static inline int sg_environment_sets(const char *name)
{
    const char *value = getenv(name);
    return value != NULL && value[0] != '\0';
}

/* Has the user's environment set OpenBLAS's thread count (which symgate then leaves alone)? */
static inline int sg_user_sets_openblas_threads(void)
{
    return sg_environment_sets("OPENBLAS_NUM_THREADS") || sg_environment_sets("GOTO_NUM_THREADS")
        || sg_environment_sets("OMP_NUM_THREADS");
}
#endif

#if defined(SG_WITH_OPENBLAS) && !defined(SG_WITH_MKL)

/* OpenBLAS's thread count for the largest products: all its threads, or -1 when the user's
 * environment sets the count, which is then left as it is. */
static inline int sg_openblas_all_threads(void)
{
    static int all_threads = 0; /* 0: not read yet */
    if (all_threads == 0) {
        all_threads = sg_user_sets_openblas_threads() ? -1 : scipy_openblas_get_num_procs();
    }
    return all_threads;
}

/* 1 while this file's kernels run in several threads at once (sg_blas_one_thread) */
static int sg_one_thread = 0;

/* Has OpenBLAS run a product of `work` multiply-adds on all its threads from SG_THREADS_MIN and on
 * one below: a step's product of a few rows gains little from a second thread and waits for it a
 * scheduler time slice at every step when another process holds the other core (benchmarks/
 * NOTES.md). On one always while sg_one_thread. A thread count the user set is left as it is.
 * Built with MKL, MKL takes the large products and symgate.jit.toolchain sets OpenBLAS to one
 * thread once. */
static inline void sg_openblas_threads_for(double work)
{
    const int all_threads = sg_openblas_all_threads();
    if (all_threads < 0) {
        return;
    }
    const int wanted = work >= SG_THREADS_MIN && !sg_one_thread ? all_threads : 1;
    if (scipy_openblas_get_num_threads() != wanted) {
        scipy_openblas_set_num_threads(wanted);
    }
}
#endif

/* With `on` 1: can this file's kernels run in several threads at once, each matrix product on the
 * thread that calls it (1), or would their products want threads the user gave the BLAS library
 * (0)? Independent calls (a bidirectional layer's two directions) share the cores better side by
 * side than one after the other with threaded products (benchmarks/MEASUREMENTS.md, "Directions
 * at once"). With `on` 0 the products get their threads back. Called by the thread that starts the
 * calls, before and after them; with several kernels, switched back in the reverse order. The
 * library is set to one thread while `on`: MKL, given its count back at `on` 0; OpenBLAS alone,
 * whose next product of SG_THREADS_MIN multiply-adds or more takes all its threads again. A count
 * the user set is left alone, and above one answers 0: MKL_NUM_THREADS or OMP_NUM_THREADS for MKL,
 * OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or OMP_NUM_THREADS for OpenBLAS (which takes the smaller
 * products beside MKL). Without a BLAS library: 1. */
static inline int sg_blas_one_thread(int on)
{
#ifdef SG_WITH_OPENBLAS
    if (sg_user_sets_openblas_threads() && scipy_openblas_get_num_threads() != 1) {
        return 0;
    }
#endif
#if defined(SG_WITH_MKL)
    static int mkl_threads = 0; /* MKL's count before `on`, given back after; 0: not switched */
    if (sg_environment_sets("MKL_NUM_THREADS") || sg_environment_sets("OMP_NUM_THREADS")) {
        return MKL_Get_Max_Threads() == 1;
    }
    if (on && mkl_threads == 0) {
        mkl_threads = MKL_Get_Max_Threads();
        MKL_Set_Num_Threads(1);
    } else if (!on && mkl_threads != 0) {
        MKL_Set_Num_Threads(mkl_threads);
        mkl_threads = 0;
    }
    return 1;
#elif defined(SG_WITH_OPENBLAS)
    if (sg_openblas_all_threads() > 0) {
        sg_one_thread = on;
        if (on && scipy_openblas_get_num_threads() != 1) {
            scipy_openblas_set_num_threads(1);
        }
    }
    return 1;
#else
    (void)on;
    return 1;
#endif
}

#ifdef SG_WITH_OPENBLAS
/* C = A op(B) + beta C, a row of A at a time by OpenBLAS's gemv: A (m, k), op(B) (k, n) */
static inline void sg_gemv_rows(CBLAS_TRANSPOSE trans_b, int m, int n, int k, const SG_REAL *A, int lda,
    const SG_REAL *B, int ldb, SG_REAL beta, SG_REAL *C, int ldc)
{
    for (int i = 0; i < m; ++i) {
        const SG_REAL *const a_i = A + (size_t)i * lda;
        SG_REAL *const c_i = C + (size_t)i * ldc;
        if (trans_b == CblasNoTrans) { /* c_i = Bᵀ a_i: B (k, n) */
            SG_SCIPY_CBLAS(gemv)(CblasRowMajor, CblasTrans, k, n, SG_ONE, B, ldb, a_i, 1, beta, c_i, 1);
        } else { /* c_i = B a_i: B (n, k) */
            SG_SCIPY_CBLAS(gemv)(CblasRowMajor, CblasNoTrans, n, k, SG_ONE, B, ldb, a_i, 1, beta, c_i, 1);
        }
    }
}
#endif

#ifdef SG_WITH_CBLAS
/* C = op(A) op(B) + beta C by the library given, or by OpenBLAS's gemv a row at a time for a
 * product of at most SG_GEMV_ROWS rows that is not MKL's (see SG_GEMV_ROWS); 0 when it is the
 * caller's loops, or the product is empty. */
static inline int sg_gemm_by_blas(sg_library library, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int m,
    int n, int k, const SG_REAL *A, int lda, const SG_REAL *B, int ldb, SG_REAL beta, SG_REAL *C, int ldc)
{
    if (m <= 0 || n <= 0 || k <= 0) {
        return 0;
    }
#ifdef SG_WITH_MKL
    if (library == SG_MKL) {
        SG_CBLAS(gemm)(CblasRowMajor, trans_a, trans_b, m, n, k, SG_ONE, A, lda, B, ldb, beta, C, ldc);
        return 1;
    }
#endif
#ifdef SG_WITH_OPENBLAS
    const int by_rows = trans_a == CblasNoTrans && m <= SG_GEMV_ROWS && (double)n * k >= SG_GEMV_MIN;
    if (library == SG_OPENBLAS || (library == SG_LOOPS && by_rows)) {
#ifndef SG_WITH_MKL
        sg_openblas_threads_for((double)m * n * k);
#endif
        if (by_rows) {
            sg_gemv_rows(trans_b, m, n, k, A, lda, B, ldb, beta, C, ldc);
        } else {
            SG_SCIPY_CBLAS(gemm)(CblasRowMajor, trans_a, trans_b, m, n, k, SG_ONE, A, lda, B, ldb, beta, C, ldc);
        }
        return 1;
    }
#endif
    return 0;
}
#endif

/* The matrix products stay out of line: inlined at each of a long cell's products, their loops
 * made the C compiler's time grow faster than the cell (register allocation over one huge
 * function), for no speed a product of that size can see. */
#if defined(__GNUC__)
#define SG_OUT_OF_LINE __attribute__((noinline, unused)) static
#else
#define SG_OUT_OF_LINE static inline
#endif

/* C = A B, or C += A B when accumulate: A (m, k), B (k, n), C (m, n); rows lda, ldb, ldc apart */
SG_OUT_OF_LINE void sg_gemm_nn(int m, int n, int k, const SG_REAL *A, int lda, const SG_REAL *B, int ldb,
    SG_REAL *C, int ldc, int accumulate)
{
#ifdef SG_WITH_CBLAS
    const SG_REAL beta = accumulate ? SG_ONE : SG_ZERO;
    const sg_library library = sg_library_for((double)m * n * k);
    if (sg_gemm_by_blas(library, CblasNoTrans, CblasNoTrans, m, n, k, A, lda, B, ldb, beta, C, ldc)) {
        return;
    }
#endif
    for (int i = 0; i < m; ++i) {
        SG_REAL *const c_i = C + (size_t)i * ldc;
        if (!accumulate) {
            for (int j = 0; j < n; ++j) {
                c_i[j] = SG_ZERO;
            }
        }
        for (int p = 0; p < k; ++p) {
            const SG_REAL a_ip = A[(size_t)i * lda + p];
            const SG_REAL *const b_p = B + (size_t)p * ldb;
            for (int j = 0; j < n; ++j) {
                c_i[j] += a_ip * b_p[j];
            }
        }
    }
}

/* Numbers of workspace for the matrix W (k, n) of C = A W made at every step with (m, k) A's,
 * packed by MKL into the layout its kernels read (with room to align it): OpenBLAS, and MKL's
 * plain gemm, copy W into that layout again at every call. 0 when W is used as it is. */
static inline size_t sg_packed_count(int m, int n, int k)
{
#ifdef SG_WITH_MKL
    if (m > 0 && n > 0 && k > 0 && sg_library_for((double)m * n * k) == SG_MKL) {
        const size_t bytes = SG_CBLAS(gemm_pack_get_size)(CblasBMatrix, m, n, k);
        return (bytes + 64 + sizeof(SG_REAL) - 1) / sizeof(SG_REAL);
    }
#endif
    (void)m;
    (void)n;
    (void)k;
    return 0;
}

/* W (k, n) packed for C = A W with (m, k) A's into space (sg_packed_count numbers), or NULL
 * when W is used as it is: a large step product is faster packed once per call than packed by
 * each call (benchmarks/MEASUREMENTS.md, "MKL threshold"). */
static inline const SG_REAL *sg_pack_weights(int m, int n, int k, const SG_REAL *W, int ldw, SG_REAL *space)
{
    if (sg_packed_count(m, n, k) == 0) {
        return NULL;
    }
#ifdef SG_WITH_MKL
    SG_REAL *const packed = (SG_REAL *)(((uintptr_t)space + 63) & ~(uintptr_t)63);
    SG_CBLAS(gemm_pack)(CblasRowMajor, CblasBMatrix, CblasNoTrans, m, n, k, SG_ONE, W, ldw, packed);
    return packed;
#else
    (void)W;
    (void)ldw;
    (void)space;
    return NULL;
#endif
}

/* C = A W: A (m, k), W (k, n), C (m, n); rows lda, ldw, ldc apart; with W as sg_pack_weights
 * packed it unless that gave NULL. */
SG_OUT_OF_LINE void sg_gemm_packed(int m, int n, int k, const SG_REAL *A, int lda, const SG_REAL *W, int ldw,
    const SG_REAL *packed, SG_REAL *C, int ldc)
{
#ifdef SG_WITH_MKL
    if (packed != NULL) {
        SG_CBLAS(gemm_compute)(CblasRowMajor, CblasNoTrans, CblasPacked, m, n, k, A, lda, packed, ldw,
            SG_ZERO, C, ldc);
        return;
    }
#else
    (void)packed;
#endif
    sg_gemm_nn(m, n, k, A, lda, W, ldw, C, ldc, 0);
}

/* C = A Bᵀ, or C += A Bᵀ when accumulate: A (m, k), B (n, k), C (m, n); rows lda, ldb, ldc apart */
SG_OUT_OF_LINE void sg_gemm_nt(int m, int n, int k, const SG_REAL *A, int lda, const SG_REAL *B, int ldb,
    SG_REAL *C, int ldc, int accumulate)
{
#ifdef SG_WITH_CBLAS
    const SG_REAL beta = accumulate ? SG_ONE : SG_ZERO;
    const sg_library library = sg_library_for((double)m * n * k);
    if (sg_gemm_by_blas(library, CblasNoTrans, CblasTrans, m, n, k, A, lda, B, ldb, beta, C, ldc)) {
        return;
    }
#endif
    for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
            SG_REAL acc = accumulate ? C[(size_t)i * ldc + j] : SG_ZERO;
            for (int p = 0; p < k; ++p) {
                acc += A[(size_t)i * lda + p] * B[(size_t)j * ldb + p];
            }
            C[(size_t)i * ldc + j] = acc;
        }
    }
}

/* C += Aᵀ B by the library given: A (k, m), B (k, n), C (m, n); rows lda, ldb, ldc apart. Sums
 * over k (steps and samples). */
SG_OUT_OF_LINE void sg_gemm_tn_by(sg_library library, int m, int n, int k, const SG_REAL *A, int lda,
    const SG_REAL *B, int ldb, SG_REAL *C, int ldc)
{
#ifdef SG_WITH_CBLAS
    if (sg_gemm_by_blas(library, CblasTrans, CblasNoTrans, m, n, k, A, lda, B, ldb, SG_ONE, C, ldc)) {
        return;
    }
#else
    (void)library;
#endif
    for (int p = 0; p < k; ++p) {
        const SG_REAL *const b_p = B + (size_t)p * ldb;
        for (int i = 0; i < m; ++i) {
            const SG_REAL a_pi = A[(size_t)p * lda + i];
            SG_REAL *const c_i = C + (size_t)i * ldc;
            for (int j = 0; j < n; ++j) {
                c_i[j] += a_pi * b_p[j];
            }
        }
    }
}

/* C += Aᵀ B: A (k, m), B (k, n), C (m, n); rows lda, ldb, ldc apart */
SG_OUT_OF_LINE void sg_gemm_tn(int m, int n, int k, const SG_REAL *A, int lda, const SG_REAL *B, int ldb,
    SG_REAL *C, int ldc)
{
    sg_gemm_tn_by(sg_library_for((double)m * n * k), m, n, k, A, lda, B, ldb, C, ldc);
}

/* C += Σ_t A_tᵀ S_{t-1}: A (rows, m) holds every step's rows (rows lda apart), S_{t-1} is the
 * state before step t (init at t = 0, else the sequence S), C (m, n). The state before step t
 * has at least the rows of step t, whose first ones pair with A's; with batch_sizes, steps of
 * the same batch after one of that batch are one product, so a few products cover all steps. */
SG_OUT_OF_LINE void sg_gemm_tn_previous(int m, int n, int T, int B, const int *batch_sizes, const SG_REAL *A,
    int lda, const SG_REAL *init, const SG_REAL *S, int lds, SG_REAL *C, int ldc)
{
    if (T == 0) {
        return;
    }
    const sg_library library = sg_library_for((double)m * n * sg_all_rows(T, B, batch_sizes));
    const int first_batch = sg_step_batch(batch_sizes, 0, B);
    sg_gemm_tn_by(library, m, n, first_batch, A, lda, init, lds, C, ldc);
    size_t row = (size_t)first_batch;
    size_t previous_row = 0;
    int t = 1;
    while (t < T) {
        const int batch = sg_step_batch(batch_sizes, t, B);
        const int previous_batch = sg_step_batch(batch_sizes, t - 1, B);
        int run = 1;
        while (batch == previous_batch && t + run < T && sg_step_batch(batch_sizes, t + run, B) == batch) {
            ++run;
        }
        const int rows = batch == previous_batch ? run * batch : batch;
        sg_gemm_tn_by(library, m, n, rows, A + row * lda, lda, S + previous_row * lds, lds, C, ldc);
        const int steps = batch == previous_batch ? run : 1;
        previous_row += (size_t)previous_batch + (size_t)(steps - 1) * batch;
        row += (size_t)rows;
        t += steps;
    }
}

#endif /* SYMGATE_RUNTIME_H */
