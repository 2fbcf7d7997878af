"""SymPy -> C expressions, for one floating-point type.

A strict ``C99CodePrinter``: an expression it does not know raises instead of printing garbage.
Every function of the cell language prints as its record in :mod:`symgate.frontend.vocabulary`
spells it: a libm function (float32 from the printer's type settings, ``tanhf``, ``1.0F``, not
from another template) or one of the stable helpers of the runtime header
(``symgate_runtime.h``: ``sg_sigmoid``).
Any other function, libm's included (``fabs``), raises. Small integer powers print as products.
complex128, the forward pass of the complex-step check, prints with :class:`ComplexKernelPrinter`
(``ctanh``, ``sg_csigmoid``); :func:`printer_for` picks the class.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy
import sympy.codegen.ast
from sympy.codegen.ast import float32, real
from sympy.printing.c import C99CodePrinter

from ..frontend.vocabulary import BY_NODE, HELPER_PREFIX, Primitive

_MAX_EXPANDED_POWER = 4
_COMPLEX_POWERS = {"sqrt": "csqrt", "pow": "cpow"}
"""The complex-analytic C99 functions (<complex.h>) that print powers (``a**(1/2)``, ``a**1.5``)."""


class KernelPrinter(C99CodePrinter):
    """Prints elementwise expressions, each symbol as the C text ``names`` gives for it."""

    function_kind = "C"

    def __init__(self, dtype: str, names: Mapping[str, str]) -> None:
        c_type = getattr(sympy.codegen.ast, dtype)  # SymPy names its float types as symgate does
        super().__init__({"type_aliases": {real: c_type}, "strict": True})
        self.names = names

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        return self.names[expr.name]

    def _print_call(self, expr: sympy.Function) -> str:
        """A call of a function of the cell language, spelled as its record says; any other raises."""
        record = BY_NODE.get(type(expr))
        if record is None:
            known = ", ".join(sorted(r.name for r in BY_NODE.values()))
            raise TypeError(f"no {self.function_kind} function for {type(expr).__name__} (known: {known})")
        name = self._spelling(record)
        return f"{name}({', '.join(self._print(arg) for arg in expr.args)})"

    def _spelling(self, record: Primitive) -> str:
        """The C function of ``record``: a template helper as it is named, a libm one for the type."""
        if record.c is None:
            raise TypeError(f"{record.name} must be lowered before printing")
        return record.c if record.c.startswith(HELPER_PREFIX) else self._print_math_function(record.c)

    def _print_Pow(self, expr: sympy.Pow) -> str:
        exponent = expr.exp
        if exponent.is_Integer and 0 < abs(int(exponent)) <= _MAX_EXPANDED_POWER:
            base = self.parenthesize(expr.base, 50)  # 50: precedence of Mul
            product = "*".join([base] * abs(int(exponent)))
            if exponent > 0:
                return product if exponent == 1 else f"({product})"
            return f"{self._print(sympy.S.One)}/({product})"
        if exponent == -sympy.S.Half:
            return f"{self._print(sympy.S.One)}/{self._print(sympy.sqrt(expr.base))}"
        if exponent == sympy.S.Half:
            return f"{self._print_math_function('sqrt')}({self._print(expr.base)})"
        # pow, never cbrt: x**(1/3) means the same (NaN for x < 0) in C, NumPy and the derivative
        return f"{self._print_math_function('pow')}({self._print(expr.base)}, {self._print(sympy.Float(exponent))})"

    def _print_math_function(self, name: str) -> str:
        return name + ("f" if self.type_aliases[real] == float32 else "")

    def _print_MatVec(self, expr: sympy.Expr) -> str:
        raise TypeError(f"products must be lowered before printing: {expr}")


class ComplexKernelPrinter(KernelPrinter):
    """Prints for ``double _Complex``, the forward pass of the complex-step check.

    Functions print as their records' complex-analytic spellings: C99 ones (``cexp``, ``ctanh``,
    ``ccos``; powers as ``csqrt``, ``cpow``) or the runtime header's ``sg_c*`` helpers, which branch
    on the real part where the real function has a kink or a jump (``relu``, ``max``, ``clip``,
    ``mod``, ``step``) and carry the imaginary part through the branch taken (none through a flat
    one: ``floor``). Numbers print as double constants. Any other function raises:
    printing a real one (``fabs``) would silently drop the imaginary part.
    """

    function_kind = "complex-analytic C"

    def __init__(self, names: Mapping[str, str]) -> None:
        super().__init__("float64", names)

    def _print_math_function(self, name: str) -> str:
        return _COMPLEX_POWERS[name]

    def _spelling(self, record: Primitive) -> str:
        if record.complex_c is None:
            raise TypeError(f"{record.name} must be lowered before printing")
        return record.complex_c


_MATH_FUNC = vars(C99CodePrinter)["_print_math_func"]
_CALLS = {name for name, method in vars(C99CodePrinter).items() if method is _MATH_FUNC} - {"_print_math_func"}
for _name in sorted(_CALLS | {f"_print_{node.__name__}" for node in BY_NODE}):  # _print_exp, _print_Abs, ...
    setattr(KernelPrinter, _name, KernelPrinter._print_call)


def printer_for(dtype: str, names: Mapping[str, str]) -> KernelPrinter:
    """The printer for ``dtype``: "float64", "float32" or "complex128"."""
    return ComplexKernelPrinter(names) if dtype == "complex128" else KernelPrinter(dtype, names)
