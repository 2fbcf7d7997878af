"""The built-in cells: ``.cell`` files shipped with symgate.

They go through exactly the same pipeline as a user's cell file; nothing about them is special
but their location. Each file's header comment gives its source, conventions and tag.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from ...errors import ArgumentError, UnknownCellError
from ..cell import Cell
from ..check import load

_DIRECTORY = Path(__file__).parent


def names() -> list[str]:
    """The names of the built-in cells, sorted."""
    return sorted(p.stem for p in _DIRECTORY.glob("*.cell"))


def path(name: str) -> Path:
    """The ``.cell`` file of a built-in cell."""
    if name not in names():
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; built-in cells: {', '.join(names())}"
        raise UnknownCellError(f"no built-in cell named {name!r}{hint}")
    return _DIRECTORY / f"{name}.cell"


def get(name: str, strict: bool = False) -> Cell:
    """A built-in cell, checked (``strict``: warnings are errors, see :func:`symgate.parse`)."""
    return load(path(name), strict=strict)


def resolve(name_or_path: str | Path, strict: bool = False) -> Cell:
    """A built-in cell by name, or a cell from a ``.cell`` file path."""
    candidate = Path(name_or_path)
    if str(name_or_path) in names():
        return get(str(name_or_path), strict)
    if candidate.suffix == ".cell" or candidate.exists() or "/" in str(name_or_path):
        return load(candidate, strict=strict)
    return get(str(name_or_path), strict)


def cell_argument(value: object, what: str = "cell") -> Cell:
    """``value`` as a cell: a :class:`Cell`, a built-in cell's name, or the path of a ``.cell`` file."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, (str, os.PathLike)):
        return resolve(os.fspath(value))
    raise ArgumentError(
        f"{what} must be a symgate Cell, a built-in cell's name or a .cell path, not {type(value).__name__}"
    )
