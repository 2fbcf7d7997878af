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
from ..frontend.functions import SCALAR, MatVec, MatVecT
from ..frontend.vocabulary import BY_NODE

_FUNCTIONS = {node: record.numpy for node, record in BY_NODE.items()}
"""The NumPy function of each SymPy node of the language (a dict, so a test can swap one)."""


def evaluate(expr: sympy.Expr, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The value of an elementwise expression; ``values`` maps names to arrays."""
    if isinstance(expr, MatVec):
        matrix = values[expr.matrix.name]
        vector = evaluate(expr.vector, values)
        return np.einsum("...ji,...bj->...bi" if isinstance(expr, MatVecT) else "...ij,...bj->...bi", matrix, vector)
    if expr.is_Symbol:
        return values[expr.name]
    if expr.is_Number or isinstance(expr, sympy.NumberSymbol):
        return float(expr)
    if isinstance(expr, sympy.Add):
        return sum((evaluate(a, values) for a in expr.args[1:]), evaluate(expr.args[0], values))
    if isinstance(expr, sympy.Mul):
        result = evaluate(expr.args[0], values)
        for arg in expr.args[1:]:
            result = result * evaluate(arg, values)
        return result
    if isinstance(expr, sympy.Pow):
        base = evaluate(expr.base, values)
        if expr.exp == sympy.S.Half:
            return np.sqrt(base)
        if isinstance(base, float):  # a number, such as a size in 1/|E|: 1/0 is inf, as in C, not an exception
            with np.errstate(divide="ignore"):
                return float(np.float64(base) ** float(expr.exp))
        return base ** float(expr.exp)
    return _FUNCTIONS[expr.func](*(evaluate(arg, values) for arg in expr.args))


def forward(
    cell: Cell,
    inputs: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    init: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """States and outputs of every step: dicts of (T, ..., B, size) arrays."""
    steps = next(iter(inputs.values())).shape[0]
    sizes = _sizes(cell, inputs, params, init)
    leads = [a.shape[1:-1] for a in inputs.values()] + [a.shape[:-1] for a in init.values()]
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
            shape = (*lead, sizes[cell.sizes[eq.target.name]])
            values[eq.target.name] = np.broadcast_to(evaluate(eq.expr, values), shape)
        state = {s: np.broadcast_to(values[s + "'"], (*lead, sizes[cell.states[s]])) for s in cell.states}
        for s in cell.states:
            states[s].append(state[s])
        for y in cell.outputs:
            outputs[y].append(np.broadcast_to(values[y], (*lead, sizes[cell.outputs[y]])))
    return (
        {s: _stack(v, lead, sizes[cell.states[s]]) for s, v in states.items()},
        {y: _stack(v, lead, sizes[cell.outputs[y]]) for y, v in outputs.items()},
    )


def _stack(parts: list[np.ndarray], lead: tuple[int, ...], size: int) -> np.ndarray:
    return np.stack(parts) if parts else np.zeros((0, *lead, size))


def _sizes(cell: Cell, inputs, params, init) -> dict[str, int]:
    """The size of every named dimension, read off the arrays."""
    sizes = {SCALAR: 1} | {cell.inputs[x]: a.shape[-1] for x, a in inputs.items()}
    sizes |= {cell.states[s]: a.shape[-1] for s, a in init.items()}
    for p in cell.params:
        for axis, dim in enumerate(reversed(p.shape), start=1):
            sizes.setdefault(dim, np.shape(params[p.name])[-axis])
    return sizes
