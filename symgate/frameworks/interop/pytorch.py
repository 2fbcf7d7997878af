"""PyTorch interop: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (and their ``...Cell`` classes) <-> symgate cells.

Why: symgate's built-in ``*_pytorch`` cells are PyTorch's equations written out per gate, so a
trained PyTorch layer can run (and be differentiated) by symgate kernels, and weights trained with
symgate can be handed back to PyTorch. The conversion only cuts PyTorch's fused tensors into
per-gate blocks (or stacks them back); nothing is merged, transposed or special-cased:

* ``RNN`` / ``RNNCell`` -> ``rnn_tanh_pytorch`` (or ``rnn_relu_pytorch`` for
  ``nonlinearity="relu"``): weight_ih -> W_ih, weight_hh -> W_hh, bias_ih -> b_ih, bias_hh -> b_hh.
* ``LSTM`` / ``LSTMCell`` -> ``lstm_pytorch``: row blocks in the order i, f, g, o, so weight_ih ->
  W_ii, W_if, W_ig, W_io; weight_hh -> W_hi ... W_ho; bias_ih -> b_ii ...; bias_hh -> b_hi ...
  (the two biases of a gate are kept apart).
* ``LSTM(proj_size=P)`` -> ``lstmp_pytorch``: the same, W_h* being (H, P), plus
  weight_hr -> W_hr (P, H).
* ``GRU`` / ``GRUCell`` -> ``gru_pytorch``: row blocks in the order r, z, n, so weight_ih -> W_ir,
  W_iz, W_in; weight_hh -> W_hr, W_hz, W_hn; likewise b_i*, b_h* (b_in and b_hn stay apart: r
  multiplies b_hn).

``bias=False`` maps to the same cells with zero biases. ``batch_first`` is only PyTorch's calling
convention (symgate kernels always take (T, B, D)). Dropout between layers is not part of any
cell, so ``from_torch`` refuses a multi-layer module with ``dropout > 0``; ``layer_pairs`` gives
its pairs all the same for ``symgate.torch.RNN.from_torch``, which runs the dropout itself.

**Layers and directions.** ``from_torch`` returns one ``(cell, params)`` pair per layer and
direction, in PyTorch's own parameter order: layer 0 forward, layer 0 reverse, layer 1 forward,
layer 1 reverse, ... The position of a pair in that list is also its index along the first axis
of PyTorch's ``h_0`` / ``h_n`` (and ``c_0`` / ``c_n``). The forward direction runs over x_0 ...
x_{T-1}; the reverse direction of a layer is the same kind of cell run over the reversed sequence
``x[::-1]`` (its states come out in reversed time order: flip them back; its final state, in
``h_n``, is the one after reading x_0). Layer l > 0 reads the concatenation
``[forward output, reverse output]`` along the feature axis (forward first), of size 2·H (2·P with
``proj_size``), or just the previous layer's output when the module has one direction.

torch is imported only inside the functions, so ``import symgate`` never needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from ...arguments import flag_argument
from ...frontend import cells
from ...frontend.cell import Cell
from .common import FrameworkNotInstalledError, Pair, UnsupportedModuleError, WeightLayoutError, split_gates

if TYPE_CHECKING:
    import torch

_FUSED = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@dataclass(frozen=True)
class _Family:
    """One PyTorch recurrence and the symgate cell that spells it out."""

    cell: str  # the built-in cell
    gates: str  # PyTorch's order of the gate blocks in its fused tensors
    module: str  # the torch.nn class of whole layers
    cell_class: str | None  # the torch.nn class of one step (none for proj_size)
    nonlinearity: str | None = None  # RNN only

    def names(self, fused: str) -> tuple[str, ...]:
        """The cell's names for the row blocks of ``weight_ih``, ``weight_hh``, ``bias_ih`` or ``bias_hh``.

        PyTorch's documentation names the blocks ``W_i<gate>``, ``W_h<gate>``, ``b_i<gate>``,
        ``b_h<gate>``; the plain RNN has one block whose "gate" is ``h`` (``W_ih``, ``b_hh``).
        """
        letter = "W" if fused.startswith("weight") else "b"
        side = fused[-2]  # "i" of "ih", "h" of "hh"
        return tuple(f"{letter}_{side}{gate}" for gate in self.gates)

    @property
    def projected(self) -> bool:
        return self.cell == "lstmp_pytorch"


_FAMILIES = {
    f.cell: f
    for f in (
        _Family("rnn_tanh_pytorch", "h", "RNN", "RNNCell", "tanh"),
        _Family("rnn_relu_pytorch", "h", "RNN", "RNNCell", "relu"),
        _Family("lstm_pytorch", "ifgo", "LSTM", "LSTMCell"),
        _Family("lstmp_pytorch", "ifgo", "LSTM", None),
        _Family("gru_pytorch", "rzn", "GRU", "GRUCell"),
    )
}


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise FrameworkNotInstalledError(
            "symgate.frameworks.interop.pytorch needs PyTorch, which is not installed: pip install 'torch>=2.4'"
        ) from err
    return torch


@cache
def _cell(name: str) -> Cell:
    return cells.get(name)


def _suffixes(num_layers: int, directions: int) -> list[str]:
    """PyTorch's parameter-name suffixes in pair order: _l0, _l0_reverse, _l1, ..."""
    return [f"_l{layer}{rev}" for layer in range(num_layers) for rev in ("", "_reverse")[:directions]]


