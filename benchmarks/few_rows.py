"""Time a matrix product of few rows three ways: the generated loops, OpenBLAS's gemm, and
OpenBLAS's gemv a row at a time (what ``SG_GEMV_ROWS`` in templates/symgate_runtime.h chooses).

A step of one to a few samples multiplies m = B rows by a cell's recurrent matrix: (m, H) by
(H, 4H) forward and (m, 4H) by (4H, H) backward for an LSTM. The three ways are compiled here, in
one C program linked to the kernels' scipy-openblas32 on one thread, and each is timed as the best
of 5 rounds; the table gives microseconds a product and, in bold, the fastest.

    python benchmarks/few_rows.py                 # float32
    python benchmarks/few_rows.py --dtype float64
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from symgate.jit import toolchain

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
typedef REAL real;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* the loops of sg_gemm_nn in templates/symgate_runtime.h */
__attribute__((noinline)) static void loops(int m, int n, int k, const real *A, const real *B, real *C)
{
    for (int i = 0; i < m; ++i) {
        real *const c = C + (size_t)i * n;
        for (int j = 0; j < n; ++j) {
            c[j] = 0;
        }
        for (int p = 0; p < k; ++p) {
            const real a = A[(size_t)i * k + p];
            const real *const b = B + (size_t)p * n;
            for (int j = 0; j < n; ++j) {
                c[j] += a * b[j];
            }
        }
    }
}

static void gemm(int m, int n, int k, const real *A, const real *B, real *C)
{
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, A, k, B, n, 0, C, n);
}

static void gemv_rows(int m, int n, int k, const real *A, const real *B, real *C)
{
    for (int i = 0; i < m; ++i) {
        GEMV(CblasRowMajor, CblasTrans, k, n, 1, B, n, A + (size_t)i * k, 1, 0, C + (size_t)i * n, 1);
    }
}

typedef void (*product)(int, int, int, const real *, const real *, real *);

static double best(product f, int m, int n, int k, const real *A, const real *B, real *C)
{
    const long work = (long)m * n * k;
    const int reps = work > 2000000 ? 20 : (int)(2000000 / (100 + work / 8)) + 20;
    double fastest = 1e9;
    for (int round = 0; round < 5; ++round) {
        const double start = now();
        for (int r = 0; r < reps; ++r) {
            f(m, n, k, A, B, C);
        }
        const double took = (now() - start) / reps;
        fastest = took < fastest ? took : fastest;
    }
    return fastest * 1e6;
}

int main(int argc, char **argv)
{
    scipy_openblas_set_num_threads(1);
    const size_t count = 4u << 20;
    real *A = aligned_alloc(64, count * sizeof(real));
    real *B = aligned_alloc(64, count * sizeof(real));
    real *C = aligned_alloc(64, count * sizeof(real));
    for (size_t i = 0; i < count; ++i) {
        A[i] = (real)(i % 7) * 0.1f;
        B[i] = (real)(i % 5) * 0.1f;
        C[i] = 0;
    }
    for (int a = 1; a + 2 < argc; a += 3) {
        const int m = atoi(argv[a]), n = atoi(argv[a + 1]), k = atoi(argv[a + 2]);
        printf("%d %d %d %.3f %.3f %.3f\n", m, n, k, best(loops, m, n, k, A, B, C), best(gemm, m, n, k, A, B, C),
            best(gemv_rows, m, n, k, A, B, C));
    }
    return 0;
}
"""

HIDDEN = (8, 16, 32, 64, 128, 256)
ROWS = (1, 2, 3, 4, 8)


def shapes() -> list[tuple[int, int, int]]:
    """(m, n, k) of an LSTM step's products, forward (H by 4H) and backward (4H by H)."""
    return [(m, n, k) for h in HIDDEN for n, k in ((4 * h, h), (h, 4 * h)) for m in ROWS]


def build(dtype: str, directory: Path) -> Path:
    """The timing program compiled for ``dtype`` against the kernels' OpenBLAS."""
    flags = [f for f in toolchain.blas_flags("openblas") if not f.startswith("-D")]
    if not flags:
        raise SystemExit("scipy-openblas32 is not installed")
    letter, real = ("s", "float") if dtype == "float32" else ("d", "double")
    source, program = directory / "few_rows.c", directory / "few_rows"
    source.write_text(PROGRAM)
    defines = [f"-DREAL={real}", f"-DGEMM=scipy_cblas_{letter}gemm", f"-DGEMV=scipy_cblas_{letter}gemv"]
    command = ["gcc", *toolchain.COMPILE_FLAGS[:4], *defines, str(source), *flags, "-o", str(program)]
    subprocess.run(command, check=True)
    return program


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        program = build(args.dtype, Path(directory))
        arguments = [str(v) for shape in shapes() for v in shape]
        lines = subprocess.run([program, *arguments], check=True, capture_output=True, text=True).stdout
    core = os.environ.get("OPENBLAS_CORETYPE", "unset")
    print(f"{args.dtype}, {platform.processor() or platform.machine()}, OpenBLAS core {toolchain.blas_core()}")
    print(f"(OPENBLAS_CORETYPE {core}), one thread; µs a product, the fastest in bold\n")
    print("| rows m | n | k | loops | gemm | gemv a row at a time |")
    print("|---|---|---|---|---|---|")
    for line in lines.split("\n"):
        if not line:
            continue
        m, n, k, *times = line.split()
        fastest = min(times, key=float)
        cells = [f"**{t}**" if t == fastest else t for t in times]
        print(f"| {m} | {n} | {k} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
