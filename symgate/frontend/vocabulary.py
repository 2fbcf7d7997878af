"""The functions of the cell language: one record each, which every stage that must know them reads.

A function's facts live in its record and nowhere else: its name in cell text and its number of
arguments, the SymPy node a call builds, its C spelling, its complex-C spelling for the
complex-step kernel, its NumPy reference, its LaTeX, and what it costs in the operation count.
The parser (names, arities), the checker, the C printer, the NumPy reference, the notation
printers and the operation count read :data:`FUNCTIONS` and :data:`BY_NODE` instead of naming
functions themselves. So adding an activation is its record below, with its SymPy class when
SymPy has none (whose ``fdiff`` is the derivative the backward pass uses), the C helper when libm
has none (``sg_...`` in templates/kernel.c.jinja, beside the others) and its case in
tests/test_functions.py, which checks every record against the compiled kernels.

Activations whose derivative is cheapest in terms of their own output carry that derivative
(``sigmoid' = s*(1-s)``, ``relu' = step(relu)``), so the derived backward pass reuses forward
values instead of recomputing transcendental calls. ``step`` exists for that: backward passes use
it, cell text cannot call it. Two functions are composites, built of others: ``sqrt(a)`` is the
power ``a**(1/2)`` (printed, evaluated and counted as a power) and ``var(v)`` is
``mean((v - mean(v))**2)``. The matrix-vector product ``W @ v`` is an operator, not a call: it is
:class:`~symgate.frontend.functions.MatVec`, lowered to loops or BLAS before anything is printed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import sympy

__all__ = [
    "BY_NODE",
    "FUNCTIONS",
    "HELPER_PREFIX",
    "VOCABULARY",
    "Composite",
    "Cost",
    "Primitive",
    "ReduceMean",
    "ReduceSum",
    "Reduction",
    "relu",
    "sigmoid",
    "softplus",
    "step",
    "variance",
]

HELPER_PREFIX = "sg_"
"""A C spelling starting so is a helper of the kernel template, not a libm function."""


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


class Reduction(sympy.Function):
    """A reduction of a vector over its units, one value per sample, broadcast where it is used."""

    nargs = 1

    def _eval_is_real(self) -> bool:
        return True

    @property
    def vector(self) -> sympy.Expr:
        return self.args[0]

    @property
    def word(self) -> str:
        """Its name in cell text (``sum``), as its record gives it."""
        return BY_NODE[type(self)].name


class ReduceSum(Reduction):
    """``sum(v)``: the sum of v's units."""


class ReduceMean(Reduction):
    """``mean(v)``: the mean of v's units."""


def variance(vector: sympy.Expr) -> sympy.Expr:
    """``var(v)``: the population variance of v's units, ``mean((v - mean(v))**2)``."""
    return ReduceMean((vector - ReduceMean(vector)) ** 2)


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
    a function only derivatives make (``step``).
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


def _step(a: np.ndarray) -> np.ndarray:
    return np.where(a > 0, 1.0, np.where(a <= 0, 0.0, a))  # NaN stays NaN, as in the kernels


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
        numpy=functools.partial(np.mean, axis=-1, keepdims=True),
        cost="adds",
        latex=r"\operatorname{mean}",
    ),
    Composite(name="var", build=variance),
)
"""Every function of the cell language. The elementwise ones act unit by unit; ``sum``, ``mean``
and ``var`` reduce over the units of their argument's dimension and give one value per sample,
which broadcasts."""

FUNCTIONS: dict[str, Primitive | Composite] = {f.name: f for f in VOCABULARY if f.in_cell_text}
"""The functions cell text may call, by name."""

BY_NODE: dict[type[sympy.Function], Primitive] = {f.node: f for f in VOCABULARY if isinstance(f, Primitive)}
"""The record of each SymPy class an expression of the language may hold."""
