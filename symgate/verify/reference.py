"""A NumPy evaluation of a cell's equations: the oracle the compiled kernels are checked against.

It walks the SymPy expressions directly (no code generation shared with the C path), so an
error in printing, lowering or rendering cannot hide in both. Every array may carry leading
axes beyond the batch (``(..., B, size)``; matrices ``(..., rows, cols)``), which lets the
gradient check evaluate thousands of perturbed parameter sets in one vectorised sweep.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import sympy

from ..frontend.cell import Cell
from ..frontend.functions import (
    SCALAR,
    AxisReduction,
    MatVec,
    Reduction,
    RowSum,
    RowVector,
    SampleMatVec,
    dims_of,
    matrix_axes,
)
from ..frontend.vocabulary import BY_NODE

_FUNCTIONS = {node: record.numpy for node, record in BY_NODE.items()}
"""The NumPy function of each SymPy node of the language (a dict, so a test can swap one)."""


def evaluate(
    expr: sympy.Expr, values: Mapping[str, np.ndarray], matrices: frozenset[str] = frozenset(), column: bool = False
) -> np.ndarray:
    """The value of an elementwise expression; ``values`` maps names to arrays.

    ``matrices`` are the names of per-sample matrices (arrays ``(..., B, rows, cols)``). In an
    expression whose value is a matrix (``column``), every vector is a column, ``v[..., None]``,
    and ``v.T`` a row, ``v[..., None, :]``, so that NumPy broadcasts them as the cell language does.
    """

    def value(node: sympy.Expr) -> np.ndarray:
        return evaluate(node, values, matrices, column)

    def vector(result: np.ndarray) -> np.ndarray:
        """A vector's value, as a column in a matrix's expression."""
        return result[..., None] if column and not isinstance(result, float) else result

    if isinstance(expr, MatVec):
        matrix = values[expr.matrix.name]
        operand = evaluate(expr.vector, values, matrices)
        return vector(np.einsum("...ji,...bj->...bi" if expr.transposed else "...ij,...bj->...bi", matrix, operand))
    if isinstance(expr, SampleMatVec):
        matrix, operand = values[expr.matrix.name], evaluate(expr.vector, values, matrices)
        return vector(np.einsum("...ji,...j->...i" if expr.transposed else "...ij,...j->...i", matrix, operand))
    if isinstance(expr, AxisReduction):
        return vector(np.sum(values[expr.vector.name], axis=-1 if isinstance(expr, RowSum) else -2))
    if isinstance(expr, RowVector):
        return evaluate(expr.vector, values, matrices)[..., None, :]
    if isinstance(expr, Reduction) and isinstance(expr.vector, sympy.Symbol) and expr.vector.name in matrices:
        units = values[expr.vector.name]
        return vector(_FUNCTIONS[expr.func](units.reshape(*units.shape[:-2], -1)))
    if isinstance(expr, Reduction):
        return vector(_FUNCTIONS[expr.func](evaluate(expr.vector, values, matrices)))
    if expr.is_Symbol:
        return values[expr.name] if expr.name in matrices else vector(values[expr.name])
    if expr.is_Number or isinstance(expr, sympy.NumberSymbol):
        return float(expr)
    if isinstance(expr, sympy.Add):
        return sum((value(a) for a in expr.args[1:]), value(expr.args[0]))
    if isinstance(expr, sympy.Mul):
        result = value(expr.args[0])
        for arg in expr.args[1:]:
            result = result * value(arg)
        return result
    if isinstance(expr, sympy.Pow):
        base = value(expr.base)
        if expr.exp == sympy.S.Half:
            return np.sqrt(base)
        if isinstance(base, float):  # a number, such as a size in 1/|E|: 1/0 is inf, as in C, not an exception
            with np.errstate(divide="ignore"):
                return float(np.float64(base) ** float(expr.exp))
        return base ** float(expr.exp)
    return _FUNCTIONS[expr.func](*(value(arg) for arg in expr.args))


def forward(
    cell: Cell,
    inputs: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    init: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """States and outputs of every step: dicts of (T, ..., B, size) arrays."""
    steps = next(iter(inputs.values())).shape[0]
    sizes = _sizes(cell, inputs, params, init)

    def extent(size: str) -> tuple[int, ...]:
        return tuple(sizes[d] for d in dims_of(size))

    matrices = frozenset(name for name, size in cell.sizes.items() if matrix_axes(size))
    leads = [a.shape[1:-1] for a in inputs.values()]
    leads += [a.shape[: -len(dims_of(cell.states[s]))] for s, a in init.items()]
    leads += [(*np.shape(params[p.name])[: -len(p.shape) or None], 1) for p in cell.params]
    lead = np.broadcast_shapes(*leads)
    params = {  # a stack of vector parameters gets a batch axis to broadcast against
        p.name: params[p.name][..., None, :] if not p.is_matrix and np.ndim(params[p.name]) > 1 else params[p.name]
        for p in cell.params
    }
    constants = {name: float(value) for name, value in cell.constants.items()}
    state = dict(init)
    states: dict[str, list[np.ndarray]] = {s: [] for s in cell.states}
    outputs: dict[str, list[np.ndarray]] = {y: [] for y in cell.outputs}
    for t in range(steps):
        values = {**constants, **params, **state, **{x: a[t] for x, a in inputs.items()}}
        for eq in cell.equations:
            size = cell.sizes[eq.target.name]
            result = evaluate(eq.expr, values, matrices, column=eq.target.name in matrices)
            values[eq.target.name] = np.broadcast_to(result, (*lead, *extent(size)))
        state = {s: np.broadcast_to(values[s + "'"], (*lead, *extent(cell.states[s]))) for s in cell.states}
        for s in cell.states:
            states[s].append(state[s])
        for y in cell.outputs:
            outputs[y].append(np.broadcast_to(values[y], (*lead, *extent(cell.outputs[y]))))
    return (
        {s: _stack(v, lead, extent(cell.states[s])) for s, v in states.items()},
        {y: _stack(v, lead, extent(cell.outputs[y])) for y, v in outputs.items()},
    )


def _stack(parts: list[np.ndarray], lead: tuple[int, ...], extent: tuple[int, ...]) -> np.ndarray:
    return np.stack(parts) if parts else np.zeros((0, *lead, *extent))


def _sizes(cell: Cell, inputs, params, init) -> dict[str, int]:
    """The size of every named dimension, read off the arrays."""
    sizes = {SCALAR: 1} | {cell.inputs[x]: a.shape[-1] for x, a in inputs.items()}
    for s, a in init.items():
        dims = dims_of(cell.states[s])
        sizes |= dict(zip(dims, a.shape[-len(dims) :], strict=True))
    for p in cell.params:
        for axis, dim in enumerate(reversed(p.shape), start=1):
            sizes.setdefault(dim, np.shape(params[p.name])[-axis])
    return sizes
