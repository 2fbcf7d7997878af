"""symgate's kernels as PyTorch operations: an ``autograd.Function`` in eager mode, custom
operators (``torch.library``) under ``torch.compile`` and ``torch.export``.

:func:`cell_sequences` runs a kernel over whole sequences and is differentiable; it is what
:class:`symgate.torch.CellModule` calls. Everything is time-major: an input is (T, B, size), an
initial state (B, size) or ``None`` for zeros; it returns every state's sequence, then every
output's, in the cell's order of declaration, (T, B, size) each.

**Eager mode** runs :class:`_CellFunction`, which keeps the :class:`~symgate.runtime.run.Run` of
the forward pass for the backward pass and shares memory with it: it costs less Python per call
than a call through the dispatcher.

**Traced** (``torch.compiler.is_compiling()``: ``torch.compile`` and ``torch.export``), a Run
cannot cross into the graph, so two custom operators carry the kernels, with what the backward
pass reads passed as tensors::

    symgate::cell_forward(str kernel, Tensor[] inputs, Tensor[] init, Tensor[] params,
                          bool recompute, bool backward, Tensor? lengths) -> Tensor[]
    symgate::cell_backward(str kernel, Tensor[] inputs, Tensor[] init, Tensor[] params,
                           Tensor[] saved, Tensor[] grads, bool recompute, Tensor? lengths) -> Tensor[]

``init`` holds every initial state (the traced call makes zeros for those not given).
``cell_forward`` returns the states' and outputs' sequences and then, when it keeps a tape
(``backward`` and not ``recompute``), the tape's arrays (the saved values, in the kernel's
order), or with ``recompute`` and ``backward``, the matrix states' values at segment ends
(``Run.checkpoints``). With ``recompute``, a matrix state's "sequence" is its final value,
(B, K, V): such a run keeps no other (:mod:`symgate.runtime.recompute`).
``cell_backward`` takes those as ``saved`` and the loss gradients of the states' and
outputs' sequences as ``grads``, rebuilds the run (:meth:`symgate.Kernel.run_of`) and returns
the gradients of the inputs, the initial states and the parameters. ``cell_backward`` is the
backward pass of ``cell_forward`` (``torch.library.register_autograd``) and is not itself
differentiable. Neither changes its arguments, and their results are memory the kernels
allocated, never a view of an argument. Each has a fake implementation giving its results'
shapes from its arguments' (symbolic shapes included). A kernel is named by a string,
:func:`kernel_key`, in a process-wide registry that :func:`kernel_for` fills: an operator finds
only kernels built in its process. ``lengths`` (each sample's length: a CPU int64 tensor of B
values, or None for T each) is :meth:`symgate.Kernel.forward`'s; it has no default because
a traced call leaves out an argument left at its default, while the backward pass answers for
the arguments given.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..dtypes import REAL_DTYPES, SPELLINGS, dtype_name
from ..errors import ArgumentError, ArrayError
from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..frontend.functions import SCALAR, dims_of
from ..pipeline import build
from ..runtime.arrays import given_arrays
from ..runtime.kernel import Kernel
from ..runtime.recompute import ends_of, kept_at_ends, segment_length
from ..runtime.run import Gradients, Run
from ..runtime.together import run_together

__all__ = [
    "CellCall",
    "cell_backward",
    "cell_forward",
    "cell_sequences",
    "cell_sequences_together",
    "kernel_for",
    "kernel_key",
    "torch_dtype",
]

KERNEL_DTYPES = {getattr(torch, name): name for name in REAL_DTYPES}
_BUILT: dict[tuple[str, str], Kernel] = {}  # (cell fingerprint, dtype) -> kernel, shared by modules
_BY_KEY: dict[str, Kernel] = {}  # kernel_key(kernel) -> kernel: what the operators find a kernel by


def torch_dtype(value: Any) -> torch.dtype:
    """``torch.float32``/``torch.float64`` from that or any spelling :func:`~symgate.dtypes.dtype_name`
    takes (``"float64"``, ``np.float64``, ``np.dtype("float64")``); anything else is an ``ArrayError``."""
    try:
        return getattr(torch, dtype_name(value, real_only=True))
    except ArgumentError:
        raise ArrayError(
            f"dtype must be torch.float32 or torch.float64 (symgate's kernels), not {value!r}{SPELLINGS}"
        ) from None


def kernel_for(cell: Cell | str, dtype: Any, fingerprint: str | None = None) -> Kernel:
    """The compiled kernel of ``cell`` (a ``Cell``, a built-in name or a ``.cell`` path) for ``dtype``
    (``torch.float32``, ``torch.float64`` or another spelling of them), built (or loaded from the disk
    cache) once per process."""
    cell, name = cell_argument(cell), KERNEL_DTYPES[torch_dtype(dtype)]
    key = (fingerprint or cell.fingerprint(), name)
    kernel = _BUILT.get(key)
    if kernel is None:
        kernel = _BUILT[key] = build(cell, name)
        _BY_KEY[kernel_key(kernel)] = kernel
    return kernel


def kernel_key(kernel: Kernel) -> str:
    """The name the operators know ``kernel`` by: its compiled module's name, which a hash of
    its source, compiler and Python ABI decides (so the same in every process)."""
    return kernel.entry.module_name


def _kernel(key: str) -> Kernel:
    kernel = _BY_KEY.get(key)
    if kernel is None:
        raise ArrayError(
            f"no symgate kernel {key!r} is loaded in this process: build it first "
            f"(symgate.torch.kernel_for(cell, dtype), or make the CellModule)"
        )
    return kernel


# -- one entry point --------------------------------------------------------------------------


@dataclass(frozen=True)
class CellCall:
    """One kernel call of :func:`cell_sequences_together`: :func:`cell_sequences`'s arguments."""

    cell: Cell
    dtype: torch.dtype
    inputs: Sequence[torch.Tensor]
    init: Sequence[torch.Tensor | None]
    params: Sequence[torch.Tensor]
    fingerprint: str | None = None
    recompute: bool = False
    backward: bool = True
    lengths: torch.Tensor | None = None


