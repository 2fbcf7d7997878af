"""The kernel cache on disk: entries published whole, verified before use, listed and cleared.

``compiler`` decides what goes into an entry and under which key; this module keeps entries so
that concurrent processes, killed builds and damaged files cannot hand anyone a bad kernel.
Layout of the cache directory (``$SYMGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgate``, else
``~/.cache/symgate``)::

    lstm_float64-<key>/          a published entry: the compiled module, kernel.c, kernel.h,
                                 interface.json, and manifest.json (written last: the size and
                                 SHA-256 of every other file, the cell, the dtype, the flags)
    .build-lstm_float64-XXXX/    one process's build in progress; the process holds a lock on
                                 its ``owner`` file, which the kernel releases if it dies
    .trash-lstm_float64-XXXX/    an entry taken out of use (damaged or cleared), being deleted
    .locks/lstm_float64-<key>    builders of the same entry queue on this file's lock, so one
                                 compiles and the others find its entry

* **Publishing** is one ``rename`` of a complete directory: readers see a whole entry or none.
  The locks only save duplicate work; correctness never depends on them.
* **Lookup** checks every file against the manifest before the module is loaded. A truncated or
  altered entry is reported as missing, then moved aside and rebuilt by the next build (under
  its lock, so a concurrent rebuild is never thrown away).
* **Killed builds** leave a ``.build-`` directory that nothing reads. Builds sweep away those
  older than :data:`STALE_AFTER` whose owner lock is free; a live build keeps its lock and is
  never touched.
* **Locks** are ``flock`` on POSIX and ``msvcrt.locking`` (of a file's first byte) on Windows;
  both die with their process. A platform with neither imports symgate and finds kernels
  already built, but building raises :class:`~symgate.errors.BuildError`.
* **An unwritable cache directory** raises :class:`~symgate.errors.BuildError` naming it and
  ``SYMGATE_CACHE_DIR`` when a kernel must be built; kernels already in a read-only cache are
  still found and loaded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import BuildError, InternalError
from ..interface import Interface
from . import sanitize, toolchain

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None
try:
    import msvcrt
except ImportError:  # not Windows
    msvcrt = None

MANIFEST = "manifest.json"
FORMAT = 1
STALE_AFTER = 600.0
"""Seconds after which a ``.build-`` or ``.trash-`` directory with a free owner lock is removed."""

_ENTRY_NAME = re.compile(r"^(?P<stem>[A-Za-z][A-Za-z0-9_]*)-(?P<key>[0-9a-f]{20})$")
_loaded: dict[Path, ModuleType] = {}
_verified: set[Path] = set()
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where built kernels are kept: ``$SYMGATE_CACHE_DIR``, else the per-user cache directory."""
    configured = os.environ.get("SYMGATE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "symgate"


def ext_suffix() -> str:
    """The file name ending of a compiled extension module for this Python."""
    return sysconfig.get_config_var("EXT_SUFFIX") or ".so"


@dataclass(frozen=True)
class Entry:
    """A published cache entry: the compiled module, its C source and its interface."""

    path: Path
    module_name: str

    @property
    def library(self) -> Path:
        return self.path / f"{self.module_name}{ext_suffix()}"

    @property
    def manifest(self) -> dict:
        return json.loads(self._read(MANIFEST))

    @property
    def interface(self) -> Interface:
        return Interface.from_json(self._read("interface.json"))

    @property
    def c_source(self) -> str:
        return self._read("kernel.c")

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text()
        except OSError as err:
            raise BuildError(f"cannot read {self.path / name} ({err.strerror}); was the cache cleared?") from err

    def problem(self) -> str | None:
        """Why this entry must not be used, or None if every file matches the manifest."""
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
            files = manifest["files"]
            if manifest.get("format") != FORMAT or not isinstance(files, dict):
                return "its manifest is of another format"
        except FileNotFoundError:
            return "it has no manifest (an incomplete or foreign directory)"
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"its manifest cannot be read ({err})"
        if self.library.name not in files:
            return f"its manifest does not list {self.library.name}"
        for name, expected in sorted(files.items()):
            try:
                data = (self.path / name).read_bytes()
            except OSError as err:
                return f"{name} cannot be read ({err.strerror})"
            if len(data) != expected.get("size"):
                return f"{name} has {len(data)} bytes, the manifest says {expected.get('size')} (truncated?)"
            if hashlib.sha256(data).hexdigest() != expected.get("sha256"):
                return f"{name} does not match its SHA-256 checksum (altered or corrupted)"
        return None

    def load(self) -> ModuleType:
        """The compiled extension module, loaded once per process."""
        with _lock:
            if self.path not in _loaded:
                if self.manifest.get("sanitize"):
                    sanitize.require_runtime(self.path, toolchain.compiler_command())
                spec = importlib.util.spec_from_file_location(self.module_name, self.library)
                module = importlib.util.module_from_spec(spec)
                try:
                    spec.loader.exec_module(module)
                except ImportError as err:
                    raise BuildError(f"cannot load the kernel {self.library}: {err}") from err
                _loaded[self.path] = module
            return _loaded[self.path]


def entry_for(stem: str, key: str, root: Path | None = None) -> Entry:
    return Entry((root or cache_dir()) / f"{stem}-{key}", f"_symgate_{key}")


def lookup(stem: str, key: str) -> Entry | None:
    """The published entry for ``key`` if it exists and every file matches its manifest."""
    entry = entry_for(stem, key)
    if not entry.path.is_dir():
        _verified.discard(entry.path)
        return None
    if entry.path in _verified:
        return entry
    if entry.problem() is not None:
        return None
    _verified.add(entry.path)
    return entry


# -- building ----------------------------------------------------------------------------------


@dataclass
class Slot:
    """What :func:`reserve` hands a builder: an entry someone else published meanwhile, or a
    private directory ``work`` to fill and :meth:`publish`."""

    stem: str
    key: str
    entry: Entry | None
    work: Path | None

    def publish(self, details: dict) -> Entry:
        """Writes the manifest over the files in ``work`` and renames it into place."""
        entry = entry_for(self.stem, self.key, self.work.parent.parent)
        files = {}
        for path in sorted(self.work.iterdir()):
            data = path.read_bytes()
            files[path.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        cell, _, dtype = self.stem.rpartition("_")
        manifest = {"format": FORMAT, "cell": cell, "dtype": dtype, "key": self.key, "created": time.time()}
        (self.work / MANIFEST).write_text(json.dumps({**manifest, **details, "files": files}, indent=1) + "\n")
        try:
            os.rename(self.work, entry.path)
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise BuildError(f"cannot publish the kernel {entry.path} ({err.strerror})") from err
            # another process published the same key first (without waiting on the lock, e.g.
            # after a `cache clear` removed it): its entry is as good as ours if it verifies
            problem = entry.problem()
            if problem is not None:
                raise BuildError(
                    f"cannot publish the kernel {entry.path}: another process published it first, but {problem}; "
                    "build again to replace it"
                ) from err
        _verified.add(entry.path)
        return entry


def writable_root() -> Path:
    """The cache directory, created if needed; a clear error if it cannot be written."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / ".locks").mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        raise BuildError(
            f"the kernel cache directory {root} cannot be written ({err.strerror or err}); "
            "set SYMGATE_CACHE_DIR to a writable directory"
        ) from err
    return root


@contextlib.contextmanager
def reserve(stem: str, key: str) -> Iterator[Slot]:
    """The right to build ``stem``'s entry for ``key``: waits while another process builds it.

    Yields a :class:`Slot` whose ``entry`` is set if the entry is (now) published, otherwise
    whose ``work`` is a private empty directory, deleted on exit unless published.
    """
    root = writable_root()
    sweep(root)
    with _flock(root / ".locks" / f"{stem}-{key}", blocking=True):
        entry = lookup(stem, key)
        if entry is not None:
            yield Slot(stem, key, entry, None)
            return
        existing = entry_for(stem, key, root)
        if existing.path.exists():  # damaged: nobody else may publish it while we hold the lock
            _discard(existing.path)
        with _private_directory(root, f".build-{stem}-") as tmp:
            work = tmp / "entry"
            work.mkdir()
            yield Slot(stem, key, None, work)


@contextlib.contextmanager
def _private_directory(root: Path, prefix: str) -> Iterator[Path]:
    """A new directory under ``root`` that holds a lock on its ``owner`` file while in use."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    except OSError as err:
        raise BuildError(f"cannot create a build directory in {root} ({err.strerror}); check its permissions") from err
    try:
        # written before it is locked: a Windows lock would refuse this write through another handle
        (tmp / "owner").write_text(f"{os.getpid()}\n")
        with _flock(tmp / "owner", blocking=False) as held:
            if not held:
                raise InternalError(f"the build directory {tmp}, just made, was locked by another process")
            yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a partial removal is finished by a later sweep


@contextlib.contextmanager
def _flock(path: Path, blocking: bool) -> Iterator[bool]:
    """Holds an exclusive lock on ``path`` (created if missing); yields whether it was taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield _lock_file(fd, path, blocking)
    finally:
        os.close(fd)  # releases the lock


def _lock_file(fd: int, path: Path, blocking: bool) -> bool:
    """Locks the open file ``fd`` (at ``path``) for this process until it is closed; False if
    ``blocking`` is off and another holds it. Blocking waits as long as the holder lives."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    if msvcrt is not None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
                return True
            except OSError as err:
                if not blocking and err.errno == errno.EACCES:
                    return False
                if err.errno != errno.EDEADLOCK:  # LK_LOCK gives up after 10 tries, one a second
                    raise
    raise BuildError(
        f"cannot lock {path}: this platform has neither flock (fcntl) nor msvcrt.locking, "
        "which building kernels needs; kernels already in the cache still load"
    )


def _discard(path: Path) -> None:
    """Takes a directory out of use at once (a rename), then deletes it."""
    with _private_directory(path.parent, f".trash-{path.name.split('-')[0]}-") as trash:
        try:
            os.rename(path, trash / "entry")
        except FileNotFoundError:
            return
        _loaded.pop(path, None)
        _verified.discard(path)
        shutil.rmtree(trash / "entry")


def sweep(root: Path, older_than: float = STALE_AFTER) -> list[Path]:
    """Removes build and trash directories left by dead processes; returns what it removed.

    A directory is removed only if it is older than ``older_than`` seconds and its ``owner``
    lock is free: a build in progress holds the lock, and one younger than the limit may not
    have taken it yet.
    """
    removed = []
    now = time.time()
    for path in sorted(root.glob(".build-*")) + sorted(root.glob(".trash-*")):
        try:
            if now - path.stat().st_mtime < older_than:
                continue
            with _flock(path / "owner", blocking=False) as free:
                if not free:
                    continue
                shutil.rmtree(path, ignore_errors=True)  # another sweeper may remove it at the same time
        except OSError:  # gone already, or a file where a directory was expected
            continue
        removed.append(path)
    return removed


# -- listing, verifying, clearing --------------------------------------------------------------


@dataclass(frozen=True)
class EntryInfo:
    """One directory of the cache as ``symgate cache`` shows it."""

    path: Path
    cell: str
    dtype: str
    size: int
    age: float
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def entries(root: Path | None = None) -> list[EntryInfo]:
    """Every published entry in the cache, sorted by cell and dtype, each verified."""
    root = root or cache_dir()
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        match = _ENTRY_NAME.match(path.name)
        if not match or not path.is_dir():
            continue
        entry = entry_for(match["stem"], match["key"], root)
        cell, _, dtype = match["stem"].rpartition("_")
        files = [p for p in path.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        age = time.time() - max([p.stat().st_mtime for p in files] or [path.stat().st_mtime])
        found.append(EntryInfo(path, cell, dtype, size, age, entry.problem()))
    return sorted(found, key=lambda e: (e.cell, e.dtype, e.path.name))


def clear(cell: str | None = None, root: Path | None = None) -> list[EntryInfo]:
    """Removes every entry (or ``cell``'s) and stale build directories; returns the entries removed."""
    root = root or cache_dir()
    removed = [e for e in entries(root) if cell is None or e.cell == cell]
    for entry in removed:
        _discard(entry.path)
        # its lock file too; a builder holding it meanwhile only risks compiling twice (see Slot.publish)
        (root / ".locks" / entry.path.name).unlink(missing_ok=True)
    if root.is_dir() and cell is None:
        sweep(root)
    return removed


def describe(found: list[EntryInfo], root: Path) -> str:
    """The table of ``symgate cache list``."""
    lines = [f"kernel cache {root}: {len(found)} entries, {format_size(sum(e.size for e in found))}"]
    if found:
        lines.append(f"  {'cell':<24}{'dtype':<9}{'size':>9}{'age':>8}  {'status':<7}entry")
    for e in found:
        status = "ok" if e.ok else "BAD"
        lines.append(f"  {e.cell:<24}{e.dtype:<9}{format_size(e.size):>9}{_age(e.age):>8}  {status:<7}{e.path.name}")
    builds = sorted(root.glob(".build-*")) if root.is_dir() else []
    if builds:
        lines.append(f"  {len(builds)} build directories (in progress, or left by killed builds)")
    return "\n".join(lines)


def format_size(size: float) -> str:
    for unit in ("B", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise InternalError(f"format_size found no unit for {size}")


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"
