"""Any cell as a PyTorch module: symgate's compiled kernels behind ``torch.autograd``.

:class:`CellModule` is a ``torch.nn.Module`` whose forward pass calls a cell's compiled forward
kernel and whose backward pass calls its backpropagation-through-time kernel, through one
``torch.autograd.Function`` (custom operators under ``torch.compile``, see below). Its
parameters are ``nn.Parameter`` objects named as in the cell, so optimizers, ``state_dict``,
gradient clipping, ``torch.func.functional_call`` and ``DistributedDataParallel`` treat it like
any built-in module::

    import torch
    import symgate as sg

    rnn = sg.torch.from_cell("lstm", {"D": 2, "H": 64})   # a built-in name, a .cell path or a Cell
    head = torch.nn.Linear(64, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-2)
    out, (h_n, c_n) = rnn(x)                    # x: (T, B, 2); out: (T, B, 64), h after every step
    loss = torch.nn.functional.mse_loss(head(h_n).squeeze(1), y)
    opt.zero_grad(); loss.backward(); opt.step()

**What a call returns.** ``module(x, init=None)`` returns ``(out, final)``, as ``nn.LSTM`` does:

* ``out`` is the sequence of the module's ``output``, (T, B, size), or (B, T, size) with
  ``batch_first=True``. ``output`` names a state or a per-step output of the cell; by default it
  is the cell's first declared output if it has any, else its first state (``h`` for ``lstm``,
  ``gru_cho`` and ``elman_rnn``).
* ``final`` is a tuple of the states after the last step, in the cell's state order, each
  (B, size): ``(h_n, c_n)`` for ``lstm``, ``(h_n,)`` for a one-state cell (a tuple even then,
  so that code is the same for every cell). With T = 0 they are the initial states.

``module.sequences(x, init=None)`` returns all of it as dicts: ``.states`` (every state's
sequence), ``.outputs`` (every output's sequence) and ``.final``. Gradients flow from any of
these to the inputs, the initial states and every parameter.

**Arguments.** ``x`` is a tensor for a cell with one input, or a dict ``{input name: tensor}``;
all inputs share T and B. ``init`` is ``None`` (zeros), a tensor (for a cell with one state), a
tuple in state order whose entries may be ``None``, or a dict ``{state name: tensor}``. An
initial state is (B, size): unlike ``nn.LSTM``'s ``h_0`` there is no leading layers axis, since
a module is one layer in one direction. Input must be batched (3-d).

**Dtypes.** The parameters' dtype (float32 or float64) chooses the kernel, which is built on
first use and cached on disk; ``.double()`` and ``.float()`` switch it. Inputs and initial
states must have the parameters' dtype.

**Parameters** are drawn as :meth:`symgate.Kernel.init_params` draws them, each from
U(-1/sqrt(n), 1/sqrt(n)) with n its first dimension (PyTorch's rule for its recurrent modules).
``seed=k`` gives exactly ``Kernel.init_params(sizes, seed=k)``; without a seed, the seed is drawn
from PyTorch's global generator, so ``torch.manual_seed`` makes construction repeatable.
``params=`` starts from given arrays instead (for example those of ``symgate.from_torch``). A
parameter is the module attribute of its name in the cell; a name that an ``nn.Module`` already
uses (``train``, ``float`` ...) gets a trailing underscore, and :meth:`CellModule.param` finds a
parameter by its cell name in every case.

**Memory is shared, not copied.** C-contiguous tensors (x with ``batch_first=False``, initial
states, parameters) are handed to the kernels as they are, and the arrays the kernels write
become the returned tensors without copies. With ``batch_first=True`` x is transposed into a
time-major copy, since the kernels read time-major sequences, and the returned sequences are
transposed views. Because memory is shared, everything the backward pass reads is registered
with ``save_for_backward``: changing one of those tensors in place between the forward and the
backward pass raises PyTorch's usual error instead of corrupting the gradients.

**Sequences of different lengths.** ``module(x, init, lengths=...)`` (B integers from 0 to T:
a list, an array or a CPU tensor) runs sample b over its first ``lengths[b]`` steps only, in the
kernels' time loop (:meth:`symgate.Kernel.forward`): its states hold their values past its
length, so ``final`` is each sample's state at its own length; its outputs are zero there and
no gradient reaches its input there. :class:`symgate.torch.RNN` builds ``PackedSequence`` input
and the reverse direction on this.

**Limits.** CPU tensors only (the kernels are C). The backward pass is not itself
differentiable (no double backward, no ``create_graph`` through the module), and there is no
forward-mode AD and no ``torch.func`` transform other than ``functional_call`` (``grad``,
``vmap``, ``jvp``); PyTorch raises its own error for each. Bad arguments raise
:class:`symgate.ArrayError` naming the argument.

**torch.compile and torch.export.** ``torch.compile(model)``, ``fullgraph=True`` included, runs
a model containing the module with its eager results and gradients: traced, the kernels are the
custom operators ``symgate::cell_forward`` and ``symgate::cell_backward``
(:mod:`symgate.frameworks.torch_ops`), whose fake implementations give their results' shapes
(symbolic ones too: a new T or B recompiles as for any model). A kernel is built when a trace
first needs it, outside the graph. Outside a trace the module calls the autograd Function, which
costs less Python per call. ``torch.export.export`` gives a program calling the operators
(``run_decompositions`` and ``torch.export.save`` keep them); exported with gradients enabled its
forward keeps the saved values for a backward pass, so export under ``torch.no_grad()`` for
inference. The operators find a kernel by name in a per-process registry: a program runs in a
process that has built the same kernel (same cell, dtype, compiler and Python), for example by
making the module, and raises :class:`symgate.ArrayError` naming the kernel otherwise.

PyTorch is optional: ``import symgate`` never imports it, and ``sg.torch`` imports this module
on first use (``pip install "symgate[torch]"`` asks for ``torch>=2.4``, which has the custom
operator API; the tests run 2.13.0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..arguments import count_argument, flag_argument
from ..errors import ArrayError
from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..frontend.functions import dims_of
from ..runtime.arrays import Sizes, given_arrays, shape_of
from ..runtime.kernel import Kernel
from ..runtime.lengths import checked_lengths
from .interop.common import FrameworkNotInstalledError

try:
    import torch
except ImportError as err:  # pragma: no cover - the tests run with torch installed
    raise FrameworkNotInstalledError(
        'symgate.torch needs PyTorch, which is not installed: pip install "symgate[torch]" '
        "(or pip install 'torch>=2.4')"
    ) from err
if not hasattr(torch.library, "custom_op"):  # pragma: no cover - the tests run a newer torch
    raise FrameworkNotInstalledError(
        f"symgate.torch needs torch 2.4 or later (torch.library.custom_op), not {torch.__version__}: "
        "pip install 'torch>=2.4'"
    )

from .torch_ops import KERNEL_DTYPES, CellCall, cell_sequences_together, final_only, kernel_for, torch_dtype

__all__ = ["CellModule", "Sequences", "default_output", "from_cell", "kernel_for"]


class Sequences(NamedTuple):
    """Everything one pass computes: sequences of every state and output, and the final states.

    ``states[s]`` and ``outputs[y]`` are (T, B, size), or (B, T, size) with ``batch_first``;
    ``final[s]`` is (B, size).
    """

    states: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    final: dict[str, torch.Tensor]


# -- the module ---------------------------------------------------------------------------------


class CellModule(torch.nn.Module):
    """A cell run over sequences by its compiled kernels, trainable like any ``torch.nn`` module.

    ``cell`` is a :class:`symgate.Cell`, a built-in cell's name or a ``.cell`` file's path;
    ``sizes`` gives every dimension of the cell (``{"D": 2, "H": 64}``). Options:

    * ``output``: the state or output whose sequence ``forward`` returns first (see the module
      docstring; default: the first output, else the first state).
    * ``batch_first``: sequences are (B, T, size) in and out, as in ``nn.LSTM``.
    * ``dtype``: ``torch.float32`` or ``torch.float64``, or their names or NumPy types (default:
      ``torch.get_default_dtype()``, as ``nn.LSTM`` follows it; symgate's NumPy API defaults to float64).
    * ``seed``: parameters equal to ``Kernel.init_params(sizes, seed)``; ``None`` draws the seed
      from PyTorch's generator.
    * ``params``: initial parameter values instead, a dict of arrays or tensors by cell name.
    * ``recompute``: keep no saved values between the passes, only states and outputs; the
      backward pass recomputes them segment by segment (``Kernel.forward(..., recompute=True)``):
      less memory for one more forward pass. A matrix state is then kept at segment ends only:
      ``sequences(...).states`` leaves it out (``final`` has it).

    Under ``torch.no_grad()``, or when no input, initial state or parameter requires grad, the
    forward pass keeps no saved values at all (``Kernel.forward(..., backward=False)``).

    ``module(x, init)`` returns ``(out, final)``; ``module.sequences(x, init)`` returns every
    sequence. The module docstring (``help(symgate.torch)``) gives the details.
    """

    def __init__(
        self,
        cell: Cell | str | Path,
        sizes: Mapping[str, int],
        *,
        output: str | None = None,
        batch_first: bool = False,
        dtype: Any = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
        recompute: bool = False,
    ) -> None:
        super().__init__()
        cell = cell_argument(cell)
        if not cell.inputs:
            raise ArrayError(f"cell {cell.name} has no inputs: nothing gives the number of steps")
        dtype = torch.get_default_dtype() if dtype is None else torch_dtype(dtype)
        self.cell = cell
        self.sizes = _checked_sizes(cell, sizes)
        self.output = _checked_output(cell, output)
        self.batch_first = flag_argument(batch_first, "batch_first")
        self.recompute = flag_argument(recompute, "recompute")
        if self.output in final_only(cell, self.recompute):
            raise ArrayError(
                f"output={self.output!r} is a matrix state of cell {cell.name}, which recompute=True keeps only at "
                f"segment ends, not at every step: choose an output or a vector state, or leave recompute off"
            )
        self._fingerprint = cell.fingerprint()
        self._labels = given_arrays(cell)  # what errors call each array
        if params is None:
            if seed is None:
                seed = int(torch.randint(2**62, ()).item())
            seed = count_argument(seed, "seed", minimum=0, maximum=2**63 - 1)
            params = self.kernel(dtype).init_params(self.sizes, seed=seed)
        elif seed is not None:
            raise ArrayError("pass either seed or params, not both")
        values = _checked_params(cell, self.sizes, params)
        self._attributes: dict[str, str] = {}
        for p in cell.params:
            attribute = p.name
            while hasattr(self, attribute):
                attribute += "_"
            self._attributes[p.name] = attribute
            tensor = torch.as_tensor(values[p.name]).detach().to(dtype=dtype, copy=True).contiguous()
            self.register_parameter(attribute, torch.nn.Parameter(tensor))

    # -- access -----------------------------------------------------------------------------
    def param(self, name: str) -> torch.Tensor:
        """The parameter the cell calls ``name`` (usually the attribute of that name)."""
        if name not in self._attributes:
            raise KeyError(f"cell {self.cell.name} has no parameter {name!r}; it has {list(self._attributes)}")
        return getattr(self, self._attributes[name])

    def kernel(self, dtype: Any = None) -> Kernel:
        """The compiled kernel for ``dtype`` (any spelling; default: the parameters' dtype), built on first use."""
        return kernel_for(self.cell, self._param_dtype() if dtype is None else dtype, self._fingerprint)

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{d}={n}" for d, n in self.sizes.items())
        recompute = ", recompute=True" if self.recompute else ""
        return f"{self.cell.name}, {sizes}, output={self.output!r}, batch_first={self.batch_first}{recompute}"

    # -- forward ----------------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor | Mapping[str, torch.Tensor], init: Any = None, lengths: Any = None
    ) -> tuple[torch.Tensor, tuple]:
        """``(out, final)``: the ``output`` sequence, and the final states as a tuple in state order."""
        return self.out_and_final(self.sequences(x, init, lengths))

    def sequences(
        self, x: torch.Tensor | Mapping[str, torch.Tensor], init: Any = None, lengths: Any = None
    ) -> Sequences:
        """Every state's and output's sequence, and the final states (see :class:`Sequences`).

        ``lengths`` (B integers from 0 to T: a list, an array or a CPU tensor) runs each sample
        over its own first steps (:meth:`symgate.Kernel.forward`): a state holds its value past
        the sample's length (so ``final`` is each sample's state at its own length), an output
        is zero there, and no gradient reaches the input there."""
        call = self.kernel_call(x, init, lengths)
        return self.sequences_of(call, cell_sequences_together([call])[0])

    def out_and_final(self, sequences: Sequences) -> tuple[torch.Tensor, tuple]:
        """What :meth:`forward` returns of :meth:`sequences`' result."""
        out = sequences.states.get(self.output)
        if out is None:
            out = sequences.outputs[self.output]
        return out, tuple(sequences.final[s] for s in self.cell.states)

    def kernel_call(
        self, x: torch.Tensor | Mapping[str, torch.Tensor], init: Any = None, lengths: Any = None
    ) -> CellCall:
        """The kernel call that :meth:`sequences` makes, its arguments checked: a layer running
        several modules' calls side by side (:func:`~symgate.frameworks.torch_ops.cell_sequences_together`)
        passes each call's results to :meth:`sequences_of`."""
        params = self._param_tensors()
        dtype = self._param_dtype(params)
        inputs = self._inputs(x, dtype)
        steps, batch = next(iter(inputs.values())).shape[:2]
        init_list = self._init(init, dtype, batch)
        if lengths is not None:
            lengths = _lengths_tensor(lengths, steps, batch)
        tensors = [*inputs.values(), *init_list, *params]
        backward = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
        return CellCall(
            self.cell,
            dtype,
            list(inputs.values()),
            init_list,
            params,
            self._fingerprint,
            self.recompute,
            backward,
            lengths,
        )

    def sequences_of(self, call: CellCall, results: list[torch.Tensor]) -> Sequences:
        """:meth:`sequences`' result from the results of :meth:`kernel_call`'s call."""
        cell = self.cell
        steps, batch = call.inputs[0].shape[:2]
        states = dict(zip(cell.states, results[: len(cell.states)], strict=True))
        outputs = dict(zip(cell.outputs, results[len(cell.states) :], strict=True))
        at_ends = final_only(cell, self.recompute)  # these come as their final values
        final = {}
        for (s, dim), start in zip(cell.states.items(), call.init, strict=True):
            if s in at_ends:
                final[s] = states.pop(s)
            elif steps:
                final[s] = states[s][-1]
            else:
                zeros = torch.zeros(batch, *shape_of(dims_of(dim), self.sizes), dtype=call.dtype)
                final[s] = start if start is not None else zeros
        if self.batch_first:
            states = {n: t.transpose(0, 1) for n, t in states.items()}
            outputs = {n: t.transpose(0, 1) for n, t in outputs.items()}
        return Sequences(states, outputs, final)

    # -- argument checks --------------------------------------------------------------------
    def _param_tensors(self) -> list[torch.Tensor]:
        """The parameters in the cell's order."""
        return [getattr(self, attribute) for attribute in self._attributes.values()]

    def _param_dtype(self, tensors: list[torch.Tensor] | None = None) -> torch.dtype:
        """The parameters' (``tensors``, default all) one dtype, a kernel's, on the CPU, checked
        quickly in the common case and by name otherwise."""
        tensors = self._param_tensors() if tensors is None else tensors
        kinds = {t.dtype for t in tensors}
        if len(kinds) == 1 and kinds <= KERNEL_DTYPES.keys() and all(t.is_cpu for t in tensors):
            return kinds.pop()
        dtypes = {}
        for p, tensor in zip(self.cell.params, tensors, strict=True):
            if tensor.device.type != "cpu":
                raise ArrayError(
                    f"parameter {p.name} is on {tensor.device}, but symgate's kernels run on the CPU: "
                    f"keep the module on the CPU (module.cpu())"
                )
            dtypes[p.name] = tensor.dtype
        kinds = set(dtypes.values())
        if len(kinds) > 1:
            raise ArrayError(f"the parameters mix dtypes {dtypes}: convert the module with .float() or .double()")
        dtype = kinds.pop() if kinds else torch.get_default_dtype()
        if dtype not in KERNEL_DTYPES:
            raise ArrayError(
                f"the parameters are {dtype}, but symgate's kernels are float32 and float64: "
                f"convert the module with .float() or .double()"
            )
        return dtype

    def _inputs(self, x: Any, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The inputs, checked and time-major contiguous, in the cell's input order."""
        cell = self.cell
        if isinstance(x, Mapping):
            _require_exactly("x", "inputs", x, list(cell.inputs), cell)
            given = {name: x[name] for name in cell.inputs}
        elif len(cell.inputs) == 1:
            given = {next(iter(cell.inputs)): x}
        else:
            raise ArrayError(f"cell {cell.name} has inputs {list(cell.inputs)}: pass x as a dict of tensors")
        axes = "(B, T, {})" if self.batch_first else "(T, B, {})"
        labels = self._labels
        result, first = {}, None
        for name, tensor in given.items():
            label = labels["input", name][0]
            dim = cell.inputs[name]
            (extent,) = shape_of((dim,), self.sizes)
            _check_tensor(label, tensor, dtype)
            if tensor.ndim != 3 or tensor.shape[2] != extent:
                raise ArrayError(
                    f"{label} has shape {tuple(tensor.shape)}, expected {axes.format(dim)} with "
                    f"{dim}={extent} (unbatched input is not supported: add a batch axis)"
                )
            if first is not None and tensor.shape[:2] != first[1].shape[:2]:
                raise ArrayError(
                    f"{label} has shape {tuple(tensor.shape)} but {first[0]} has {tuple(first[1].shape)}: "
                    f"all inputs share the time and batch axes"
                )
            first = first or (label, tensor)
            result[name] = (tensor.transpose(0, 1) if self.batch_first else tensor).contiguous()
        return result

    def _init(self, init: Any, dtype: torch.dtype, batch: int) -> list[torch.Tensor | None]:
        """The initial states in state order (``None``: zeros), checked."""
        states = list(self.cell.states)
        if init is None:
            given: dict[str, Any] = {}
        elif isinstance(init, torch.Tensor):
            if len(states) != 1:
                raise ArrayError(
                    f"cell {self.cell.name} has states {states}: pass init as a tuple in that order or a dict"
                )
            given = {states[0]: init}
        elif isinstance(init, Mapping):
            unknown = [k for k in init if k not in states]
            if unknown:
                raise ArrayError(f"init has unknown states {unknown}; cell {self.cell.name} has {states}")
            given = {k: v for k, v in init.items() if v is not None}
        elif isinstance(init, Sequence) and not isinstance(init, str):
            if len(init) != len(states):
                raise ArrayError(f"init has {len(init)} entries but cell {self.cell.name} has states {states}")
            given = {s: v for s, v in zip(states, init, strict=True) if v is not None}
        else:
            raise ArrayError(f"init must be None, a tensor, a tuple or a dict of tensors, not {type(init).__name__}")
        labels = self._labels
        result: list[torch.Tensor | None] = []
        for s, dim in self.cell.states.items():
            tensor = given.get(s)
            if tensor is not None:
                label = labels["init", s][0]
                _check_tensor(label, tensor, dtype)
                extent = shape_of(dims_of(dim), self.sizes)  # (K, V) for a matrix state
                if tuple(tensor.shape) != (batch, *extent):
                    axes = ", ".join(dims_of(dim))
                    raise ArrayError(
                        f"{label} has shape {tuple(tensor.shape)}, expected (B, {axes}) = {(batch, *extent)}"
                    )
                tensor = tensor.contiguous()
            result.append(tensor)
        return result


def from_cell(
    cell: Cell | str | Path,
    sizes: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    **options,
) -> CellModule:
    """A :class:`CellModule` for a cell (a ``Cell``, a built-in name or a ``.cell`` path).

    ``sizes`` may be left out when ``params`` are given: they are read off the parameters' shapes.
    A dict of arrays or tensors in the place of ``sizes`` is taken as ``params``, so a
    ``(cell, params)`` pair unpacks into a module: ``from_cell(*symgate.from_torch(
    torch.nn.LSTMCell(8, 16)))`` trains what the ``LSTMCell`` computes, step after step. With
    ``params`` and no ``dtype`` option, the module is float32 if every parameter is, else float64.
    """
    cell = cell_argument(cell)
    if params is None and isinstance(sizes, Mapping) and any(_is_array(v) for v in sizes.values()):
        sizes, params = None, sizes
    if params is not None:
        if not isinstance(params, Mapping):
            raise ArrayError(f"params must be a dict of arrays or tensors by name, not {type(params).__name__}")
        if sizes is None:
            sizes = _sizes_of(cell, params)
        if "dtype" not in options:
            float32 = all(_is_array(v) and v.dtype in (np.float32, torch.float32) for v in params.values())
            options["dtype"] = torch.float32 if float32 else torch.float64
    if sizes is None:
        raise ArrayError(f"pass the sizes of {list(cell.dims)} (or params to read them from)")
    return CellModule(cell, sizes, params=params, **options)


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor))


