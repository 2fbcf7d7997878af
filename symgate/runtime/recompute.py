"""Recomputation: passes over a sequence in segments, for runs that keep no tape.

A run made with ``recompute=True`` keeps states and outputs only. Its forward pass runs in
segments of about √T steps, each writing its saved values (the tape) into the same scratch
memory and dropping them; its backward pass runs the segments again, latest first, each one's
forward pass recomputing its tape from the state before it just before the backward pass over
it reads it. Memory for saved values falls from T steps' worth to √T steps' worth, for one more
forward pass. A pass over some steps is the kernel's pass given pointers moved to its first step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..interface import PassInterface
from .buffers import Key, Shapes
from .lengths import Packing

Call = Callable[[PassInterface, list, int, Shapes, "np.ndarray | None"], None]
"""Runs a pass: (the pass, its pointers in its order, the steps it runs, the run's shapes, the
samples each step runs or None for all)."""


def segment_length(steps: int) -> int:
    """Steps a segment of a recomputing run: about √T, so that T/segment segments' states and
    one segment's tape are both about √T steps' worth."""
    return max(1, math.isqrt(max(steps - 1, 0)) + 1)


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
    as they are."""
    strides, batch = shapes.strides, max(shapes.batch, 1)

    def first_row(step: int) -> int:
        return step * shapes.batch if packing is None else int(packing.first_rows[step])

    arguments = []
    for key in keys:
        role, name = key
        if key in local:
            arguments.append(local[key])
        elif role == "init" and start:
            arguments.append(pointers["states", name] + first_row(start - 1) * (strides["states", name] // batch))
        elif key in strides:
            arguments.append(pointers[key] + first_row(start) * (strides[key] // batch))
        else:
            arguments.append(pointers[key])
    return arguments


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

    def forward(self, pointers: dict, scratch: dict, segment: int, shapes: Shapes, packing: Packing | None) -> None:
        """The forward pass over every step, a segment at a time, each writing the arrays in
        ``scratch`` (its tape) anew; ``pointers`` are the whole run's, by (role, name)."""
        for start, stop in spans(shapes.steps, segment):
            self._forward_span(pointers, scratch, start, stop, shapes, packing)

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
