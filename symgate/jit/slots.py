"""Building a cache entry without a race: reserve its slot, fill a private directory, publish it.

:func:`reserve` gives a builder the right to build one entry: it waits on the entry's lock file
(``.locks/<entry>``) while another process builds it, then hands back the entry that process
published, or a private ``.build-`` directory to fill, which :meth:`Slot.publish` renames into
place with its manifest. What happens to each kind of trouble:

* **Publishing** is one ``rename`` of a complete directory: readers see a whole entry or none.
  The locks (:mod:`symgate.jit.locks`) only save duplicate work; correctness never depends on them.
* **An untrusted entry** in the way is taken out of use by the builder holding its lock, so a
  concurrent rebuild is never thrown away.
* **Killed builds** leave a ``.build-`` directory that nothing reads. Builds sweep away those
  older than :data:`STALE_AFTER` whose owner lock is free; a live build keeps its lock and is
  never touched.
* **An unwritable cache directory** raises :class:`~symgate.errors.BuildError` naming it and
  ``SYMGATE_CACHE_DIR`` when a kernel must be built; kernels already in a read-only cache are
  still found and loaded (:func:`symgate.jit.cache.lookup` writes nothing).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError, InternalError
from . import locks
from .cache import (
    BUILD_PREFIX,
    FORMAT,
    LOCKS,
    MANIFEST,
    TRASH_PREFIX,
    Entry,
    cache_dir,
    discard,
    entry_for,
    lookup,
    names,
    remember,
)
from .safe_files import remove

STALE_AFTER = 600.0
"""Seconds after which a ``.build-`` or ``.trash-`` directory with a free owner lock is removed."""


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
        remember(entry)
        return entry


@contextlib.contextmanager
def reserve(stem: str, key: str) -> Iterator[Slot]:
    """The right to build ``stem``'s entry for ``key``: waits while another process builds it.

    Yields a :class:`Slot` whose ``entry`` is set if the entry is (now) published, otherwise
    whose ``work`` is a private empty directory, deleted on exit unless published.
    """
    root = writable_root()
    sweep(root)
    with locks.hold(root / LOCKS / f"{stem}-{key}", blocking=True):
        entry = lookup(stem, key)
        if entry is not None:
            yield Slot(stem, key, entry, None)
            return
        existing = entry_for(stem, key, root)
        if os.path.lexists(existing.path):  # untrusted: nobody else may publish it while we hold the lock
            try:
                discard(existing.path)
            except OSError as err:
                raise BuildError(f"cannot replace the damaged kernel {existing.path} ({err.strerror})") from err
        with _private_directory(root, f"{BUILD_PREFIX}{stem}-") as tmp:
            work = tmp / "entry"
            work.mkdir()
            yield Slot(stem, key, None, work)


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
    path = root / LOCKS
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            discard(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise OSError(errno.ENOTDIR, f"{path} was replaced while the cache was opened")
    return path


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
        with locks.hold(tmp / "owner", blocking=False) as held:
            if not held:
                raise InternalError(f"the build directory {tmp}, just made, was locked by another process")
            yield tmp
    finally:
        remove(tmp)  # what cannot be removed now is finished by a later sweep


def sweep(root: Path, older_than: float = STALE_AFTER) -> list[Path]:
    """Removes build and trash directories left by dead processes; returns what it removed.

    A directory is removed only if it is older than ``older_than`` seconds and its ``owner``
    lock is free: a build in progress holds the lock, and one younger than the limit may not
    have taken it yet. Anything else under such a name (a link, a file) was made by no build,
    and is removed at once (a link, never its target).
    """
    removed = []
    now = time.time()
    for path in (root / name for name in names(root) if name.startswith((BUILD_PREFIX, TRASH_PREFIX))):
        try:
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                if now - info.st_mtime < older_than:
                    continue
                with locks.hold(path / "owner", blocking=False) as free:
                    if not free or remove(path) is not None:
                        continue
            elif remove(path) is not None:
                continue
        except OSError:  # gone already, or a directory this process may not enter
            continue
        removed.append(path)
    return removed
