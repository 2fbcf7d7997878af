"""Where a kernel call's arrays live: their shapes for one set of sizes, and blocks of memory
holding several of them.

The arrays a pass makes live in a few blocks of memory (a run's states and outputs; its copies
and tape; a backward pass's gradients), each array at a 64-byte boundary, passed to C as pointers
into its block. :class:`Shapes` holds the shape of every array of both passes for one set of
sizes and the plans made from them (a :class:`Layout` per group of roles, a :class:`ForwardPlan`
per kind of forward call), made once and reused: a training loop calls with the same few sizes
again and again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..frontend.functions import SCALAR
from ..interface import STEPWISE_ROLES, Interface
from .memory import ALIGNMENT, POOLED_FROM, pool

Key = tuple[str, str]
"""An array argument of a pass: (role, name)."""


class Layout:
    """Where the arrays of some roles live in one block of memory, each at a 64-byte boundary:
    arrays made together are allocated, passed to C and released together."""

    def __init__(self, shapes: Mapping[Key, tuple[int, ...]], itemsize: int) -> None:
        align = ALIGNMENT // itemsize
        self.itemsize = itemsize
        self.offsets: dict[Key, int] = {}
        self.spans_by_role: dict[str, list[tuple[str, int, int, tuple[int, ...]]]] = {}
        offset = 0
        for (role, name), shape in shapes.items():
            count = math.prod(shape)
            self.offsets[role, name] = offset
            self.spans_by_role.setdefault(role, []).append((name, offset, offset + count, shape))
            offset += -(-count // align) * align
        self.size = offset
        self.starts = list(self.offsets.values())

    def views(self, block: np.ndarray, role: str) -> dict[str, np.ndarray]:
        """The arrays of one role, by name: views of ``block``."""
        return {
            name: block[start:stop] if len(shape) == 1 else block[start:stop].reshape(shape)
            for name, start, stop, shape in self.spans_by_role.get(role, ())
        }

    def pointers(self, buffer) -> dict[Key, object]:
        """Pointers to each array, from a cffi buffer of the block (which must outlive them)."""
        return {key: buffer + start for key, start in self.offsets.items()}


class ForwardPlan:
    """Where each argument of a forward call lives: in the block of states and outputs (0), in
    the block of what the backward pass reads (1), or in neither (2: a caller's array, or a tape
    in scratch memory, which the call passes itself), at an offset."""

    def __init__(self, kept: Layout, read: Layout, keys: list[Key]) -> None:
        self.kept, self.read = kept, read
        self.slots = [
            (0, kept.offsets[key]) if key in kept.offsets else (1, read.offsets[key]) if key in read.offsets else (2, 0)
            for key in keys
        ]
        self.index = {key: i for i, key in enumerate(keys)}
        self.inits = [
            (("init", name), (stop - start) * read.itemsize)
            for name, start, stop, _ in read.spans_by_role.get("init", ())
        ]
        self.zeros = bytes(max((nbytes for _, nbytes in self.inits), default=0))  # copied to initial states not given


class Block(NamedTuple):
    """Memory holding the arrays of a layout."""

    array: np.ndarray
    layout: Layout

    def views(self, role: str) -> dict[str, np.ndarray]:
        """The arrays of one role, by name."""
        return self.layout.views(self.array, role)


@dataclass(frozen=True, eq=False)
class Shapes:
    """The shape of every array of both passes of a kernel for one set of sizes, and the plans
    made from them (remembered in the last three fields, made when first asked for)."""

    steps: int
    batch: int
    sizes: dict[str, int]
    """Of the cell's dimensions, by name."""
    dims: tuple[int, ...]
    """The sizes of the kernels' dimension arguments, in their order."""
    dtype: np.dtype
    itemsize: int
    of: dict[Key, tuple[int, ...]]
    """Every array's shape, by (role, name), in the order of the passes' arguments."""
    by_role: dict[str, dict[str, tuple[Key, tuple[int, ...]]]]
    """role -> name -> ((role, name), shape): what the quick check of a forward call reads."""
    strides: dict[Key, int]
    """Elements a step, of each (T, B, size) array."""
    layouts: dict[tuple[tuple[str, ...], tuple[str, ...]], Layout] = field(default_factory=dict, repr=False)
    forward_plans: dict[tuple[bool, bool, bool, bool], ForwardPlan] = field(default_factory=dict, repr=False)
    """By (copies, keep_tape, backward, whether matrix states are kept at segment ends only)."""
    kept_zeros: dict[Key, np.ndarray] = field(default_factory=dict, repr=False)
    """Read-only zeros for the small loss gradients a backward call is not given."""

    @classmethod
    def of_sizes(cls, interface: Interface, dtype: np.dtype, steps: int, batch: int, sizes: dict[str, int]) -> Shapes:
        """The shapes of the arrays of ``interface``'s forward and backward passes."""
        extents = {"T": steps, "B": batch, SCALAR: 1, **sizes}
        passes = [p for p in (interface.forward, interface.backward) if p is not None]
        of = {(a.role, a.name): tuple(extents[d] for d in a.shape) for p in passes for a in p.arguments}
        by_role: dict[str, dict[str, tuple[Key, tuple[int, ...]]]] = {"input": {}, "param": {}, "init": {}}
        for (role, name), shape in of.items():
            by_role.setdefault(role, {})[name] = ((role, name), shape)
        strides = {key: math.prod(shape[1:]) for key, shape in of.items() if key[0] in STEPWISE_ROLES}
        dims = tuple(sizes[d] for d in interface.dims)
        return cls(steps, batch, sizes, dims, dtype, dtype.itemsize, of, by_role, strides)

    def layout(self, roles: tuple[str, ...], states: tuple[str, ...] = ()) -> Layout:
        """One block for every array of these roles, and the sequences of these ``states``."""
        layout = self.layouts.get((roles, states))
        if layout is None:
            chosen = {k: s for k, s in self.of.items() if k[0] in roles or (k[0] == "states" and k[1] in states)}
            layout = self.layouts[roles, states] = Layout(chosen, self.itemsize)
        return layout

    def forward_plan(
        self,
        copies: bool,
        keep_tape: bool,
        backward: bool,
        keys: list[Key],
        at_ends: tuple[str, ...] = (),
        ends: int = 0,
    ) -> ForwardPlan:
        """Where a forward call's arrays (``keys``, in its order) go, for this kind of run:
        copies of the caller's arrays or not, a tape kept or not, for a backward pass or not; the
        states ``at_ends`` kept at the ends of ``ends`` segments (``("checkpoints", s)``, one a
        segment end) and each sample's last (``("final", s)``) in place of every step's."""
        saved = (("input", "param", "init") if copies else ("init",)) + (("tape",) if keep_tape else ())
        kept = self.layout(("states", "outputs"))
        if at_ends:
            dropped = {("states", s) for s in at_ends}
            shapes = {k: s for k, s in self.of.items() if k[0] in ("states", "outputs") and k not in dropped}
            for s in at_ends:
                shapes["checkpoints", s] = (ends, *self.of["init", s])
                shapes["final", s] = self.of["init", s]
            kept = Layout(shapes, self.itemsize)
        plan = self.forward_plans[copies, keep_tape, backward, bool(at_ends)] = ForwardPlan(
            kept, self.layout(saved), keys
        )
        return plan

    def zeros(self, key: Key) -> np.ndarray:
        """Zeros for a loss gradient not given, which the kernel only reads: made once and kept
        read-only when small (making them at each call is a good share of a small cell's backward
        call), made at each call when large (kept, they would hold megabytes for each set of sizes)."""
        zeros = self.kept_zeros.get(key)
        if zeros is None:
            zeros = pool.zeros(self.of[key], self.dtype)
            if zeros.nbytes < POOLED_FROM:
                zeros.setflags(write=False)
                self.kept_zeros[key] = zeros
        return zeros
