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

Call = Callable[[PassInterface, list, int, Shapes], None]
"""Runs a pass: (the pass, its pointers in its order, the steps it runs, the run's shapes)."""


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


def moved(keys: list[Key], pointers: dict, local: dict, start: int, strides: dict[Key, int]) -> list:
    """The pointers a pass takes for the steps from ``start`` on: each sequence's moved to that
    step, the initial states' to the state before it; ``local`` ones (a segment's own scratch
    arrays, written from their first element) as they are."""
    arguments = []
    for key in keys:
        role, name = key
        if key in local:
            arguments.append(local[key])
        elif role == "init" and start:
            arguments.append(pointers["states", name] + (start - 1) * strides["states", name])
        elif key in strides:
            arguments.append(pointers[key] + start * strides[key])
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

    def forward(self, pointers: dict, scratch: dict, segment: int, shapes: Shapes) -> None:
        """The forward pass over every step, a segment at a time, each writing the arrays in
        ``scratch`` (its tape) anew; ``pointers`` are the whole run's, by (role, name)."""
        for start, stop in spans(shapes.steps, segment):
            self._forward_span(pointers, scratch, start, stop, shapes)

    def backward(
        self,
        pointers: dict,
        recomputed: dict,
        per_segment: dict[str, np.ndarray],
        totals: dict[str, np.ndarray],
        segment: int,
        shapes: Shapes,
    ) -> None:
        """The backward pass, segment by segment, latest first, each segment's forward pass run
        again from the state before it to make its states, outputs and tape in ``recomputed``
        (pointers to scratch memory, with those of ``per_segment``, its parameter gradients).
        The state gradient carries from segment to segment in the run's own arrays; parameter
        gradients are summed into ``totals``."""
        for total in totals.values():
            total.fill(0)
        for start, stop in reversed(spans(shapes.steps, segment)):
            self._forward_span(pointers, recomputed, start, stop, shapes)
            arguments = moved(self._backward_keys, pointers, recomputed, start, shapes.strides)
            self._call(self._backward, arguments, stop - start, shapes)
            for name, part in per_segment.items():
                totals[name] += part

    def _forward_span(self, pointers: dict, scratch: dict, start: int, stop: int, shapes: Shapes) -> None:
        """The forward pass over steps [start, stop), from the state before ``start``."""
        arguments = moved(self._forward_keys, pointers, scratch, start, shapes.strides)
        self._call(self._forward, arguments, stop - start, shapes)
