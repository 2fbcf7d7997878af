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

The time limit uses ``SIGALRM`` in the main thread of a POSIX process when no other interval
timer is running there (symgate never disturbs the caller's timer). Elsewhere (other threads, a
main thread whose timer is in use, Windows) a watchdog thread raises the same exception in the
working thread through CPython's ``PyThreadState_SetAsyncExc``: it costs one thread start per
stage, where checking the clock on every call (``sys.setprofile``) would slow deriving several
times over (benchmarks/MEASUREMENTS.md, "Time limit"). Both raise again every 0.5 s, should the code in between
swallow the exception, and neither can stop a single long call into C; without
``ctypes.pythonapi`` (not CPython) only the depth limit applies outside the main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import CellError, SymgateError

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
    try:
        with _time_limit(seconds):
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


_limited = threading.local()  # whether this thread's time limit is running (stages nest)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raises ``_ExpiredError`` in this thread after ``seconds``, unless a limit is running already."""
    if seconds <= 0 or getattr(_limited, "value", False):
        yield
        return
    alarm = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # the caller's timer is not running
    )
    _limited.value = True
    try:
        if alarm:
            with _alarm(seconds):
                yield
        elif hasattr(ctypes, "pythonapi"):
            with _watchdog(seconds):
                yield
        else:
            yield
    finally:
        _limited.value = False


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _expire(signum, frame) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.5)  # again, should code in between swallow the exception
    raise _ExpiredError


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    """Another thread raises ``_ExpiredError`` in this one after ``seconds``, then every 0.5 s.

    It raises only while ``done`` is unset, under ``lock``; on the way out this thread sets
    ``done`` and drops an exception raised but not yet delivered, under the same lock, so none is
    raised after the stage. One delivered on the way out still counts as expired.
    """
    worker = ctypes.c_ulong(threading.get_ident())
    done, lock = threading.Event(), threading.Lock()

    def watch() -> None:
        wait = seconds
        while not done.wait(wait):
            with lock:
                if not done.is_set():
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(worker, ctypes.py_object(_ExpiredError))
            wait = 0.5

    threading.Thread(target=watch, name="symgate time limit", daemon=True).start()
    late = False
    try:
        yield
    finally:
        while True:
            try:
                with lock:
                    done.set()
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(worker, None)  # NULL: drops a pending one
                break
            except _ExpiredError:
                late = True
    if late:
        raise _ExpiredError


def _error(message: str) -> CellError:
    place = getattr(_place, "value", _Place())
    return CellError(message, line=place.line, source=place.source, text=place.text)
