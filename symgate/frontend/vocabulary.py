"""The functions of the cell language: one record each, which every stage that must know them reads.

A function's facts live in its record and nowhere else: its name in cell text and its number of
arguments, the SymPy node a call builds, its C spelling, its complex-C spelling for the
complex-step kernel, its NumPy reference, its LaTeX, and what it costs in the operation count.
The parser (names, arities), the checker, the C printer, the NumPy reference, the notation
printers and the operation count read :data:`FUNCTIONS` and :data:`BY_NODE` instead of naming
functions themselves. So adding an activation is its record below, with its SymPy class when
SymPy has none or SymPy's is not the function meant (whose ``fdiff`` is the derivative the backward
pass uses: the functions with kinks are in :mod:`symgate.frontend.piecewise`), the C helper when
libm has none (``sg_...`` in templates/symgate_runtime.h, beside the others); tests/test_functions.py
makes its cases from this table, so the new record is checked against the compiled kernels with
no line added there.

Activations whose derivative is cheapest in terms of their own output carry that derivative
(``sigmoid' = s*(1-s)``, ``relu' = step(relu)``), so the derived backward pass reuses forward
values instead of recomputing transcendental calls. ``step`` exists for that, and ``above``,
``sign``, ``within`` and ``floordiv`` are the derivatives of ``max``/``min``, ``abs``, ``clip``
and ``mod``: backward passes use them, cell text cannot call them. Two functions are composites,
built of others: ``sqrt(a)`` is the power ``a**(1/2)`` (printed, evaluated and counted as a
power) and ``var(v)`` is ``mean((v - mean(v))**2)``. The matrix-vector product ``W @ v`` is an
operator, not a call: it is :class:`~symgate.frontend.functions.MatVec`, lowered to loops or BLAS
before anything is printed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import sympy

from .piecewise import (
    above,
    absolute,
    clip,
    floor_quotient,
    floored,
    maximum,
    minimum,
    remainder,
    signum,
    step,
    within,
)

__all__ = [
    "BY_NODE",
    "FUNCTIONS",
    "HELPER_PREFIX",
    "VOCABULARY",
    "AxisReduction",
    "ColSum",
    "Composite",
    "Cost",
    "Matrices",
    "Primitive",
    "ReduceMean",
    "ReduceSum",
    "Reduction",
    "RowSum",
    "RowVector",
    "relu",
    "sigmoid",
    "softplus",
    "step",
    "variance",
]

HELPER_PREFIX = "sg_"
"""A C spelling starting so is a helper of the runtime header (templates/symgate_runtime.h), not a libm function."""


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


class relu(_RealFunction):  # noqa: N801 - named as written in cell text
    """``max(a, 0)``; its derivative is ``step(relu(a))`` (0 at the kink, as PyTorch)."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return step(self)


