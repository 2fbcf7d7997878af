"""Matrix expressions on the left of ``@``: ``(W - W.T) @ h`` becomes ``W @ h - W.T @ h``.

The left side of ``@`` may be a parameter matrix, its transpose (``W.T``) or a sum of their
multiples by numbers and constants: the Antisymmetric RNN's ``(W - W.T) @ h``, the Lipschitz
RNN's ``((1 - beta)*(M + M.T) + beta*(M - M.T)) @ h``. The checker expands such a product by
linearity into one ``MatVec(W, v)`` or ``MatVecT(W, v)`` per distinct matrix and transposition,
each with the sum of its coefficients (``M @ h + (1 - 2*beta)*(M.T @ h)``), so every later stage
sees only the two kinds of product it already handles: each is computed once (``W @ h`` and
``W.T @ h`` in one stacked matrix product), and ``W``'s gradient collects ``δ ⊗ h`` from the one
and ``h ⊗ δ`` from the other.

No matrix is formed by adding matrices: ``W - W.T`` would cost a matrix sum per call and a
workspace matrix, save no matrix-vector product (the two products share one stacked product),
and need its own gradient path back to ``W``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy

from ..errors import CellError
from .functions import MatVec, MatVecT, Transposed, Var
from .notation import cell_text

Fail = Callable[[str, str], CellError]
"""Builds the error for a message and the symbol it names, at the equation being expanded."""


def expand_matrix_products(
    expr: sympy.Expr, constants: set[str], fail: Fail, written: dict[sympy.Expr, sympy.Expr]
) -> sympy.Expr:
    """``expr`` with every product whose left side is a matrix expression expanded by linearity.

    ``constants`` are the names that scale a matrix (``beta`` in ``beta*W``); every other name on
    the left of ``@`` is a matrix. A ``W.T`` anywhere but there is an error. ``written`` receives
    each expansion and the product as written, for messages (:func:`as_written`).
    """
    expanded = _rebuild(expr, constants, fail, written)
    stray = sorted(expanded.atoms(Transposed), key=sympy.default_sort_key)
    if stray:
        written = cell_text(stray[0])
        raise fail(
            f"`{written}` is a transposed matrix, which only the left side of '@' may hold: write `{written} @ v`",
            written,
        )
    return expanded


def as_written(expr: sympy.Expr, written: Mapping[sympy.Expr, sympy.Expr]) -> sympy.Expr:
    """``expr`` with every expanded product put back as written: ``W @ h - W.T @ h + b`` reads
    ``(W - W.T) @ h + b`` again."""
    if not written or not expr.args:
        return expr
    expr = expr.func(*(as_written(arg, written) for arg in expr.args))
    if not isinstance(expr, sympy.Add):
        return written.get(expr, expr)
    terms = list(expr.args)
    for expanded, product in written.items():
        parts = sympy.Add.make_args(expanded)
        if all(part in terms for part in parts):
            terms = [term for term in terms if term not in parts] + [product]
    return sympy.Add(*terms)


def _rebuild(node: sympy.Expr, constants: set[str], fail: Fail, written: dict[sympy.Expr, sympy.Expr]) -> sympy.Expr:
    if not node.args or isinstance(node, Var):
        return node
    args = [_rebuild(arg, constants, fail, written) for arg in node.args]
    if isinstance(node, MatVec) and not isinstance(args[0], Var):
        expanded = _linear(node.func, args[0], args[1], constants, fail)
        written[expanded] = MatVec(args[0], args[1])
        return expanded
    return node.func(*args)


def _linear(product: type[MatVec], left: sympy.Expr, vector: sympy.Expr, constants: set[str], fail: Fail) -> sympy.Expr:
    """``left @ vector`` as a sum of products, one per matrix and transposition."""
    written = cell_text(MatVec(left, vector))
    if product is MatVecT:
        raise fail(f"`{written}`: MatVecT takes a matrix name; write the transpose as W.T", written)
    coefficients: dict[tuple[str, bool], sympy.Expr] = {}
    for term in sympy.Add.make_args(sympy.expand(left)):
        matrix, coefficient = _split(term, written, vector, constants, fail)
        coefficients[matrix] = coefficients.get(matrix, sympy.S.Zero) + coefficient
    return sympy.Add(
        *(
            coefficient * (MatVecT if transposed else MatVec)(Var(name), vector)
            for (name, transposed), coefficient in sorted(coefficients.items())
        )
    )


def _split(
    term: sympy.Expr, written: str, vector: sympy.Expr, constants: set[str], fail: Fail
) -> tuple[tuple[str, bool], sympy.Expr]:
    """One term of a matrix expression as ((matrix name, transposed), coefficient)."""
    matrices, coefficient = [], sympy.S.One
    for factor in sympy.Mul.make_args(term):
        if isinstance(factor, Transposed) or (isinstance(factor, Var) and factor.name not in constants):
            matrices.append(factor)
        elif factor.has(MatVec, Transposed) or any(
            isinstance(s, Var) and s.name not in constants for s in factor.free_symbols
        ):
            text = cell_text(factor)
            raise fail(
                f"`{text}` in `{written}`: the left side of '@' may only add, subtract and scale parameter "
                "matrices by numbers and constants, as (2*W - W.T)",
                text,
            )
        else:
            coefficient *= factor
    if not matrices:
        text = cell_text(term)
        kind = "number" if term.is_number else "constant"
        raise fail(
            f"`{text}` in `{written}` is a {kind}, not a matrix, and the cell language has no identity "
            f"matrix: take it out of the product and write `{cell_text(term * vector)}` beside it",
            text,
        )
    if len(matrices) > 1:
        text = cell_text(sympy.Mul(*matrices))
        names = [m.name for m in matrices if isinstance(m, Var)]
        hint = f"; if {' or '.join(names)} is a number, declare it with `const`" if names else ""
        raise fail(
            f"`{text}` in `{written}` multiplies matrices; each term of the left side of '@' is one matrix "
            f"(W or W.T) times numbers and constants{hint}",
            text,
        )
    matrix = matrices[0]
    if isinstance(matrix, Transposed):
        if not isinstance(matrix.matrix, Var):
            text = cell_text(matrix)
            raise fail(f"`{text}` in `{written}`: only a parameter matrix name can be transposed, as W.T", text)
        return (matrix.matrix.name, True), coefficient
    return (matrix.name, False), coefficient
