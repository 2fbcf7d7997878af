"""The kernel cache on disk: where it is, what an entry is, and when an entry may be trusted.

``compiler`` decides what goes into an entry and under which key; :mod:`symgate.jit.slots` builds
and publishes entries; :mod:`symgate.jit.housekeeping` lists, verifies and clears them. This module
holds what all of them read: the layout, the manifest check and the lookup, so that concurrent
processes, killed builds and damaged files cannot hand anyone a bad kernel.
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

* **Lookup** trusts an entry only if it is a real directory holding exactly the regular files its
  manifest lists, with their sizes and SHA-256 (:meth:`Entry.problem`). Anything else found under
  an entry's name (a damaged manifest, a FIFO or a link among its files, a link or a file in its
  place, a file nobody may read) is reported as missing, then taken out of use (:func:`discard`)
  by the next build of that entry, under its lock, so a concurrent rebuild is never thrown away.
  Files are read through :mod:`symgate.jit.safe_files`: never through a link, never blocking on
  a special file, and a link is removed, never its target.
* **Verified once**: an entry verified in this process is not read again while ``lstat`` sees
  no change in it (:func:`remember`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import stat
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import BuildError
from ..interface import Interface
from . import sanitize, toolchain
from .safe_files import UntrustedError, describe_node, digest, read_regular, remove

MANIFEST = "manifest.json"
MANIFEST_LIMIT = 1 << 20
"""Bytes a manifest may have (one is about 1 kB): a larger one is damaged, and not read."""
FORMAT = 1
LOCKS = ".locks"
BUILD_PREFIX = ".build-"
TRASH_PREFIX = ".trash-"
ENTRY_NAME = re.compile(r"^(?P<stem>[A-Za-z][A-Za-z0-9_]*)-(?P<key>[0-9a-f]{20})$")
"""The name of an entry: ``<cell>_<dtype>-<key>``."""

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
                toolchain.openblas_package()  # its library started with symgate's settings before a kernel links it
                spec = importlib.util.spec_from_file_location(self.module_name, self.library)
                module = importlib.util.module_from_spec(spec)
                try:
                    spec.loader.exec_module(module)
                except ImportError as err:
                    raise BuildError(f"cannot load the kernel {self.library}: {err}") from err
                if "-DSYMGATE_MKL" in self.manifest.get("flags", ""):
                    toolchain.one_openblas_thread()
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
    """The entry ``stem`` (``<cell>_<dtype>``) has for ``key`` in ``root`` (the cache directory),
    whether or not it exists."""
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


def remember(entry: Entry) -> None:
    """Notes ``entry``, just verified (or published by this process), as it looks now: lookups
    trust it without reading its files again until it changes."""
    _forget(entry.path)
    _verified.add((entry.path, _signature(entry.path)))


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


def discard(path: Path) -> str | None:
    """Takes ``path`` (an entry, or whatever has its name) out of use at once, renaming it to a
    ``.trash-`` name beside it, then deletes it without following links. Returns what could not
    be deleted (left for a later sweep), or None; an OSError if it could not be renamed."""
    trash = path.parent / f"{TRASH_PREFIX}{path.name.lstrip('.').split('-')[0]}-{secrets.token_hex(6)}"
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return None  # another process took it out first
    _loaded.pop(path, None)
    _forget(path)
    return remove(trash)


def names(root: Path) -> list[str]:
    """The names in the cache directory, sorted; none if it does not exist."""
    try:
        return sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        raise BuildError(f"cannot list the kernel cache directory {root} ({err.strerror})") from err
