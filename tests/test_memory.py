"""Large arrays' memory is reused from call to call, and never while anything still sees it: a
run or gradient kept, a slice or view of one of its arrays, or a buffer exported from one."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import LSTM

import symgate as sg
from symgate.runtime import kernel as kernel_module
from symgate.runtime import memory

F64 = np.dtype(np.float64)
BIG = (64, 512)  # 256 KiB of float64: pooled
SMALL = (4, 4)


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


@pytest.fixture
def pool():
    return memory.Pool(idle_limit=2**30)


def test_memory_of_a_dropped_array_is_lent_again(pool):
    first = pool.empty(BIG, F64)
    where = address(first)
    del first
    assert pool.idle_bytes == np.prod(BIG) * 8
    second = pool.empty(BIG, F64)
    assert address(second) == where
    assert pool.idle_bytes == 0


def cffi_pointer(array):
    ffi = sg.build(sg.parse(LSTM))._module.ffi
    pointer = ffi.from_buffer("double[]", array)
    return pointer, lambda: np.frombuffer(ffi.buffer(pointer), np.float64)


def kept_as(make, read=lambda kept: kept):
    """Keeps what ``make`` makes of an array; reads its numbers back through ``read``."""

    def keep(array):
        kept = make(array)
        return kept, lambda: np.asarray(read(kept))

    return keep


@pytest.mark.parametrize(
    "keep",
    [
        pytest.param(kept_as(lambda a: a[3:]), id="slice"),
        pytest.param(kept_as(lambda a: a.T), id="transpose"),
        pytest.param(kept_as(lambda a: a.reshape(-1)), id="reshape"),
        pytest.param(kept_as(lambda a: a.view(np.int64), lambda k: k.view(np.float64)), id="view as another dtype"),
        pytest.param(kept_as(memoryview), id="memoryview"),
        pytest.param(kept_as(lambda a: np.frombuffer(a, np.float64)), id="frombuffer"),
        pytest.param(cffi_pointer, id="cffi pointer"),
    ],
)
def test_memory_still_seen_through_anything_is_not_lent_again(pool, keep):
    first = pool.empty(BIG, F64)
    first[...] = 7.0
    kept, read = keep(first)
    del first
    gc.collect()
    assert pool.idle_bytes == 0
    second = pool.empty(BIG, F64)
    second[...] = -1.0
    assert np.all(read() == 7.0)
    del kept, read, second
    gc.collect()
    assert pool.idle_bytes == 2 * np.prod(BIG) * 8


def test_torch_tensors_sharing_the_memory_keep_it(pool):
    torch = pytest.importorskip("torch")
    first = pool.empty(BIG, F64)
    first[...] = 3.0
    tensor = torch.from_numpy(first[1:])
    del first
    pool.empty(BIG, F64)[...] = 0.0
    assert bool((tensor == 3.0).all())


def test_arrays_are_aligned_to_a_cache_line_and_small_ones_are_not_pooled(pool):
    for shape in [BIG, (3, 8193), (1, 1, 65536), SMALL, (3,)]:
        for dtype in (F64, np.dtype(np.float32), np.dtype(np.complex128)):
            array = pool.empty(shape, dtype)
            assert address(array) % memory.ALIGNMENT == 0 and array.shape == shape and array.dtype == dtype
            assert array.flags.c_contiguous and array.flags.writeable
    del array
    pool.clear()
    small = pool.empty(SMALL, F64)
    del small
    assert pool.idle_bytes == 0


def test_idle_memory_stays_under_the_limit_and_clear_frees_it():
    pool = memory.Pool(idle_limit=3 * np.prod(BIG) * 8)
    arrays = [pool.empty(BIG, F64) for _ in range(5)]
    del arrays
    assert pool.idle_bytes == 3 * np.prod(BIG) * 8
    pool.clear()
    assert pool.idle_bytes == 0


def test_a_full_pool_frees_the_sizes_used_longest_ago_to_keep_the_ones_in_use():
    """Blocks of sizes a program has done with must not crowd out the sizes its loop uses now,
    or every call of that loop faults in fresh pages."""
    other = (BIG[0] - 1, BIG[1])  # another byte size, a little smaller
    block = np.prod(BIG) * 8
    pool = memory.Pool(idle_limit=3 * block)
    done_with = [pool.empty(other, F64) for _ in range(3)]
    del done_with
    assert pool.idle_bytes == 3 * np.prod(other) * 8  # nearly full
    for _ in range(3):  # a loop asking for BIG again and again
        in_use = pool.empty(BIG, F64)
        del in_use
        assert block in pool._idle and pool.idle_bytes <= pool.idle_limit
    again = pool.empty(BIG, F64)  # taken from the pool, not from fresh memory
    assert block not in pool._idle and again.nbytes == block
    assert pool.idle_bytes == 2 * np.prod(other) * 8  # one block of the old size made room


def test_a_block_over_the_whole_limit_is_freed_and_the_rest_kept():
    pool = memory.Pool(idle_limit=np.prod(BIG) * 8)
    kept = pool.empty(BIG, F64)
    del kept
    huge = pool.empty((2 * BIG[0], BIG[1]), F64)
    del huge
    assert pool.idle_bytes == np.prod(BIG) * 8 and list(pool._idle) == [np.prod(BIG) * 8]


def test_lent_scratch_memory_is_aligned_and_lent_again_once_given_back(pool):
    block, start = pool.lend(1000)
    where = int(memory._ffi.cast("uintptr_t", block)) + start
    assert where % memory.ALIGNMENT == 0 and memory._ffi.sizeof(block) >= start + 1000
    assert pool.idle_bytes == 0
    pool.give_back(block, start)
    assert pool.idle_bytes == 1000
    again, offset = pool.lend(1000)
    assert int(memory._ffi.cast("uintptr_t", again)) + offset == where and pool.idle_bytes == 0


def test_zeros_and_copy_give_what_numpy_would(pool):
    pool.empty(BIG, F64)[...] = np.nan  # dirty memory, idle again at once
    np.testing.assert_array_equal(pool.zeros(BIG, F64), np.zeros(BIG))
    source = np.arange(np.prod(BIG), dtype=np.float64).reshape(BIG)[:, ::2]
    np.testing.assert_array_equal(pool.copy(source), source)
    assert pool.copy(source).flags.c_contiguous


def test_a_bad_pool_size_is_refused_naming_the_variable():
    code = "import numpy as np; from symgate.runtime.memory import pool; pool.empty((1 << 20,), np.dtype('f8'))"
    done = subprocess.run(
        [sys.executable, "-c", code], env={"SYMGATE_POOL_MB": "lots", "PATH": ""}, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "SYMGATE_POOL_MB must be a whole number of MiB, not 'lots'" in done.stderr


# -- through a kernel ------------------------------------------------------------------------
SIZES = {"D": 8, "H": 16}
STEPS, BATCH = 300, 8  # every (T, B, H) array is 300 KiB: pooled


@pytest.fixture(scope="module")
def lstm():
    return sg.build(sg.parse(LSTM))


def case(kernel, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((STEPS, BATCH, SIZES["D"]))
    grads = {"h": rng.standard_normal((STEPS, BATCH, SIZES["H"]))}
    return x, kernel.init_params(SIZES, seed=seed), grads


def snapshot(run, grads) -> dict[str, np.ndarray]:
    arrays = {f"state {n}": a for n, a in run.states.items()} | {f"tape {n}": a for n, a in run.tape.items()}
    arrays |= {f"grad {n}": a for n, a in grads.params.items()} | {"grad x": grads.inputs["x"]}
    return {name: a.copy() for name, a in arrays.items()}


def test_a_training_loop_reuses_memory_and_gets_a_fresh_kernels_results(lstm, monkeypatch):
    expected = []
    for seed in range(4):
        x, params, grads = case(lstm, seed)
        fresh = sg.build(sg.parse(LSTM))
        run = fresh.forward(x, params)
        expected.append(snapshot(run, fresh.backward(run, grads)))
    del run
    memory.pool.clear()  # the loop below starts with no idle memory
    allocated = []
    allocate = memory._allocate
    monkeypatch.setattr(memory, "_allocate", lambda *how: allocated.append(how) or allocate(*how))
    for loop in range(3):
        if loop == 2:
            fresh_blocks = len(allocated)
        for seed, want in enumerate(expected):
            x, params, grads = case(lstm, seed)
            run = lstm.forward(x, params)
            got = snapshot(run, lstm.backward(run, grads))
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert fresh_blocks > 0 and len(allocated) == fresh_blocks  # the third time round: all memory reused


def test_runs_and_gradients_kept_are_never_overwritten_by_later_calls(lstm):
    kept = []
    for seed in range(5):
        x, params, grads = case(lstm, seed)
        run = lstm.forward(x, params)
        g = lstm.backward(run, grads)
        kept.append((run, g, snapshot(run, g)))
        lstm.forward(*case(lstm, seed + 10)[:2])  # dropped at once: its memory idles, then is lent again
    for run, g, want in kept:
        got = snapshot(run, g)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_one_array_kept_of_a_run_or_its_gradients_keeps_its_numbers(lstm):
    x, params, grads = case(lstm, 0)
    run = lstm.forward(x, params)
    g = lstm.backward(run, grads)
    want = snapshot(run, g)
    h, dW = run.states["h"], g.params[next(iter(g.params))]
    assert run.states is run.states and run.states["h"] is h  # made once, when first read
    del run, g  # the arrays kept keep the blocks they live in
    for seed in range(1, 4):
        run = lstm.forward(*case(lstm, seed)[:2])
        lstm.backward(run, case(lstm, seed)[2])
    np.testing.assert_array_equal(h, want["state h"])
    np.testing.assert_array_equal(dW, want[f"grad {next(iter(params))}"])


def test_a_state_kept_after_its_run_is_dropped_keeps_neither_the_tape_nor_the_copies(lstm):
    x, params, _ = case(lstm, 2)
    run = lstm.forward(x, params)
    final = run.final["h"]
    saved = sum(a.nbytes for part in (run.tape, run.inputs) for a in part.values())  # pooled: 300 KiB and more
    idle = memory.pool.idle_bytes
    del run
    gc.collect()
    assert memory.pool.idle_bytes - idle >= saved  # the block of copies and tape is back in the pool
    np.testing.assert_array_equal(final, lstm.forward(x, params).final["h"])  # the states' block is not


@pytest.mark.parametrize("steps", [3, 300])  # blocks from np.empty, and from the pool
def test_every_array_a_pass_makes_starts_at_a_cache_line(lstm, steps):
    """The kernels' vector loads never straddle two cache lines (a tiny LSTM's forward pass took
    a fifth longer on malloc's 16-byte aligned memory)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, BATCH, SIZES["D"]))
    run = lstm.forward(x, lstm.init_params(SIZES))
    g = lstm.backward(run, {"h": rng.standard_normal((steps, BATCH, SIZES["H"]))})
    parts = [run.states, run.tape, run.params, run.inputs, run.init, g.params, g.inputs, g.init]
    misplaced = [name for part in parts for name, a in part.items() if address(a) % memory.ALIGNMENT]
    assert not misplaced


