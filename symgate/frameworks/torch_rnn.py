"""Stacked and bidirectional layers of any cell, called as ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` are.

:class:`RNN` stacks :class:`~symgate.frameworks.torch_module.CellModule` objects, one per layer
and direction, and wires them as PyTorch's recurrent modules do, so a model swaps its ``nn.LSTM``
for a symgate layer in one line and keeps its outputs and gradients::

    import torch
    import symgate as sg

    lstm = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, dropout=0.1)
    rnn = sg.torch.RNN.from_torch(lstm)          # the same weights, run by symgate's kernels
    out, (h_n, c_n) = rnn(x)                     # x: (T, B, 8); out: (T, B, 32); h_n: (4, B, 16)

    rnn = sg.torch.RNN("gru_cho", 8, 16, num_layers=2, bidirectional=True)   # any cell
    out, h_n = rnn(x)                            # one state: h_n is a tensor, as nn.GRU's

**The cell.** ``cell`` is a :class:`symgate.Cell`, a built-in cell's name or a ``.cell`` path,
with exactly one input. The value passed on to the next layer (and returned as ``output``) is
``output=``, a state or per-step output of the cell, by default
:func:`~symgate.frameworks.torch_module.default_output` (the first output, else the first state).
``input_size`` is the size of the cell's input dimension, ``hidden_size`` the size of that
value's dimension; every other dimension of the cell comes from ``sizes=``. For
``lstmp_pytorch`` (``nn.LSTM(proj_size=P)``) the passed-on state ``h`` has size P, so
``hidden_size`` is P and ``sizes={"H": ...}`` gives the cell state's size; ``from_torch`` does
this itself. Layer l > 0 reads the previous layer's output, of size D·hidden_size (D = 2 when
bidirectional). Every state is stacked over layers and directions, so each state's size must be
the same in every layer (a state sized by the input dimension, as in the QRNN cells, stacks only
when every layer reads inputs of one size).

**What a call returns.** ``rnn(input, hx=None)`` returns ``(output, final)``, as ``nn.LSTM`` does:
``output`` is (T, B, D·hidden_size), (B, T, D·hidden_size) with ``batch_first=True``;
``final`` holds each state after the last step, stacked as (num_layers·D, B, size) in PyTorch's
order (layer 0 forward, layer 0 reverse, layer 1 forward, ...): a tuple in the cell's state
order for a cell with several states (``(h_n, c_n)`` for an LSTM), the tensor itself for a
cell with one (GRU, RNN). ``hx`` takes the same layout (``None``: zeros). Unbatched input
(T, input_size) with unbatched ``hx`` (num_layers·D, size) gives unbatched results, as in
PyTorch. The reverse direction runs its cell over the time-reversed sequence and flips its
output back; its final state is the one after reading x_0. The two directions' kernels run side
by side, one core each (:func:`~symgate.frameworks.torch_ops.cell_sequences_together`), where
the BLAS allows (:mod:`symgate.runtime.together`).

**Sequences of different lengths**, as PyTorch's packed sequences: ``rnn(packed)`` takes a
``PackedSequence`` and returns one (in the input's order: its batch sizes, sorted and unsorted
indices), and ``rnn(padded, lengths=...)`` takes a padded batch with B lengths from 1 to T (a
list or a CPU tensor; ``nn.LSTM`` has no such argument) and returns a padded output, zero past
each length. Each sample runs over its own steps in the kernels (the work is proportional to the
sum of the lengths), the reverse direction reverses each sample within its own length, and the
final states are each sample's at its length (the reverse direction's after reading its first
step). Under ``torch.compile`` use the padded form: dynamo does not trace
``pack_padded_sequence``.

**Dropout** (``dropout=p``) applies ``torch.nn.functional.dropout`` to every layer's output but
the last, in training mode only (``rnn.eval()`` turns it off), as ``nn.LSTM`` does; with one
layer it does nothing.

**bias=False** fixes a cell's biases at zero: the parameters with one dimension named ``b`` or
``b_...`` (``b_i``, ``b_hn``, ...). They are kept as zero buffers outside ``state_dict`` rather
than as parameters, so ``parameters()`` and ``state_dict()`` hold what ``nn.LSTM(bias=False)``
holds, and for the ``*_pytorch`` cells the layer computes exactly what it computes. A cell
without such parameters (``gru_cho``) is refused with ``bias=False``, since the flag would
silently change nothing (a bias spelled differently would stay trained).

**Parameters** are ``rnn.cell_modules[k]``'s, k = layer·D + direction, named as in the cell
(``cell_modules.0.W_ii``); :meth:`RNN.cell_module` finds one by layer and direction. They are
drawn as :class:`~symgate.frameworks.torch_module.CellModule` draws them; ``seed=s`` makes the
whole stack repeatable (one independent seed per cell module, spawned from s), and ``params=``
gives starting values instead, one dict per cell module in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from ..arguments import count_argument, flag_argument, number_argument, sizes_argument
from ..errors import ArgumentError, ArrayError
from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..frontend.functions import dims_of
from ..runtime.arrays import shape_of
from .interop.pytorch import layer_pairs
from .torch_module import CellModule, _check_tensor, _checked_output, _lengths_tensor, default_output
from .torch_ops import cell_sequences_together, torch_dtype

__all__ = ["RNN"]


class RNN(torch.nn.Module):
    """Layers of a cell, stacked and optionally bidirectional, called as ``nn.LSTM`` is.

    The arguments mean what ``nn.LSTM``'s mean (see the module docstring for how a cell's
    dimensions map to them); keyword-only options:

    * ``sizes``: every dimension of the cell other than its input's and ``output``'s.
    * ``output``: the state or output passed on to the next layer (default: ``default_output``).
    * ``dtype``: ``torch.float32`` or ``torch.float64``, or their names or NumPy types (default:
      ``torch.get_default_dtype()``, as ``nn.LSTM`` follows it).
    * ``seed``: repeatable parameters; ``params``: starting values instead, one dict per layer
      and direction in PyTorch's order.
    * ``recompute``: each cell module's ``recompute`` (less memory for one more forward pass).
    """

    def __init__(
        self,
        cell: Cell | str | Path,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        sizes: Mapping[str, int] | None = None,
        output: str | None = None,
        dtype: Any = None,
        seed: int | None = None,
        params: Sequence[Mapping[str, Any]] | None = None,
        recompute: bool = False,
    ) -> None:
        super().__init__()
        cell = cell_argument(cell)
        if len(cell.inputs) != 1:
            raise ArgumentError(
                f"RNN runs cells with exactly one input, but cell {cell.name} has inputs {list(cell.inputs)}: "
                f"use symgate.torch.CellModule, which takes a dict of inputs"
            )
        self.cell = cell
        self.output = _checked_output(cell, output)
        self.input_size = count_argument(input_size, "input_size")
        self.hidden_size = count_argument(hidden_size, "hidden_size")
        self.num_layers = count_argument(num_layers, "num_layers")
        self.bias = flag_argument(bias, "bias")
        self.batch_first = flag_argument(batch_first, "batch_first")
        self.dropout = number_argument(dropout, "dropout")
        if not 0 <= self.dropout <= 1:
            raise ArgumentError(f"dropout must be a probability from 0 to 1, not {dropout!r}")
        self.bidirectional = flag_argument(bidirectional, "bidirectional")
        self.directions = 2 if self.bidirectional else 1
        self.sizes = self._other_sizes(sizes)
        layer_sizes = [self._layer_sizes(layer) for layer in range(self.num_layers)]
        self.state_sizes = self._state_sizes(layer_sizes)
        count = self.num_layers * self.directions
        params_list = self._params_list(params, count)
        biases = [] if self.bias else self._biases()
        if seed is not None:
            if params is not None:
                raise ArgumentError("pass either seed or params, not both")
            seed = count_argument(seed, "seed", minimum=0, maximum=2**63 - 1)
            seeds = [int(s) >> 1 for s in np.random.SeedSequence(seed).generate_state(count, np.uint64)]
        else:
            seeds = [None] * count
        dtype = None if dtype is None else torch_dtype(dtype)
        self.cell_modules = torch.nn.ModuleList(
            CellModule(
                cell,
                layer_sizes[k // self.directions],
                output=self.output,
                dtype=dtype,
                seed=seeds[k],
                params=params_list[k],
                recompute=recompute,
            )
            for k in range(count)
        )
        self.recompute = self.cell_modules[0].recompute
        for name in biases:
            self._fix_at_zero(name, given=params is not None)

    # -- construction -----------------------------------------------------------------------
    @property
    def _input_dim(self) -> str:
        return next(iter(self.cell.inputs.values()))

    @property
    def _output_dim(self) -> str:
        return {**self.cell.states, **self.cell.outputs}[self.output]

    def _other_sizes(self, sizes: Mapping[str, int] | None) -> dict[str, int]:
        """The sizes of the dimensions that neither input_size nor hidden_size gives, checked by name."""
        given = {} if sizes is None else dict(sizes_argument(sizes))
        cell, set_by = self.cell, {self._input_dim: "input_size", self._output_dim: "hidden_size"}
        for dim in given:
            if dim in set_by:
                raise ArrayError(f"sizes gives {dim}, which {set_by[dim]} sets: leave it out of sizes")
            if dim not in cell.dims:
                raise ArrayError(f"sizes gives {dim}, which cell {cell.name} does not have (its dims: {cell.dims})")
        missing = [d for d in cell.dims if d not in given and d not in set_by]
        if missing:
            example = ", ".join(f"{d!r}: ..." for d in missing)
            raise ArrayError(
                f"cell {cell.name} has dimensions {missing} besides its input's ({self._input_dim}, input_size) and "
                f"{self.output}'s ({self._output_dim}, hidden_size): pass sizes={{{example}}}"
            )
        return given

    def _layer_sizes(self, layer: int) -> dict[str, int]:
        """Every dimension of layer ``layer``'s cells: layer l > 0 reads D·hidden_size inputs."""
        reads = self.input_size if layer == 0 else self.directions * self.hidden_size
        if self._input_dim == self._output_dim and reads != self.hidden_size:
            raise ArrayError(
                f"cell {self.cell.name} reads and passes on values of one dimension {self._input_dim}, so layer "
                f"{layer} needs inputs of size hidden_size={self.hidden_size}, not {reads}"
                + (" (bidirectional layers pass on 2·hidden_size)" if layer and self.bidirectional else "")
            )
        return {**self.sizes, self._input_dim: reads, self._output_dim: self.hidden_size}

    def _state_sizes(self, layer_sizes: list[dict[str, int]]) -> dict[str, tuple[int, ...]]:
        """Each state's shape a sample ((size,), or (K, V) for a matrix state), which must be one
        for all layers so the final states stack."""
        result = {}
        for s, dim in self.cell.states.items():
            per_layer = [shape_of(dims_of(dim), sizes) for sizes in layer_sizes]
            if len(set(per_layer)) > 1:
                first, second = (" x ".join(map(str, shape)) for shape in per_layer[:2])
                raise ArrayError(
                    f"state {s} of cell {self.cell.name} has size {dim}, which is {first} in layer 0 but "
                    f"{second} in layer 1: its final states cannot be stacked as (num_layers·D, B, {dim})"
                )
            result[s] = per_layer[0]
        return result

    def _params_list(self, params: Sequence[Mapping[str, Any]] | None, count: int) -> list[Any]:
        if params is None:
            return [None] * count
        if isinstance(params, (str, Mapping)) or not isinstance(params, Sequence) or len(params) != count:
            raise ArgumentError(
                f"params must be a list of {count} dicts (one per layer and direction: layer 0 forward"
                f"{', layer 0 reverse' if self.bidirectional else ''}, layer 1 ...), not {type(params).__name__}"
                + (f" of {len(params)}" if isinstance(params, Sequence) else "")
            )
        return list(params)

    def _biases(self) -> list[str]:
        """The parameters that bias=False fixes at zero: one dimension, named ``b`` or ``b_...``."""
        names = [p.name for p in self.cell.params if len(p.shape) == 1 and (p.name == "b" or p.name.startswith("b_"))]
        if not names:
            raise ArgumentError(
                f"bias=False fixes the cell's biases (parameters of one dimension named b or b_...) at zero, but cell "
                f"{self.cell.name} has none among {[p.name for p in self.cell.params]}: leave bias=True"
            )
        return names

    def _fix_at_zero(self, name: str, given: bool) -> None:
        """Parameter ``name`` of every cell module becomes a zero buffer (not a parameter, not in state_dict)."""
        for k, module in enumerate(self.cell_modules):
            tensor = module.param(name)
            if given and torch.any(tensor != 0):
                raise ArrayError(f"bias=False, but params[{k}][{name!r}] is not zero")
            attribute = next(a for a, t in module.named_parameters(recurse=False) if t is tensor)
            delattr(module, attribute)
            module.register_buffer(attribute, torch.zeros_like(tensor.detach()), persistent=False)

    @classmethod
    def from_torch(cls, module: torch.nn.Module, *, recompute: bool = False) -> RNN:
        """The symgate layer computing a ``torch.nn.LSTM``, ``GRU`` or ``RNN`` (tanh or relu), weights copied.

        Every option carries over: ``num_layers``, ``bidirectional``, ``batch_first``, ``bias``,
        ``dropout``, ``proj_size`` (as ``lstmp_pytorch``), the dtype (float64 for a ``.double()``
        module, else float32) and the training mode. The built-in ``*_pytorch`` cells spell out
        PyTorch's equations (see :mod:`symgate.frameworks.interop.pytorch`), so the outputs,
        final states and gradients are PyTorch's up to rounding.
        """
        pairs = layer_pairs(module)
        cell = pairs[0][0]
        projected = getattr(module, "proj_size", 0) > 0
        first = next(iter(pairs[0][1].values()))
        rnn = cls(
            cell,
            module.input_size,
            module.proj_size if projected else module.hidden_size,
            module.num_layers,
            module.bias,
            module.batch_first,
            module.dropout,
            module.bidirectional,
            sizes={"H": module.hidden_size} if projected else None,
            dtype=torch.float64 if first.dtype == np.float64 else torch.float32,
            params=[params for _, params in pairs],
            recompute=recompute,
        )
        return rnn.train(module.training)

    # -- access -----------------------------------------------------------------------------
    def cell_module(self, layer: int, reverse: bool = False) -> CellModule:
        """The cell module of one layer and direction (its parameters, its kernel)."""
        layer = count_argument(layer, "layer", minimum=0, maximum=self.num_layers - 1)
        if flag_argument(reverse, "reverse") and not self.bidirectional:
            raise ArgumentError("reverse=True needs a bidirectional RNN")
        return self.cell_modules[layer * self.directions + int(reverse)]

    def extra_repr(self) -> str:
        options = [f"{self.cell.name}", str(self.input_size), str(self.hidden_size)]
        options += [f"{d}={n}" for d, n in self.sizes.items()]
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False}
        options += [f"{k}={getattr(self, k)}" for k, v in defaults.items() if getattr(self, k) != v]
        if self.output != default_output(self.cell):
            options.append(f"output={self.output!r}")
        return ", ".join(options)

    # -- forward ----------------------------------------------------------------------------
    def forward(
        self, input: torch.Tensor | PackedSequence, hx: Any = None, lengths: Any = None
    ) -> tuple[torch.Tensor | PackedSequence, torch.Tensor | tuple]:
        """``(output, final)`` as ``nn.LSTM`` / ``nn.GRU`` return them (see the module docstring).

        ``input`` may be a ``PackedSequence`` (the output is one too, as ``nn.LSTM``'s), or a
        padded batch with ``lengths`` (B integers from 1 to T, a list or a CPU tensor), which
        ``nn.LSTM`` does not take: its output is then zero past each sample's length.
        """
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            if lengths is not None:
                raise ArgumentError("a PackedSequence carries its lengths: pass lengths only with a padded input")
            rows = _packed_rows(packed)
            input, lengths = _padded(packed, rows), _lengths_of(packed)
            if self.batch_first:
                input = input.transpose(0, 1)
        x, batched = self._checked_input(input)
        steps = _checked_lengths(lengths, x.shape[0], x.shape[1], batched)
        init = self._checked_hx(hx, x.shape[1], batched, x.dtype)
        finals: list[list[torch.Tensor]] = [[] for _ in self.cell.states]
        for layer in range(self.num_layers):
            ks = range(layer * self.directions, (layer + 1) * self.directions)
            starts = [None if init is None else tuple(t[k] for t in init) for k in ks]
            results = self._layer(x, starts, steps, [self.cell_modules[k] for k in ks])
            for _, final in results:
                for stack, state in zip(finals, final, strict=True):
                    stack.append(state)
            x = torch.cat([out for out, _ in results], dim=2) if len(results) > 1 else results[0][0]
            if layer < self.num_layers - 1:
                x = torch.nn.functional.dropout(x, self.dropout, self.training)
        stacked = [torch.stack(stack) for stack in finals]
        final = stacked[0] if len(stacked) == 1 else tuple(stacked)
        if packed is not None:
            return _packed_like(packed, x, rows), final
        if steps is not None:  # zero past each length, as pad_packed_sequence gives
            x = x * (torch.arange(x.shape[0])[:, None] < steps[None, :]).unsqueeze(2).to(x.dtype)
        if not batched:
            x, final = x.squeeze(1), (final.squeeze(1) if len(stacked) == 1 else tuple(t.squeeze(1) for t in final))
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, final

    @staticmethod
    def _layer(
        x: torch.Tensor, starts: list[tuple | None], lengths: torch.Tensor | None, modules: list[CellModule]
    ) -> list[tuple[torch.Tensor, tuple]]:
        """One layer over a time-major batch, ``modules`` its directions (forward, then reverse):
        each direction's ``(output (T, B, H), final states)``. The directions' kernels run side by
        side (:func:`~symgate.frameworks.torch_ops.cell_sequences_together`).

        The reverse direction runs its cell over the time-reversed sequence, each sample reversed
        within its length when there are ``lengths`` (as PyTorch's packed sequences do), and its
        output is put back in time order. The output past a length is left as the kernels give
        it (a state holds its value): the next layer does not read it, and :meth:`forward`
        zeroes it once, at the end.
        """
        rows = None if lengths is None else _reversed_rows(lengths, x.shape[0])
        calls = [
            module.kernel_call(_reversed(x, rows) if reverse else x, start, lengths=lengths)
            for reverse, (module, start) in enumerate(zip(modules, starts, strict=True))
        ]
        results = []
        for reverse, (module, call, sequences) in enumerate(
            zip(modules, calls, cell_sequences_together(calls), strict=True)
        ):
            out, final = module.out_and_final(module.sequences_of(call, sequences))
            results.append((_reversed(out, rows) if reverse else out, final))
        return results

    # -- argument checks --------------------------------------------------------------------
    def _param_dtype(self) -> torch.dtype:
        params = self.cell.params
        return self.cell_modules[0].param(params[0].name).dtype if params else torch.get_default_dtype()

    def _checked_input(self, input: Any) -> tuple[torch.Tensor, bool]:
        """The input as a time-major (T, B, input_size) tensor, and whether it came with a batch axis."""
        _check_tensor("input", input, self._param_dtype())
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ArrayError(
                f"input has shape {tuple(input.shape)}, expected {layout} or unbatched (T, input_size) "
                f"with input_size={self.input_size}"
            )
        if input.ndim == 2:
            return input.unsqueeze(1), False
        return (input.transpose(0, 1) if self.batch_first else input), True

    def _checked_hx(self, hx: Any, batch: int, batched: bool, dtype: torch.dtype) -> list[torch.Tensor] | None:
        """The initial states in state order, each (num_layers·D, B, size), or None for zeros."""
        if hx is None:
            return None
        states = list(self.cell.states)
        if len(states) == 1:
            if not isinstance(hx, torch.Tensor):
                raise ArrayError(
                    f"cell {self.cell.name} has one state ({states[0]}): pass hx as a tensor, not a {type(hx).__name__}"
                )
            given, labels = [hx], [f"hx ({states[0]}_0)"]
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != len(states):
                raise ArrayError(
                    f"cell {self.cell.name} has states {states}: pass hx as a tuple of {len(states)} tensors in that "
                    f"order, not {type(hx).__name__}" + (f" of {len(hx)}" if isinstance(hx, (tuple, list)) else "")
                )
            given, labels = list(hx), [f"hx[{i}] ({s}_0)" for i, s in enumerate(states)]
        count = self.num_layers * self.directions
        result = []
        for tensor, label, (s, size) in zip(given, labels, self.state_sizes.items(), strict=True):
            _check_tensor(label, tensor, dtype)
            expected = (count, batch, *size) if batched else (count, *size)
            if tuple(tensor.shape) != expected:
                dims = ", ".join(dims_of(self.cell.states[s]))  # "K, V" for a matrix state
                axes = f"(num_layers·D, B, {dims})" if batched else f"(num_layers·D, {dims}) for unbatched input"
                raise ArrayError(
                    f"{label} has shape {tuple(tensor.shape)}, expected {axes} = {expected} "
                    f"(state {s} of cell {self.cell.name})"
                )
            result.append(tensor if batched else tensor.unsqueeze(1))
        return result


