"""The SymPy vocabulary of cells: vector names, matrix-vector products and activation functions.

Cell equations are elementwise SymPy expressions over *vector names* (``Var``): each symbol
stands for one element of a vector, so ``f*c + i*g`` is read unit by unit. The only operations
that mix units are matrix-vector products, kept as opaque ``MatVec(W, v)`` nodes (and their
transposes ``MatVecT`` in the backward pass). Activations whose derivative is cheapest in terms
of their own output carry that derivative (``sigmoid' = s*(1-s)``, ``relu' = step(relu)``), so
the derived backward pass reuses forward values instead of recomputing transcendental calls.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

__all__ = [
    "FUNCTIONS",
    "SCALAR",
    "Extent",
    "MatVec",
    "MatVecT",
    "ReduceMean",
    "ReduceSum",
    "Reduction",
    "Var",
    "cross_unit_nodes",
    "matrix_names",
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


def symbols(names: str) -> tuple[Var, ...]:
    """``symbols("W x h")`` gives one :class:`Var` per space-separated name."""
    return tuple(Var(name) for name in names.split())


def next_state(name: str) -> Var:
    """The symbol of a state's next value, written ``h'`` in cell text."""
    return Var(name + PRIME)


class _RealFunction(sympy.Function):
    """A real-valued elementwise function of one real argument."""

    nargs = 1

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real


class sigmoid(_RealFunction):  # noqa: N801 - named as written in cell text
    """Logistic function ``1/(1+exp(-a))``; its derivative is written as ``s*(1-s)``."""

    def _eval_is_positive(self) -> bool | None:
        # told, so that SymPy's assumption queries (is 2 + sigmoid(a) zero?) end at once instead
        # of recursing through the argument, exponentially in nested quotients
        return self.args[0].is_real

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return self * (1 - self)


class step(_RealFunction):  # noqa: N801 - named as written in cell text
    """``1`` where the argument is positive, else ``0``: the derivative of ``relu`` at its output."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.S.Zero


class relu(_RealFunction):  # noqa: N801 - named as written in cell text
    """``max(a, 0)``; its derivative is ``step(relu(a))`` (0 at the kink, as PyTorch)."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return step(self)


class softplus(_RealFunction):  # noqa: N801 - named as written in cell text
    """``log(1 + exp(a))``, evaluated stably; its derivative is ``sigmoid(a)``."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sigmoid(self.args[0])


class MatVec(sympy.Function):
    """``W @ v``: parameter matrix ``W`` (rows x cols) times vector ``v`` (cols)."""

    nargs = 2

    def _eval_is_real(self) -> bool:
        return True

    @property
    def matrix(self) -> Var:
        return self.args[0]

    @property
    def vector(self) -> sympy.Expr:
        return self.args[1]


class MatVecT(MatVec):
    """``W^T @ v``: the transposed product that carries adjoints back through ``W @ v``."""


SCALAR = "1"
"""The size of a per-sample scalar (a reduction's result), which broadcasts over any dimension."""


class Reduction(sympy.Function):
    """A reduction of a vector over its units, one value per sample, broadcast where it is used."""

    nargs = 1
    word = ""

    def _eval_is_real(self) -> bool:
        return True

    @property
    def vector(self) -> sympy.Expr:
        return self.args[0]


class ReduceSum(Reduction):
    """``sum(v)``: the sum of v's units."""

    word = "sum"


class ReduceMean(Reduction):
    """``mean(v)``: the mean of v's units."""

    word = "mean"


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
    if isinstance(expr, Var):
        return {expr.name}
    return set().union(*(vector_names(arg) for arg in expr.args))


def cross_unit_nodes(expr: sympy.Expr) -> list[MatVec | Reduction]:
    """The products and reductions in ``expr`` (the only nodes that mix units), in a deterministic order."""
    return sorted(expr.atoms(MatVec, Reduction), key=sympy.default_sort_key)


def elementwise(expr: sympy.Expr) -> tuple[sympy.Expr, dict[sympy.Dummy, MatVec | Reduction]]:
    """``expr`` with a stand-in symbol for each product and reduction, so that SymPy can
    differentiate it, and the way back (stand-in -> node)."""
    stand_ins = {node: sympy.Dummy(f"m{i}", real=True) for i, node in enumerate(cross_unit_nodes(expr))}
    return expr.xreplace(stand_ins), {dummy: node for node, dummy in stand_ins.items()}


def matrix_names(expr: sympy.Expr) -> set[str]:
    """Names an expression uses as the matrix of a product."""
    return {m.matrix.name for m in expr.atoms(MatVec)}


def variance(vector: sympy.Expr) -> sympy.Expr:
    """``var(v)``: the population variance of v's units, ``mean((v - mean(v))**2)``."""
    return ReduceMean((vector - ReduceMean(vector)) ** 2)


FUNCTIONS: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {
    "sigmoid": sigmoid,
    "tanh": sympy.tanh,
    "relu": relu,
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "softplus": softplus,
    "sum": ReduceSum,
    "mean": ReduceMean,
    "var": variance,
}
"""The functions cell text may call, by name. Each takes one argument: the elementwise functions
act unit by unit; ``sum``, ``mean`` and ``var`` reduce over the units of their argument's dimension
and give one value per sample, which broadcasts."""
