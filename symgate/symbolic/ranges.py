"""Numbers a kernel's floating-point type cannot hold: refused by name instead of printed as inf or 0.

Every number of a kernel reaches C as a literal of its type (``1.0e+39F`` in float32), which the
compiler rounds to the nearest value of that type: beyond the largest (float32: ±3.4e38) that is
``inf``, below half the smallest subnormal (float32: 1.4e-45) it is ``0``, and the kernel would
compute with it without a word. The parser already keeps every literal within float64, but a
float32 kernel is narrower, and the derivation makes numbers of its own (``3e38*h**2`` has the
derivative ``6e38*h``, ``1e308*h**2`` one beyond float64 too). So before a kernel is rendered,
:func:`check_numbers` looks at every number its passes print and raises a
:class:`~symgate.errors.CellError` naming the constant and the equation (the one whose derivative
made it, for the backward pass). Subnormal numbers (float32: 1.4e-45 to 1.2e-38) are kept: they
have fewer significant digits, but they are not zero.
"""

from __future__ import annotations

from collections.abc import Iterator

import sympy

from ..dtypes import dtype as dtype_of
from ..errors import CellError
from ..frontend.cell import Cell, Equation
from ..frontend.functions import elementwise
from ..frontend.notation import cell_text, math_text
from .derive import Derivation, VectorGradient


def check_numbers(cell: Cell, dtype: str, derivation: Derivation | None) -> None:
    """Raises a :class:`CellError` if a number of ``cell``'s kernels in ``dtype`` would print as
    inf or 0: a constant, a number in an equation, or one the derivation made (``derivation``;
    None for a kernel without a backward pass)."""
    dtype_of(dtype)  # a ValueError naming the choices for an unknown one
    hint = "; build in float64" if dtype == "float32" else "; rescale the equation"
    for name, value in cell.constants.items():
        for number, why in _unfit(value, dtype):
            raise CellError(f"constant {name} = {number} is {why}{hint}", symbol=name, source=cell.source)
    for eq in cell.equations:
        for number, why in _unfit(eq.expr, dtype):
            raise _error(cell, eq, number, f"constant {number} is {why}{hint}")
    if derivation is None:
        return
    backward = [(e.target.name, e.expr) for e in derivation.equations]
    backward += [(f"δ{g.param}", g.expr) for g in derivation.gradients if isinstance(g, VectorGradient)]
    for target, expr in backward:
        for number, why in _unfit(expr, dtype):
            for eq in cell.equations:  # the equation whose derivative made such a number
                flat, _ = elementwise(eq.expr)
                for derived, reason in (u for atom in flat.free_symbols for u in _unfit(flat.diff(atom), dtype)):
                    raise _error(cell, eq, derived, f"differentiating it gives the constant {derived}, {reason}{hint}")
            raise CellError(  # made by combining terms
                f"the backward equation {target} = {math_text(expr)} has the constant {number}, {why}{hint}",
                symbol=str(number),
                source=cell.source,
            )


def _unfit(expr: sympy.Expr, dtype: str) -> Iterator[tuple[sympy.Number, str]]:
    """The numbers in ``expr`` that ``dtype`` cannot hold, each with why."""
    limits = dtype_of(dtype)
    underflow = sympy.Rational(1, 2**limits.underflow_exponent)
    for number in sorted(expr.atoms(sympy.Number), key=sympy.default_sort_key):
        if abs(number) >= limits.overflow:
            yield number, f"beyond the range of {dtype} (±{limits.range_text[0]}): it would be inf"
        elif number != 0 and abs(number) <= underflow:
            yield number, f"below the range of {dtype} (smallest {limits.range_text[1]}): it would be 0"


def _error(cell: Cell, eq: Equation, number: sympy.Number, message: str) -> CellError:
    text = f"{eq.target.name} = {cell_text(eq.expr)}"
    return CellError(message, line=eq.line, symbol=str(number), source=cell.source, text=text)
