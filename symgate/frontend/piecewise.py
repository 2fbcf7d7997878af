"""The functions of the cell language with kinks or jumps, and the step functions their derivatives are.

``max``, ``min``, ``abs``, ``clip``, ``floor`` and ``mod`` are SymPy classes of symgate's own rather
than SymPy's ``Max``, ``Min``, ``Abs``, ``floor`` and ``Mod``: SymPy's take any number of
arguments, reorder and simplify them (``Abs(sigmoid(a) + 1)`` is ``sigmoid(a) + 1``, ``floor(a + 1)``
is ``floor(a) + 1``), and differentiate by conventions of their own. Here a call stays the call
that was written, and each ``fdiff`` is the derivative PyTorch's autograd takes, kinks included,
so a gradient from symgate and one from ``torch`` agree everywhere:

* ``max(a, b)``: 1 for the larger argument and 0 for the other; on a tie ½ each
  (``torch.maximum``), written ``above(a, b)`` and ``above(b, a)``; ``min`` alike.
* ``abs(a)``: ``sign(a)``, 0 at 0 (``torch.abs``).
* ``clip(a, lo, hi)``: 1 for ``lo <= a <= hi``, bounds included, else 0 (``torch.clamp``), written
  ``within(a, lo, hi)``.
* ``floor(a)``: 0 (``torch.floor``).
* ``mod(a, b)`` (``torch.remainder``, the sign of b): 1 for a, ``-floordiv(a, b)`` for b, where
  ``floordiv`` is the floored quotient as ``torch.div(a, b, rounding_mode="floor")`` computes it.

The step functions (``step``, ``above``, ``sign``, ``within``, ``floordiv``) are flat between
their jumps: their own derivatives are 0. Backward passes use them; cell text cannot call them.
At a NaN argument every one of them is NaN, so a diverged step shows in the gradient (PyTorch
gives 0 or 1 there).
"""

from __future__ import annotations

import sympy
from sympy.core.logic import fuzzy_and

__all__ = [
    "above",
    "absolute",
    "clip",
    "floor_quotient",
    "floored",
    "maximum",
    "minimum",
    "remainder",
    "signum",
    "step",
    "within",
]


class _Piecewise(sympy.Function):
    """A real-valued elementwise function of real arguments."""

    def _eval_is_real(self) -> bool | None:
        return fuzzy_and(arg.is_real for arg in self.args)


class _Flat(_Piecewise):
    """Constant between its jumps: its derivative is 0 (where it has one)."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.S.Zero


class step(_Flat):  # noqa: N801 - named as written in derivatives
    """``1`` where the argument is positive, else ``0``: the derivative of ``relu`` at its output."""

    nargs = 1


class above(_Flat):  # noqa: N801 - named as written in derivatives
    """``above(a, b)``: 1 where a > b, ½ where a = b, 0 where a < b: the derivative of ``max(a, b)`` by a."""

    nargs = 2


class signum(_Flat):  # noqa: N801 - named as written in derivatives
    """``sign(a)``: 1, 0 or -1; the derivative of ``abs(a)``."""

    nargs = 1


class within(_Flat):  # noqa: N801 - named as written in derivatives
    """``within(a, lo, hi)``: 1 where lo <= a <= hi, else 0: the derivative of ``clip(a, lo, hi)`` by a."""

    nargs = 3


class floor_quotient(_Flat):  # noqa: N801 - named as written in derivatives
    """``floordiv(a, b)``: the floored quotient ``floor(a/b)``, computed as PyTorch does from ``fmod``
    (so that ``a - b*floordiv(a, b)`` is ``mod(a, b)``); minus the derivative of ``mod(a, b)`` by b."""

    nargs = 2


class maximum(_Piecewise):  # noqa: N801 - named as NumPy names it
    """``max(a, b)``, NaN if either is NaN; the gradient goes to the larger argument, ½ each on a tie."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        a, b = self.args
        return above(a, b) if argindex == 1 else above(b, a)


class minimum(_Piecewise):  # noqa: N801 - named as NumPy names it
    """``min(a, b)``, NaN if either is NaN; the gradient goes to the smaller argument, ½ each on a tie."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        a, b = self.args
        return above(b, a) if argindex == 1 else above(a, b)


class absolute(_Piecewise):  # noqa: N801 - named as NumPy names it
    """``abs(a)``; its derivative is ``sign(a)``, 0 at 0."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return signum(self.args[0])


class clip(_Piecewise):  # noqa: N801 - named as written in cell text
    """``clip(a, lo, hi)``: ``min(max(a, lo), hi)`` (hi where lo > hi, as ``torch.clamp``), NaN kept; its
    derivative by a is 1 on [lo, hi], bounds included. The bounds are constants in a cell; by a bound,
    the derivative is 1 where a is beyond it."""

    nargs = 3

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        a, lo, hi = self.args
        return (within(a, lo, hi), step(lo - a), step(a - hi))[argindex - 1]


class floored(_Flat):  # noqa: N801 - the floor of cell text (SymPy's own is named floor)
    """``floor(a)``: the largest integer not above a; its derivative is 0."""

    nargs = 1


class remainder(_Piecewise):  # noqa: N801 - named as NumPy and PyTorch name it
    """``mod(a, b)``: ``a - b*floor(a/b)``, with the sign of b (``torch.remainder``), computed from
    ``fmod`` without rounding; its derivatives are 1 by a and ``-floordiv(a, b)`` by b."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.S.One if argindex == 1 else -floor_quotient(*self.args)
