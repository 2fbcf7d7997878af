"""Sequences of different lengths in one batch: padded arrays <-> the packed layout the kernels run.

A caller gives padded sequences, (T, B, size), and each sample's length. The kernels run the
packed layout of PyTorch's ``PackedSequence`` (and cuDNN's): samples sorted by length, longest
first, and each step's rows only those of the samples still running, one step after another, so
that step t runs ``batch_sizes[t]`` samples (a prefix of the sorted batch) and the work of a
pass is proportional to the sum of the lengths, not to T·B. A :class:`Packing` holds the sort and
the row of every (step, sample) pair, and moves arrays between the two layouts.

What a padded result holds past a sample's length: a state keeps its value at the length (it
stops changing), an output and an input gradient are zero. So the gradient given for a state
past a length reaches the state at the length (:meth:`Packing.pack_state_gradient`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ArrayError


class Packing:
    """The packed layout of a batch of ``len(lengths)`` sequences padded to ``steps`` steps."""

    def __init__(self, lengths: np.ndarray, steps: int) -> None:
        self.lengths = lengths
        self.steps = steps  # the padded length, T
        self.batch = len(lengths)
        self.order = np.argsort(-lengths, kind="stable")  # sorted position -> sample
        self.position = np.empty_like(self.order)
        self.position[self.order] = np.arange(self.batch)  # sample -> sorted position
        # The kernels run all T steps, those past the longest length for no sample, so that every
        # array's shape follows from T and B alone (as torch.compile's shape functions need).
        sorted_lengths = lengths[self.order]
        self.batch_sizes = np.ascontiguousarray(
            (sorted_lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1), dtype=np.intc
        )
        self.first_rows = np.concatenate([[0], np.cumsum(self.batch_sizes)]).astype(np.int64)
        self.rows = int(self.first_rows[-1])
        # (step, sample) of every packed row, in packed order
        self.row_steps = np.repeat(np.arange(steps), self.batch_sizes)
        within = np.arange(self.rows) - np.repeat(self.first_rows[:-1], self.batch_sizes)
        self.row_samples = self.order[within]
        self.past = np.arange(steps)[:, None] >= lengths[None, :]  # (T, B): after the sample's length

    def pack(self, padded: np.ndarray, out: np.ndarray) -> None:
        """Writes the packed rows of ``padded`` (T, B, size) into the first rows of ``out``, of
        the same shape (the rest is never read)."""
        flat = out.reshape(-1, *out.shape[2:])
        flat[: self.rows] = padded[self.row_steps, self.row_samples]

    def unpack(self, packed: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
        """The padded (T, B, size) array of the packed rows in the front of ``packed``; past each
        sample's length, ``fill[sample]`` (a state's value at the length) or zeros."""
        flat = packed.reshape(-1, *packed.shape[2:])
        shape = (self.steps, self.batch, *flat.shape[1:])
        if fill is None:
            padded = np.zeros(shape, dtype=packed.dtype)
        else:  # the value at the length everywhere, then each step within the length written over it
            padded = np.broadcast_to(fill.astype(packed.dtype, copy=False), shape).copy()
        padded[self.row_steps, self.row_samples] = flat[: self.rows]
        return padded

    def last(self, packed: np.ndarray, init: np.ndarray) -> np.ndarray:
        """Each sample's state at its own length, in sample order: the last of its packed rows
        (the initial state where the length is 0)."""
        flat = packed.reshape(-1, *packed.shape[2:])
        final = init.copy()
        running = self.lengths > 0
        samples = np.flatnonzero(running)
        steps = self.lengths[samples] - 1
        final[samples] = flat[self.first_rows[steps] + self.position[samples]]
        return final

    def sort(self, per_sample: np.ndarray) -> np.ndarray:
        """A (B, ...) array in sorted order, as the kernels read initial states."""
        return np.ascontiguousarray(per_sample[self.order])

    def unsort(self, per_sample: np.ndarray) -> np.ndarray:
        """A (B, ...) array in sorted order back in sample order."""
        return per_sample[self.position]

    def pack_state_gradient(self, padded: np.ndarray, final: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Packs a state's gradient for every step into ``out`` and returns the final state's
        gradient in sorted order: ``final`` plus the gradients given past each length, where the
        state held its value at the length."""
        self.pack(padded, out)
        past = self.past.reshape(*self.past.shape, *(1,) * (padded.ndim - 2))  # a matrix state's too
        held = np.where(past, padded, 0).sum(axis=0) if self.past.any() else 0
        return self.sort(final + held)


def packing_of(lengths: Sequence[int] | np.ndarray, steps: int, batch: int) -> Packing:
    """The packing of ``lengths`` (B integers from 0 to T), checked by :func:`checked_lengths`."""
    return Packing(checked_lengths(lengths, steps, batch), steps)


def checked_lengths(lengths: Sequence[int] | np.ndarray, steps: int, batch: int, least: int = 0) -> np.ndarray:
    """``lengths`` as B int64 values from ``least`` to T (a list, an array, or anything NumPy
    reads as one, a CPU tensor included); an :class:`ArrayError` names ``lengths`` and what is wrong."""
    try:
        values = np.asarray(lengths)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ArrayError(f"lengths must be {batch} integers, one a sample: {err}") from None
    whole = np.issubdtype(values.dtype, np.floating) and np.all(np.isfinite(values)) and np.all(values % 1 == 0)
    if values.dtype == bool or not (np.issubdtype(values.dtype, np.integer) or whole):
        raise ArrayError(f"lengths must be integers, not {values.dtype} values")
    if values.shape != (batch,):
        raise ArrayError(f"lengths has shape {values.shape}, expected ({batch},): one length a sample (B = {batch})")
    values = values.astype(np.int64)
    if batch and (values.min() < least or values.max() > steps):
        bad = int(np.flatnonzero((values < least) | (values > steps))[0])
        raise ArrayError(f"lengths[{bad}] = {values[bad]} is not within {least} .. T = {steps}")
    return values
