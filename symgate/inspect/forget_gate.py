"""Forget gates, found from the equations: the sigmoid gate that scales a state's previous value.

A state ``s`` has a forget gate when its update multiplies ``s`` itself by a sigmoid gate:
``c' = f*c + i*g`` (the LSTM, gate ``f``), ``h' = z*h + (1 - z)*h_tilde`` (a GRU, gate ``z``), or
by one minus it, ``h' = (1 - f)*h + f*h_tilde`` (the MGU, where a larger ``f`` forgets more). The
gate's bias is the vector parameter added inside its sigmoid. Setting that bias is the usual
way to make a gated cell remember longer at initialisation (Gers et al. 2000; Jozefowicz et al.
2015 use 1), and it is found here from the equations, never from a cell's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import sympy

from ..errors import SymgateError
from ..frontend.cell import Cell, next_name
from ..frontend.cells import cell_argument
from ..frontend.functions import Var, cross_unit_nodes, sigmoid
from ..frontend.notation import math_text


@dataclass(frozen=True)
class ForgetGate:
    """The sigmoid gate ``gate`` scales state ``state`` in its update: ``keeps`` is +1 for ``gate*s``,
    -1 for ``(1 - gate)*s``; ``biases`` are the vector parameters added inside the sigmoid."""

    state: str
    gate: str
    keeps: int
    biases: tuple[str, ...]


def forget_gates(cell: Cell | str | os.PathLike) -> list[ForgetGate]:
    """The forget gate of every state that has one, in the order the states are declared (``cell`` a
    ``Cell``, a built-in name or a ``.cell`` path).

    The update is read elementwise, with the intermediates that are not gates written out
    (``k = c*f; c' = j + k`` scales c by f; ``f = 1 - i; c' = c*f + ...`` by ``1 - i``).
    """
    cell = cell_argument(cell)
    definitions = {e.target.name: e.expr for e in cell.equations}
    vectors = [p.name for p in cell.params if not p.is_matrix]
    stand_ins: dict[sympy.Expr, sympy.Dummy] = {}
    gates = []
    for state in cell.states:
        update = _elementwise(definitions[next_name(state)], definitions, stand_ins)
        coefficient = update.diff(Var(state))
        for gate, keeps in ((coefficient, 1), (sympy.expand(1 - coefficient), -1)):
            activation = definitions.get(gate.name) if isinstance(gate, Var) else gate
            if isinstance(activation, sigmoid):
                inside = sympy.Add.make_args(_elementwise(activation.args[0], definitions, stand_ins))
                names = {term.name for term in inside if isinstance(term, Var)}
                back = {dummy: node for node, dummy in stand_ins.items()}
                label = gate.name if isinstance(gate, Var) else math_text(gate.xreplace(back))
                gates.append(ForgetGate(state, label, keeps, tuple(p for p in vectors if p in names)))
                break
    return gates


def forget_bias_problem(cell: Cell | str | os.PathLike) -> str | None:
    """Why ``cell``'s forget-gate bias cannot be set (it has no forget gate, or one without a bias), or None."""
    cell = cell_argument(cell)
    gates = forget_gates(cell)
    if not gates:
        return (
            f"cell {cell.name} has no forget gate: no state's update multiplies its previous value by a "
            "sigmoid gate (as c' = f*c + ... does), so there is no forget-gate bias to set"
        )
    unbiased = [g for g in gates if not g.biases]
    if unbiased:
        gate = unbiased[0]
        return (
            f"cell {cell.name}: the forget gate {gate.gate} of state {gate.state} has no bias parameter "
            "(a vector parameter added inside its sigmoid) to set"
        )
    return None


def forget_bias_values(cell: Cell | str | os.PathLike, value: float) -> dict[str, float]:
    """The bias parameters to fill, and with what, to give every forget gate the total bias ``value``.

    A gate's first bias gets the value and any others 0 (PyTorch's ``b_if + b_hf``); a gate that
    forgets as it grows (``(1 - f)*s``) gets ``-value``, so that the share of the state kept is
    ``sigmoid(value + ...)`` in every cell alike. Raises :class:`SymgateError` naming the cell when
    it has no forget gate, or a forget gate without a bias parameter.
    """
    cell = cell_argument(cell)
    problem = forget_bias_problem(cell)
    if problem:
        raise SymgateError(problem)
    values: dict[str, float] = {}
    for gate in forget_gates(cell):
        first, *others = gate.biases
        values |= {first: gate.keeps * value} | dict.fromkeys(others, 0.0)
    return values


def _elementwise(expr: sympy.Expr, definitions: dict[str, sympy.Expr], stand_ins: dict) -> sympy.Expr:
    """``expr`` with products and reductions as opaque symbols and every non-gate intermediate inlined."""
    expr = expr.xreplace({node: stand_ins.setdefault(node, sympy.Dummy()) for node in cross_unit_nodes(expr)})
    inline = {
        symbol: _elementwise(definitions[symbol.name], definitions, stand_ins)
        for symbol in expr.free_symbols
        if isinstance(symbol, Var) and symbol.name in definitions and not isinstance(definitions[symbol.name], sigmoid)
    }
    return expr.xreplace(inline)
