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
    .trash-lstm_float64-XXXX     an entry taken out of use (damaged or cleared), being deleted
    .locks/lstm_float64-<key>    builders of the same entry queue on this file's lock, so one
                                 compiles and the others find its entry

* **Publishing** is one ``rename`` of a complete directory: readers see a whole entry or none.
  The locks only save duplicate work; correctness never depends on them.
* **Lookup** trusts an entry only if it is a real directory holding exactly the regular files its
  manifest lists, with their sizes and SHA-256 (:meth:`Entry.problem`). Anything else found under
  an entry's name (a damaged manifest, a FIFO or a link among its files, a link or a file in its
  place, a file nobody may read) is reported as missing, then renamed aside and deleted by the
  next build of that entry, under its lock, so a concurrent rebuild is never thrown away.
  Files are read through :mod:`symgate.jit.safe_files`: never through a link, never blocking on
  a special file, and a link is removed, never its target.
* **Killed builds** leave a ``.build-`` directory that nothing reads. Builds sweep away those
  older than :data:`STALE_AFTER` whose owner lock is free; a live build keeps its lock and is
  never touched.
* **Locks** are ``flock`` on POSIX and ``msvcrt.locking`` (of a file's first byte) on Windows;
  both die with their process. A platform with neither imports symgate and finds kernels
  already built, but building raises :class:`~symgate.errors.BuildError`.
* **An unwritable cache directory** raises :class:`~symgate.errors.BuildError` naming it and
  ``SYMGATE_CACHE_DIR`` when a kernel must be built; kernels already in a read-only cache are
  still found and loaded.
* **Listing, verifying, clearing** (``symgate cache``) never stop part-way: each entry that cannot
  be trusted, and each thing in the directory that is not an entry, is named with the reason.
  ``clear`` removes symgate's own debris and leaves names symgate never makes alone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import os
import re
import secrets
import stat
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
from .safe_files import UntrustedError, describe_node, digest, open_lock_file, read_regular, remove

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None
try:
    import msvcrt
except ImportError:  # not Windows
    msvcrt = None

MANIFEST = "manifest.json"
MANIFEST_LIMIT = 1 << 20
"""Bytes a manifest may have (one is about 1 kB): a larger one is damaged, and not read."""
FORMAT = 1
STALE_AFTER = 600.0
"""Seconds after which a ``.build-`` or ``.trash-`` directory with a free owner lock is removed."""
LOCKS = ".locks"
HEALING_NOTE = (
    "left in place: the next build of a bad entry replaces it; `symgate cache clear` removes bad entries and "
    "symgate's debris now (a link, never its target), and leaves what symgate did not make alone"
)

_ENTRY_NAME = re.compile(r"^(?P<stem>[A-Za-z][A-Za-z0-9_]*)-(?P<key>[0-9a-f]{20})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_loaded: dict[Path, ModuleType] = {}
_verified: set[tuple[Path, tuple]] = set()
"""Entries verified in this process, each with its :func:`_signature` then: a later lookup reads
no file again unless ``lstat`` sees a change."""
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
        try:
            return _checked_manifest(read_regular(self.path / MANIFEST, MANIFEST_LIMIT))
        except UntrustedError as err:
            raise BuildError(f"cannot use the kernel {self.path}: {err}; build it again to replace it") from err

    @property
    def interface(self) -> Interface:
        return Interface.from_json(self._read("interface.json"))

    @property
    def c_source(self) -> str:
        return self._read("kernel.c")

    def _read(self, name: str) -> str:
        try:
            return read_regular(self.path / name).decode()
        except (UntrustedError, UnicodeDecodeError) as err:
            raise BuildError(f"cannot read {self.path / name} ({err}); was the cache cleared?") from err

    def problem(self) -> str | None:
        """Why this entry must not be used, or None if it holds exactly the files its manifest
        lists, each a regular file of the size and SHA-256 the manifest gives."""
        try:
            self._verify()
        except UntrustedError as err:
            return str(err)
        return None

    def _verify(self) -> None:
        try:
            info = os.lstat(self.path)
        except OSError as err:
            raise UntrustedError(f"it cannot be examined ({err.strerror})") from err
        if not stat.S_ISDIR(info.st_mode):
            raise UntrustedError(f"it is {describe_node(self.path, info)}, not a directory")
        try:
            names = set(os.listdir(self.path))
        except OSError as err:
            raise UntrustedError(f"it cannot be listed ({err.strerror})") from err
        if MANIFEST not in names:
            raise UntrustedError("it has no manifest (an incomplete or foreign directory)")
        files = _checked_manifest(read_regular(self.path / MANIFEST, MANIFEST_LIMIT))["files"]
        if self.library.name not in files:
            raise UntrustedError(f"its manifest does not list {self.library.name}")
        unlisted = sorted(names - set(files) - {MANIFEST})
        if unlisted:
            raise UntrustedError(f"it holds {unlisted[0]!r}, which its manifest does not list")
        for name, expected in sorted(files.items()):
            size, sha256 = digest(self.path / name, expected["size"])
            if size != expected["size"]:
                raise UntrustedError(f"{name} has {size} bytes, the manifest says {expected['size']} (truncated?)")
            if sha256 != expected["sha256"]:
                raise UntrustedError(f"{name} does not match its SHA-256 checksum (altered or corrupted)")

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


def _checked_manifest(data: bytes) -> dict:
    """The manifest in ``data`` if every field an entry is checked or loaded by has its type: a
    record of each file's size and SHA-256 under a plain file name; :class:`UntrustedError` if not."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deep to parse
        raise UntrustedError(f"its manifest is not JSON ({str(err)[:80]})") from err
    if not isinstance(manifest, dict) or type(manifest.get("format")) is not int or manifest["format"] != FORMAT:
        raise UntrustedError("its manifest is of another format")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise UntrustedError("its manifest has no record of its files")
    for name, record in files.items():
        if name in ("", ".", "..", MANIFEST) or len(name) > 255 or set(name) & set("/\\\0"):
            raise UntrustedError(f"its manifest lists {name[:80]!r}, which is not a file name inside the entry")
        size, sha256 = (record.get("size"), record.get("sha256")) if isinstance(record, dict) else (None, None)
        if type(size) is not int or size < 0 or not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise UntrustedError(f"its manifest's record of {name} is damaged: {repr(record)[:80]}")
    if not isinstance(manifest.get("sanitize", False), bool):
        raise UntrustedError("its manifest's sanitize flag is damaged")
    return manifest


def entry_for(stem: str, key: str, root: Path | None = None) -> Entry:
    return Entry((root or cache_dir()) / f"{stem}-{key}", f"_symgate_{key}")


def _signature(path: Path) -> tuple | None:
    """How a directory and the files in it look to ``lstat`` (kind, inode, size, times), or
    None if it is not a real directory: a verified entry changed since differs."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return None
        names = sorted(os.listdir(path))
        found = [(name, os.lstat(path / name)) for name in [".", *names]]
    except OSError:
        return None
    return tuple((name, i.st_mode, i.st_dev, i.st_ino, i.st_size, i.st_mtime_ns, i.st_ctime_ns) for name, i in found)


def _forget(path: Path) -> None:
    """Drops what this process verified of ``path``."""
    _verified.difference_update([seen for seen in _verified if seen[0] == path])


def lookup(stem: str, key: str) -> Entry | None:
    """The published entry for ``key`` if it exists and every file matches its manifest."""
    entry = entry_for(stem, key)
    signature = _signature(entry.path)
    if signature is not None and (entry.path, signature) in _verified:
        return entry
    _forget(entry.path)
    if signature is None or entry.problem() is not None:
        return None
    _verified.add((entry.path, signature))
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
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise BuildError(f"cannot publish the kernel {entry.path} ({err.strerror})") from err
            # another process published the same key first (without waiting on the lock, e.g.
            # after a `cache clear` removed it): its entry is as good as ours if it verifies
            problem = entry.problem()
            if problem is not None:
                raise BuildError(
                    f"cannot publish the kernel {entry.path}: another process published it first, but {problem}; "
                    "build again to replace it"
                ) from err
        _forget(entry.path)
        _verified.add((entry.path, _signature(entry.path)))
        return entry


def writable_root() -> Path:
    """The cache directory, created if needed; a clear error if it cannot be written."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        _lock_directory(root)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        raise BuildError(
            f"the kernel cache directory {root} cannot be written ({err.strerror or err}); "
            "set SYMGATE_CACHE_DIR to a writable directory"
        ) from err
    return root


def _lock_directory(root: Path) -> Path:
    """``root/.locks``, made a real directory: a link or a file in its place is removed first."""
    locks = root / LOCKS
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(os.lstat(locks).st_mode):
            _discard(locks)
    with contextlib.suppress(FileExistsError):
        os.mkdir(locks)
    if not stat.S_ISDIR(os.lstat(locks).st_mode):
        raise OSError(errno.ENOTDIR, f"{locks} was replaced while the cache was opened")
    return locks


@contextlib.contextmanager
def reserve(stem: str, key: str) -> Iterator[Slot]:
    """The right to build ``stem``'s entry for ``key``: waits while another process builds it.

    Yields a :class:`Slot` whose ``entry`` is set if the entry is (now) published, otherwise
    whose ``work`` is a private empty directory, deleted on exit unless published.
    """
    root = writable_root()
    sweep(root)
    with _flock(root / LOCKS / f"{stem}-{key}", blocking=True):
        entry = lookup(stem, key)
        if entry is not None:
            yield Slot(stem, key, entry, None)
            return
        existing = entry_for(stem, key, root)
        if os.path.lexists(existing.path):  # untrusted: nobody else may publish it while we hold the lock
            try:
                _discard(existing.path)
            except OSError as err:
                raise BuildError(f"cannot replace the damaged kernel {existing.path} ({err.strerror})") from err
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
        remove(tmp)  # what cannot be removed now is finished by a later sweep


@contextlib.contextmanager
def _flock(path: Path, blocking: bool) -> Iterator[bool]:
    """Holds an exclusive lock on the regular file ``path`` (created if missing, replacing anything
    else of that name); yields whether it was taken."""
    fd = open_lock_file(path)
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


def _discard(path: Path) -> str | None:
    """Takes ``path`` (an entry, or whatever has its name) out of use at once, renaming it to a
    ``.trash-`` name beside it, then deletes it without following links. Returns what could not
    be deleted (left for a later sweep), or None; an OSError if it could not be renamed."""
    trash = path.parent / f".trash-{path.name.lstrip('.').split('-')[0]}-{secrets.token_hex(6)}"
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return None  # another process took it out first
    _loaded.pop(path, None)
    _forget(path)
    return remove(trash)


def sweep(root: Path, older_than: float = STALE_AFTER) -> list[Path]:
    """Removes build and trash directories left by dead processes; returns what it removed.

    A directory is removed only if it is older than ``older_than`` seconds and its ``owner``
    lock is free: a build in progress holds the lock, and one younger than the limit may not
    have taken it yet. Anything else under such a name (a link, a file) was made by no build,
    and is removed at once (a link, never its target).
    """
    removed = []
    now = time.time()
    for path in (root / name for name in _names(root) if name.startswith((".build-", ".trash-"))):
        try:
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                if now - info.st_mtime < older_than:
                    continue
                with _flock(path / "owner", blocking=False) as free:
                    if not free or remove(path) is not None:
                        continue
            elif remove(path) is not None:
                continue
        except OSError:  # gone already, or a directory this process may not enter
            continue
        removed.append(path)
    return removed


def _names(root: Path) -> list[str]:
    """The names in the cache directory, sorted; none if it does not exist."""
    try:
        return sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        raise BuildError(f"cannot list the kernel cache directory {root} ({err.strerror})") from err


# -- listing, verifying, clearing --------------------------------------------------------------


@dataclass(frozen=True)
class EntryInfo:
    """One entry of the cache (or whatever has taken an entry's name) as ``symgate cache`` shows it."""

    path: Path
    cell: str
    dtype: str
    size: int
    age: float
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Stray:
    """Something in the cache directory that is no entry: symgate's own debris in a form no build
    makes (``ours``: a link where the lock directory belongs, a FIFO among the lock files), or a
    name symgate never makes, which it leaves alone."""

    path: Path
    problem: str
    ours: bool


@dataclass(frozen=True)
class Cleared:
    """What :func:`clear` did: the entries and debris it removed, and what it left, with why
    (``ours`` in :attr:`left`: symgate's, and it could not be removed)."""

    removed: list[EntryInfo]
    debris: list[Stray]
    left: list[Stray]


def entries(root: Path | None = None) -> list[EntryInfo]:
    """Every entry in the cache, trusted or not, sorted by cell and dtype, each verified."""
    root = root or cache_dir()
    found = []
    for name in _names(root):
        match = _ENTRY_NAME.match(name)
        if not match:
            continue
        path = root / name
        try:
            size, newest = _usage(path)
        except FileNotFoundError:  # removed meanwhile
            continue
        cell, _, dtype = match["stem"].rpartition("_")
        problem = entry_for(match["stem"], match["key"], root).problem()
        found.append(EntryInfo(path, cell, dtype, size, time.time() - newest, problem))
    return sorted(found, key=lambda e: (e.cell, e.dtype, e.path.name))


def _usage(top: Path) -> tuple[int, float]:
    """The bytes of the regular files under ``top`` and the newest one's time (``top``'s if it
    has none), walked without following a link; what cannot be read counts nothing."""
    info = os.lstat(top)
    size, times, todo = 0, [], [top] if stat.S_ISDIR(info.st_mode) else []
    while todo:
        try:
            with os.scandir(todo.pop()) as found:
                for item in found:
                    if item.is_dir(follow_symlinks=False):
                        todo.append(Path(item.path))
                    elif item.is_file(follow_symlinks=False):
                        item_info = item.stat(follow_symlinks=False)
                        size += item_info.st_size
                        times.append(item_info.st_mtime)
        except OSError:
            continue
    return size, max(times, default=info.st_mtime)


def strays(root: Path | None = None) -> list[Stray]:
    """Everything in the cache directory that is neither an entry's name, nor a real build, trash
    or lock directory, nor a regular lock file."""
    root = root or cache_dir()
    found = []
    for name in _names(root):
        path = root / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        what = describe_node(path, info)
        if _ENTRY_NAME.match(name):
            continue
        if name == LOCKS and stat.S_ISDIR(info.st_mode):
            found += [Stray(lock, f"{lock.name} is {what}, not a lock file", True) for lock, what in _bad_locks(path)]
        elif name == LOCKS:
            found.append(Stray(path, f"it is {what}, not the directory of locks", True))
        elif name.startswith((".build-", ".trash-")) and not stat.S_ISDIR(info.st_mode):
            found.append(Stray(path, f"it is {what}, not a build directory", True))
        elif not name.startswith((".build-", ".trash-")):
            found.append(Stray(path, f"it is {what} that symgate did not make", False))
    return found


def _bad_locks(locks: Path) -> list[tuple[Path, str]]:
    """The names in the lock directory that are not regular files, with what each is."""
    try:
        names = sorted(os.listdir(locks))
    except OSError as err:
        return [(locks, f"a directory that cannot be listed ({err.strerror})")]
    found = []
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(locks / name)
            if not stat.S_ISREG(info.st_mode):
                found.append((locks / name, describe_node(locks / name, info)))
    return found


def clear(cell: str | None = None, root: Path | None = None) -> Cleared:
    """Removes every entry (or ``cell``'s), trusted or not, and with no ``cell`` symgate's debris
    and stale build directories too; names symgate never makes are left alone. Never stops
    part-way: what it cannot remove is reported in :attr:`Cleared.left`."""
    root = root or cache_dir()
    removed, left = [], []
    for entry in (e for e in entries(root) if cell is None or e.cell == cell):
        try:
            leftover = _discard(entry.path)
        except OSError as err:
            left.append(Stray(entry.path, f"it cannot be renamed out of use ({err.strerror})", True))
            continue
        removed.append(entry)
        if leftover is not None:
            left.append(Stray(entry.path, f"it is out of use, but not all of it could be deleted ({leftover})", True))
        # its lock file too; a builder holding it meanwhile only risks compiling twice (see Slot.publish)
        locks = root / LOCKS
        if os.path.isdir(locks) and not os.path.islink(locks):
            remove(locks / entry.path.name)
    debris = []
    for stray in strays(root) if cell is None else []:
        if not stray.ours:
            left.append(Stray(stray.path, f"{stray.problem}: left alone (remove it yourself if unneeded)", False))
            continue
        failure = remove(stray.path)
        if failure is None:
            debris.append(stray)
        else:
            left.append(Stray(stray.path, f"{stray.problem}, and it cannot be removed ({failure})", True))
    if cell is None:
        sweep(root)
    return Cleared(removed, debris, left)


def describe(found: list[EntryInfo], root: Path, others: list[Stray] | None = None) -> str:
    """The table of ``symgate cache list``, then why each bad entry (and each stray) is not trusted."""
    lines = [f"kernel cache {root}: {len(found)} entries, {format_size(sum(e.size for e in found))}"]
    if found:
        lines.append(f"  {'cell':<24}{'dtype':<9}{'size':>9}{'age':>8}  {'status':<7}entry")
    for e in found:
        status = "ok" if e.ok else "BAD"
        lines.append(f"  {e.cell:<24}{e.dtype:<9}{format_size(e.size):>9}{_age(e.age):>8}  {status:<7}{e.path.name}")
    builds = [name for name in _names(root) if name.startswith(".build-") and os.path.isdir(root / name)]
    if builds:
        lines.append(f"  {len(builds)} build directories (in progress, or left by killed builds)")
    lines += untrusted_lines(found, others or [])
    return "\n".join(lines)


def untrusted_lines(found: list[EntryInfo], others: list[Stray]) -> list[str]:
    """One line for each entry that cannot be trusted and each stray, saying why and what
    happens to it: ``list`` and ``verify`` change nothing."""
    lines = [f"  BAD {e.path.name}: {e.problem}; left in place" for e in found if not e.ok]
    lines += [f"  {stray_status(s)} {s.path.name}: {s.problem}" for s in others]
    return [*lines, f"  ({HEALING_NOTE})"] if lines else []


def stray_status(stray: Stray) -> str:
    """How ``symgate cache`` marks a stray: BAD if it is symgate's debris."""
    return "BAD" if stray.ours else "not symgate's"


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