def cell_sequences(
    cell: Cell,
    dtype: torch.dtype,
    inputs: Sequence[torch.Tensor],
    init: Sequence[torch.Tensor | None],
    params: Sequence[torch.Tensor],
    *,
    fingerprint: str | None = None,
    recompute: bool = False,
    backward: bool = True,
    lengths: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The states' then the outputs' sequences of the cell's kernel for ``dtype`` over the
    inputs (every tensor time-major and C-contiguous, in the cell's order), differentiable with
    respect to every tensor given; with ``recompute``, a matrix state's final value in place of
    its sequence. ``fingerprint`` is the cell's (known, it saves working it out
    again); ``recompute``, ``backward`` and ``lengths`` (a CPU int64 tensor of B lengths, or
    None) are :meth:`symgate.Kernel.forward`'s (``backward=False``: no gradient will be taken,
    nothing is saved)."""
    call = CellCall(cell, dtype, inputs, init, params, fingerprint, recompute, backward, lengths)
    return cell_sequences_together([call])[0]


def cell_sequences_together(calls: Sequence[CellCall]) -> list[list[torch.Tensor]]:
    """:func:`cell_sequences` of each call, for calls independent of each other (no call reads
    another's results): in eager mode their forward passes run side by side, and so do their
    backward passes (:func:`symgate.runtime.together.run_together`), in one autograd node."""
    if not torch.compiler.is_compiling():
        kernels = [kernel_for(c.cell, c.dtype, c.fingerprint) for c in calls]
        options = [{"recompute": c.recompute, "backward": c.backward, "lengths": _lengths(c.lengths)} for c in calls]
        tensors = [t for c in calls for t in (*c.inputs, *c.init, *c.params)]
        results = _CellFunction.apply(tuple(zip(kernels, options, strict=True)), *tensors)
        return [list(group) for group in _groups(results, [_sequence_count(k.cell) for k in kernels])]
    return [_traced_sequences(c) for c in calls]


def _traced_sequences(call: CellCall) -> list[torch.Tensor]:
    """One call's sequences through the custom operators (a traced call)."""
    cell = call.cell
    key = _traced_kernel_key(cell, call.dtype, call.fingerprint)
    inputs, params = list(call.inputs), list(call.params)
    extents = _extents(cell, inputs, call.init, params)
    starts = [
        t if t is not None else inputs[0].new_zeros([extents["B"], *(extents[d] for d in dims_of(dim))])
        for t, dim in zip(call.init, cell.states.values(), strict=True)
    ]
    results = cell_forward(key, inputs, starts, params, call.recompute, call.backward, call.lengths)
    return results[: _sequence_count(cell)]


@torch.compiler.assume_constant_result
def _traced_kernel_key(cell: Cell, dtype: torch.dtype, fingerprint: str | None) -> str:
    """:func:`kernel_key` of the cell's kernel, which a trace takes as a constant: the kernel is
    built (on first use) outside the graph, not traced."""
    return kernel_key(kernel_for(cell, dtype, fingerprint))


# -- shared by both ways ------------------------------------------------------------------------


def _array(tensor: torch.Tensor) -> np.ndarray:
    """The NumPy view of a CPU tensor: no copy when it is C-contiguous. NumPy copies the others,
    on the calling thread: PyTorch's would run on its thread pool, which calls side by side
    (:func:`cell_sequences_together`) should not share."""
    return np.ascontiguousarray(tensor.detach().resolve_neg().numpy())


def _given(kernel: Kernel, inputs, init, params) -> tuple[dict, dict, dict]:
    """``(x, params, init)`` for :meth:`symgate.Kernel.forward`: views of the tensors, by name."""
    cell = kernel.cell
    return (
        {name: _array(t) for name, t in zip(cell.inputs, inputs, strict=True)},
        {p.name: _array(t) for p, t in zip(cell.params, params, strict=True)},
        {s: _array(t) for s, t in zip(cell.states, init, strict=True) if t is not None},
    )


def _sequences(kernel: Kernel, run: Run, recompute: bool) -> list[torch.Tensor]:
    """The run's state sequences then output sequences, in the cell's order, sharing its memory
    (with ``recompute``, a matrix state's final value in place of its sequence)."""
    finals = final_only(kernel.cell, recompute)
    states = [run.final[s] if s in finals else run.states[s] for s in kernel.cell.states]
    return [torch.from_numpy(a) for a in states] + [torch.from_numpy(run.outputs[y]) for y in kernel.cell.outputs]


def _gradients(kernel: Kernel, run: Run, grads: Sequence[torch.Tensor | None], recompute: bool) -> list[torch.Tensor]:
    """The backward pass: the gradients of the inputs, the initial states and the parameters, in
    the cell's order, from the loss gradients of the state and output sequences (``None``: zero;
    with ``recompute``, a matrix state's is its final value's)."""
    cell = kernel.cell
    names = [*cell.states, *cell.outputs]
    given = {name: _array(g) for name, g in zip(names, grads, strict=True) if g is not None}
    finals = {s: given.pop(s) for s in final_only(cell, recompute) if s in given}
    result: Gradients = kernel.backward(run, given, final=finals)
    arrays = [result.inputs[n] for n in cell.inputs] + [result.init[s] for s in cell.states]
    return [torch.from_numpy(a) for a in arrays + [result.params[p.name] for p in cell.params]]


def _counts(cell: Cell) -> tuple[int, int, int]:
    """How many inputs, states and parameters the cell has."""
    return len(cell.inputs), len(cell.states), len(cell.params)


def _sequence_count(cell: Cell) -> int:
    """How many sequences :func:`cell_sequences` returns: one a state and one an output."""
    return len(cell.states) + len(cell.outputs)


def _groups(items: Sequence[Any], counts: Sequence[int]) -> list[Sequence[Any]]:
    """``items`` cut into consecutive groups of these counts (what follows is left out)."""
    groups, start = [], 0
    for count in counts:
        groups.append(items[start : start + count])
        start += count
    return groups


# -- eager: an autograd Function ----------------------------------------------------------------


class _CellFunction(torch.autograd.Function):
    """``apply(calls, *tensors)``: :func:`cell_sequences_together` in eager mode; ``calls`` holds a
    ``(kernel, options)`` pair a call, ``tensors`` each call's inputs, initial states (``None``:
    zeros) and parameters in turn."""

    @staticmethod
    def forward(ctx: Any, calls: tuple, *tensors: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        kernels = [kernel for kernel, _ in calls]
        given = _groups(tensors, [sum(_counts(k.cell)) for k in kernels])
        runs = run_together(
            kernels,
            [
                functools.partial(kernel.forward, *_given(kernel, *_groups(t, _counts(kernel.cell))), copy=False, **o)
                for (kernel, o), t in zip(calls, given, strict=True)
            ],
        )
        results = [r for (k, o), run in zip(calls, runs, strict=True) for r in _sequences(k, run, o["recompute"])]
        ctx.set_materialize_grads(False)
        ctx.calls, ctx.runs = calls, runs
        # The runs share these tensors' memory: saving them makes autograd's version counters
        # refuse a backward pass after any of them was changed in place.
        ctx.save_for_backward(*(t for t in tensors if t is not None), *results)
        return tuple(results)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        ctx.saved_tensors  # noqa: B018 - raises if a tensor a run shares was modified in place
        kernels = [kernel for kernel, _ in ctx.calls]
        each = _groups(grads, [_sequence_count(k.cell) for k in kernels])
        # A call that needed no gradients (every tensor of it frozen) saved nothing: it gets Nones.
        taken = [i for i, (_, options) in enumerate(ctx.calls) if options["backward"]]
        computed = run_together(
            [kernels[i] for i in taken],
            [
                functools.partial(_gradients, kernels[i], ctx.runs[i], each[i], ctx.calls[i][1]["recompute"])
                for i in taken
            ],
        )
        by_call = dict(zip(taken, computed, strict=True))
        gradients = [
            gradient
            for i, kernel in enumerate(kernels)
            for gradient in by_call.get(i, [None] * sum(_counts(kernel.cell)))
        ]
        wanted = ctx.needs_input_grad[1:]
        return None, *(g if w else None for g, w in zip(gradients, wanted, strict=True))


# -- traced: custom operators -------------------------------------------------------------------


def _lengths(lengths: torch.Tensor | None) -> np.ndarray | None:
    """The lengths an operator was given, as :meth:`symgate.Kernel.forward` takes them."""
    return None if lengths is None else lengths.numpy()


@torch.library.custom_op("symgate::cell_forward", mutates_args=())
def cell_forward(
    kernel: str,
    inputs: list[torch.Tensor],
    init: list[torch.Tensor],
    params: list[torch.Tensor],
    recompute: bool,
    backward: bool,
    lengths: torch.Tensor | None,
) -> list[torch.Tensor]:
    """The kernel's forward pass: the states' and outputs' sequences, then the tape (see the module docstring)."""
    found = _kernel(kernel)
    run = found.forward(
        *_given(found, inputs, init, params),
        copy=False,
        recompute=recompute,
        backward=backward,
        lengths=_lengths(lengths),
    )
    # Views of one block of memory, each its own storage to torch: they do not overlap.
    tape = [torch.from_numpy(run.tape[name]) for name in _tape_names(found, recompute, backward)]
    ends = [torch.from_numpy(run.checkpoints[s]) for s in _checkpointed(found, recompute, backward)]
    return _sequences(found, run, recompute) + tape + ends


@cell_forward.register_fake
def _cell_forward_fake(kernel, inputs, init, params, recompute, backward, lengths):
    found = _kernel(kernel)
    extents = _extents(found.cell, inputs, init, params)
    kept = [a for a in found.interface.forward.arguments if a.role in ("states", "outputs")]
    tape = set(_tape_names(found, recompute, backward))
    kept += [a for a in found.interface.forward.arguments if a.role == "tape" and a.name in tape]
    finals = final_only(found.cell, recompute)
    shapes = [[extents[d] for d in a.shape] for a in kept]
    shapes[: len(found.cell.states)] = [  # with recompute, a matrix state's final value, not its sequence
        shape[1:] if s in finals else shape for s, shape in zip(found.cell.states, shapes, strict=False)
    ]
    checkpointed = _checkpointed(found, recompute, backward)
    if checkpointed:
        steps = extents["T"]
        if isinstance(steps, int):
            ends = ends_of(steps, segment_length(steps))
        else:  # a symbolic T: their number is √T's, which the shape functions cannot express
            ends = torch.library.get_ctx().new_dynamic_size()
        shapes += [[ends, *shapes[list(found.cell.states).index(s)]] for s in checkpointed]
    return [inputs[0].new_empty(shape) for shape in shapes]


@torch.library.custom_op("symgate::cell_backward", mutates_args=())
def cell_backward(
    kernel: str,
    inputs: list[torch.Tensor],
    init: list[torch.Tensor],
    params: list[torch.Tensor],
    saved: list[torch.Tensor],
    grads: list[torch.Tensor],
    recompute: bool,
    lengths: torch.Tensor | None,
) -> list[torch.Tensor]:
    """The kernel's backward pass: the gradients of the inputs, initial states and parameters."""
    found = _kernel(kernel)
    cell = found.cell
    arrays = [_array(t) for t in saved]
    n_states, n_kept = len(cell.states), _sequence_count(cell)
    tape_names, checkpointed = _tape_names(found, recompute, True), _checkpointed(found, recompute, True)
    n_tape = n_kept + len(tape_names)
    run = found.run_of(
        *_given(found, inputs, init, params),
        {s: a for s, a in zip(cell.states, arrays[:n_states], strict=True) if s not in checkpointed},
        dict(zip(cell.outputs, arrays[n_states:n_kept], strict=True)),
        dict(zip(tape_names, arrays[n_kept:n_tape], strict=True)),
        recompute=recompute,
        lengths=_lengths(lengths),
        checkpoints=dict(zip(checkpointed, arrays[n_tape:], strict=True)),
    )
    return _gradients(found, run, grads, recompute)


@cell_backward.register_fake
def _cell_backward_fake(kernel, inputs, init, params, saved, grads, recompute, lengths):
    return [torch.empty_like(t) for t in (*inputs, *init, *params)]


def _setup_context(ctx: Any, inputs: tuple, output: list[torch.Tensor]) -> None:
    kernel, xs, init, params, recompute, backward, lengths = inputs
    ctx.kernel, ctx.recompute, ctx.backward = kernel, recompute, backward
    ctx.counts = (len(xs), len(init), len(params))
    cell = _kernel(kernel).cell
    ctx.sequences = _sequence_count(cell)
    if backward:
        ctx.save_for_backward(*xs, *init, *params, *output, lengths)


def _backward(ctx: Any, grads: list[torch.Tensor]) -> tuple:
    if not ctx.backward:
        raise ArrayError("symgate::cell_forward ran with backward=False, which saves nothing: no gradients")
    *saved, lengths = ctx.saved_tensors
    xs, init, params = _groups(saved, ctx.counts)
    sequences = list(grads[: ctx.sequences])  # not the tape's: nothing downstream reads it
    results = cell_backward(ctx.kernel, xs, init, params, saved[sum(ctx.counts) :], sequences, ctx.recompute, lengths)
    return None, *_groups(results, ctx.counts), None, None, None


cell_forward.register_autograd(_backward, setup_context=_setup_context)


def final_only(cell: Cell, recompute: bool) -> tuple[str, ...]:
    """The states whose final value stands in place of their sequence in what :func:`cell_sequences`
    returns: with ``recompute``, the matrix states, which such a run keeps at segment ends only."""
    return kept_at_ends(cell.states) if recompute else ()


def _checkpointed(kernel: Kernel, recompute: bool, backward: bool) -> tuple[str, ...]:
    """The matrix states whose values at segment ends :func:`cell_forward` returns (``Run.checkpoints``)."""
    return final_only(kernel.cell, recompute) if backward else ()


def _tape_names(kernel: Kernel, recompute: bool, backward: bool) -> list[str]:
    """The tape arrays :func:`cell_forward` returns: none when it keeps no tape."""
    if recompute or not backward:
        return []
    return [a.name for a in kernel.interface.forward.arguments if a.role == "tape"]


def _extents(cell: Cell, inputs, init, params) -> dict[str, Any]:
    """T, B and the size of every dimension of the cell (ints, or symbolic ones when traced),
    each read off the first tensor having it, in the order :class:`~symgate.runtime.arrays.Sizes` reads."""
    extents = {"T": inputs[0].shape[0], "B": inputs[0].shape[1], SCALAR: 1}
    for (_, dims), tensor in zip(given_arrays(cell).values(), [*inputs, *params, *init], strict=True):
        if tensor is not None:
            for dim, extent in zip(dims, tensor.shape, strict=True):
                extents.setdefault(dim, extent)
    unknown = [d for d in cell.dims if d not in extents]
    if unknown:
        raise ArrayError(
            f"cannot tell the sizes of {unknown} of cell {cell.name}: pass init for the states that use them"
        )
    return extents
