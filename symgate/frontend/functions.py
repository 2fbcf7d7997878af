"""The SymPy objects of cells besides function calls: vector names, matrix-vector products, extents.

Cell equations are elementwise SymPy expressions over *vector names* (``Var``): each symbol
stands for one element of a vector, so ``f*c + i*g`` is read unit by unit. The only operations
that mix units are matrix-vector products, kept as opaque ``MatVec(W, v)`` nodes (and
``MatVecT(W, v)`` for ``W.T @ v``, written by the author or by the backward pass), and reductions.
A state or intermediate may also be a matrix per sample (``state S: K x V``), read elementwise
over its K·V units; the nodes that mix its units are its products with a vector
(``SampleMatVec``), its sums along an axis (``rowsum``, ``colsum``) and the broadcast of a vector
as a row (``v.T``, :class:`RowVector`).
The functions a cell can call (activations, reductions) are records of
:mod:`symgate.frontend.vocabulary`, where their SymPy classes are defined; the classes are
importable from here too, beside the products.
"""

from __future__ import annotations

import sympy

from ..arguments import text_argument
from .vocabulary import (
    AxisReduction,
    ColSum,
    ReduceMean,
    ReduceSum,
    Reduction,
    RowSum,
    RowVector,
    relu,
    sigmoid,
    softplus,
    step,
    variance,
)

__all__ = [
    "SCALAR",
    "AxisReduction",
    "ColSum",
    "Extent",
    "MatVec",
    "MatVecT",
    "ReduceMean",
    "ReduceSum",
    "Reduction",
    "RowSum",
    "RowVector",
    "SampleMatVec",
    "SampleMatVecT",
    "Transposed",
    "Var",
    "cross_unit_nodes",
    "dims_of",
    "matrix_axes",
    "matrix_names",
    "matrix_size",
    "next_state",
    "relu",
    "sigmoid",
    "softplus",
    "step",
    "symbols",
    "variance",
    "vector_names",
]

PRIME = "'"


class Var(sympy.Symbol):
    """A named vector (input, state, intermediate, output or parameter), read elementwise.

    ``W @ v`` between two vars builds the matrix-vector product ``MatVec(W, v)``.
    """

    def __new__(cls, name: str) -> Var:
        return super().__new__(cls, name, real=True)

    def __getnewargs_ex__(self):
        return ((self.name,), {})

    def __matmul__(self, other: sympy.Expr) -> MatVec:
        return MatVec(self, sympy.sympify(other, strict=True))

    @property
    def T(self) -> Transposed:
        """``W.T``: this matrix transposed, for the left side of ``@`` (``(W - W.T) @ h``)."""
        return Transposed(self)


def symbols(names: str) -> tuple[Var, ...]:
    """``symbols("W x h")`` gives one :class:`Var` per space-separated name."""
    return tuple(Var(name) for name in text_argument(names, "names").split())


def next_state(name: str) -> Var:
    """The symbol of a state's next value, written ``h'`` in cell text."""
    return Var(text_argument(name, "name") + PRIME)


class _Product(sympy.Function):
    """A matrix times a vector, per sample: ``matrix`` a name, ``vector`` a name or expression."""

    nargs = 2
    transposed = False

    def _eval_is_real(self) -> bool:
        return True

    @property
    def matrix(self) -> Var:
        return self.args[0]

    @property
    def vector(self) -> sympy.Expr:
        return self.args[1]


class MatVec(_Product):
    """``W @ v``: parameter matrix ``W`` (rows x cols) times vector ``v`` (cols)."""


class MatVecT(MatVec):
    """``W.T @ v``: the transposed product, written by the author or by the backward pass, which
    carries adjoints back through ``W @ v`` (and through ``W.T @ v`` with a plain ``MatVec``)."""

    transposed = True


class SampleMatVec(_Product):
    """``S @ v``: a matrix of the sample's own (a matrix state ``S: K x V``, its next value, a
    matrix intermediate) times a vector of size V, giving size K; each sample its own product."""