# -- helpers ------------------------------------------------------------------------------------


def _require_exactly(label: str, what: str, given: Mapping, expected: list[str], cell: Cell) -> None:
    """``given`` must have exactly the ``expected`` keys; the error names the unknown and missing ones."""
    unknown = [k for k in given if k not in expected]
    missing = [k for k in expected if k not in given]
    if unknown or missing:
        raise ArrayError(
            f"{label} must give exactly the {what} {expected} of cell {cell.name}; "
            f"unknown: {unknown}, missing: {missing}"
        )


def _checked_sizes(cell: Cell, sizes: Mapping[str, int]) -> dict[str, int]:
    """The sizes as ints: positive for a dimension of a parameter (a module has something to learn
    in every parameter), non-negative for the others (an input of no units is valid: a reduction
    over it gives what NumPy's and torch's do, 0 for ``sum``, NaN for ``mean`` and ``var``)."""
    if not isinstance(sizes, Mapping):
        raise ArrayError(f"sizes must be a dict like {{{', '.join(repr(d) + ': ...' for d in cell.dims)}}}")
    _require_exactly("sizes", "dimensions", sizes, list(cell.dims), cell)
    learned = {d for p in cell.params for d in p.shape}
    for d in cell.dims:
        least, kind = (1, "positive") if d in learned else (0, "non-negative")
        if isinstance(sizes[d], bool) or not isinstance(sizes[d], (int, np.integer)) or sizes[d] < least:
            raise ArrayError(f"sizes[{d!r}] must be a {kind} integer, not {sizes[d]!r}")
    return {d: int(sizes[d]) for d in cell.dims}


