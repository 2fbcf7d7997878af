"""Operation counts: what one step of a pass costs, read off the equations code is generated from.

The forward pass is counted from the cell's equations; the backward pass from the derivation's
adjoint equations, its vector-parameter gradient accumulations and its matrix gradients. The
elementwise counts are per unit of the vector an equation assigns (units of different dimensions
count alike), the products per sample:

* every ``+``/``-`` is one add, every ``*`` one multiply, every ``/`` one divide; a negation is
  free (``a - b`` is one add); ``x**n`` for an integer n is ``|n| - 1`` multiplies (the C printer
  writes small powers as products), plus a divide when n < 0;
* a call of a function of the cell language costs what its record in
  :mod:`symgate.frontend.vocabulary` says, plus its arguments: sigmoid, tanh, exp, log, softplus,
  cos, sin and mod (an ``fmod``) one transcendental call each; relu, max, min, abs, clip and floor
  (one rounding instruction), and the steps of derivatives, one comparison; ``sum(v)`` and
  ``mean(v)`` one add per unit of v; sqrt, like any other power that is not an integer one, is
  one transcendental call;
* every distinct ``W @ v`` or ``Wᵀ @ v`` of a pass is one matrix-vector product (``S @ v`` with a
  per-sample matrix too; a row broadcast ``v.T`` is free, and ``rowsum``/``colsum`` one add per
  unit of the matrix), and every matrix
  gradient ``δW += δm ⊗ v`` one outer product (rows × cols multiply-adds each, not counted in the
  elementwise columns); a vector-parameter gradient ``δb += e`` costs e plus one add.

So an LSTM's forward step is 9 adds, 3 multiplies and 5 transcendental calls per unit and 8
matrix-vector products: the numbers to compare two cells by, not a timing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import sympy

from ..frontend.functions import MatVec, RowVector, SampleMatVec
from ..frontend.vocabulary import BY_NODE


@dataclass(frozen=True)
class OpCount:
    """Operations of one step of one pass, per sample (elementwise ones per unit).

    ``str()`` reads ``9 adds, 3 multiplies, 5 transcendental calls per unit; 8 matrix-vector
    products``; divides, comparisons and outer products are named only when there are any.
    """

    adds: int = 0
    multiplies: int = 0
    divides: int = 0
    transcendental: int = 0
    comparisons: int = 0
    products: int = 0
    outer_products: int = 0

    def __add__(self, other: OpCount) -> OpCount:
        return OpCount(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __str__(self) -> str:
        elementwise = [
            _plural(self.adds, "add"),
            _plural(self.multiplies, "multiply", "multiplies"),
            *([_plural(self.divides, "divide")] if self.divides else []),
            _plural(self.transcendental, "transcendental call"),
            *([_plural(self.comparisons, "comparison")] if self.comparisons else []),
        ]
        products = [_plural(self.products, "matrix-vector product")]
        if self.outer_products:
            products.append(_plural(self.outer_products, "outer product"))
        return f"{', '.join(elementwise)} per unit; {', '.join(products)}"


def count_pass(exprs: Iterable[sympy.Expr], accumulations: int = 0, outer_products: int = 0) -> OpCount:
    """The operations of the expressions of one pass (a product shared by several counts once).

    ``accumulations`` adds one add each (``δb += e``); ``outer_products`` are matrix gradients.
    """
    exprs = list(exprs)
    total = sum((_elementwise(e) for e in exprs), OpCount(adds=accumulations, outer_products=outer_products))
    products = set().union(*(e.atoms(MatVec, SampleMatVec) for e in exprs)) if exprs else set()
    return total + OpCount(products=len(products))


def _elementwise(expr: sympy.Expr) -> OpCount:
    """The elementwise operations of one expression, products and reductions' vectors included."""
    if isinstance(expr, (MatVec, SampleMatVec, RowVector)):
        return _elementwise(expr.vector)
    if type(expr) in BY_NODE:
        return sum((_elementwise(a) for a in expr.args), OpCount(**{BY_NODE[type(expr)].cost: 1}))
    if isinstance(expr, sympy.Add):
        return sum((_elementwise(a) for a in expr.args), OpCount(adds=len(expr.args) - 1))
    if isinstance(expr, sympy.Mul):
        return _product(expr)
    if isinstance(expr, sympy.Pow):
        return _power(expr.base, expr.exp)
    if expr.is_Atom:
        return OpCount()
    raise TypeError(f"cannot count the operations of {type(expr).__name__}: {expr}")


def _product(expr: sympy.Mul) -> OpCount:
    """A product ``a*b/(c*d)``: numerator and denominator multiplied out, one divide between them."""
    numerator: list[sympy.Expr] = []
    denominator: list[sympy.Expr] = []
    for factor in expr.args:
        if factor == -1:
            continue  # a negation, folded into an add or a sign
        if isinstance(factor, sympy.Pow) and factor.exp.is_Number and factor.exp < 0:
            denominator.append(sympy.Pow(factor.base, -factor.exp, evaluate=False))
        else:
            numerator.append(factor)
    count = OpCount(
        multiplies=max(len(numerator) - 1, 0) + max(len(denominator) - 1, 0),
        divides=1 if denominator else 0,
    )
    return sum((_elementwise(f) for f in (*numerator, *denominator)), count)


def _power(base: sympy.Expr, exponent: sympy.Expr) -> OpCount:
    """``x**n`` as multiplies (integer n), ``1/...`` for negative n; other powers (sqrt too) are calls."""
    inner = _elementwise(base)
    if exponent.is_Integer:
        n = abs(int(exponent))
        return inner + OpCount(multiplies=n - 1, divides=1 if exponent < 0 else 0)
    return inner + OpCount(transcendental=1, divides=1 if exponent.is_negative else 0)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"
