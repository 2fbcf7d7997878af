"""Exclusive file locks that die with their process, on POSIX and on Windows.

The cache uses them for two things: builders of one entry queue on its lock file, so one compiles
and the others find its entry; and a build holds a lock on its private directory's ``owner`` file,
so a sweep can tell a live build from a killed one. A lock is ``flock`` on POSIX and
``msvcrt.locking`` (of a file's first byte) on Windows; either is released by the kernel when its
holder dies, so a crash never leaves a lock behind. A platform with neither imports symgate and
finds kernels already built, but taking a lock, hence building, raises
:class:`~symgate.errors.BuildError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import BuildError
from .safe_files import open_lock_file

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None
try:
    import msvcrt
except ImportError:  # not Windows
    msvcrt = None


@contextlib.contextmanager
def hold(path: Path, blocking: bool) -> Iterator[bool]:
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
