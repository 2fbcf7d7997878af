"""The arguments of symgate's public functions, checked where they enter.

A public function given an argument of the wrong kind raises :class:`~symgate.errors.ArgumentError`
naming the argument and what it must be, before anything uses it: never an ``AttributeError`` or
``TypeError`` from deep inside, which would read as a bug in symgate. ``ArgumentError`` is also a
``TypeError`` and a ``ValueError``, so code written against Python's conventions keeps working.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import ArgumentError


def path_argument(value: object, what: str) -> Path:
    """``value`` as a file system path (a ``str`` or an ``os.PathLike``)."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ArgumentError(f"{what} must be a path (a non-empty str or os.PathLike), not {value!r}")
    path = os.fspath(value)
    if ("\0" if isinstance(path, str) else b"\0") in path:  # the system calls would raise ValueError
        raise ArgumentError(f"{what} {value!r} holds a NUL byte, which no path can")
    return Path(path)


def text_argument(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ArgumentError(f"{what} must be a str, not {type(value).__name__}")
    return value


def flag_argument(value: object, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{what} must be True or False, not {value!r}")
    return bool(value)


def count_argument(
    value: object, what: str, minimum: int = 1, maximum: int = 2**31 - 1, *, subject: str | None = None
) -> int:
    """An integer from ``minimum`` to ``maximum`` (bounded so a typo cannot ask for an exabyte).

    ``subject`` names what needs it in the message (``"gradient flow of lstm needs steps >= 1"``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not minimum <= value <= maximum:
        if subject is None:
            raise ArgumentError(f"{what} must be an integer from {minimum} to {maximum}, not {value!r}")
        raise ArgumentError(f"{subject} needs {what} >= {minimum} (an integer up to {maximum}), not {value!r}")
    return int(value)


def number_argument(value: object, what: str) -> float:
    """A finite real number."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    try:
        finite = real and math.isfinite(value)
    except OverflowError:  # an int beyond every float
        finite = False
    if not finite:
        raise ArgumentError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def sizes_argument(value: object, what: str = "sizes") -> Mapping[str, int]:
    """A mapping of dimension names to sizes; each size is checked where the dimension is used."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ArgumentError(f'{what} must map dimension names to sizes, like {{"D": 8, "H": 16}}, not {value!r}')
    return value
