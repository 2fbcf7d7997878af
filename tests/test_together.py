"""Independent kernel calls side by side (``symgate.runtime.together.run_together``), as a
bidirectional layer runs its two directions.

The calls run at once, on two threads, when every kernel can run its products on the calling
thread; otherwise one after the other on the caller's thread. Every kernel switched to one BLAS
thread gets its threads back afterwards, also when a call fails, and a call's error is raised once
every call has ended. With real kernels (built with OpenBLAS alone, or with MKL), the products run
on one of the library's threads while side by side and on all of them after; a thread count the
user set above one keeps the calls one after the other.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from test_blas import HAS_MKL, NO_MKL, openblas_untouched, printed

from symgate.runtime import together
from symgate.runtime.together import run_together

TWO_CORES = pytest.mark.skipif(together.cores() < 2, reason="needs two cores")
WAIT = 30  # seconds a call waits for the other at a barrier before the test fails


class Switch:
    """A stand-in kernel: answers ``one_blas_thread`` as told and records every switch."""

    def __init__(self, log: list, name: str, answer: bool = True) -> None:
        self.log, self.name, self.answer = log, name, answer

    def one_blas_thread(self, on: bool) -> bool:
        self.log.append((self.name, on))
        return self.answer


def meeting(barrier: threading.Barrier, threads: list) -> None:
    """A call that returns only once the other call is running too, noting its thread."""
    threads.append(threading.get_ident())
    barrier.wait(WAIT)


@TWO_CORES
def test_calls_run_at_once_and_the_kernels_get_their_threads_back():
    log, threads = [], []
    barrier = threading.Barrier(2)
    a, b = Switch(log, "a"), Switch(log, "b")
    results = run_together([a, b, a], [lambda: meeting(barrier, threads) or 1, lambda: meeting(barrier, threads) or 2])
    assert results == [1, 2]
    assert len(set(threads)) == 2 and threading.get_ident() in threads
    assert log == [("a", True), ("b", True), ("b", False), ("a", False)]  # each kernel once, undone in reverse


def test_a_kernel_that_cannot_keep_its_products_on_one_thread_keeps_the_calls_in_turn():
    log, threads = [], []
    a, mkl, c = Switch(log, "a"), Switch(log, "mkl", answer=False), Switch(log, "c")
    calls = [lambda k=k: threads.append(threading.get_ident()) or k for k in range(3)]
    assert run_together([a, mkl, c], calls) == [0, 1, 2]
    assert threads == [threading.get_ident()] * 3
    assert log == [("a", True), ("mkl", True), ("mkl", False), ("a", False)]  # c never asked


@TWO_CORES
def test_an_error_is_raised_once_every_call_has_ended():
    log, ended = [], threading.Event()

    def fails():
        raise ValueError("the first call's error")

    def slow():
        time.sleep(0.3)
        ended.set()
        return "done"

    with pytest.raises(ValueError, match="the first call's error"):
        run_together([Switch(log, "a")], [fails, slow])
    assert ended.is_set()
    assert log == [("a", True), ("a", False)]


@TWO_CORES
def test_calls_from_inside_a_side_by_side_call_run_in_turn():
    """One set of calls runs side by side at a time (the BLAS setting is the process's): another
    thread's calls meanwhile run one after the other, in that thread."""
    log, inner_threads = [], []
    barrier = threading.Barrier(2)

    def nested():
        run_together([Switch(log, "inner")], [lambda: inner_threads.append(threading.get_ident())] * 2)
        return threading.get_ident()

    calls = [lambda: meeting(barrier, []) or nested(), lambda: meeting(barrier, [])]
    outer = run_together([Switch(log, "outer")], calls)
    assert inner_threads == [outer[0]] * 2
    assert ("inner", True) not in log


def test_one_call_or_one_core_runs_in_turn(monkeypatch):
    log = []
    assert run_together([Switch(log, "a")], [lambda: 7]) == [7]
    monkeypatch.setattr(together, "cores", lambda: 1)
    assert run_together([Switch(log, "a")], [lambda: 1, lambda: 2]) == [1, 2]
    assert log == []


SIDE_BY_SIDE_PROBE = """
import ctypes, threading
import numpy as np
import symgate as sg
from symgate.jit import toolchain
from symgate.runtime.together import run_together
kernel = sg.build(sg.cells.get("lstm_pytorch"), "float32")
params = kernel.init_params({{"D": 16, "H": 256}}, seed=0)
x = np.ones((2, 16, 16), np.float32)  # a step's product: 16 x 1024 x 256, on all threads alone
threads = {threads}

def call():
    kernel.forward(x, params)
    return threads(), threading.get_ident()

print(kernel.one_blas_thread(True), kernel.one_blas_thread(False))
(first, one), (second, other) = run_together([kernel], [call, call])
kernel.forward(x, params)
print(first, second, "apart" if one != other else "in turn", threads())
"""
OPENBLAS_THREADS = "toolchain.openblas().scipy_openblas_get_num_threads"
MKL_THREADS = 'ctypes.CDLL(str(toolchain._mkl_file("mkl", "libmkl_rt.so."))).MKL_Get_Max_Threads'


@TWO_CORES
@pytest.mark.parametrize(
    ("library", "threads", "variable"),
    [
        ("openblas", OPENBLAS_THREADS, "OPENBLAS_NUM_THREADS"),
        pytest.param("mkl", MKL_THREADS, "MKL_NUM_THREADS", marks=pytest.mark.skipif(not HAS_MKL, reason=NO_MKL)),
    ],
)
def test_real_kernels_side_by_side_run_each_product_on_one_thread(tmp_path, library, threads, variable):
    """Side by side, the step products that alone run on every thread of the BLAS library (OpenBLAS
    alone, or MKL) run on one, and they get every thread back after; with the user's count above
    one the kernel answers no and the calls run in turn on it, with the user's count of one yes."""
    plain = openblas_untouched(tmp_path, SYMGATE_BLAS=library, SYMGATE_BLAS_MIN="0")
    plain = {k: v for k, v in plain.items() if k not in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    probe = SIDE_BY_SIDE_PROBE.format(threads=threads)
    cores = os.cpu_count() or 1
    assert printed(probe, plain).splitlines() == ["True True", f"1 1 apart {cores}"]
    assert printed(probe, {**plain, variable: "2"}).splitlines() == ["False False", "2 2 in turn 2"]
    assert printed(probe, {**plain, variable: "1"}).splitlines() == ["True True", "1 1 apart 1"]