def test_workspaces_from_the_pool_and_kept_by_the_thread_give_the_same_results(lstm, monkeypatch):
    x, params, grads = case(lstm, 1)
    run = lstm.forward(x, params)
    kept = snapshot(run, lstm.backward(run, grads))
    monkeypatch.setattr(kernel_module, "WORK_KEPT", 0)  # every workspace lent by the pool
    run = lstm.forward(x, params)
    pooled = snapshot(run, lstm.backward(run, grads))
    for name in kept:
        np.testing.assert_array_equal(pooled[name], kept[name], err_msg=name)


def test_threads_sharing_the_pool_each_get_their_own_results(lstm):
    cases = [case(lstm, seed) for seed in range(4)]

    def results(x, params, grads):
        run = lstm.forward(x, params)
        return snapshot(run, lstm.backward(run, grads))

    alone = [results(*c) for c in cases]
    with ThreadPoolExecutor(max_workers=4) as workers:
        together = list(workers.map(lambda c: [results(*c) for _ in range(8)], cases))
    for want, runs in zip(alone, together, strict=True):
        for got in runs:
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_child_forked_while_another_thread_holds_the_pool_can_use_it(pool):
    import os
    import threading

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    held, release = threading.Event(), threading.Event()

    def hold():
        with pool._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    child = os.fork()
    if child == 0:  # the child: the holding thread does not exist here
        array = pool.empty(BIG, F64)
        array[...] = 1.0
        del array
        os._exit(0 if pool.idle_bytes == np.prod(BIG) * 8 else 1)
    release.set()
    holder.join()
    deadline = time.monotonic() + 20
    while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail("the forked child hung on the pool's lock")
    assert os.waitstatus_to_exitcode(done[1]) == 0
