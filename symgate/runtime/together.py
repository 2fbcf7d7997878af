"""Independent kernel calls side by side, one core each: a bidirectional layer's two directions.

A step's matrix product of a few rows keeps a second core only partly busy, and the element-wise
work between products runs on one core while the other waits. Two calls that share nothing (the
two directions of a layer read the same input, with their own weights) run better at once, each on
its own core with every product on the thread that calls it, than one after the other with
threaded products (benchmarks/MEASUREMENTS.md, "Directions at once"). The calls run at once only
when that holds for every kernel involved (:meth:`symgate.Kernel.one_blas_thread`), the process
may use more than one core, and no other thread is running calls side by side already; otherwise
they run one after the other, as they would without this module. Their results are the same either
way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from .kernel import Kernel

Result = TypeVar("Result")

_SIDE_BY_SIDE = threading.Lock()  # held while calls run side by side: the BLAS setting is process-wide
_pool: ThreadPoolExecutor | None = None


def cores() -> int:
    """How many cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_together(kernels: Sequence[Kernel], calls: Sequence[Callable[[], Result]]) -> list[Result]:
    """Each call's result, in order. ``kernels`` are the kernels the calls run; the calls run at
    once (the first on this thread, the others on a pool of one thread a core) when the module
    docstring's conditions hold, else one after the other. An exception of a call is raised after
    every call has ended (the first one's, in the calls' order)."""
    if len(calls) < 2 or cores() < 2 or not _SIDE_BY_SIDE.acquire(blocking=False):
        return [call() for call in calls]
    try:
        switched: list[Kernel] = []
        try:
            for kernel in {id(k): k for k in kernels}.values():
                switched.append(kernel)
                if not kernel.one_blas_thread(True):
                    break
            else:
                return _at_once(calls)
        finally:
            for kernel in reversed(switched):
                kernel.one_blas_thread(False)
        return [call() for call in calls]
    finally:
        _SIDE_BY_SIDE.release()


def _at_once(calls: Sequence[Callable[[], Result]]) -> list[Result]:
    futures = [_thread_pool().submit(call) for call in calls[1:]]
    first: Future = Future()
    try:
        first.set_result(calls[0]())
    except BaseException as error:  # raised below, once the other calls have ended
        first.set_exception(error)
    wait(futures)
    return [future.result() for future in [first, *futures]]


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=cores() - 1, thread_name_prefix="symgate")
    return _pool


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
