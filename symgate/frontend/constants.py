"""Constant expressions -> numbers: each evaluated before code generation, and refused when a type cannot hold it.

A constant is any part of an equation without a free symbol: a literal (``0.5``), a named one
(``const a = exp(1)/3``) or an expression (``exp(710)``, ``1e-300**2``). The checker folds each
into one number (:func:`constant_values`), so the C receives a literal rather than a libm call
that the compiler would round to inf or 0 without a word, and whether a kernel's type holds a
constant becomes a fact about one number (:func:`unfit`), asked at parse time for float64 (the
widest type, quoting the line as written) and again at build time for the kernel's type
(:func:`symgate.symbolic.ranges.check_numbers`).

Evaluation is bounded: a part whose magnitude is beyond ``2**±MAGNITUDE_BITS`` (about 10^±2466)
is refused as it is met, innermost first, instead of computed. Such a part is far outside every
kernel type's range, and what is built on it can cost without bound (``sin(exp(1e10))`` needs ten
billion bits of precision); below that, the whole expression is evaluated as written, so
``log(1 + exp(1000))`` is 1000 although ``exp(1000)`` alone fits no type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import mpmath
import sympy

from ..dtypes import dtype as dtype_of
from .notation import cell_text
from .vocabulary import Reduction

MAGNITUDE_BITS = 8192
"""Parts of a constant stay within ``2**±8192`` (about 10^±2466); whole integers of that size still print."""
DIGITS = 17
"""Significant digits of a folded constant: enough to name any double, and float's nearest one."""
_WORKING_DIGITS = 20  # evalf's target: 17 correct digits and some to spare for their rounding
_EXACT_PARTS = 2**53  # a rational whose parts a double holds exactly stays exact (1/3 prints as 1.0/3.0)
_SHOWN = 60  # characters of an expression quoted in a message

Fail = Callable[[str, str], Exception]
"""Makes the error for a constant: ``fail(message, symbol)``; the caller adds the line."""


def constant_values(expr: sympy.Expr, fail: Fail) -> Iterator[tuple[sympy.Expr, sympy.Expr]]:
    """Each largest part of ``expr`` that is a real number (``exp(710)`` in ``exp(710)*h``), left to
    right, with its value: a float as written (``0.1``) and a rational a double holds exactly
    (``1/3``) stay as they are; anything else (``exp(1)/3``, ``2**64``) becomes a :data:`DIGITS`-digit
    Float evaluated to more digits than that. Where a part without free symbols is no number SymPy
    evaluates (``floor(2.5)``, ``sqrt(-1)``, ``mean(3)``), its arguments are the parts: the C computes
    such a function exactly, and the checker names what is not a real number. ``fail(message,
    symbol)`` makes the error raised for a part that cannot be evaluated or whose magnitude is beyond
    ``2**±MAGNITUDE_BITS``."""
    if expr.is_number and not expr.has(Reduction):
        for part in sympy.postorder_traversal(expr):
            check_bounded(part, fail)
        value = _value(expr, fail)
        if value is not None:
            exact = expr.is_Float or (expr.is_Rational and max(abs(expr.p), expr.q) <= _EXACT_PARTS)
            yield expr, expr if exact else sympy.Float(value, DIGITS)
            return
    for arg in expr.args:
        yield from constant_values(arg, fail)


def check_bounded(expr: sympy.Expr, fail: Fail) -> None:
    """Raises ``fail(...)`` if the number ``expr`` cannot be evaluated or its magnitude is beyond
    ``2**±MAGNITUDE_BITS``. Cheap when the parts of ``expr`` were checked before it (the parser
    builds expressions from the inside out, and :func:`constant_values` walks them so)."""
    value = _value(expr, fail)
    if value is not None and value and abs(_binary_exponent(value)) > MAGNITUDE_BITS:
        raise fail(f"constant {described(expr, value)} is {unfit(value, 'float64')}", shown(expr))


def unfit(value: sympy.Expr, dtype: str) -> str | None:
    """Why ``dtype`` cannot hold the number ``value`` (it would be inf, or 0 though it is not), or None."""
    limits = dtype_of(dtype)
    magnitude = abs(value)
    if magnitude >= limits.overflow:
        return f"beyond the range of {dtype} (±{limits.range_text[0]}): it would be inf"
    if value != 0 and magnitude <= sympy.Rational(1, 2**limits.underflow_exponent):
        return f"below the range of {dtype} (smallest {limits.range_text[1]}): it would be 0"
    return None


def number_text(value: sympy.Expr) -> str:
    """A Float or Rational as messages write it: exact for a small rational, ``1.00000000000000E+39``
    for a float, and ``10^(4.3e+299)`` for a magnitude no decimal string can spell out (``exp(1e300)``)."""
    if value.is_Rational and max(abs(value.p), value.q) <= _EXACT_PARTS:
        return str(value)
    if value.is_Rational:
        value = value.evalf(DIGITS)
    if not value or abs(_binary_exponent(value)) <= MAGNITUDE_BITS:
        return f"{value}"
    sign, exponent = "-" if value < 0 else "", mpmath.log10(abs(mpmath.mpf(value._mpf_)))
    return f"{sign}10^({mpmath.nstr(exponent, 2)})"


def described(expr: sympy.Expr, value: sympy.Expr) -> str:
    """``exp(710) ≈ 2.2339...E+308`` for an expression, the number alone for a number."""
    if expr.is_Number:
        return number_text(expr)
    return f"{shown(expr)} ≈ {number_text(value)}"


def _value(expr: sympy.Expr, fail: Fail) -> sympy.Expr | None:
    """``expr`` as a SymPy Float or Rational, or None if it is not a real number."""
    if expr.is_Float or expr.is_Rational:
        return expr
    try:
        value = expr.evalf(_WORKING_DIGITS)
    except (ArithmeticError, ValueError, RecursionError) as err:  # SymPy's and mpmath's failures to evaluate
        raise fail(f"cannot evaluate the constant `{shown(expr)}` ({type(err).__name__})", shown(expr)) from None
    return value if value.is_Float or value.is_Rational else None


def _binary_exponent(value: sympy.Expr) -> int:
    """``e`` such that ``2**(e-1) <= |value| < 2**e``, about: the size of a nonzero Float or Rational."""
    if value.is_Rational:
        return abs(value.p).bit_length() - value.q.bit_length()
    _, mantissa, exponent, bits = value._mpf_
    return exponent + bits if mantissa else 0


def shown(expr: sympy.Expr) -> str:
    """``expr`` in cell syntax, cut to a length a message can quote (its parts are printable: they were checked)."""
    text = number_text(expr) if expr.is_Number else cell_text(expr)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