class softplus(_RealFunction):  # noqa: N801 - named as written in cell text
    """``log(1 + exp(a))``, evaluated stably; its derivative is ``sigmoid(a)``."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sigmoid(self.args[0])


class _OneOperand(sympy.Function):
    """A node of one per-sample operand, a vector or a matrix, named by the checker."""

    nargs = 1

    def _eval_is_real(self) -> bool:
        return True

    @property
    def vector(self) -> sympy.Expr:
        """The operand (named ``vector`` for every node, a matrix's too)."""
        return self.args[0]


class _Reducing(_OneOperand):
    """A node with a record of its own in the vocabulary, a call in cell text."""

    @property
    def word(self) -> str:
        """Its name in cell text (``sum``), as its record gives it."""
        return BY_NODE[type(self)].name


class Reduction(_Reducing):
    """A reduction of a vector over its units, one value per sample, broadcast where it is used."""


class ReduceSum(Reduction):
    """``sum(v)``: the sum of v's units (of all K·V units of a matrix)."""


class ReduceMean(Reduction):
    """``mean(v)``: the mean of v's units."""


class RowVector(_OneOperand):
    """``v.T`` in an elementwise expression: the vector v as a row, broadcast down every row of a
    matrix (``S * g.T`` scales column j of S by g_j); ``outer(a, b)`` is ``a * b.T``. A vector
    written plainly beside a matrix is a column, broadcast along every row (``f * S`` scales row
    i by f_i)."""


class AxisReduction(_Reducing):
    """A sum of a per-sample matrix along one axis, a vector per sample."""


class RowSum(AxisReduction):
    """``rowsum(S)``: the sum of each row of a K x V matrix, a vector of size K (``S @ 1``)."""


class ColSum(AxisReduction):
    """``colsum(S)``: the sum of each column of a K x V matrix, a vector of size V (``S.T @ 1``)."""


def outer(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    """``outer(a, b)``: the outer product a bᵀ, K x V from a of size K and b of size V."""
    return a * RowVector(b)


def variance(vector: sympy.Expr) -> sympy.Expr:
    """``var(v)``: the population variance of v's units, ``mean((v - mean(v))**2)``."""
    return ReduceMean((vector - ReduceMean(vector)) ** 2)


Matrices = Literal["argument", "result"] | None
"""Where a function meets per-sample matrices: it reduces one (``rowsum``), makes one (``outer``),
or neither (None: vectors in, a vector out, as every elementwise function and ``sum`` of a vector)."""

Cost = Literal["adds", "transcendental", "comparisons"]
"""What one call costs in the operation count: one of these (a field of ``OpCount``), per unit."""


@dataclass(frozen=True, kw_only=True)
class Primitive:
    """A function whose calls are SymPy nodes of its own class, ``node``.

    ``c`` is its C spelling: a libm name (the printer adds ``f`` in float32 kernels, from its type
    settings) or an ``sg_`` helper of the kernel template; ``complex_c`` the complex-analytic one
    for the complex-step kernel (``<complex.h>`` or an ``sg_c`` helper). Both are None for a
    reduction, which is lowered to loops before printing. ``numpy`` is the reference the kernels
    are checked against (arrays ``(..., B, size)``), ``latex`` its LaTeX name (None: as SymPy
    prints it, ``\\tanh``, ``e^{a}``), ``cost`` what one call costs. ``in_cell_text`` is False for
    a function only derivatives make (``step``). ``constant_arguments`` are the positions (from 0)
    of the arguments a cell must give as constants, numbers or ``const`` names (``clip``'s bounds).
    """

    name: str
    node: type[sympy.Function]
    c: str | None
    complex_c: str | None
    numpy: Callable[..., np.ndarray]
    cost: Cost
    latex: str | None = None
    arity: int = 1
    in_cell_text: bool = True
    constant_arguments: tuple[int, ...] = ()
    matrices: Matrices = None

    @property
    def build(self) -> Callable[..., sympy.Expr]:
        """What a call in cell text makes of its arguments: the node itself."""
        return self.node


@dataclass(frozen=True, kw_only=True)
class Composite:
    """A function built of other operations of the language (``var`` of ``mean``): every stage
    after the parser sees only what ``build`` makes of the arguments."""

    name: str
    build: Callable[..., sympy.Expr]
    arity: int = 1
    in_cell_text: bool = True
    constant_arguments: tuple[int, ...] = ()
    matrices: Matrices = None


def _step(a: np.ndarray) -> np.ndarray:
    return np.where(a > 0, 1.0, np.where(a <= 0, 0.0, a))  # NaN stays NaN, as in the kernels


def _above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a > b, 1.0, np.where(a < b, 0.0, np.where(a == b, 0.5, a + b)))  # a + b: NaN


def _within(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.where((lo <= a) & (a <= hi), 1.0, np.where(np.isnan(a), a, 0.0))


def _mean(v: np.ndarray) -> np.ndarray:
    """The mean of the units: NaN over none, as in the kernels, NumPy and PyTorch (without NumPy's
    warning, since NaN is the defined result)."""
    if not v.shape[-1]:
        return np.full((*v.shape[:-1], 1), np.nan)
    return np.mean(v, axis=-1, keepdims=True)


VOCABULARY: tuple[Primitive | Composite, ...] = (
    Primitive(
        name="sigmoid",
        node=sigmoid,
        c="sg_sigmoid",
        complex_c="sg_csigmoid",
        numpy=lambda a: 0.5 * (1.0 + np.tanh(0.5 * a)),
        cost="transcendental",
        latex=r"\sigma",
    ),
    Primitive(name="tanh", node=sympy.tanh, c="tanh", complex_c="ctanh", numpy=np.tanh, cost="transcendental"),
    Primitive(
        name="relu",
        node=relu,
        c="sg_relu",
        complex_c="sg_crelu",
        numpy=lambda a: np.maximum(a, 0.0),
        cost="comparisons",
        latex=r"\operatorname{relu}",
    ),
    Primitive(
        name="step",
        node=step,
        c="sg_step",
        complex_c="sg_cstep",
        numpy=_step,
        cost="comparisons",
        latex=r"\operatorname{step}",
        in_cell_text=False,
    ),
    Primitive(name="exp", node=sympy.exp, c="exp", complex_c="cexp", numpy=np.exp, cost="transcendental"),
    Primitive(name="log", node=sympy.log, c="log", complex_c="clog", numpy=np.log, cost="transcendental"),
    Composite(name="sqrt", build=sympy.sqrt),
    Primitive(
        name="softplus",
        node=softplus,
        c="sg_softplus",
        complex_c="sg_csoftplus",
        numpy=functools.partial(np.logaddexp, 0.0),
        cost="transcendental",
        latex=r"\operatorname{softplus}",
    ),
    Primitive(
        name="max",
        node=maximum,
        c="sg_max",
        complex_c="sg_cmax",
        numpy=np.maximum,
        cost="comparisons",
        latex=r"\max",
        arity=2,
    ),
    Primitive(
        name="min",
        node=minimum,
        c="sg_min",
        complex_c="sg_cmin",
        numpy=np.minimum,
        cost="comparisons",
        latex=r"\min",
        arity=2,
    ),
    Primitive(
        name="abs",
        node=absolute,
        c="fabs",
        complex_c="sg_cabs",
        numpy=np.abs,
        cost="comparisons",
        latex=r"\operatorname{abs}",
    ),
    Primitive(
        name="clip",
        node=clip,
        c="sg_clip",
        complex_c="sg_cclip",
        numpy=np.clip,
        cost="comparisons",
        latex=r"\operatorname{clip}",
        arity=3,
        constant_arguments=(1, 2),
    ),
    Primitive(name="cos", node=sympy.cos, c="cos", complex_c="ccos", numpy=np.cos, cost="transcendental"),
    Primitive(name="sin", node=sympy.sin, c="sin", complex_c="csin", numpy=np.sin, cost="transcendental"),
    Primitive(
        name="floor",
        node=floored,
        c="floor",
        complex_c="sg_cfloor",
        numpy=np.floor,
        cost="comparisons",
        latex=r"\operatorname{floor}",
    ),
    Primitive(
        name="mod",
        node=remainder,
        c="sg_mod",
        complex_c="sg_cmod",
        numpy=np.remainder,
        cost="transcendental",
        latex=r"\operatorname{mod}",
        arity=2,
    ),
    Primitive(
        name="above",
        node=above,
        c="sg_above",
        complex_c="sg_cabove",
        numpy=_above,
        cost="comparisons",
        latex=r"\operatorname{above}",
        arity=2,
        in_cell_text=False,
    ),
    Primitive(
        name="sign",
        node=signum,
        c="sg_sign",
        complex_c="sg_csign",
        numpy=np.sign,
        cost="comparisons",
        latex=r"\operatorname{sign}",
        in_cell_text=False,
    ),
    Primitive(
        name="within",
        node=within,
        c="sg_within",
        complex_c="sg_cwithin",
        numpy=_within,
        cost="comparisons",
        latex=r"\operatorname{within}",
        arity=3,
        in_cell_text=False,
    ),
    Primitive(
        name="floordiv",
        node=floor_quotient,
        c="sg_floordiv",
        complex_c="sg_cfloordiv",
        numpy=np.floor_divide,
        cost="transcendental",
        latex=r"\operatorname{floordiv}",
        arity=2,
        in_cell_text=False,
    ),
    Primitive(
        name="sum",
        node=ReduceSum,
        c=None,
        complex_c=None,
        numpy=functools.partial(np.sum, axis=-1, keepdims=True),
        cost="adds",
        latex=r"\operatorname{sum}",
    ),
    Primitive(
        name="mean",
        node=ReduceMean,
        c=None,
        complex_c=None,
        numpy=_mean,
        cost="adds",
        latex=r"\operatorname{mean}",
    ),
    Composite(name="var", build=variance),
    Primitive(
        name="rowsum",
        node=RowSum,
        c=None,
        complex_c=None,
        numpy=functools.partial(np.sum, axis=-1),
        cost="adds",
        latex=r"\operatorname{rowsum}",
        matrices="argument",
    ),
    Primitive(
        name="colsum",
        node=ColSum,
        c=None,
        complex_c=None,
        numpy=functools.partial(np.sum, axis=-2),
        cost="adds",
        latex=r"\operatorname{colsum}",
        matrices="argument",
    ),
    Composite(name="outer", build=outer, arity=2, matrices="result"),
)
"""Every function of the cell language. The elementwise ones act unit by unit (``max``, ``min``,
``clip`` and ``mod`` too, argument by argument); ``sum``, ``mean`` and ``var`` reduce over the
units of their argument's dimension and give one value per sample, which broadcasts; ``rowsum`` and
``colsum`` sum a matrix along its rows or its columns, and ``outer(a, b)`` is ``a * b.T``."""

FUNCTIONS: dict[str, Primitive | Composite] = {f.name: f for f in VOCABULARY if f.in_cell_text}
"""The functions cell text may call, by name."""

BY_NODE: dict[type[sympy.Function], Primitive] = {f.node: f for f in VOCABULARY if isinstance(f, Primitive)}
"""The record of each SymPy class an expression of the language may hold."""
