"""A time limit and a depth limit for the symbolic stages, so hostile cell text cannot hang or crash.

The parser bounds what a text can hold (line length, tokens, nesting, exponents), but SymPy's own
algorithms can still take time exponential in a short expression: a quotient of duplicated
subexpressions nested six deep, ``a/(2 + sigmoid(a))`` with ``a`` itself such a quotient, is
1,200 characters and kept SymPy's assumption system busy for minutes. Parsing, checking,
deriving and planning a cell therefore run under :func:`guarded`:

* past ``SYMGATE_SYMBOLIC_SECONDS`` seconds (default 300; ``0`` or ``inf`` turns the limit off)
  the work stops with a :class:`~symgate.errors.CellError` naming the equation being worked on;
* Python's recursion limit, reached by expressions nested too deeply for SymPy, gives the same
  error instead of a ``RecursionError``.

How the work stops matters more than when. An exception raised at an arbitrary instruction (by
``PyThreadState_SetAsyncExc``, or a ``SIGALRM`` handler that raises) can land between a lock's
acquisition and the ``try`` that releases it, or in the middle of an import: the lock stays held
and the next thread to want it waits forever. So the exception is raised only at a *safe point*:

* between two statements or equations (:func:`working_on`, which parsing and deriving call for
  each one), or
* at the start of a plain function of SymPy, mpmath or symgate (not a generator, whose ``finally``
  may be pending, nor a special method such as ``__exit__`` or ``__setattr__``, which cleanup
  calls), with no import under way in the thread: as if that function had raised on its first
  line, which callers already clean up after like any other exception.

A ``SIGALRM`` handler that raises, as this module's did, is no safer than a watchdog in another
thread: importing fresh modules under alarms at random moments, one lands between the import
lock's acquisition and its ``try`` within a few hundred imports, and the next import in another
thread then waits forever.

The second kind catches one long SymPy call. Nothing watches it until the time is up: then the
thread installs a trace function (``sys.settrace``, for that thread alone) that raises at the
next such function start and is removed by Python as it raises. What notices that the time is up
runs in the working thread itself, so it can install the trace function there: a ``SIGALRM``
handler in the main thread of a POSIX process whose interval timer is free (symgate never
disturbs the caller's timer), and in every thread the garbage collector's callbacks, which run
in the thread that allocates, and SymPy at work allocates all the time. Until then the cost is
one clock reading per statement and equation, and one call per collection; a trace function
running from the start would slow deriving more than twofold (benchmarks/MEASUREMENTS.md, "Time
limit"). The exception is raised again 0.5 s later should the code in between swallow it. No
mechanism stops a single long call into C, and ``gc.disable()`` leaves threads other than the
main one with the checks between statements and equations alone.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

from ..errors import CellError, SymgateError

SECONDS = "SYMGATE_SYMBOLIC_SECONDS"
DEFAULT_SECONDS = 300.0
_NEVER = 1e9  # seconds (32 years): a longer limit is none, and would overflow the interval timer
_AGAIN = 0.5  # seconds between raises, should the code in between swallow one
_SAFE_PACKAGES = frozenset({"sympy", "mpmath", "symgate"})
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


@dataclass
class _Place:
    """The equation being worked on, for the message."""

    source: str = "<string>"
    line: int | None = None
    text: str | None = None


class _Limit(threading.local):
    """One thread's running time limit (stages nest; the outermost one's limit holds)."""

    deadline: float | None = None  # when to raise next; None: no limit running
    traced: bool = False  # whether the trace function was installed during this limit
    previous_trace: object = None  # the thread's trace function before it (a debugger's, coverage's)


_place = threading.local()
_limit = _Limit()


def working_on(source: str, line: int | None, text: str | None = None) -> None:
    """Records the statement or equation the current thread works on; a safe point to stop at."""
    _place.value = _Place(source, line, text)
    if _expired():
        _limit.deadline = time.monotonic() + _AGAIN
        raise _ExpiredError


class _ExpiredError(BaseException):
    """Raised at a safe point once the time is up; a BaseException, so SymPy's ``except Exception`` lets it by."""


def limit() -> float | None:
    """The time limit in seconds from ``SYMGATE_SYMBOLIC_SECONDS``; None for none (0, inf)."""
    return seconds_setting(SECONDS, DEFAULT_SECONDS)


def seconds_setting(variable: str, default: float) -> float | None:
    """A time limit in seconds from the environment variable, else ``default``; None for none.

    ``0`` and ``inf`` mean no limit, and so does anything beyond 32 years; a negative number,
    ``nan`` or text that is not a number is a :class:`~symgate.errors.SymgateError` naming the
    variable. ``SYMGATE_COMPILE_SECONDS`` (:mod:`symgate.jit.compiler`) is read the same way.
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # negative or nan
        raise SymgateError(f"{variable} must be a number of seconds (0 or inf: no limit), not {value!r}")
    return seconds if 0 < seconds <= _NEVER else None


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


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raises ``_ExpiredError`` at a safe point in this thread after ``seconds``, unless a limit runs already."""
    if seconds is None or _limit.deadline is not None:
        yield
        return
    _limit.deadline, _limit.traced = time.monotonic() + seconds, False
    gc.callbacks.append(_on_collection)
    try:
        if _alarm_free():
            with _alarm(seconds):
                yield
        else:
            yield
    finally:
        _limit.deadline = None
        gc.callbacks.remove(_on_collection)  # one entry per running limit, in any thread: removes this one's
        if _limit.traced:
            sys.settrace(_limit.previous_trace)
            _limit.previous_trace = None


def _expired() -> bool:
    deadline = _limit.deadline
    return deadline is not None and time.monotonic() >= deadline


def _on_collection(phase: str, info: dict) -> None:
    """A garbage collection starts or ends in this thread: if the time is up, stop at the next safe point."""
    if _expired():
        _trace()


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _expired():
        _trace()


def _trace() -> None:
    """Installs :func:`_tracer` in this thread, keeping the trace function it replaces for later."""
    current = sys.gettrace()
    if current is _tracer:
        return
    if not _limit.traced:
        _limit.traced, _limit.previous_trace = True, current
    sys.settrace(_tracer)


def _tracer(frame: FrameType, event: str, arg: object) -> object:
    """Raises ``_ExpiredError`` at the first safe function start; Python then removes this tracer."""
    if event == "call" and _expired() and _at_safe_point(frame):
        _limit.deadline = time.monotonic() + _AGAIN
        raise _ExpiredError
    previous = _limit.previous_trace
    return previous(frame, event, arg) if callable(previous) else None


def _at_safe_point(frame: FrameType) -> bool:
    """Whether ``frame`` starts a plain function of SymPy, mpmath or symgate, with no import under way."""
    code, module = frame.f_code, frame.f_globals.get("__name__", "")
    if code.co_flags & _RESUMABLE or code.co_name.startswith("__") or module == __name__:
        return False
    if module.split(".")[0] not in _SAFE_PACKAGES:
        return False
    caller = frame.f_back
    while caller is not None:
        if caller.f_globals.get("__name__", "").startswith("importlib"):
            return False
        caller = caller.f_back
    return True


def _alarm_free() -> bool:
    """Whether this is the main thread of a POSIX process and the caller's interval timer is not running."""
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, _AGAIN)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _error(message: str) -> CellError:
    place = getattr(_place, "value", _Place())
    return CellError(message, line=place.line, source=place.source, text=place.text)
