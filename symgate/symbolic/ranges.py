"""Numbers a kernel's floating-point type cannot hold: refused by name instead of printed as inf or 0.

Every number of a kernel reaches C as a literal of its type (``1.0e+39F`` in float32), which the
compiler rounds to the nearest value of that type: beyond the largest (float32: ±3.4e38) that is
``inf``, below half the smallest subnormal (float32: 1.4e-45) it is ``0``, and the kernel would
compute with it without a word. The checker has folded every constant part of a cell to one
number within float64 (:mod:`symgate.frontend.constants`), but a float32 kernel is narrower,
and the derivation makes numbers of its own (``3e38*h**2`` has the derivative ``6e38*h``,
``1e308*h**2`` one beyond float64 too). So before a kernel is rendered, :func:`check_numbers`
looks at every number its passes print and raises a :class:`~symgate.errors.CellError` naming the
constant and the equation (the one whose derivative made it, for the backward pass), quoting the
line as the author wrote it. Subnormal numbers (float32: 1.4e-45 to 1.2e-38) are kept: they
have fewer significant digits, but they are not zero.
"""

from __future__ import annotations

from collections.abc import Iterator

import sympy

from ..dtypes import dtype as dtype_of
from ..errors import CellError
from ..frontend.cell import Cell, Equation
from ..frontend.constants import Fail, constant_values, number_text, unfit
from ..frontend.functions import elementwise
from ..frontend.notation import cell_text, math_text
from .derive import Derivation, VectorGradient


def check_numbers(cell: Cell, dtype: str, derivation: Derivation | None) -> None:
    """Raises a :class:`CellError` if a number of ``cell``'s kernels in ``dtype`` would print as
    inf or 0: a constant, a number in an equation, or one the derivation made (``derivation``;
    None for a kernel without a backward pass). Errors quote the line as the author wrote it."""
    dtype_of(dtype)  # a ValueError naming the choices for an unknown one
    hint = "; build in float64" if dtype == "float32" else "; rescale the equation"
    for name, value in cell.constants.items():
        line = cell.constant_lines.get(name)
        fail = _failure(cell, line, None)
        for number, why in _unfit(value, dtype, fail):
            raise fail(f"constant {name} = {number_text(number)} is {why}{hint}", name)
    for eq in cell.equations:
        fail = _failure(cell, eq.line, eq)
        for number, why in _unfit(eq.expr, dtype, fail):
            raise fail(f"constant {number_text(number)} is {why}{hint}", number_text(number))
    if derivation is None:
        return
    backward = [(e.target.name, e.expr) for e in derivation.equations]
    backward += [(f"δ{g.param}", g.expr) for g in derivation.gradients if isinstance(g, VectorGradient)]
    for target, expr in backward:
        for number, why in _unfit(expr, dtype, _failure(cell, None, None)):
            for eq in cell.equations:  # the equation whose derivative made such a number
                flat, _ = elementwise(eq.expr)
                fail = _failure(cell, eq.line, eq)
                for derived, reason in (u for atom in flat.free_symbols for u in _unfit(flat.diff(atom), dtype, fail)):
                    message = f"differentiating it gives the constant {number_text(derived)}, {reason}{hint}"
                    raise fail(message, number_text(derived))
            raise CellError(  # made by combining terms
                f"the backward equation {target} = {math_text(expr)} has the constant {number_text(number)}, "
                f"{why}{hint}",
                symbol=number_text(number),
                source=cell.source,
            )


def _unfit(expr: sympy.Expr, dtype: str, fail: Fail) -> Iterator[tuple[sympy.Expr, str]]:
    """The values of the constant parts of ``expr`` that ``dtype`` cannot hold, each with why
    (the checker has folded each part of a cell to a number; a derivation may combine them)."""
    for _, value in sorted(set(constant_values(expr, fail)), key=sympy.default_sort_key):
        why = unfit(value, dtype)
        if why:
            yield value, why


def _failure(cell: Cell, line: int | None, eq: Equation | None) -> Fail:
    """Makes the errors about ``line``: they quote it as written, or ``eq`` in canonical form for a cell
    without text (from :func:`~symgate.frontend.define.define`)."""
    text = cell.line_text(line)
    if text is None and eq is not None:
        text = f"{eq.target.name} = {cell_text(eq.expr)}"

    def fail(message: str, symbol: str) -> CellError:
        return CellError(message, line=line, symbol=symbol, source=cell.source, text=text)

    return fail