# -- PyTorch -> symgate -----------------------------------------------------------------------


def from_torch(module: torch.nn.Module) -> list[Pair] | Pair:
    """The symgate ``(cell, params)`` of a PyTorch recurrent module, weights copied.

    ``nn.RNN``, ``nn.LSTM`` (also with ``proj_size``) and ``nn.GRU`` give a list with one pair per
    layer and direction, ordered layer 0 forward, layer 0 reverse, layer 1 forward, ... (see the
    module docstring for how the layers and directions are wired). ``nn.RNNCell``,
    ``nn.LSTMCell`` and ``nn.GRUCell`` give a single pair. Parameters are float64 NumPy copies
    for a float64 (``.double()``) module and float32 otherwise, C-contiguous, in the cell's
    parameter order; ``bias=False`` gives zero biases.

    Raises :class:`UnsupportedModuleError` for any other module (subclasses included: their
    ``forward`` may compute something else) and for ``dropout > 0`` between layers.
    """
    torch = _torch()
    nn = torch.nn
    kind = type(module)
    if kind in (nn.RNNCell, nn.LSTMCell, nn.GRUCell):
        return _pair(torch, module, _cell_family(module), "", _dtype(torch, module))
    if kind in (nn.RNN, nn.LSTM, nn.GRU):
        if module.dropout > 0 and module.num_layers > 1:
            raise UnsupportedModuleError(
                f"torch.nn.{kind.__name__} with dropout={module.dropout}: dropout between layers is not part of a "
                f"cell; build the module with dropout=0 (the weights are the same) to convert it, or use "
                f"symgate.torch.RNN.from_torch, which runs the dropout between its layers"
            )
        return layer_pairs(module)
    raise _unsupported(module)


def layer_pairs(module: torch.nn.Module) -> list[Pair]:
    """The ``(cell, params)`` pairs of an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``, as :func:`from_torch` gives them.

    Unlike ``from_torch`` it accepts ``dropout > 0``: the caller (``symgate.torch.RNN``) runs the
    dropout between layers, which no cell holds.
    """
    torch = _torch()
    nn = torch.nn
    kind = type(module)
    if kind in (nn.RNNCell, nn.LSTMCell, nn.GRUCell):
        raise UnsupportedModuleError(
            f"torch.nn.{kind.__name__} is one step, not a layer over sequences: convert a whole torch.nn.RNN, LSTM "
            f"or GRU, or run the cell with symgate.torch.from_cell(*symgate.from_torch(module))"
        )
    if kind not in (nn.RNN, nn.LSTM, nn.GRU):
        raise _unsupported(module)
    family = _module_family(module)
    directions = 2 if module.bidirectional else 1
    dtype = _dtype(torch, module)
    return [_pair(torch, module, family, s, dtype) for s in _suffixes(module.num_layers, directions)]


