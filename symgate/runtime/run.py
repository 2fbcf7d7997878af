"""A forward pass's result (:class:`Run`) and a backward pass's (:class:`Gradients`).

A run holds every state, output and saved value of a forward pass, in blocks of memory the pass
made (:mod:`symgate.runtime.buffers`), and the C pointers its backward pass reads first; its dicts
of views of those blocks are made when first read (most callers read the states and never the
tape or the copies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .buffers import Block, Key, Shapes
from .lengths import Packing

_PADDED = ("input", "init", "states", "outputs")  # roles a run over different lengths shows padded


def _role(role: str, doc: str) -> property:
    """A read-only attribute of a :class:`Run`: its arrays of one role, by name."""

    def arrays(run: Run) -> dict[str, np.ndarray]:
        return run._part(role)

    return property(arrays, doc=doc)


class Run:
    """The result of a forward pass, and what its backward pass needs.

    ``states[s]`` is (T, B, size): the state after each step; ``final[s]`` the last one (the
    initial state when T = 0); ``outputs[y]`` is (T, B, size). Every array is read-only, and the
    inputs, parameters and initial states are copies, so changing the caller's arrays after the
    forward pass cannot corrupt the backward pass. ``Kernel.forward(..., copy=False)`` skips
    those copies and the read-only marking: the run then shares the caller's arrays, and the
    caller must not change them (or the run's) before the backward pass. A run made with
    ``recompute=True`` has an empty ``tape`` and a ``segment`` length: its backward pass
    recomputes the saved values; it keeps a matrix state (K x V a sample) only at the ends of
    its segments (``checkpoints``) and at each sample's last step (``final``), not in ``states``.
    A run made with ``backward=False`` has no tape, shares the
    caller's arrays, has writeable states and outputs, and ``for_backward`` false: it cannot be
    passed to the backward pass.

    The arrays a run made live in two blocks of memory, one for the states and outputs, one for
    what only the backward pass reads; the dicts of views of them are made when first read (most
    callers read the states and never the tape or the copies). A run holds C pointers into its
    blocks for its backward pass, so it cannot be pickled or copied: its arrays can.
    """

    __slots__ = (
        "_arguments",
        "_blocks",
        "_checkpoints",
        "_for_backward",
        "_kernel",
        "_packing",
        "_parts",
        "_segment",
        "_shapes",
        "_shared",
    )

    def __init__(
        self,
        kernel: str,
        segment: int,
        for_backward: bool,
        shapes: Shapes,
        blocks: tuple[Block, ...],
        shared: dict[Key, np.ndarray],
        arguments: list,
        packing: Packing | None = None,
        checkpoints: dict | None = None,
    ) -> None:
        self._kernel, self._segment, self._for_backward = kernel, segment, for_backward
        self._shapes = shapes  # of the arrays of both passes, for the backward pass
        # The forward pass's pointers in its order, for its first step (``blocks`` and ``shared``
        # own what they point to): the arrays the backward pass reads first.
        self._arguments = arguments
        self._blocks, self._shared = blocks, shared
        self._packing = packing  # of sequences of different lengths; None when all run T steps
        self._parts: dict[str, dict[str, np.ndarray]] = {}
        # Of a recomputing run's matrix states: pointers to their values at segment ends, by the
        # step that starts from each (see symgate.runtime.recompute.Checkpoints).
        self._checkpoints = checkpoints or {}

    @property
    def kernel(self) -> str:
        """The cache entry of the kernel that made it."""
        return self._kernel

    @property
    def segment(self) -> int:
        """With ``recompute=True``: the steps a backward segment recomputes; 0 = taped."""
        return self._segment

    @property
    def for_backward(self) -> bool:
        """False when made with ``backward=False``: no tape kept or recomputable."""
        return self._for_backward

    @property
    def sizes(self) -> dict[str, int]:
        """T, B and the size of each of the cell's dimensions."""
        return {"T": self._shapes.steps, "B": self._shapes.batch, **self._shapes.sizes}

    @property
    def lengths(self) -> np.ndarray | None:
        """Each sample's length when the run was given ``lengths``, else None (every one T)."""
        return None if self._packing is None else self._packing.lengths.copy()

    def __repr__(self) -> str:
        shown = ", ".join(f"{d}={n}" for d, n in self.sizes.items())
        return f"<symgate.Run {shown}{'' if self.for_backward else ', inference'}>"

    def __reduce__(self):
        raise TypeError(
            "a symgate Run holds C pointers into its kernel's memory and cannot be pickled or copied; "
            "pickle or copy its arrays (run.states, run.outputs, ...) instead"
        )

    def _part(self, role: str) -> dict[str, np.ndarray]:
        part = self._parts.get(role)
        if part is None:
            part = self._as_run(role)
            if self._packing is not None and role in _PADDED:
                part = self._padded(role, part)
            if role == "states" and self._checkpoints:
                part = _StatesOfRecomputingRun(part, at_ends={name for _, name in self._checkpoints})
            self._parts[role] = part
        return part

    def _as_run(self, role: str) -> dict[str, np.ndarray]:
        """The arrays of ``role`` as the kernels ran them (packed, for different lengths)."""
        part = {name: a for block in self._blocks for name, a in block.views(role).items()}
        return part | {name: a for (r, name), a in self._shared.items() if r == role}

    def _padded(self, role: str, part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Packed arrays of a run over sequences of different lengths, as the caller gave them:
        padded to T steps and in sample order (see :mod:`symgate.runtime.lengths`)."""
        packing = self._packing
        if role == "init":
            padded = {s: packing.unsort(a) for s, a in part.items()}
        elif role == "states":
            final = self.final
            padded = {s: packing.unpack(a, final[s]) for s, a in part.items()}
        else:
            padded = {name: packing.unpack(a) for name, a in part.items()}
        return padded

    inputs = _role("input", "Copies of the inputs (the caller's with copy=False).")
    params = _role("param", "Copies of the parameters (the caller's with copy=False).")
    init = _role("init", "The initial states: copies, or zeros where none was given.")
    states = _role("states", "(T, B, size) arrays: each state after each step.")
    outputs = _role("outputs", "(T, B, size) arrays: each output at each step.")
    tape = _role("tape", "The saved values the backward pass reads, by name.")

    checkpoints = _role(
        "checkpoints",
        "Of a recomputing run: each matrix state at the end of every segment but the last, "
        "(ends, B, K, V), the samples in the kernels' order (by length, longest first, with lengths).",
    )

    @property
    def kept_bytes(self) -> int:
        """Bytes this run keeps for its backward pass beyond the caller's arrays: states,
        outputs, the tape of saved values, and a recomputing run's matrix states at segment ends
        and at each sample's last step."""
        parts = (self.states, self.outputs, self.tape, self.checkpoints, self._as_run("final"))
        return sum(a.nbytes for part in parts for a in part.values())

    @property
    def final(self) -> dict[str, np.ndarray]:
        """Each state after the last step (with lengths: each sample's at its own length)."""
        kept = self._as_run("final")  # a recomputing run's matrix states: kept as they ran
        init = self.init
        if self._packing is not None:
            last = {s: self._packing.last(seq, init[s]) for s, seq in self._as_run("states").items()}
        else:
            last = {s: (seq[-1] if len(seq) else init[s]) for s, seq in self.states.items()}
        return {s: kept[s] if s in kept else last[s] for s in init if s in kept or s in last}


class _StatesOfRecomputingRun(dict):
    """``run.states`` of a recomputing run: asked for a matrix state, says where it is."""

    def __init__(self, states: dict[str, np.ndarray], at_ends: set[str]) -> None:
        super().__init__(states)
        self._at_ends = at_ends

    def __missing__(self, name: str) -> np.ndarray:
        if name in self._at_ends:
            raise KeyError(
                f"{name!r}: a run made with recompute=True keeps matrix state {name} at the ends of its "
                f"segments (run.checkpoints) and each sample's last step (run.final) only, not at every step; "
                f"run forward without recompute=True for every step's {name}"
            )
        raise KeyError(name)


@dataclass(frozen=True)
class Gradients:
    """Gradients of the loss: ``params[name]``, ``inputs[name]`` (T, B, size), ``init[state]`` (B, size)."""

    params: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    init: dict[str, np.ndarray]