def default_output(cell: Cell | str | Path) -> str:
    """The name whose sequence ``CellModule.forward`` returns by default: the first output, else the first state.

    ``cell`` is a ``Cell``, a built-in name or a ``.cell`` path."""
    cell = cell_argument(cell)
    return next(iter(cell.outputs), next(iter(cell.states)))


def _checked_output(cell: Cell, output: str | None) -> str:
    if output is None:
        return default_output(cell)
    if not isinstance(output, str) or (output not in cell.states and output not in cell.outputs):
        raise ArrayError(
            f"output={output!r} is not a state or output of cell {cell.name}; "
            f"choose one of {[*cell.states, *cell.outputs]}"
        )
    return output


def _checked_params(cell: Cell, sizes: Mapping[str, int], params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise ArrayError(f"params must be a dict of arrays or tensors by name, not {type(params).__name__}")
    names = [p.name for p in cell.params]
    unknown = [k for k in params if k not in names]
    missing = [k for k in names if k not in params]
    if unknown or missing:
        raise ArrayError(
            f"params must give exactly the parameters of cell {cell.name}; unknown: {unknown}, missing: {missing}"
        )
    labels = given_arrays(cell)
    for p in cell.params:
        value, label = params[p.name], labels["param", p.name][0]
        shape = shape_of(p.shape, sizes)
        if not isinstance(value, (np.ndarray, torch.Tensor)):
            raise ArrayError(f"{label} must be a NumPy array or a tensor, not {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise ArrayError(f"{label} has shape {tuple(value.shape)}, expected ({', '.join(p.shape)}) = {shape}")
    return dict(params)


def _sizes_of(cell: Cell, params: Mapping[str, Any]) -> dict[str, int]:
    """The sizes the parameters' shapes give (a conflict names both parameters)."""
    labels = given_arrays(cell)
    sizes = Sizes()
    for p in cell.params:
        if p.name not in params:
            raise ArrayError(f"params is missing {p.name!r} (shape ({', '.join(p.shape)}))")
        label, shape = labels["param", p.name][0], tuple(int(n) for n in params[p.name].shape)
        if len(shape) != len(p.shape):
            raise ArrayError(f"{label} has shape {shape}, expected ({', '.join(p.shape)})")
        mismatch = sizes.read(label, shape, p.shape)
        if mismatch is not None:
            raise ArrayError(str(mismatch))
    read = sizes.values()
    missing = [d for d in cell.dims if d not in read]
    if missing:
        raise ArrayError(f"the parameters do not give the sizes of {missing}: pass sizes")
    return read


def _lengths_tensor(lengths: Any, steps: int, batch: int, least: int = 0) -> torch.Tensor:
    """``lengths`` (B integers from ``least`` to T: a list, an array or a CPU tensor) as a CPU
    int64 tensor, checked (an :class:`ArrayError` names what is wrong). Traced by torch.compile,
    a tensor is taken as it is: the kernels check it when they run."""
    if isinstance(lengths, torch.Tensor):
        if lengths.device.type != "cpu":
            raise ArrayError(f"lengths must be a CPU tensor, not one on {lengths.device}")
        if torch.compiler.is_compiling():
            return lengths.to(torch.int64)
        lengths = lengths.detach()
    return torch.from_numpy(checked_lengths(lengths, steps, batch, least))


def _check_tensor(label: str, value: Any, dtype: torch.dtype) -> None:
    if not isinstance(value, torch.Tensor):
        hint = f" (convert it with torch.from_numpy({label}))" if isinstance(value, np.ndarray) else ""
        raise ArrayError(f"{label} must be a torch.Tensor, not {type(value).__name__}{hint}")
    if value.device.type != "cpu":
        raise ArrayError(f"{label} is on {value.device}, but symgate's kernels run on the CPU: pass {label}.cpu()")
    if value.layout != torch.strided:
        raise ArrayError(f"{label} is a {value.layout} tensor: pass a dense one ({label}.to_dense())")
    if value.dtype != dtype:
        raise ArrayError(
            f"{label} has dtype {value.dtype} but the module's parameters are {dtype}: pass {label}.to({dtype})"
            + (f", or convert the module with .to({value.dtype})" if value.dtype in KERNEL_DTYPES else "")
        )
