"""The toolchain: which C compiler, which flags, which BLAS, for this machine and environment.

Everything here is a fact about the machine or the user's settings (``CC``, ``SYMGATE_BLAS``,
``SYMGATE_BLAS_MIN``, ``SYMGATE_MKL_MIN``, ``SYMGATE_THREADS_MIN``, ``SYMGATE_SANITIZE``), read
when a kernel is built; all of it is part of a kernel's cache key
(:func:`symgate.jit.compiler.key_inputs`), so a change in any of it builds new kernels instead of
reusing ones built otherwise.
"""

from __future__ import annotations

import ctypes.util
import functools
import importlib.metadata
import os
import platform
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

from ..errors import BuildError
from . import sanitize

COMPILE_FLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fPIC",
    "-shared",
    "-Wall",
    "-Wextra",
    "-Werror=implicit-function-declaration",
)
"""-O3 vectorizes the fused loops for this machine's CPU (part of the cache key). The two -fno-
flags change no result: math functions need not set errno, and comparisons may be if-converted.
A call to an undeclared function is an error: C would assume it returns an int and takes
whatever it is given, and the kernel would crash or compute garbage at run time."""


def compile_flags() -> tuple[str, ...]:
    """Flags for a Python extension module on this platform, linked to scipy-openblas32 when installed."""
    flags = (*COMPILE_FLAGS, "-undefined", "dynamic_lookup") if sys.platform == "darwin" else COMPILE_FLAGS
    library = blas_library()
    blas = blas_flags(library)
    blas += (f"-DSG_BLAS_MIN={blas_threshold()}", f"-DSG_GEMV_ROWS={gemv_rows()}") if blas else ()
    blas += (f"-DSG_MKL_MIN={mkl_threshold()}",) if library == "mkl" else ()
    blas += (f"-DSG_THREADS_MIN={threads_threshold()}",) if library == "openblas" else ()
    return flags + vector_math_flags() + vector_width_flags() + blas + sanitize.flags()


SMALL_MATRIX_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
"""OpenBLAS cores with kernels for small matrices, which beat the generated loops even on a
one-sample step; on other cores the loops win below 16384 multiply-adds (the measurements:
benchmarks/MEASUREMENTS.md, "Small products")."""


def blas_threshold() -> int:
    """The fewest multiply-adds a matrix product needs to go to OpenBLAS rather than the
    generated loops: ``SYMGATE_BLAS_MIN`` if set; else 1 (always OpenBLAS) on a core with
    small-matrix kernels, 16384 on the others."""
    return _whole_number("SYMGATE_BLAS_MIN", 1 if blas_core() in SMALL_MATRIX_CORES else 16384)


def gemv_rows() -> int:
    """The most rows a matrix product may have to go to OpenBLAS's matrix-vector product, one row
    at a time (a step of one to three samples; see ``SG_GEMV_ROWS`` in the runtime header):
    ``SYMGATE_GEMV_ROWS`` if set (0: never); else 3, where OpenBLAS's gemm took 2 to 7 times as
    long as gemv on so few rows and the generated loops up to 3 times (benchmarks/MEASUREMENTS.md,
    "Products of few rows"), and 0 on a core with small-matrix kernels, which gemv was not measured
    against."""
    return _whole_number("SYMGATE_GEMV_ROWS", 0 if blas_core() in SMALL_MATRIX_CORES else 3, "rows")


def _whole_number(variable: str, default: int, unit: str = "multiply-adds") -> int:
    """A count (of multiply-adds, or ``unit``) from the environment variable, else ``default``."""
    given = os.environ.get(variable, "").strip()
    if not given:
        return default
    if not given.isdigit():
        raise BuildError(f"{variable} must be a whole number of {unit}, not {given!r}")
    return int(given)


def mkl_threshold() -> int:
    """The fewest multiply-adds a product needs to go to MKL rather than OpenBLAS when the BLAS is
    ``mkl``; a product made at every step with the same matrix then also has that matrix packed
    once per call. ``SYMGATE_MKL_MIN`` if set, else 2**20: below it each MKL call costs more in
    waking its threads than it saves, above it MKL's packed products win (the measurements:
    benchmarks/MEASUREMENTS.md, "MKL threshold")."""
    return _whole_number("SYMGATE_MKL_MIN", 2**20)


def threads_threshold() -> int:
    """The fewest multiply-adds a product needs to run on all of OpenBLAS's threads when the BLAS
    is ``openblas`` (smaller ones run on one): ``SYMGATE_THREADS_MIN`` if set, else 2**20. A step's
    product of 8 x 128 x 512 (a small LSTM) ran faster on one thread, 32 x 256 x 1024 and up on two
    (benchmarks/MEASUREMENTS.md, "OpenBLAS's threads")."""
    return _whole_number("SYMGATE_THREADS_MIN", 2**20)


