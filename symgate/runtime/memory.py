"""Memory for the arrays kernels return and use, reused from call to call.

Fresh memory from the operating system costs a page fault per page, and the kernel zeroes every
page before handing it over; a large LSTM's forward + backward spent 13-16 % of its time so.
Here a large array's memory goes back to a pool when the last array viewing it is gone, and the
next array of the same byte size takes it from there: a training loop, which asks for the same
sizes again and again, touches fresh pages only in its first steps.

Safety does not rest on reference counts: each array lent out views a cffi buffer object, which
every view, slice or exported buffer of it keeps alive, and the memory returns to the pool only
when that object is gone (``ffi.gc`` on the block it buffers). Small arrays come from ``np.empty``
as before (malloc serves them from memory it already has). Scratch memory that no array sees is
lent and given back explicitly (:meth:`Pool.lend`). The pool keeps at most ``SYMGATE_POOL_MB``
(default 256) MiB idle; beyond that, it frees the blocks of the sizes used longest ago.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import weakref

import cffi
import numpy as np

from ..errors import ArrayError

POOLED_FROM = 128 * 2**10
"""Bytes: smaller arrays come from ``np.empty``. glibc's malloc serves them from its heap (its
mmap threshold starts at 128 KiB), with no fresh pages once warm, so the pool's bookkeeping would
cost more than it saves (benchmarks/MEASUREMENTS.md, "Pool threshold")."""
ALIGNMENT = 64  # bytes: a cache line, and the widest vector load
DEFAULT_IDLE_MB = 256

_ffi = cffi.FFI()
_allocate = _ffi.new_allocator(should_clear_after_alloc=False)


class Pool:
    """Blocks of memory by byte size, idle ones kept for reuse up to ``idle_limit`` bytes."""

    def __init__(self, idle_limit: int | None = None) -> None:
        self.idle_limit = idle_limit  # None: SYMGATE_POOL_MB, read when memory is first pooled
        self._idle: dict[int, list] = {}  # by byte size, the size used longest ago first
        self._idle_bytes = 0
        # Re-entrant: a block is released when its last array dies, which can happen in this
        # thread while it holds the lock (a garbage collection inside ``empty``).
        self._lock = threading.RLock()
        if hasattr(os, "register_at_fork"):  # a child forked while another thread held the lock
            os.register_at_fork(after_in_child=functools.partial(_unlock_in_child, weakref.ref(self)))

    @property
    def idle_bytes(self) -> int:
        """Bytes held for reuse, lent to no array."""
        return self._idle_bytes

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous array starting at a 64-byte boundary, its memory reused
        when a large enough one is idle."""
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes < POOLED_FROM:
            array = aligned_empty(count, dtype)
            return array if len(shape) == 1 else array.reshape(shape)
        block, start = self.lend(nbytes)
        owner = _ffi.gc(block, self._release)  # returns the block when the last view of it is gone
        return np.frombuffer(_ffi.buffer(owner, start + nbytes), dtype, math.prod(shape), start).reshape(shape)

    def lend(self, nbytes: int) -> tuple[object, int]:
        """A block of at least ``nbytes`` for scratch use, and the offset of its first 64-byte
        boundary. The caller hands it back with :meth:`give_back` (nothing tracks it)."""
        if self.idle_limit is None:
            self.idle_limit = _idle_limit()
        with self._lock:
            blocks = self._idle.pop(nbytes, None)
            if blocks:
                self._idle_bytes -= nbytes
                block = blocks.pop()
                if blocks:
                    self._idle[nbytes] = blocks  # now the size used last
                return block
        block = _allocate("char[]", nbytes + ALIGNMENT)
        return block, -int(_ffi.cast("uintptr_t", block)) % ALIGNMENT

    def give_back(self, block, start: int) -> None:
        """Takes back a block from :meth:`lend`, kept idle for reuse. Over the limit, blocks of
        the sizes used longest ago are freed to make room: the sizes a loop asks for now are the
        ones worth keeping (kept first-come instead, blocks of sizes a program had done with
        filled the pool, and each call of a large LSTM then faulted in 40 MB of fresh pages)."""
        nbytes = _ffi.sizeof(block) - ALIGNMENT  # lend read the limit (and so raised any error there)
        if nbytes > self.idle_limit:
            return
        with self._lock:
            while self._idle_bytes + nbytes > self.idle_limit:
                oldest = next(iter(self._idle))
                blocks = self._idle[oldest]
                del blocks[0]
                self._idle_bytes -= oldest
                if not blocks:
                    del self._idle[oldest]
            blocks = self._idle.pop(nbytes, [])
            blocks.append((block, start))
            self._idle[nbytes] = blocks  # the size used last
            self._idle_bytes += nbytes

    def zeros(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        array = self.empty(shape, dtype)
        array.fill(0)
        return array

    def copy(self, array: np.ndarray) -> np.ndarray:
        """A C-contiguous copy of ``array``."""
        copied = self.empty(array.shape, array.dtype)
        np.copyto(copied, array)
        return copied

    def clear(self) -> None:
        """Frees every idle block (blocks lent out return to the pool when their arrays die)."""
        with self._lock:
            self._idle.clear()
            self._idle_bytes = 0

    def _release(self, block) -> None:
        self.give_back(block, -int(_ffi.cast("uintptr_t", block)) % ALIGNMENT)


def aligned_empty(count: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised 1-d array of ``count`` elements from ``np.empty``, starting at a 64-byte
    boundary: the kernels' vector loads and stores then never straddle two cache lines, where
    malloc aligns to 16 bytes only (benchmarks/MEASUREMENTS.md, "Alignment")."""
    raw = np.empty(count + ALIGNMENT // dtype.itemsize, dtype)
    start = -int(_ffi.cast("uintptr_t", _ffi.from_buffer(raw))) % ALIGNMENT // dtype.itemsize
    return raw[start : start + count]


def _unlock_in_child(pool: weakref.ref) -> None:
    if (alive := pool()) is not None:
        alive._lock = threading.RLock()


def _idle_limit() -> int:
    given = os.environ.get("SYMGATE_POOL_MB", "").strip()
    if not given:
        return DEFAULT_IDLE_MB * 2**20
    if not given.isdigit():
        raise ArrayError(f"SYMGATE_POOL_MB must be a whole number of MiB, not {given!r}")
    return int(given) * 2**20


pool = Pool()
