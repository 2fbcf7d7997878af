"""Recomputation: passes over a sequence in segments, for runs that keep no tape.

A run made with ``recompute=True`` keeps states and outputs only. Its forward pass runs in
segments of about √T steps, each writing its saved values (the tape) into the same scratch
memory and dropping them; its backward pass runs the segments again, latest first, each one's
forward pass recomputing its tape from the state before it just before the backward pass over
it reads it. Memory for saved values falls from T steps' worth to √T steps' worth, for one more
forward pass. A pass over some steps is the kernel's pass given pointers moved to its first step.

A matrix state (K x V a sample) is kept at the segments' ends only (:class:`Checkpoints`): its
value at every step would be most of such a run's memory, and each segment starts from the end
of the one before it, in both passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from ..frontend.functions import dims_of
from ..interface import PassInterface
from .buffers import Block, Key, Shapes
from .lengths import Packing

Call = Callable[[PassInterface, list, int, Shapes, "np.ndarray | None"], None]
"""Runs a pass: (the pass, its pointers in its order, the steps it runs, the run's shapes, the
samples each step runs or None for all)."""


def segment_length(steps: int) -> int:
    """Steps a segment of a recomputing run: about √T, so that T/segment segments' states and
    one segment's tape are both about √T steps' worth."""
    return max(1, math.isqrt(max(steps - 1, 0)) + 1)


def kept_at_ends(states: Mapping[str, str]) -> tuple[str, ...]:
    """The states (name -> dimension) a recomputing run keeps at its segments' ends only, in
    place of every step's value: the matrix states."""
    return tuple(s for s, dim in states.items() if len(dims_of(dim)) == 2)


def ends_of(steps: int, segment: int) -> int:
    """How many segment ends a recomputing run keeps a state at: every span's but the last's."""
    return max(len(spans(steps, segment)) - 1, 0)


def spans(steps: int, segment: int) -> list[tuple[int, int]]:
    """The [start, stop) step ranges of a pass over ``steps`` steps in segments of ``segment``
    (0: one span); a pass over no steps is still one call, which sets its results."""
    if not steps or not segment:
        return [(0, steps)]
    return [(start, min(start + segment, steps)) for start in range(0, steps, segment)]