OPENBLAS_SPIN = "20"
"""``OPENBLAS_THREAD_TIMEOUT`` for the kernels' OpenBLAS: its idle threads wait busily for 2**n
cycles before they sleep, 2**28 (about 0.1 s) by default, so long that after a kernel's last
product its thread kept a core from the PyTorch code that followed (a training step of the small
LSTM took 30 ms against 13.5 with 2**20, about 0.4 ms, and ``nn.LSTM``'s beside it 15 against 9.5:
benchmarks/MEASUREMENTS.md, "OpenBLAS's idle threads")."""


@functools.cache
def openblas_package() -> ModuleType | None:
    """scipy-openblas32's Python package, or None when it is missing. Importing it starts its
    library, so it is imported here first, with the library's idle threads sleeping after
    :data:`OPENBLAS_SPIN` unless the user set ``OPENBLAS_THREAD_TIMEOUT``; the environment is left
    as it was."""
    chosen = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    if chosen is None:
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = OPENBLAS_SPIN
    try:
        import scipy_openblas32

        return scipy_openblas32
    except ImportError:
        return None
    finally:
        if chosen is None:
            del os.environ["OPENBLAS_THREAD_TIMEOUT"]


@functools.cache
def openblas() -> ctypes.CDLL | None:
    """scipy-openblas32's library as this process has it loaded (the kernels' copy, not NumPy's),
    or None when it is missing."""
    package = openblas_package()
    if package is None:
        return None
    names = sorted(Path(package.get_lib_dir()).glob(f"lib{package.get_library()}.*"))
    try:
        return ctypes.CDLL(str(names[0])) if names else None
    except OSError:
        return None


@functools.cache
def blas_core() -> str:
    """The core OpenBLAS runs its kernels for in this process (``OPENBLAS_CORETYPE`` decides it
    when set), or "" when scipy-openblas32 is missing or cannot say."""
    library = openblas()
    try:
        library.scipy_openblas_get_corename.restype = ctypes.c_char_p
        return library.scipy_openblas_get_corename().decode()
    except (AttributeError, UnicodeDecodeError):  # None, or a library without the function
        return ""


OPENBLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
"""What OpenBLAS reads its thread count from, in its order: a user who set one chose it."""


@functools.cache
def one_openblas_thread() -> bool:
    """Has scipy-openblas32 run on one thread, for kernels that give the products worth two
    threads to MKL: what is left to OpenBLAS (16384 multiply-adds to SG_MKL_MIN, mostly a step's
    product of B rows) gains little from a second thread, and waits for it a scheduler time
    slice at every step when another process holds the other core (a small LSTM's forward pass
    took 0.8 s instead of 5 ms on this 2-core machine: benchmarks/NOTES.md). A thread count the
    user set (``OPENBLAS_NUM_THREADS`` and the others OpenBLAS reads) is left as it is. True when
    it set one thread."""
    library = openblas()
    if library is None or any(os.environ.get(v, "").strip() for v in OPENBLAS_THREAD_VARIABLES):
        return False
    try:
        library.scipy_openblas_set_num_threads(ctypes.c_int(1))
    except AttributeError:
        return False
    return True


@functools.cache
def vector_math_flags() -> tuple[str, ...]:
    """Flags for glibc's SIMD math library (libmvec), which lets loops calling exp and tanh
    vectorize; none where it is missing (other C libraries, other CPUs)."""
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        return ()
    if ctypes.util.find_library("mvec") is None:
        return ()
    return ("-DSYMGATE_VECTOR_MATH", "-lmvec")


@functools.cache
def vector_width_flags() -> tuple[str, ...]:
    """``-mprefer-vector-width=512`` on an x86-64 CPU with AVX-512, whose tuning in GCC (and
    clang) otherwise keeps loops to 256-bit vectors: the fused loops then run 8 doubles or 16
    floats at a time and call libmvec's AVX-512 variants of exp and tanh (``_ZGVeN8v_tanh``, not
    ``_ZGVdN4v_tanh``). Results stay within the few ulp of libmvec; small and middle-sized steps
    get faster, large ones (BLAS-bound) no slower (benchmarks/MEASUREMENTS.md, "Vector width")."""
    if platform.machine() not in ("x86_64", "AMD64") or "avx512f" not in cpu_identity().split():
        return ()
    return ("-mprefer-vector-width=512",)


