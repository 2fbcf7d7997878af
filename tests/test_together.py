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

import subprocess
import sys
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
def test_an_interrupt_while_waiting_lets_the_other_calls_end_first(monkeypatch):
    """Ctrl-C while this thread waits for the others: they end before the kernels get their
    threads back (a product must not see its BLAS setting change under it), then it is raised."""
    log, ended, waits = [], threading.Event(), []
    wait = together.wait

    def interrupted(futures):
        waits.append(len(futures))
        if len(waits) == 1:
            raise KeyboardInterrupt
        return wait(futures)

    def slow():
        time.sleep(0.3)
        ended.set()

    monkeypatch.setattr(together, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_together([Switch(log, "a")], [lambda: None, slow])
    assert ended.is_set() and waits == [1, 1]
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

kernel.forward(x, params)
alone = threads()
print(kernel.one_blas_thread(True), kernel.one_blas_thread(False))
(first, one), (second, other) = run_together([kernel], [call, call])
kernel.forward(x, params)
print(alone, first, second, "apart" if one != other else "in turn", threads())
"""
OPENBLAS_THREADS = "toolchain.openblas().scipy_openblas_get_num_threads"
MKL_THREADS = 'ctypes.CDLL(str(toolchain._mkl_file("mkl", "libmkl_rt.so."))).MKL_Get_Max_Threads'


@TWO_CORES
@pytest.mark.parametrize(
    ("library", "threads", "variables"),
    [
        ("openblas", OPENBLAS_THREADS, ["OPENBLAS_NUM_THREADS"]),
        pytest.param(
            "mkl",
            MKL_THREADS,
            ["MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"],  # OpenBLAS takes the smaller products beside MKL
            marks=pytest.mark.skipif(not HAS_MKL, reason=NO_MKL),
        ),
    ],
)
def test_real_kernels_side_by_side_run_each_product_on_one_thread(tmp_path, library, threads, variables):
    """Side by side, the step products that alone run on several threads of the BLAS library
    (OpenBLAS alone, or MKL) run on one, and they get those threads back after; with the user's
    count above one for a library the kernel uses, the kernel answers no and the calls run in turn
    on it; with the user's count of one, yes."""
    plain = openblas_untouched(tmp_path, SYMGATE_BLAS=library, SYMGATE_BLAS_MIN="0")
    plain = {k: v for k, v in plain.items() if k not in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    probe = SIDE_BY_SIDE_PROBE.format(threads=threads)
    answer, counts = printed(probe, plain).splitlines()
    alone = int(counts.split()[0])
    assert alone > 1 and (answer, counts) == ("True True", f"{alone} 1 1 apart {alone}")
    for variable in variables:
        users = printed(probe, {**plain, variable: "2"}).splitlines()
        assert users[0] == "False False" and users[1].endswith("in turn " + users[1].split()[0])
    one = printed(probe, {**plain, variables[0]: "1"})
    assert one.splitlines() == ["True True", "1 1 1 apart 1"]


AT_EXIT = """
import atexit, threading
from symgate.runtime.together import run_together

class Kernel:
    def one_blas_thread(self, on):
        return True

def report():
    threads = run_together([Kernel()], [threading.get_ident, threading.get_ident])
    print("at exit:", len(threads), "calls")

atexit.register(report)
"""


def test_calls_side_by_side_at_interpreter_exit_run_in_turn():
    """At exit no new thread can start: the calls run on the exiting thread."""
    done = subprocess.run([sys.executable, "-c", AT_EXIT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "at exit: 2 calls", done.stderr


FORK = """
import os, threading
from symgate.runtime.together import run_together

log = []

class Kernel:
    def one_blas_thread(self, on):
        log.append((os.getpid(), on))
        return True

inside, release = threading.Event(), threading.Event()

def held():
    inside.set()
    release.wait(30)

side = threading.Thread(target=lambda: run_together([Kernel()], [held, lambda: None]))
side.start()
inside.wait(30)
child = os.fork()
if child == 0:
    switched_back = log[-1] == (os.getpid(), False)
    threads = run_together([Kernel()], [threading.get_ident, threading.get_ident])
    print("child:", switched_back, len(set(threads)), flush=True)
    os._exit(0)
os.waitpid(child, 0)
release.set()
side.join()
print("parent:", log[-1] == (os.getpid(), False))
"""


@TWO_CORES
def test_a_child_forked_while_calls_run_side_by_side_starts_afresh():
    """The child of a fork made while another thread ran calls side by side gives the kernels their
    threads back and runs its own calls side by side (the parent's lock and pool are not its)."""
    done = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["child: True 2", "parent: True"]
