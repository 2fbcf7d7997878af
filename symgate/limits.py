"""A time limit and a depth limit for the symbolic stages, so hostile cell text cannot hang or crash.

The parser bounds what a text can hold (line length, tokens, nesting, exponents), but SymPy's own
algorithms can still take time exponential in a short expression: a quotient of duplicated
subexpressions nested six deep, ``a/(2 + sigmoid(a))`` with ``a`` itself such a quotient, is
1,200 characters and kept SymPy's assumption system busy for minutes. Parsing, checking,
deriving and planning a cell therefore run under :func:`guarded`:

* past ``SYMGATE_SYMBOLIC_SECONDS`` seconds (default 300; ``0`` turns the limit off) the work
  stops with a :class:`~symgate.errors.CellError` naming the equation being worked on;
* Python's recursion limit, reached by expressions nested too deeply for SymPy, gives the same
  error instead of a ``RecursionError``.

The time limit uses ``SIGALRM``, so it applies in the main thread of a POSIX process, and only
when no other interval timer is running there (symgate never disturbs the caller's timer). In
other threads the depth limit still applies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import CellError, SymgateError

SECONDS = "SYMGATE_SYMBOLIC_SECONDS"
DEFAULT_SECONDS = 300.0


@dataclass
class _Place:
    """The equation being worked on, for the message."""

    source: str = "<string>"
    line: int | None = None
    text: str | None = None


_place = threading.local()


def working_on(source: str, line: int | None, text: str | None = None) -> None:
    """Records the equation the current thread is working on."""
    _place.value = _Place(source, line, text)


class _ExpiredError(Exception):
    """Raised from the alarm handler inside whatever SymPy was doing."""


def limit() -> float:
    """The time limit in seconds from ``SYMGATE_SYMBOLIC_SECONDS``; 0 means none."""
    value = os.environ.get(SECONDS, "").strip()
    if not value:
        return DEFAULT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise SymgateError(f"{SECONDS} must be a number of seconds (0: no limit), not {value!r}")
    return seconds


@contextlib.contextmanager
def guarded(stage: str) -> Iterator[None]:
    """Runs one symbolic stage (``"derive"``, ...) under the time and depth limits."""
    seconds = limit()
    alarm = (
        seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # none of ours or the caller's running
    )
    if alarm:
        previous = signal.signal(signal.SIGALRM, _expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _ExpiredError:
        raise _error(
            f"{stage} took over {seconds:g} s ({SECONDS}); SymPy's cost grows fast with repeated "
            "subexpressions: name them as intermediates (a = ...), or simplify the equation"
        ) from None
    except RecursionError:
        raise _error(
            f"the expression is nested too deeply to {stage} (Python's recursion limit); name inner parts "
            "as intermediates"
        ) from None
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _expire(signum, frame) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.5)  # again, should code in between swallow the exception
    raise _ExpiredError


def _error(message: str) -> CellError:
    place = getattr(_place, "value", _Place())
    return CellError(message, line=place.line, source=place.source, text=place.text)
