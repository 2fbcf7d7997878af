"""How cell expressions read: as cell text (parseable again), as Unicode math, and as LaTeX.

One place decides how ``W @ x``, ``W.T @ v``, primed states and adjoint names look, so the cell
file, ``symgate show``, the LaTeX rendering and the C comments all agree.
"""

from __future__ import annotations

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from .functions import MatVec, RowVector, SampleMatVec, Transposed
from .latex_names import latex_name
from .vocabulary import BY_NODE

TOTAL = "_tot"
"""The suffix of an adjoint that sums a seed and what later equations pass back: ``δc'_tot``."""
PRE = "_pre"
"""The suffix of the adjoint of a gate's pre-activation, the products inside it: ``δf_pre``."""

# '@' binds tighter than '*' in cell text, but products print it in parentheses,
# `2*(W @ x)`, so that a reader used to Python's precedence reads the same thing.
MATVEC_PRECEDENCE = PRECEDENCE["Mul"]
MatVec.precedence = SampleMatVec.precedence = MATVEC_PRECEDENCE


class CellTextPrinter(StrPrinter):
    """Prints expressions in the cell language, so that parsing the output gives them back."""

    transpose_mark = ".T"

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_MatVec(self, expr: MatVec) -> str:
        matrix = self._print(expr.matrix)
        matrix = matrix if isinstance(expr.matrix, (sympy.Symbol, Transposed)) else f"({matrix})"
        vector = self.parenthesize(expr.vector, MATVEC_PRECEDENCE + 1)
        mark = self.transpose_mark if expr.transposed else ""
        return f"{matrix}{mark} @ {vector}"

    _print_MatVecT = _print_SampleMatVec = _print_SampleMatVecT = _print_MatVec

    def _print_Transposed(self, expr: Transposed) -> str:
        return f"{self._print(expr.matrix)}{self.transpose_mark}"

    def _print_RowVector(self, expr: RowVector) -> str:
        return f"{self.parenthesize(expr.vector, PRECEDENCE['Atom'], strict=True)}{self.transpose_mark}"

    def _print_Mul(self, expr: sympy.Mul) -> str:
        """A product with the row of an expression (``a * (b + c)ᵀ``), which only ``outer`` can
        write in cell text, as ``outer(a, b + c)``; any other as SymPy's."""
        rows = [f for f in expr.args if isinstance(f, RowVector) and not isinstance(f.vector, sympy.Symbol)]
        if len(rows) != 1:
            return super()._print_Mul(expr)
        rest = sympy.Mul(*(f for f in expr.args if f is not rows[0]))
        return f"outer({self._print(rest)}, {self._print(rows[0].vector)})"

    def _print_Function(self, expr: sympy.Function) -> str:
        """A call of the language by its name in cell text (``sum``, not ``ReduceSum``); any other as SymPy's."""
        record = BY_NODE.get(type(expr))
        if record is None:
            return super()._print_Function(expr)
        return f"{record.name}({self.stringify(expr.args, ', ')})"


class MathTextPrinter(CellTextPrinter):
    """Prints expressions as plain Unicode math for people (``W_fᵀ @ δa``)."""

    transpose_mark = "ᵀ"


class CellLatexPrinter(LatexPrinter):
    """Prints expressions as LaTeX: ``W_{f} x``, ``U^{\\top} \\delta h``, ``\\sigma(a)``."""

    def _print_Symbol(self, expr: sympy.Symbol, style: str = "plain") -> str:
        """A name by the grammar of :mod:`symgate.frontend.latex_names` (``\\delta c'{}_{\\mathrm{tot}}``)."""
        return latex_name(expr.name)

    def _print_MatVec(self, expr: MatVec, exp: str | None = None) -> str:
        matrix = self._print(expr.matrix)
        if not isinstance(expr.matrix, (sympy.Symbol, Transposed)):
            matrix = rf"\left({matrix}\right)"
        vector = self.parenthesize(expr.vector, PRECEDENCE["Mul"])
        mark = r"^{\top}" if expr.transposed else ""
        text = rf"{matrix}{mark} {vector}"
        return rf"\left({text}\right)^{{{exp}}}" if exp else text

    _print_MatVecT = _print_SampleMatVec = _print_SampleMatVecT = _print_MatVec

    def _print_RowVector(self, expr: RowVector, exp: str | None = None) -> str:
        text = rf"{self.parenthesize(expr.vector, PRECEDENCE['Atom'], strict=True)}^{{\top}}"
        return rf"\left({text}\right)^{{{exp}}}" if exp else text

    def _print_Transposed(self, expr: Transposed, exp: str | None = None) -> str:
        text = rf"{self._print(expr.matrix)}^{{\top}}"
        return rf"\left({text}\right)^{{{exp}}}" if exp else text

    def _print_Function(self, expr: sympy.Function, exp: str | None = None) -> str:
        """A call of the language by the LaTeX name of its record (``\\sigma``); SymPy's own
        functions (``\\tanh``) and any other as SymPy prints them."""
        record = BY_NODE.get(type(expr))
        if record is None or record.latex is None:
            return super()._print_Function(expr, exp)
        arguments = ", ".join(self._print(arg) for arg in expr.args)
        text = rf"{record.latex}\left({arguments}\right)"
        return f"{text}^{{{exp}}}" if exp else text


def cell_text(expr: sympy.Expr) -> str:
    """``expr`` written in cell-language syntax."""
    return CellTextPrinter().doprint(expr)


def math_text(expr: sympy.Expr) -> str:
    """``expr`` as Unicode math, for terminals."""
    return MathTextPrinter().doprint(expr)


def latex(expr: sympy.Expr) -> str:
    """``expr`` as LaTeX."""
    return CellLatexPrinter().doprint(expr)


def latex_rows(rows: list[str], note: str) -> str:
    """Equation rows (``lhs &= rhs``) as one LaTeX ``aligned`` block, ending with a line of text."""
    return r"\begin{aligned}" + r" \\ ".join([*rows, rf"&\text{{{note}}}"]) + r"\end{aligned}"