def _unsupported(module: Any) -> UnsupportedModuleError:
    """The error for a module that is not one of the six classes ``from_torch`` maps."""
    nn = _torch().nn
    kind = type(module)
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        return UnsupportedModuleError(
            f"from_torch maps torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell and GRUCell themselves; "
            f"{kind.__module__}.{kind.__name__} is a subclass whose forward may differ: copy its weights "
            f"into a plain torch.nn.{next(c for c in kind.__mro__ if c.__module__.startswith('torch.')).__name__} first"
        )
    return UnsupportedModuleError(
        f"from_torch cannot convert {kind.__module__}.{kind.__name__}: symgate maps torch.nn.RNN, LSTM, GRU, "
        f"RNNCell, LSTMCell and GRUCell"
    )


def _cell_family(module: Any) -> _Family:
    name = type(module).__name__
    if name == "RNNCell":
        family = _FAMILIES.get(f"rnn_{module.nonlinearity}_pytorch")
        if family is None:
            raise UnsupportedModuleError(
                f"torch.nn.RNNCell with nonlinearity={module.nonlinearity!r} has no symgate cell"
            )
        return family
    return _FAMILIES["lstm_pytorch" if name == "LSTMCell" else "gru_pytorch"]


def _module_family(module: Any) -> _Family:
    name = type(module).__name__
    mode = module.mode
    if mode == "LSTM":
        return _FAMILIES["lstmp_pytorch" if module.proj_size > 0 else "lstm_pytorch"]
    cell = {"RNN_TANH": "rnn_tanh_pytorch", "RNN_RELU": "rnn_relu_pytorch", "GRU": "gru_pytorch"}.get(mode)
    if cell is None:
        raise UnsupportedModuleError(f"torch.nn.{name} with mode={mode!r} has no symgate cell")
    return _FAMILIES[cell]


def _dtype(torch: Any, module: Any) -> np.dtype:
    dtypes = {p.dtype for p in module.parameters()}
    if not all(d.is_floating_point for d in dtypes):
        raise UnsupportedModuleError(
            f"torch.nn.{type(module).__name__} has non-floating parameters {sorted(map(str, dtypes))}"
        )
    if torch.float64 in dtypes and len(dtypes) > 1:
        raise UnsupportedModuleError(
            f"torch.nn.{type(module).__name__} mixes parameter dtypes {sorted(map(str, dtypes))}: convert it with "
            f".double() or .float() first"
        )
    return np.dtype(np.float64 if torch.float64 in dtypes else np.float32)


def _pair(torch: Any, module: Any, family: _Family, suffix: str, dtype: np.dtype) -> Pair:
    as_numpy_dtype = torch.float64 if dtype == np.float64 else torch.float32
    params: dict[str, np.ndarray] = {}
    for fused in _FUSED:
        tensor = getattr(module, fused + suffix, None)
        names = family.names(fused)
        if tensor is None:  # bias=False
            params |= {n: np.zeros(module.hidden_size, dtype) for n in names}
            continue
        array = tensor.detach().to("cpu", as_numpy_dtype).numpy()
        blocks = split_gates(array, family.gates, label=f"{fused}{suffix}")
        params |= {n: blocks[g] for n, g in zip(names, family.gates, strict=True)}
    if family.projected:
        params["W_hr"] = np.array(getattr(module, f"weight_hr{suffix}").detach().to("cpu", as_numpy_dtype).numpy())
    cell = _cell(family.cell)
    return cell, {p.name: params[p.name] for p in cell.params}


# -- symgate -> PyTorch -----------------------------------------------------------------------