# -- sequences of different lengths -----------------------------------------------------------------


def _checked_lengths(lengths: Any, steps: int, batch: int, batched: bool) -> torch.Tensor | None:
    """``lengths`` as a CPU int64 tensor of B values from 1 to T (as ``pack_padded_sequence``
    requires), or None: an :class:`ArrayError` names what is wrong."""
    if lengths is None:
        return None
    if not batched:
        raise ArgumentError("lengths needs batched input (T, B, input_size): an unbatched sequence has one length, T")
    return _lengths_tensor(lengths, steps, batch, least=1)


def _reversed_rows(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """The rows of a time-major (T, B, size) sequence, flattened to (T·B, size), that reverse each
    sample within its length (and leave its padding in place): applied twice, the identity."""
    t = torch.arange(steps)[:, None]
    batch = lengths.shape[0]
    reversed_steps = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return (reversed_steps * batch + torch.arange(batch)[None, :]).reshape(-1)


def _reversed(sequence: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """``sequence`` (T, B, size) reversed in time: flipped whole, or with ``rows``
    (:func:`_reversed_rows`) each sample within its length."""
    if rows is None:
        return sequence.flip(0)
    return _Reversal.apply(sequence, rows)


class _Reversal(torch.autograd.Function):
    """``sequence`` (T, B, size) with its (step, sample) rows taken in the order ``rows`` gives,
    for rows that undo themselves (:func:`_reversed_rows`): the backward pass takes the gradient's
    rows in the same order, one ``index_select``, where ``index_select``'s own backward pass fills
    zeros and adds into them."""

    @staticmethod
    def forward(ctx: Any, sequence: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        return _rows(sequence, rows)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rows,) = ctx.saved_tensors
        return _rows(grad, rows), None


def _rows(sequence: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``sequence`` (T, B, size) with its (step, sample) rows, flattened, taken in the order ``rows`` gives."""
    steps, batch, size = sequence.shape
    return sequence.reshape(steps * batch, size).index_select(0, rows).reshape(steps, batch, size)


def _packed_rows(packed: PackedSequence) -> torch.Tensor:
    """The row of each entry of ``packed.data`` in its padded time-major batch flattened to
    (T·B, size): step t's entries are those of the samples still running, in sorted order."""
    batch_sizes = packed.batch_sizes
    batch = int(batch_sizes[0]) if len(batch_sizes) else 0
    steps = torch.repeat_interleave(torch.arange(len(batch_sizes)), batch_sizes)
    starts = torch.cumsum(batch_sizes, 0) - batch_sizes
    within = torch.arange(len(steps)) - torch.repeat_interleave(starts, batch_sizes)
    samples = within if packed.sorted_indices is None else packed.sorted_indices[within]
    return steps * batch + samples


def _lengths_of(packed: PackedSequence) -> torch.Tensor:
    """Each sample's length, in the samples' own order."""
    batch_sizes = packed.batch_sizes
    sorted_lengths = (batch_sizes[None, :] > torch.arange(int(batch_sizes[0]))[:, None]).sum(1)
    return sorted_lengths if packed.unsorted_indices is None else sorted_lengths[packed.unsorted_indices]


def _padded(packed: PackedSequence, rows: torch.Tensor) -> torch.Tensor:
    """``packed`` as a time-major padded batch (T, B, size), zeros past each length: one
    ``index_copy`` (whose backward pass is an ``index_select``; ``pad_packed_sequence``'s is slow)."""
    steps, batch = len(packed.batch_sizes), int(packed.batch_sizes[0])
    data = packed.data
    padded = data.new_zeros(steps * batch, *data.shape[1:]).index_copy(0, rows, data)
    return padded.reshape(steps, batch, *data.shape[1:])


def _packed_like(packed: PackedSequence, padded: torch.Tensor, rows: torch.Tensor) -> PackedSequence:
    """A time-major padded output as a PackedSequence in the input's own order (its batch sizes,
    sorted and unsorted indices), as ``nn.LSTM`` returns it."""
    steps, batch = padded.shape[:2]
    data = padded.reshape(steps * batch, *padded.shape[2:]).index_select(0, rows)
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
