"""SymPy -> C expressions, for one floating-point type.

A strict ``C99CodePrinter``: an expression it does not know raises instead of printing garbage.
float32 comes from the printer's type settings (``tanhf``, ``1.0F``), not from another
template. Activations print as the stable helpers of the runtime header (``symgate_runtime.h``);
small integer powers print as products. complex128, the forward pass of the complex-step check, prints with
:class:`ComplexKernelPrinter` (``ctanh``, ``sg_csigmoid``); :func:`printer_for` picks the class.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy
import sympy.codegen.ast
from sympy.codegen.ast import float32, real
from sympy.printing.c import C99CodePrinter

_MAX_EXPANDED_POWER = 4
_ANALYTIC = {"exp": "cexp", "log": "clog", "tanh": "ctanh", "sqrt": "csqrt", "pow": "cpow"}
"""The complex-analytic C99 function (<complex.h>) for each real one a cell can call."""


class KernelPrinter(C99CodePrinter):
    """Prints elementwise expressions, each symbol as the C text ``names`` gives for it."""

    helper_prefix = "sg_"

    def __init__(self, dtype: str, names: Mapping[str, str]) -> None:
        c_type = getattr(sympy.codegen.ast, dtype)  # SymPy names its float types as symgate does
        super().__init__({"type_aliases": {real: c_type}, "strict": True})
        self.names = names
        self.helpers_used: set[str] = set()

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        return self.names[expr.name]

    def _helper(self, name: str, expr: sympy.Function) -> str:
        helper = self.helper_prefix + name
        self.helpers_used.add(helper)
        return f"{helper}({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr: sympy.Function) -> str:
        return self._helper("sigmoid", expr)

    def _print_relu(self, expr: sympy.Function) -> str:
        return self._helper("relu", expr)

    def _print_step(self, expr: sympy.Function) -> str:
        return self._helper("step", expr)

    def _print_softplus(self, expr: sympy.Function) -> str:
        return self._helper("softplus", expr)

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

    Functions print as their complex-analytic C99 versions (``cexp``, ``clog``, ``ctanh``,
    ``csqrt``, ``cpow``) and activations as the runtime header's ``sg_c*`` helpers, which branch on the
    real part where the real function has a kink (``relu``, ``step``) and carry the imaginary part
    through the branch taken. Numbers print as double constants. Any other function raises:
    printing a real one (``fabs``) would silently drop the imaginary part.
    """

    helper_prefix = "sg_c"

    def __init__(self, names: Mapping[str, str]) -> None:
        super().__init__("float64", names)

    def _print_math_function(self, name: str) -> str:
        if name not in _ANALYTIC:
            raise TypeError(f"no complex-analytic C function for {name} (known: {', '.join(sorted(_ANALYTIC))})")
        return _ANALYTIC[name]

    def _print_math_func(self, expr: sympy.Function, nest: bool = False, known: str | None = None) -> str:
        arguments = ", ".join(self._print(arg) for arg in expr.args)
        return f"{self._print_math_function(type(expr).__name__)}({arguments})"


_MATH_FUNC = vars(C99CodePrinter)["_print_math_func"]
for _name, _method in vars(C99CodePrinter).items():  # _print_exp, _print_Abs, ...: all through the table above
    if _method is _MATH_FUNC and _name != "_print_math_func":
        setattr(ComplexKernelPrinter, _name, lambda self, expr: self._print_math_func(expr))


def printer_for(dtype: str, names: Mapping[str, str]) -> KernelPrinter:
    """The printer for ``dtype``: "float64", "float32" or "complex128"."""
    return ComplexKernelPrinter(names) if dtype == "complex128" else KernelPrinter(dtype, names)
