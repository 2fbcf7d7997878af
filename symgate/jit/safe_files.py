"""Touching the cache's files without trusting them: read, lock and remove, never through a link.

The cache directory is shared and anyone may have put anything in it: a symbolic link to ``/``,
a FIFO where a module was, a directory nobody may read. Everything here looks at a name with
``lstat`` before it acts, opens only regular files (with ``O_NOFOLLOW | O_NONBLOCK``, so a file
swapped in between cannot redirect or block the open), and removes a link rather than what it
points at. A file it will not read raises :class:`UntrustedError` with the reason, for
:mod:`symgate.jit.cache` and :mod:`symgate.jit.housekeeping` to report and heal.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from pathlib import Path

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # neither exists on Windows
_CHUNK = 1 << 20


class UntrustedError(Exception):
    """A file or directory of the cache that must not be used; the message says why."""


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, for messages: "a symbolic link", "a FIFO", ..."""
    kinds = [
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISREG, "a file"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def describe_node(path: Path, info: os.stat_result) -> str:
    """``info``'s kind, with a link's target: "a symbolic link (to /etc)"."""
    if stat.S_ISLNK(info.st_mode):
        try:
            return f"a symbolic link (to {os.readlink(path)})"
        except OSError:
            return "a symbolic link"
    return kind(info.st_mode)


def open_regular(path: Path, flags: int = os.O_RDONLY) -> int:
    """A descriptor of the regular file ``path``; :class:`UntrustedError` if it is anything else or
    cannot be opened. A special file is never opened (a device's open may act), a link never followed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise UntrustedError(f"{path.name} is missing") from None
    except OSError as err:
        raise UntrustedError(f"{path.name} cannot be examined ({err.strerror})") from err
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedError(f"{path.name} is {describe_node(path, info)}, not a regular file")
    try:
        fd = os.open(path, flags | _NO_FOLLOW)
    except OSError as err:
        reason = "it was replaced by a symbolic link" if err.errno == errno.ELOOP else err.strerror
        raise UntrustedError(f"{path.name} cannot be read ({reason})") from err
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise UntrustedError(f"{path.name} was replaced while it was opened")
    return fd


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``; :class:`UntrustedError` if it is not one, cannot be read,
    or holds more than ``limit`` bytes (checked before reading)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if limit is not None and size > limit:
            raise UntrustedError(f"{path.name} has {size} bytes, more than the {limit} it may have")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read() if limit is None else file.read(limit + 1)
    except OSError as err:
        raise UntrustedError(f"{path.name} cannot be read ({err.strerror})") from err
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:
        raise UntrustedError(f"{path.name} has more than the {limit} bytes it may have")
    return data


def digest(path: Path, size: int) -> tuple[int, str]:
    """The size and SHA-256 of the regular file ``path``, reading at most ``size + 1`` bytes: a
    file longer than it should be is found without reading it all."""
    fd = open_regular(path)
    sha, seen = hashlib.sha256(), 0
    try:
        while seen <= size:
            chunk = os.read(fd, min(_CHUNK, size + 1 - seen))
            if not chunk:
                break
            sha.update(chunk)
            seen += len(chunk)
    except OSError as err:
        raise UntrustedError(f"{path.name} cannot be read ({err.strerror})") from err
    finally:
        os.close(fd)
    return seen, sha.hexdigest()


def open_lock_file(path: Path) -> int:
    """A read-write descriptor of the lock file ``path``, created if missing. Anything else found
    under its name (a link, a FIFO, a directory) is removed first: a lock file is always regular."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        remove(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _NO_FOLLOW, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EEXIST, f"{path} was replaced by a special file while it was opened")
    return fd


def remove(path: Path) -> str | None:
    """Deletes ``path`` and, if it is a real directory, everything in it, never following a link
    (a link is removed, never its target). Returns why something could not be deleted, or None;
    what is already gone is no failure, so several processes may remove one tree at once."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return None
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"{path}: {err.strerror}"
    failures = _remove_tree(path)
    if failures:  # directories without write or search permission: grant them to their owner, once
        _grant_owner_access(path)
        failures = _remove_tree(path)
    return failures[0] if failures else None


def _remove_tree(path: Path) -> list[str]:
    failures = []

    def note(function, name, exc_info) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            failures.append(f"{name}: {getattr(exc_info[1], 'strerror', None) or exc_info[1]}")

    shutil.rmtree(path, onerror=note)  # never descends into a link (it uses lstat and O_NOFOLLOW)
    return failures


def _grant_owner_access(top: Path) -> None:
    """Gives the owner read, write and search permission on every real directory under ``top``."""
    todo = [top]
    while todo:
        directory = todo.pop()
        try:
            mode = os.lstat(directory).st_mode
            if not stat.S_ISDIR(mode):
                continue
            if mode & 0o700 != 0o700:
                os.chmod(directory, stat.S_IMODE(mode) | 0o700)
            with os.scandir(directory) as found:
                todo.extend(Path(item.path) for item in found if item.is_dir(follow_symlinks=False))
        except OSError:  # not ours to change, or gone: the removal reports what is left
            continue