def moved(keys: list[Key], pointers: dict, local: dict, start: int, shapes: Shapes, packing: Packing | None) -> list:
    """The pointers a pass takes for the steps from ``start`` on: each sequence's moved to that
    step's first row (in the packed layout when ``packing``), the initial states' to the state
    before it; ``local`` ones (a segment's own scratch arrays, written from their first element)
    as they are (and NULL ones); a state kept at segment ends (``("checkpoints", name)``: pointers by the step
    that starts from each) from the end before ``start``."""
    strides, batch = shapes.strides, max(shapes.batch, 1)

    def first_row(step: int) -> int:
        return step * shapes.batch if packing is None else int(packing.first_rows[step])

    arguments = []
    for key in keys:
        role, name = key
        if key in local:
            arguments.append(local[key])
        elif role == "init" and start and ("checkpoints", name) in pointers:
            arguments.append(pointers["checkpoints", name][start])
        elif role == "init" and start:
            arguments.append(pointers["states", name] + first_row(start - 1) * (strides["states", name] // batch))
        elif key in strides and pointers[key]:  # not NULL (a loss gradient not given)
            arguments.append(pointers[key] + first_row(start) * (strides[key] // batch))
        else:
            arguments.append(pointers[key])
    return arguments


def end_pointers(pointer, ends: np.ndarray, segment: int) -> dict[int, object]:
    """Pointers to a state's values at segment ends, (ends, B, ...) at ``pointer``, by the step
    that starts from each."""
    stride = math.prod(ends.shape[1:])
    return {(i + 1) * segment: pointer + i * stride for i in range(len(ends))}


class Checkpoints:
    """The matrix states of a recomputing run at its segments' ends, and each sample's at its own
    length (``run.final``): what the run keeps of them, in arrays of its ``kept`` block.

    ``pointers`` maps ``("checkpoints", s)`` to the pointer of s at the end before each step a
    segment starts at, for :func:`moved`; :meth:`keep` fills the arrays from a segment's states."""

    def __init__(
        self, kept: Block, base, segment: int, shapes: Shapes, packing: Packing | None, init: Mapping[str, np.ndarray]
    ) -> None:
        self.arrays, self.final = kept.views("checkpoints"), kept.views("final")
        self._segment = segment
        # Every sample running every step is the packing of lengths all T.
        self._packing = packing or Packing(np.full(shapes.batch, shapes.steps), shapes.steps)
        self.pointers = {
            ("checkpoints", name): end_pointers(base + kept.layout.offsets["checkpoints", name], ends, segment)
            for name, ends in self.arrays.items()
        }
        not_run = self._packing.lengths == 0  # their final state is the initial one
        for name, final in self.final.items():
            if name in init:
                final[not_run] = init[name][self._packing.position[not_run]]
            else:
                final[not_run] = 0

    def keep(self, states: Mapping[str, np.ndarray], start: int, stop: int) -> None:
        """Keeps what the run keeps of the segment [start, stop), whose states (packed rows from
        its first step's on) ``states`` holds: its end, and the last state of every sample whose
        length ends in it."""
        packing = self._packing
        first = packing.first_rows[start]
        ended = np.flatnonzero((packing.lengths > start) & (packing.lengths <= stop))
        rows = packing.first_rows[packing.lengths[ended] - 1] + packing.position[ended] - first
        for name, ends in self.arrays.items():
            sequence = states[name].reshape(-1, *ends.shape[2:])
            if stop < packing.steps:
                running = packing.batch_sizes[stop - 1]
                last = packing.first_rows[stop - 1] - first
                ends[stop // self._segment - 1, :running] = sequence[last : last + running]
                ends[stop // self._segment - 1, running:] = 0  # samples past their length: the same every time
            self.final[name][ended] = sequence[rows]


class Segments:
    """The forward and backward passes of a kernel run segment by segment."""

    def __init__(
        self,
        call: Call,
        forward: PassInterface,
        backward: PassInterface | None,
        forward_keys: list[Key],
        backward_keys: list[Key],
    ) -> None:
        self._call, self._forward, self._backward = call, forward, backward
        self._forward_keys, self._backward_keys = forward_keys, backward_keys

    def forward(
        self,
        pointers: dict,
        scratch: dict,
        segment: int,
        shapes: Shapes,
        packing: Packing | None,
        checkpoints: Checkpoints,
        states: Mapping[str, np.ndarray],
    ) -> None:
        """The forward pass over every step, a segment at a time, each writing the arrays in
        ``scratch`` (its tape, and the matrix states' ``states``) anew and keeping the
        ``checkpoints`` of those; ``pointers`` are the whole run's, by (role, name)."""
        for start, stop in spans(shapes.steps, segment):
            self._forward_span(pointers, scratch, start, stop, shapes, packing)
            checkpoints.keep(states, start, stop)

    def backward(
        self,
        pointers: dict,
        recomputed: dict,
        per_segment: dict[str, np.ndarray],
        totals: dict[str, np.ndarray],
        segment: int,
        shapes: Shapes,
        packing: Packing | None,
    ) -> None:
        """The backward pass, segment by segment, latest first, each segment's forward pass run
        again from the state before it to make its states, outputs and tape in ``recomputed``
        (pointers to scratch memory, with those of ``per_segment``, its parameter gradients).
        The state gradient carries from segment to segment in the run's own arrays; parameter
        gradients are summed into ``totals``."""
        for total in totals.values():
            total.fill(0)
        for start, stop in reversed(spans(shapes.steps, segment)):
            self._forward_span(pointers, recomputed, start, stop, shapes, packing)
            arguments = moved(self._backward_keys, pointers, recomputed, start, shapes, packing)
            self._call(self._backward, arguments, stop - start, shapes, _batch_sizes(packing, start))
            for name, part in per_segment.items():
                totals[name] += part

    def _forward_span(
        self, pointers: dict, scratch: dict, start: int, stop: int, shapes: Shapes, packing: Packing | None
    ) -> None:
        """The forward pass over steps [start, stop), from the state before ``start``."""
        arguments = moved(self._forward_keys, pointers, scratch, start, shapes, packing)
        self._call(self._forward, arguments, stop - start, shapes, _batch_sizes(packing, start))


def _batch_sizes(packing: Packing | None, start: int) -> np.ndarray | None:
    """The samples each step from ``start`` on runs (None: all of them)."""
    return None if packing is None else packing.batch_sizes[start:]
