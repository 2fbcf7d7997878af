"""Sanitizer builds: kernels compiled with AddressSanitizer and UndefinedBehaviorSanitizer.

``SYMGATE_SANITIZE=1`` adds :data:`FLAGS` to every kernel build. The flags are part of the cache
key, so sanitized and plain kernels live side by side. Any out-of-bounds access, use after free,
signed overflow, misaligned or null pointer in a kernel then stops the process with a report
(``-fno-sanitize-recover=all``): a test run under it passes only if no report was made.

Python itself is not instrumented, so the AddressSanitizer runtime must be loaded before
anything else, for example::

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        SYMGATE_SANITIZE=1 python -m pytest tests/test_kernel.py

(``detect_leaks=0``: the interpreter keeps memory until exit on purpose.) Loading a sanitized
kernel without the runtime raises :class:`~symgate.errors.BuildError` with this command instead
of aborting the process. Only the generated C is checked, not BLAS or NumPy.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from ..errors import BuildError

FLAGS = ("-O0", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
"""-O0: every access the C writes is made and checked, none optimised away; and a kernel compiles
several times faster than at -O1, which is most of a sanitized test run's time, the sizes tested
being small (benchmarks/MEASUREMENTS.md, "Sanitizer builds")."""


def enabled() -> bool:
    """Whether ``SYMGATE_SANITIZE`` asks for sanitizer builds (``1``; ``0`` or unset: no)."""
    value = os.environ.get("SYMGATE_SANITIZE", "").strip()
    if value not in ("", "0", "1"):
        raise BuildError(f"SYMGATE_SANITIZE must be 1 (sanitizer builds) or 0, not {value!r}")
    return value == "1"


def flags() -> tuple[str, ...]:
    """The sanitizer flags when enabled, else none."""
    return FLAGS if enabled() else ()


def runtime_loaded() -> bool:
    """Whether the AddressSanitizer runtime is mapped into this process (True where unknowable)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return True
    return "libasan" in maps


def preload_hint(compiler: list[str]) -> str:
    """The environment that loads the runtime first, for error messages."""
    try:
        result = subprocess.run([*compiler, "-print-file-name=libasan.so"], capture_output=True, text=True, timeout=30)
        library = result.stdout.strip() or "libasan.so"
    except (OSError, subprocess.SubprocessError):
        library = "libasan.so"
    return f"LD_PRELOAD={shlex.quote(library)} ASAN_OPTIONS=detect_leaks=0"


def require_runtime(entry: Path, compiler: list[str]) -> None:
    """Refuses to load a sanitized kernel into a process without the sanitizer runtime; the
    message says how to load it with ``compiler``'s runtime."""
    if runtime_loaded():
        return
    raise BuildError(
        f"the kernel in {entry} was built with SYMGATE_SANITIZE=1 and needs the AddressSanitizer runtime "
        f"loaded first: run Python as `{preload_hint(compiler)} python ...`, or unset SYMGATE_SANITIZE"
    )
