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
_switched: list[Kernel] = []  # the kernels set to one BLAS thread now, in the order they were set


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
        try:
            if _switch_to_one_thread(kernels):
                return _at_once(calls)
        finally:
            _switch_back()
        return [call() for call in calls]
    finally:
        _SIDE_BY_SIDE.release()


def _switch_to_one_thread(kernels: Sequence[Kernel]) -> bool:
    """Sets each kernel (once) to one BLAS thread, noting it in ``_switched``; False at the first
    that cannot be."""
    for kernel in {id(k): k for k in kernels}.values():
        _switched.append(kernel)
        if not kernel.one_blas_thread(True):
            return False
    return True


def _switch_back() -> None:
    """Gives the kernels set to one BLAS thread their threads back, the last set first."""
    while _switched:
        _switched.pop().one_blas_thread(False)


def _at_once(calls: Sequence[Callable[[], Result]]) -> list[Result]:
    pool, futures = _thread_pool(), []
    for call in calls[1:]:
        try:
            futures.append(pool.submit(call))
        except RuntimeError:  # the interpreter is shutting down (an atexit handler): no new threads
            break
    here = [_settled(call) for call in (calls[0], *calls[1 + len(futures) :])]
    try:
        wait(futures)
    except BaseException:  # Ctrl-C: the other calls end before their BLAS setting changes back
        wait(futures)
        raise
    return [future.result() for future in (here[0], *futures, *here[1:])]


def _settled(call: Callable[[], Result]) -> Future:
    """``call`` run on this thread, its result or exception held for later."""
    future: Future = Future()
    try:
        future.set_result(call())
    except BaseException as error:  # raised by the caller, once the other calls have ended
        future.set_exception(error)
    return future


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=cores() - 1, thread_name_prefix="symgate")
    return _pool


def _after_fork_in_child() -> None:
    """A child forked while another thread ran calls side by side: none of that runs in it. Its
    copy of the lock is free again, the kernels get their BLAS threads back, and the parent's pool
    threads, which do not exist in the child, are forgotten."""
    global _SIDE_BY_SIDE, _pool
    _SIDE_BY_SIDE = threading.Lock()
    _pool = None
    _switch_back()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
