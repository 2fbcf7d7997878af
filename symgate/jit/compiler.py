"""Building: rendered C -> a compiled cffi extension module, published in the kernel cache.

cffi API mode, out-of-line: cffi writes the extension's C (our kernel plus its wrappers) and we
compile it with the system C compiler in one call, keeping the command and its output for the
error message. The entry's key (:func:`cache_key`) covers everything that determines the binary:
the cell's canonical text, the dtype, symgate's version and code, the templates and the runtime
header the kernel includes (its directory is on the compile command's include path), the compiler,
its version and flags (sanitizer builds included, see :mod:`symgate.jit.sanitize`), the CPU (the
code is compiled for it), cffi and the Python ABI. :mod:`symgate.jit.slots` builds each entry in
a private directory and publishes it with one atomic rename, concurrent builders of one entry
waiting for the first instead of compiling it again; :mod:`symgate.jit.cache` verifies an entry
against its checksums before it is loaded.

The compile has a time limit, ``SYMGATE_COMPILE_SECONDS`` (default 600; ``0`` or ``inf``: none),
so a compiler that never finishes cannot hold up a build, nor the builders queued behind it,
forever. The compiler runs in a process group of its own; past the limit, or when the caller is
interrupted, the whole group is killed (the driver and the ``cc1``, ``as`` and ``ld`` it started),
and the private build directory goes with the error: nothing is published. The limit is not part
of the key, as it changes no binary.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import shlex
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import cffi

from .._version import __version__
from ..codegen.render import KernelSource, runtime_header
from ..errors import BuildError
from ..frontend.limits import seconds_setting
from . import sanitize
from .cache import Entry, ext_suffix
from .slots import reserve
from .toolchain import compile_flags, compiler, compiler_command, cpu_identity, missing_headers_advice

__all__ = ["cache_key", "compile_entry", "key_inputs"]

COMPILE_SECONDS = "SYMGATE_COMPILE_SECONDS"
DEFAULT_COMPILE_SECONDS = 600.0


@functools.cache
def source_digest() -> str:
    """A hash of symgate's own code: a kernel built by other code is never reused."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def compiler_identity(command: tuple[str, ...]) -> str:
    """What ``command --version`` prints: the key changes when the compiler is upgraded in place."""
    try:
        result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unavailable ({type(err).__name__})"  # building will say what to install
    return result.stdout.strip()


def key_inputs(canonical_text: str, dtype: str, templates: str) -> dict[str, str]:
    """Everything that determines a built kernel, by name: what :func:`cache_key` hashes.

    The derivation has no options: it is determined by the cell and symgate's code, both here.
    """
    command = compiler_command()
    return {
        "cell": canonical_text,
        "dtype": dtype,
        "symgate": __version__,
        "code": source_digest(),
        "templates": templates,
        "compiler": shlex.join(command),
        "compiler version": compiler_identity(tuple(command)),
        "flags": shlex.join(compile_flags()),
        "cpu": cpu_identity(),
        "cffi": cffi.__version__,
        "python abi": f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX') or ''} {sys.version}",
    }


def cache_key(canonical_text: str, dtype: str, templates: str) -> str:
    """A hash of everything that determines a built kernel (:func:`key_inputs`)."""
    inputs = key_inputs(canonical_text, dtype, templates)
    return hashlib.sha256("\0".join(f"{k}={v}" for k, v in inputs.items()).encode()).hexdigest()[:20]


def compile_entry(source: KernelSource, key: str) -> Entry:
    """The cache entry for ``key``: compiled from ``source`` and published, unless another process
    published it first (then this one waited for it instead of compiling it again)."""
    with reserve(source.stem, key) as slot:
        if slot.entry is not None:
            return slot.entry
        module_name = f"_symgate_{key}"
        ffi = cffi.FFI()
        try:
            ffi.cdef(source.declarations)
        except cffi.CDefError as err:
            raise BuildError(f"cffi cannot read the {source.stem} declarations: {err}") from err
        ffi.set_source(module_name, source.c_source)
        wrapper = slot.work.parent / f"{module_name}.c"
        with contextlib.redirect_stdout(io.StringIO()):  # cffi announces the file it writes
            ffi.emit_c_code(str(wrapper))
        flags, cc = compile_flags(), compiler()
        link = [flag for flag in flags if flag.startswith(("-L", "-Wl", "-l"))]
        command = [
            *cc,
            *[flag for flag in flags if flag not in link],
            f"-I{sysconfig.get_paths()['include']}",
            f"-I{runtime_header().parent}",
            str(wrapper),
            "-o",
            str(slot.work / f"{module_name}{ext_suffix()}"),
            *link,
            "-lm",
        ]
        result = _run_compiler(command, source.stem)
        if result.returncode != 0:
            advice = missing_headers_advice(result.stderr)
            raise BuildError(
                f"compiling the {source.stem} kernel failed" + (f": {advice}" if advice else ""),
                command=shlex.join(command),
                output=result.stderr,
            )
        (slot.work / "kernel.c").write_text(source.c_source)
        (slot.work / "kernel.h").write_text(source.header)
        (slot.work / "interface.json").write_text(source.interface.to_json())
        return slot.publish({"compiler": shlex.join(cc), "flags": shlex.join(flags), "sanitize": sanitize.enabled()})


def _run_compiler(command: list[str], stem: str) -> subprocess.CompletedProcess:
    """Runs the compiler within ``SYMGATE_COMPILE_SECONDS``, in a process group of its own that is
    killed whole when the time is up or the caller is interrupted."""
    seconds = seconds_setting(COMPILE_SECONDS, DEFAULT_COMPILE_SECONDS)
    group = {"process_group": 0} if os.name == "posix" else {}
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **group)
    except OSError as err:
        raise BuildError(f"cannot run the C compiler: {err}", command=shlex.join(command)) from err
    with process:  # on the way out: the pipes closed, the compiler waited for
        try:
            stdout, stderr = process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise BuildError(
                f"compiling the {stem} kernel took over {seconds:g} s ({COMPILE_SECONDS}) and was stopped; "
                f"set {COMPILE_SECONDS} higher (0: no limit) for a kernel this large",
                command=shlex.join(command),
            ) from None
        except BaseException:
            _kill(process)
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _kill(process: subprocess.Popen) -> None:
    """Kills the compiler and, on POSIX, every process it started (its process group)."""
    if os.name != "posix":
        process.kill()
        return
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(process.pid, signal.SIGKILL)