def to_torch(
    pairs: Pair | Sequence[Pair],
    *,
    module: bool | None = None,
    bidirectional: bool | None = None,
    bias: bool = True,
    batch_first: bool = False,
) -> torch.nn.Module:
    """The PyTorch module computing the given symgate cells, weights copied in: the reverse of ``from_torch``.

    ``pairs`` is one ``(cell, params)`` pair or a list of them, as ``from_torch`` returns; the
    cells must be the built-in ``rnn_tanh_pytorch``, ``rnn_relu_pytorch``, ``lstm_pytorch``,
    ``lstmp_pytorch`` or ``gru_pytorch``, all the same, with the same dtype and sizes.

    * One pair gives the ``...Cell`` class (``nn.LSTMCell`` ...), or with ``module=True`` the
      one-layer module (``nn.LSTM`` ...); ``lstmp_pytorch`` always needs ``module=True``.
    * A list gives a module, its pairs ordered layer 0 forward, [layer 0 reverse,] layer 1
      forward, ... Whether it is bidirectional is read off the input sizes (layer l > 0 reads
      1 or 2 times the output size); when both readings fit (input size equal to the hidden
      size, an even number of pairs), pass ``bidirectional`` explicitly.
    * ``bias=False`` builds a module without biases and requires every bias to be zero; the
      default ``bias=True`` also holds zero biases, so it fits every pair.
    * ``batch_first`` is passed on to the module.

    The module's dtype is the parameters' (float64 or float32), and
    ``from_torch(to_torch(pairs))`` gives ``pairs`` back exactly.
    """
    torch = _torch()
    single = _is_pair(pairs)
    if not (single or isinstance(pairs, (list, tuple))):
        raise WeightLayoutError(f"to_torch takes a (cell, params) pair or a list of them, not {type(pairs).__name__}")
    pair_list: list[Pair] = [pairs] if single else list(pairs)  # type: ignore[list-item]
    module = None if module is None else flag_argument(module, "module")
    bidirectional = None if bidirectional is None else flag_argument(bidirectional, "bidirectional")
    bias, batch_first = flag_argument(bias, "bias"), flag_argument(batch_first, "batch_first")
    if not pair_list:
        raise WeightLayoutError("to_torch needs at least one (cell, params) pair")
    whole = (not single) if module is None else module
    if not whole and len(pair_list) > 1:
        raise WeightLayoutError(f"module=False builds a single ...Cell, but {len(pair_list)} pairs were given")
    checked = [_check_pair(k, pair, bias) for k, pair in enumerate(pair_list)]
    family, dtype, sizes = checked[0]
    for k, (other_family, other_dtype, other_sizes) in enumerate(checked[1:], start=1):
        if other_family != family:
            raise WeightLayoutError(
                f"pair 0 is {family.cell} but pair {k} is {other_family.cell}: one module has one cell"
            )
        if other_dtype != dtype:
            raise WeightLayoutError(f"pair 0 is {dtype} but pair {k} is {other_dtype}")
        for dim in ("H", "P"):
            if sizes.get(dim) != other_sizes.get(dim):
                raise WeightLayoutError(
                    f"pair 0 has {dim}={sizes.get(dim)} but pair {k} has {dim}={other_sizes.get(dim)}"
                )
    inputs = [other_sizes["D"] for _, _, other_sizes in checked]
    directions = _directions(inputs, sizes.get("P", sizes["H"]), bidirectional, whole)
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    options: dict[str, Any] = {"bias": bias, "dtype": torch_dtype}
    if family.nonlinearity:
        options["nonlinearity"] = family.nonlinearity
    if whole:
        if family.projected:
            options["proj_size"] = sizes["P"]
        result = getattr(torch.nn, family.module)(
            sizes["D"],
            sizes["H"],
            num_layers=len(pair_list) // directions,
            bidirectional=directions == 2,
            batch_first=batch_first,
            **options,
        )
        suffixes = _suffixes(len(pair_list) // directions, directions)
    else:
        if family.cell_class is None:
            raise UnsupportedModuleError(
                f"torch has no cell class for {family.cell}: pass module=True for nn.LSTM(proj_size=...)"
            )
        if batch_first:
            raise WeightLayoutError("batch_first applies to whole modules, not to torch.nn.*Cell: pass module=True")
        result = getattr(torch.nn, family.cell_class)(sizes["D"], sizes["H"], **options)
        suffixes = [""]
    with torch.no_grad():
        for suffix, (_, params) in zip(suffixes, pair_list, strict=True):
            for fused in _FUSED if bias else _FUSED[:2]:
                stacked = np.concatenate([params[n] for n in family.names(fused)])
                getattr(result, fused + suffix).copy_(torch.from_numpy(stacked))
            if family.projected:
                getattr(result, f"weight_hr{suffix}").copy_(torch.from_numpy(np.ascontiguousarray(params["W_hr"])))
    return result


def _is_pair(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Cell)


def _check_pair(k: int, pair: Any, bias: bool) -> tuple[_Family, np.dtype, dict[str, int]]:
    """The family, dtype and sizes of pair ``k``, or an error saying what does not fit."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise WeightLayoutError(f"pair {k} must be a (Cell, params) pair, not {type(pair).__name__}")
    cell, params = pair
    if not isinstance(cell, Cell):
        raise WeightLayoutError(f"pair {k} must be (Cell, params), got {type(cell).__name__} first")
    family = _FAMILIES.get(cell.name)
    if family is None or cell.text() != _cell(cell.name).text():
        raise UnsupportedModuleError(
            f"pair {k}: cell {cell.name} has no PyTorch module; to_torch maps the built-in cells "
            f"{', '.join(_FAMILIES)} (unmodified)"
        )
    if not isinstance(params, Mapping):
        raise WeightLayoutError(f"pair {k}: params must be a dict of arrays, not {type(params).__name__}")
    expected = [p.name for p in cell.params]
    if set(params) != set(expected):
        missing = [n for n in expected if n not in params]
        unknown = [n for n in params if n not in expected]
        raise WeightLayoutError(f"pair {k} ({cell.name}): params missing {missing}, unknown {unknown}")
    dtypes = {np.asarray(params[n]).dtype for n in expected}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (np.float32, np.float64):
        raise WeightLayoutError(f"pair {k} ({cell.name}): params must all be float64 or all float32, got {dtypes}")
    sizes: dict[str, int] = {}
    for p in cell.params:
        array = np.asarray(params[p.name])
        if array.ndim != len(p.shape):
            raise WeightLayoutError(f"pair {k}: {p.name} must have shape ({', '.join(p.shape)}), got {array.shape}")
        for dim, extent in zip(p.shape, array.shape, strict=True):
            if sizes.setdefault(dim, extent) != extent:
                raise WeightLayoutError(
                    f"pair {k}: {p.name} has shape {array.shape}, but {dim}={sizes[dim]} from the other parameters"
                )
    if family.projected and not 0 < sizes["P"] < sizes["H"]:
        raise WeightLayoutError(
            f"pair {k}: lstmp_pytorch needs 0 < P < H as torch does, got P={sizes['P']}, H={sizes['H']}"
        )
    if not bias:
        nonzero = [p.name for p in cell.params if p.name.startswith("b_") and np.any(params[p.name])]
        if nonzero:
            raise WeightLayoutError(f"bias=False, but pair {k} has non-zero biases {nonzero}")
    return family, next(iter(dtypes)), sizes


def _directions(inputs: list[int], output: int, bidirectional: bool | None, whole: bool) -> int:
    """1 or 2: how the pairs, with these input sizes, stack into layers of one or two directions."""
    if not whole:
        if bidirectional:
            raise WeightLayoutError("a torch.nn.*Cell has one direction: pass module=True for a bidirectional module")
        return 1
    candidates = (1, 2) if bidirectional is None else ((2,) if bidirectional else (1,))
    problems = {d: _stacking_problem(inputs, output, d) for d in candidates}
    fits = [d for d, problem in problems.items() if problem is None]
    if len(fits) == 2:
        raise WeightLayoutError(
            f"{len(inputs)} pairs whose input sizes fit both {len(inputs)} one-direction layers and "
            f"{len(inputs) // 2} bidirectional layer(s) (input size {inputs[0]} = output size {output}): "
            f"pass bidirectional=True or False"
        )
    if not fits:
        raise WeightLayoutError("; ".join(p for p in problems.values() if p))
    return fits[0]


def _stacking_problem(inputs: list[int], output: int, directions: int) -> str | None:
    label = "bidirectional" if directions == 2 else "one-direction"
    if len(inputs) % directions:
        return f"{len(inputs)} pairs cannot be {label} layers"
    for k, size in enumerate(inputs):
        layer = k // directions
        expected = inputs[0] if layer == 0 else directions * output
        if size != expected:
            return f"as {label} layers, pair {k} (layer {layer}) should read inputs of size {expected}, not {size}"
    return None
