"""Comparing two cells: which declarations, parameters, forward equations and backward terms differ.

Equations are matched by the name they assign (``i``, ``c'``, ``δc``). Where both cells assign a
name differently, the difference is also given as the terms (summands) one cell has and the
other lacks, looking inside a function both apply: the peephole LSTM's
``i = sigmoid(... + c*p_i)`` *adds* ``c*p_i`` to the LSTM's, its ``δc`` adds ``p_f*δf_pre`` and
``p_i*δi_pre``, the extra paths from the peepholes back into the cell state. Backward equations
are compared with the shared temporaries written out, because ``τ1`` of one cell need not be
``τ1`` of the other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..frontend.notation import math_text
from ..symbolic.derive import ADJOINT, Derivation, MatrixGradient, derive
from .diff_html import diff_table


@dataclass(frozen=True)
class Change:
    """One name whose definition differs: ``before`` in the first cell, ``after`` in the second, as
    lines of text (None where a cell lacks it), and the terms only the first (``removed``) or the
    second (``added``) has."""

    name: str
    before: str | None
    after: str | None
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    def terms(self) -> str:
        """``adds c*p_i; drops ...``: the terms only one side has ("" when none, or no terms were compared)."""
        pairs = (("adds", self.added), ("drops", self.removed))
        return "; ".join(f"{word} {', '.join(terms)}" for word, terms in pairs if terms)


@dataclass(frozen=True)
class Section:
    """The changes of one kind (parameters, forward equations ...), the names that are the same
    and, in their order, the line each of those reads in both cells."""

    title: str
    changes: tuple[Change, ...]
    same: tuple[str, ...]
    same_lines: tuple[str, ...]


@dataclass(frozen=True)
class CellDiff:
    """What differs between cells ``first`` and ``second``; ``str()`` gives it as text."""

    first: str
    second: str
    sections: tuple[Section, ...]

    @property
    def identical(self) -> bool:
        return not any(s.changes for s in self.sections)

    def section(self, title: str) -> Section:
        return next(s for s in self.sections if s.title == title)

    def text(self) -> str:
        lines = [f"{self.first} → {self.second}" + (": no differences" if self.identical else "")]
        for section in self.sections:
            lines.append(f"{section.title}:")
            for change in section.changes:
                lines += _change_lines(change, self.first, self.second)
            if section.same:
                lines.append(f"  the same in both: {', '.join(section.same)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The diff as an HTML table, each row marked same, changed or only in one cell."""
        return diff_table(self)

    def __str__(self) -> str:
        return self.text()


def compare(first: Cell | str | os.PathLike, second: Cell | str | os.PathLike) -> CellDiff:
    """The differences between two cells, from declarations down to the parameter gradients.

    Each cell is a :class:`Cell`, a built-in cell's name or a ``.cell`` path. The diff calls
    them by their names, or by their files when the names are the same.
    """
    first, second = cell_argument(first, "first"), cell_argument(second, "second")
    d1, d2 = derive(first), derive(second)
    declarations = _compare_texts(_declarations(first), _declarations(second))
    parameters = _compare_texts(_parameters(first), _parameters(second))
    forward = _compare_exprs(_equations(first), _equations(second), "=")
    backward = _compare_exprs(_backward(d1), _backward(d2), "=")
    gradients = _compare_exprs(_gradients(d1), _gradients(d2), "+=")
    same_name = first.name == second.name
    return CellDiff(
        first.source if same_name else first.name,
        second.source if same_name else second.name,
        (
            Section("inputs, states and outputs", *declarations),
            Section("parameters", *parameters),
            Section("forward equations", *forward),
            Section("backward equations (temporaries written out)", *backward),
            Section("parameter gradients", *gradients),
        ),
    )


def _declarations(cell: Cell) -> dict[str, str]:
    roles = (("input", cell.inputs), ("state", cell.states), ("output", cell.outputs))
    return {name: f"{role} {name}: {dim}" for role, names in roles for name, dim in names.items()}


