"""SymPy -> C expressions, for one floating-point type.

A strict ``C99CodePrinter``: an expression it does not know raises instead of printing garbage.
float32 comes from the printer's type settings (``tanhf``, ``1.0F``), not from another
template. Activations print as the stable helpers the kernel template defines; small integer
powers print as products.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter

HELPERS = ("sg_sigmoid", "sg_relu", "sg_step", "sg_softplus")
_MAX_EXPANDED_POWER = 4


class KernelPrinter(C99CodePrinter):
    """Prints elementwise expressions, each symbol as the C text ``names`` gives for it."""

    def __init__(self, dtype: str, names: Mapping[str, str]) -> None:
        c_type = {"float64": float64, "float32": float32}[dtype]
        super().__init__({"type_aliases": {real: c_type}, "strict": True})
        self.names = names
        self.helpers_used: set[str] = set()

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        return self.names[expr.name]

    def _helper(self, name: str, expr: sympy.Function) -> str:
        self.helpers_used.add(name)
        return f"{name}({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr: sympy.Function) -> str:
        return self._helper("sg_sigmoid", expr)

    def _print_relu(self, expr: sympy.Function) -> str:
        return self._helper("sg_relu", expr)

    def _print_step(self, expr: sympy.Function) -> str:
        return self._helper("sg_step", expr)

    def _print_softplus(self, expr: sympy.Function) -> str:
        return self._helper("sg_softplus", expr)

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
            return super()._print_Pow(expr)
        # pow, never cbrt: x**(1/3) means the same (NaN for x < 0) in C, NumPy and the derivative
        return f"{self._print_math_function('pow')}({self._print(expr.base)}, {self._print(sympy.Float(exponent))})"

    def _print_math_function(self, name: str) -> str:
        return name + ("f" if self.type_aliases[real] == float32 else "")

    def _print_MatVec(self, expr: sympy.Expr) -> str:
        raise TypeError(f"products must be lowered before printing: {expr}")
