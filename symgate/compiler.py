"""Building: rendered C -> a compiled cffi extension module, cached on disk.

cffi API mode, out-of-line: cffi writes the extension's C (our kernel plus its wrappers) and we
compile it with the system C compiler in one call, keeping the command and its output for the
error message. Entries live in ``SYMGATE_CACHE_DIR`` (default: the per-user cache directory)
under a key that covers everything that determines the binary: the cell's canonical text, the
dtype, symgate's version, the templates, the compiler and its flags, the CPU (the code is
compiled for it), cffi and the Python ABI. Each entry is built in a private temporary directory
and published with one atomic rename, so concurrent builds never see a half-written entry and a
killed build leaves only a temporary directory that nothing reads.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import functools
import hashlib
import importlib.util
import io
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cffi

from . import __version__
from .errors import BuildError
from .render import Interface, KernelSource

COMPILE_FLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fPIC",
    "-shared",
    "-Wall",
    "-Wextra",
)
"""-O3 vectorizes the fused loops for this machine's CPU (part of the cache key). The two -fno-
flags change no result: math functions need not set errno, and comparisons may be if-converted."""


def compile_flags() -> tuple[str, ...]:
    """Flags for a Python extension module on this platform, linked to scipy-openblas32 when installed."""
    flags = (*COMPILE_FLAGS, "-undefined", "dynamic_lookup") if sys.platform == "darwin" else COMPILE_FLAGS
    threshold = os.environ.get("SYMGATE_BLAS_MIN", "").strip()
    if threshold and not threshold.isdigit():
        raise BuildError(f"SYMGATE_BLAS_MIN must be a whole number of multiply-adds, not {threshold!r}")
    blas = blas_flags() + ((f"-DSG_BLAS_MIN={threshold}",) if threshold and blas_flags() else ())
    return flags + vector_math_flags() + blas


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
def cpu_identity() -> str:
    """What ``-march=native`` compiles for: the CPU's model and feature flags, for the cache key."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + " " + platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))


@functools.cache
def blas_flags() -> tuple[str, ...]:
    """Compile and link flags for scipy-openblas32's CBLAS, or none without it (plain loops then)."""
    try:
        import scipy_openblas32 as openblas
    except ImportError:
        return ()
    lib = openblas.get_lib_dir()
    return (
        "-DSYMGATE_BLAS",
        f"-I{openblas.get_include_dir()}",
        f"-L{lib}",
        f"-Wl,-rpath,{lib}",
        f"-l{openblas.get_library()}",
    )


_loaded: dict[Path, ModuleType] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where built kernels are kept: ``$SYMGATE_CACHE_DIR``, else the per-user cache directory."""
    configured = os.environ.get("SYMGATE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "symgate"


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


@functools.cache
def source_digest() -> str:
    """A hash of symgate's own code: a kernel built by other code is never reused."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_key(canonical_text: str, dtype: str, templates: str) -> str:
    """A hash of everything that determines a built kernel."""
    parts = [
        canonical_text,
        dtype,
        __version__,
        source_digest(),
        templates,
        " ".join(compiler_command() + list(compile_flags())),
        cpu_identity(),
        cffi.__version__,
        sysconfig.get_config_var("EXT_SUFFIX") or "",
        sys.version,
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Entry:
    """A published cache entry: the compiled module, its C source and its interface."""

    path: Path
    module_name: str

    @property
    def interface(self) -> Interface:
        return Interface.from_json((self.path / "interface.json").read_text())

    @property
    def c_source(self) -> str:
        return (self.path / "kernel.c").read_text()

    def load(self) -> ModuleType:
        with _lock:
            if self.path not in _loaded:
                library = next(self.path.glob(self.module_name + "*" + _ext_suffix()))
                spec = importlib.util.spec_from_file_location(self.module_name, library)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                _loaded[self.path] = module
            return _loaded[self.path]


def lookup(name: str, key: str) -> Entry | None:
    """The published entry for ``key``, if a complete one exists."""
    entry = Entry(cache_dir() / f"{name}-{key}", f"_symgate_{key}")
    complete = (entry.path / "interface.json").is_file() and any(
        entry.path.glob(f"{entry.module_name}*{_ext_suffix()}")
    )
    return entry if complete else None


def compile_entry(source: KernelSource, key: str) -> Entry:
    """Compiles ``source`` and publishes it under ``key``; returns the entry."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BuildError(f"cannot create the kernel cache {root}: {err}; set SYMGATE_CACHE_DIR") from err
    final = root / f"{source.stem}-{key}"
    module_name = f"_symgate_{key}"
    with tempfile.TemporaryDirectory(prefix=f".build-{source.stem}-", dir=root) as tmp:
        work = Path(tmp) / "entry"
        work.mkdir()
        ffi = cffi.FFI()
        try:
            ffi.cdef(source.declarations)
        except cffi.CDefError as err:
            raise BuildError(f"cffi cannot read the {source.stem} declarations: {err}") from err
        ffi.set_source(module_name, source.c_source)
        wrapper = work / f"{module_name}.c"
        with contextlib.redirect_stdout(io.StringIO()):  # cffi announces the file it writes
            ffi.emit_c_code(str(wrapper))
        library = work / f"{module_name}{_ext_suffix()}"
        command = [
            *compiler(),
            *[flag for flag in compile_flags() if not flag.startswith(("-L", "-Wl", "-l"))],
            f"-I{sysconfig.get_paths()['include']}",
            str(wrapper),
            "-o",
            str(library),
            *[flag for flag in compile_flags() if flag.startswith(("-L", "-Wl", "-l"))],
            "-lm",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(
                f"compiling the {source.stem} kernel failed", command=shlex.join(command), output=result.stderr
            )
        wrapper.unlink()
        (work / "kernel.c").write_text(source.c_source)
        (work / "kernel.h").write_text(source.header)
        (work / "interface.json").write_text(source.interface.to_json())
        try:
            os.rename(work, final)
        except OSError:
            if not (final / "interface.json").is_file():
                raise
    return Entry(final, module_name)


def _ext_suffix() -> str:
    return sysconfig.get_config_var("EXT_SUFFIX") or ".so"