class SampleMatVecT(SampleMatVec):
    """``S.T @ v``: the per-sample matrix transposed times a vector of size K, giving size V."""

    transposed = True


class Transposed(sympy.Function):
    """``W.T`` as written: a transposed matrix, only ever a term of the left side of ``@``.

    The checker expands ``(W - W.T) @ h`` by linearity into ``W @ h - W.T @ h`` (``MatVec`` and
    ``MatVecT``), so no equation of a checked cell holds this node.
    """

    nargs = 1

    def _eval_is_real(self) -> bool:
        return True

    @property
    def matrix(self) -> sympy.Expr:
        return self.args[0]

    def __matmul__(self, other: sympy.Expr) -> MatVec:
        return MatVec(self, sympy.sympify(other, strict=True))


SCALAR = "1"
"""The size of a per-sample scalar, which broadcasts over any dimension: a reduction's result, or a
name declared with the dimension ``1`` (``input dt: 1``, ``state m: 1``, ``output e: 1 = ...``); a
parameter that meets only such scalars is one learned number, shape ``(1,)``."""


MATRIX_MARK = " x "


def matrix_size(rows: str, cols: str) -> str:
    """The size of a per-sample matrix, ``K x V``, as a declaration writes it; its K·V units are
    laid out row after row."""
    return f"{rows}{MATRIX_MARK}{cols}"


def matrix_axes(size: str) -> tuple[str, str] | None:
    """A matrix size's rows and columns (``K x V`` -> ``("K", "V")``), None for a vector's size."""
    rows, mark, cols = size.partition(MATRIX_MARK)
    return (rows, cols) if mark else None


def dims_of(size: str) -> tuple[str, ...]:
    """The dimension names a size is made of: ``("K", "V")`` for ``K x V``, ``("H",)`` for ``H``."""
    return matrix_axes(size) or (size,)


class Extent(sympy.Symbol):
    """The run-time size of a dimension (``|H|``), as a number in expressions."""

    def __new__(cls, dim: str) -> Extent:
        return super().__new__(cls, f"|{dim}|", positive=True)

    def __getnewargs_ex__(self):
        return ((self.dim,), {})

    @property
    def dim(self) -> str:
        return self.name[1:-1]


def vector_names(expr: sympy.Expr) -> set[str]:
    """Names an expression reads elementwise or as the vector of a product (not matrix names)."""
    if isinstance(expr, MatVec):
        return vector_names(expr.vector)
    if isinstance(expr, SampleMatVec):
        return {expr.matrix.name} | vector_names(expr.vector)
    if isinstance(expr, Var):
        return {expr.name}
    return set().union(*(vector_names(arg) for arg in expr.args))


CrossUnit = MatVec | SampleMatVec | Reduction | AxisReduction | RowVector
"""The nodes that mix units: products, reductions and the row broadcast of a vector."""


def cross_unit_nodes(expr: sympy.Expr) -> list[CrossUnit]:
    """The products, reductions and row broadcasts in ``expr`` (the only nodes that mix units),
    in a deterministic order."""
    return sorted(expr.atoms(MatVec, SampleMatVec, Reduction, AxisReduction, RowVector), key=sympy.default_sort_key)


def elementwise(expr: sympy.Expr) -> tuple[sympy.Expr, dict[sympy.Dummy, CrossUnit]]:
    """``expr`` with a stand-in symbol for each product and reduction, so that SymPy can
    differentiate it, and the way back (stand-in -> node)."""
    stand_ins = {node: sympy.Dummy(f"m{i}", real=True) for i, node in enumerate(cross_unit_nodes(expr))}
    return expr.xreplace(stand_ins), {dummy: node for node, dummy in stand_ins.items()}


def matrix_names(expr: sympy.Expr) -> set[str]:
    """Names an expression uses as the matrix of a product."""
    return {m.matrix.name for m in expr.atoms(MatVec)}
