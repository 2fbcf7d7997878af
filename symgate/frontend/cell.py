"""A checked cell: every name has a role and a size, and the equations are in evaluation order.

This is what the rest of the pipeline consumes. It is produced only by :func:`symgate.frontend.check.check`
(from text or from SymPy objects), so holding a ``Cell`` means the equations are well formed:
each state has one update, every intermediate is assigned once before use, and every vector and
matrix has a size expressed in the cell's named dimensions (``D``, ``H`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import sympy

from ..symbolic.opcount import OpCount, count_pass
from .functions import PRIME, SCALAR, Var, dims_of
from .notation import cell_text, latex, latex_name, latex_rows, math_text
from .provenance import tag_legend
from .shapes import shape_text


@dataclass(frozen=True)
class Param:
    """A trained tensor: a vector ``(dim,)`` or a matrix ``(rows, cols)``, sizes as dimension names."""

    name: str
    shape: tuple[str, ...]

    @property
    def is_matrix(self) -> bool:
        return len(self.shape) == 2


@dataclass(frozen=True)
class Equation:
    """``target = expr`` for one step; ``kind`` says whether target is a state's next value or an output."""

    target: Var
    expr: sympy.Expr
    kind: Literal["intermediate", "next", "output", "adjoint", "temporary"]
    line: int | None = None
    sized: bool = False  # an intermediate whose size the author wrote (``m: M = ...``)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell, checked and with every size inferred.

    ``inputs``, ``states`` and ``outputs`` map names to dimension names, in declaration order;
    ``sizes`` maps every vector name (including intermediates and ``h'``) to its dimension.
    """

    name: str
    inputs: dict[str, str]
    states: dict[str, str]
    outputs: dict[str, str]
    params: tuple[Param, ...]
    equations: tuple[Equation, ...]
    sizes: dict[str, str]
    doc: str = ""
    source: str = "<string>"
    constants: dict[str, sympy.Expr] = field(default_factory=dict)
    params_declared: bool = False  # the author declared every parameter (``param W: H x D``)
    lines: tuple[str, ...] = field(default=(), compare=False, repr=False)  # the text's lines, for errors to quote
    constant_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # const name -> line

    def line_text(self, line: int | None) -> str | None:
        """The text of a 1-based line as the author wrote it, or None (a cell from SymPy objects has none)."""
        return self.lines[line - 1] if line is not None and 1 <= line <= len(self.lines) else None

    @cached_property
    def dims(self) -> tuple[str, ...]:
        """The dimension names a user must give sizes for, in first-declared order."""
        seen: dict[str, None] = {}
        for size in [*self.inputs.values(), *self.states.values(), *self.sizes.values()]:
            for dim in dims_of(size):
                if dim != SCALAR:
                    seen.setdefault(dim, None)
        return tuple(seen)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def text(self) -> str:
        """The cell in canonical cell-language text; parsing it gives this cell back."""
        lines = [f"cell {self.name}"]
        if self.inputs:
            lines.append("input " + ", ".join(f"{n}: {d}" for n, d in self.inputs.items()))
        lines.append("state " + ", ".join(f"{n}: {d}" for n, d in self.states.items()))
        if self.params_declared:
            lines += [f"param {p.name}: {shape_text(p.shape)}" for p in self.params]
        lines += [f"const {n} = {cell_text(v)}" for n, v in self.constants.items()]
        for eq in self.equations:
            target = eq.target.name
            if eq.kind == "output" or eq.sized:
                target = f"{'output ' if eq.kind == 'output' else ''}{target}: {self.sizes[target]}"
            lines.append(f"{target} = {cell_text(eq.expr)}")
        return "\n".join(lines) + "\n"

    def fingerprint(self) -> str:
        """The canonical text plus the exact SymPy form of every expression and the parameters'
        shapes (a scalar parameter is read unlike a vector one): what a kernel depends on. The
        shapes are in name order: the order of the parameters follows where the text names them
        first, which the canonical text's term order may change, and a kernel takes its arrays by
        name through its interface, so that order is not part of what it computes."""
        exact = [sympy.srepr(e.expr) for e in self.equations] + [sympy.srepr(v) for v in self.constants.values()]
        shapes = sorted(f"{p.name}: {' x '.join(p.shape)}" for p in self.params)
        return self.text() + "\n".join(exact + shapes)

    def describe(self) -> str:
        """Equations and parameter shapes as Unicode text, for ``symgate show``."""
        out = [f"cell {self.name}"]
        if self.doc:
            out += ["", *(f"  {line}" for line in self.doc.splitlines())]
            out += [f"  {line}" for line in tag_legend(self.doc)] + [""]
        out.append("  inputs:  " + ", ".join(f"{n} ({d})" for n, d in self.inputs.items()))
        out.append("  states:  " + ", ".join(f"{n} ({d})" for n, d in self.states.items()))
        if self.outputs:
            out.append("  outputs: " + ", ".join(f"{n} ({d})" for n, d in self.outputs.items()))
        if self.constants:
            out.append("  constants: " + ", ".join(f"{n} = {cell_text(v)}" for n, v in self.constants.items()))
        out.append("  parameters:")
        out += [f"    {p.name:<12} ({', '.join(p.shape)})" for p in self.params]
        out.append("  forward step:")
        out += [f"    {e.target.name} = {math_text(e.expr)}" for e in self.equations]
        out.append(f"  forward, per step and sample: {self.operations()}")
        return "\n".join(out)

    def operations(self) -> OpCount:
        """What one forward step costs (see :mod:`symgate.symbolic.opcount`)."""
        return count_pass(e.expr for e in self.equations)

    def latex_equations(self) -> list[str]:
        """The forward equations in LaTeX, one a row (``c' &= c f + g i``), ``&`` at the sign."""
        return [rf"{latex_name(e.target.name)} &= {latex(e.expr)}" for e in self.equations]

    def latex(self) -> str:
        """The forward equations as a LaTeX ``aligned`` block, ending with the operation count."""
        return latex_rows(self.latex_equations(), f"forward, per step and sample: {self.operations()}")

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __str__(self) -> str:
        return self.text()


def next_name(state: str) -> str:
    """The name of a state's next value (``h`` -> ``h'``)."""
    return state + PRIME