def _parameters(cell: Cell) -> dict[str, str]:
    return {p.name: f"{p.name} ({', '.join(p.shape)})" for p in cell.params}


def _equations(cell: Cell) -> dict[str, sympy.Expr]:
    return {e.target.name: e.expr for e in cell.equations}


def _backward(derivation: Derivation) -> dict[str, sympy.Expr]:
    """The adjoint equations with every temporary substituted by its value."""
    values: dict[sympy.Symbol, sympy.Expr] = {}
    result = {}
    for eq in derivation.equations:
        expr = eq.expr.xreplace(values)
        if eq.kind == "temporary":
            values[eq.target] = expr
        else:
            result[eq.target.name] = expr
    return result


def _gradients(derivation: Derivation) -> dict[str, sympy.Expr]:
    """Each parameter's accumulated gradient; an outer product ``δm ⊗ v`` is kept as one term."""
    values = {eq.target: eq.expr for eq in derivation.equations if eq.kind == "temporary"}
    terms: dict[str, list[sympy.Expr]] = {}
    for g in derivation.gradients:
        term = sympy.Symbol(g.outer) if isinstance(g, MatrixGradient) else g.expr.xreplace(values)
        terms.setdefault(ADJOINT + g.param, []).append(term)
    return {name: sympy.Add(*parts) for name, parts in terms.items()}


Compared = tuple[tuple[Change, ...], tuple[str, ...], tuple[str, ...]]
"""A section's changes, the names the same in both, and those names' lines."""


def _compare_texts(first: Mapping[str, str], second: Mapping[str, str]) -> Compared:
    changes = [Change(n, first.get(n), second.get(n)) for n in _names(first, second) if first.get(n) != second.get(n)]
    same = tuple(n for n in first if first[n] == second.get(n))
    return tuple(changes), same, tuple(first[n] for n in same)


def _compare_exprs(first: Mapping[str, sympy.Expr], second: Mapping[str, sympy.Expr], sign: str) -> Compared:
    """Changes between equations ``name sign expr`` (``sign`` is ``=``, or ``+=`` for accumulations)."""
    changes = []
    for name in _names(first, second):
        a, b = first.get(name), second.get(name)
        if a is not None and b is not None and a == b:
            continue
        removed, added = _term_changes(a, b) if a is not None and b is not None else ((), ())
        changes.append(
            Change(
                name,
                None if a is None else f"{name} {sign} {math_text(a)}",
                None if b is None else f"{name} {sign} {math_text(b)}",
                tuple(math_text(t) for t in removed),
                tuple(math_text(t) for t in added),
            )
        )
    same = tuple(n for n in first if n in second and first[n] == second[n])
    return tuple(changes), same, tuple(f"{n} {sign} {math_text(first[n])}" for n in same)


def _term_changes(a: sympy.Expr, b: sympy.Expr) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """The summands only ``a`` has and only ``b`` has, inside a one-argument function both apply."""
    if isinstance(a, sympy.Function) and a.func == b.func and len(a.args) == len(b.args) == 1:
        return _term_changes(a.args[0], b.args[0])
    terms_a, terms_b = sympy.Add.make_args(a), sympy.Add.make_args(b)
    return [t for t in terms_a if t not in terms_b], [t for t in terms_b if t not in terms_a]


def _names(first: Mapping[str, object], second: Mapping[str, object]) -> list[str]:
    """Every name, in the second cell's order, then the first cell's names the second lacks."""
    return [*second, *(n for n in first if n not in second)]


def _change_lines(change: Change, first: str, second: str) -> list[str]:
    if change.before is None:
        return [f"  + only in {second}: {change.after}"]
    if change.after is None:
        return [f"  - only in {first}: {change.before}"]
    terms = change.terms()
    lines = [f"  ~ {change.name}" + (f": {terms}" if terms else "")]
    return [*lines, f"      {first}: {change.before}", f"      {second}: {change.after}"]
