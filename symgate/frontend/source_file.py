"""Reading a ``.cell`` file: path -> its bytes, bounded before they are read.

A cell file is a regular file of at most :data:`~symgate.frontend.syntax.MAX_BYTES` bytes. The
check comes before the read, so a path that names a device (``/dev/zero`` never ends), a FIFO
(opening one blocks until a writer comes), a directory or a socket is refused at once with a
:class:`~symgate.errors.CellError` naming the file. The file is opened non-blocking, so a FIFO put
in its place between the check and the open cannot block either, and at most one byte past the
limit is ever read, whatever the file grows to meanwhile.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import CellError, CellSyntaxError
from .syntax import MAX_BYTES

_CHUNK = 1 << 16
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_cell_file(path: Path) -> bytes:
    """The bytes of the cell file at ``path`` (symlinks followed); a :class:`CellError` if it cannot be one."""
    try:
        _check_regular(path, os.stat(path))
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        raise CellError(f"cannot read cell file: {err.strerror or err}", source=str(path)) from err
    try:
        _check_regular(path, os.fstat(fd))  # the file opened may not be the one checked
        data = _read_at_most(fd, MAX_BYTES + 1)
    except OSError as err:
        raise CellError(f"cannot read cell file: {err.strerror or err}", source=str(path)) from err
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise CellSyntaxError(f"the file is over {MAX_BYTES} bytes long", source=str(path))
    return data


def _check_regular(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise CellError(f"cannot read cell file: it is {kind}, not a regular file", source=str(path))
    if info.st_size > MAX_BYTES:
        raise CellSyntaxError(f"the file is over {MAX_BYTES} bytes long ({info.st_size} bytes)", source=str(path))


def _read_at_most(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from ``fd``, fewer only at its end."""
    chunks: list[bytes] = []
    while count > 0:
        chunk = os.read(fd, min(count, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