@functools.cache
def cpu_identity() -> str:
    """What ``-march=native`` compiles for: the CPU's model and feature flags, for the cache key."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + " " + platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))


BLAS_LIBRARIES = ("mkl", "openblas", "none")


def blas_library() -> str:
    """The BLAS the kernels call: ``SYMGATE_BLAS`` (``mkl``, ``openblas`` or ``none``) when set;
    else ``mkl`` on an Intel CPU when MKL's wheels are installed (a dependency on Linux x86-64, the
    platform they exist for), else ``openblas`` (scipy-openblas32, a dependency everywhere), else
    ``none`` (the generated loops do every product).

    ``mkl`` sends products of at least :func:`mkl_threshold` multiply-adds to MKL and the smaller
    ones to OpenBLAS (or the loops, see :func:`blas_threshold`), which is the faster at small sizes. MKL can pack a
    matrix once and multiply by it at every step (``cblas_?gemm_pack``, ``cblas_?gemm_compute``),
    where OpenBLAS packs it again at each call; at tiny sizes OpenBLAS is the faster
    (benchmarks/MEASUREMENTS.md, "MKL threshold").

    MKL is the default on Intel's CPUs only: on an AMD EPYC (Zen, AVX2) OpenBLAS's kernels made
    the large products faster than MKL's (the large LSTM 1.05-1.14× ``nn.LSTM`` against
    0.76-0.86× with MKL, benchmarks/MEASUREMENTS.md, "MKL on AMD").
    """
    given = os.environ.get("SYMGATE_BLAS", "").strip().lower()
    if given:
        if given not in BLAS_LIBRARIES:
            raise BuildError(f"SYMGATE_BLAS must be one of {', '.join(BLAS_LIBRARIES)}, not {given!r}")
        if given != "none" and not _library_flags(given):
            wheels = "mkl, mkl-include and scipy-openblas32" if given == "mkl" else "scipy-openblas32"
            raise BuildError(f"SYMGATE_BLAS={given}, but it needs {wheels}, which are not all installed")
        return given
    return next((name for name in preferred_libraries() if _library_flags(name)), "none")


def preferred_libraries() -> tuple[str, ...]:
    """The BLAS libraries that :func:`blas_library` takes, when installed, on this CPU, best first."""
    return BLAS_LIBRARIES[:2] if cpu_vendor() == "GenuineIntel" else BLAS_LIBRARIES[1:2]


@functools.cache
def cpu_vendor() -> str:
    """The CPU's vendor as the CPU names itself (``GenuineIntel``, ``AuthenticAMD``), or "" where
    /proc/cpuinfo does not say."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), "")


def blas_flags(library: str | None = None) -> tuple[str, ...]:
    """Compile and link flags for the CBLAS ``library`` (default: :func:`blas_library`'s); none
    for plain loops."""
    library = blas_library() if library is None else library
    return _library_flags(library) if library != "none" else ()


@functools.cache
def _library_flags(library: str) -> tuple[str, ...]:
    """Flags for one choice of BLAS, or none when what it needs is not installed."""
    openblas = openblas_package()
    if openblas is None:
        return ()
    lib = openblas.get_lib_dir()
    flags = (
        "-DSYMGATE_BLAS",
        f"-I{openblas.get_include_dir()}",
        f"-L{lib}",
        f"-Wl,-rpath,{lib}",
        f"-l{openblas.get_library()}",
    )
    if library != "mkl":
        return flags
    mkl, header = _mkl_file("mkl", "libmkl_rt.so."), _mkl_file("mkl-include", "mkl_cblas.h")
    if mkl is None or header is None:
        return ()
    return (
        *flags,
        "-DSYMGATE_MKL",
        f"-I{header.parent}",
        f"-L{mkl.parent}",
        f"-Wl,-rpath,{mkl.parent}",
        f"-l:{mkl.name}",
    )


def _mkl_file(distribution: str, prefix: str) -> Path | None:
    """A file of an installed MKL wheel whose name starts with ``prefix``, or None."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = sorted(Path(str(f.locate())).resolve() for f in files if f.name.startswith(prefix))
    return next((path for path in found if path.is_file()), None)


def compiler_command() -> list[str]:
    """The C compiler command: ``$CC``, else the one Python was built with if present, else ``cc``."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    configured = shlex.split(sysconfig.get_config_var("CC") or "")
    return configured if configured and shutil.which(configured[0]) else ["cc"]


def compiler() -> list[str]:
    """The compiler command, checked to exist."""
    words = compiler_command()
    if not words or shutil.which(words[0]) is None:
        raise BuildError(
            f"no C compiler found (tried {words[0] if words else 'cc'!r}); install one, e.g. "
            "`apt-get install gcc` on Debian/Ubuntu or Xcode's command line tools on macOS, "
            "or point CC at it"
        )
    return words


PYTHON_HEADERS = ("Python.h", "pyconfig.h")


def missing_headers_advice(compiler_errors: str) -> str | None:
    """What to install when the compiler's errors say Python's C headers are missing (``Python.h``,
    or the ``pyconfig.h`` it includes; gcc, clang and MSVC each word it their way), quoting the
    compiler's first such line; None for any other failure. Distributions ship the headers apart
    from the interpreter, so a Python that runs can still lack them."""
    first = next(
        (
            line.strip()
            for line in compiler_errors.splitlines()
            if any(header in line for header in PYTHON_HEADERS) and ("No such file" in line or "not found" in line)
        ),
        None,
    )
    if first is None:
        return None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"Python's C headers are not installed ({first}); kernels are Python extension modules and need them. "
        f"Install them: on Debian/Ubuntu `apt-get install python{version}-dev` (python3-dev for the system's "
        f"default python3), on Fedora `dnf install python3-devel`; a conda environment gets them with its "
        f"python (`conda install python={version}`); pyenv installs them with each version "
        f"(`pyenv install --force {platform.python_version()}` if they were removed)"
    )
