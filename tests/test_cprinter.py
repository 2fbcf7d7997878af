"""The C printer: SymPy expressions -> C for one floating-point type, strict about what it prints.

Tested through :func:`printer_for`, the one way the renderer reaches a printer."""

from __future__ import annotations

import pytest
import sympy

from symgate.codegen.cprinter import printer_for
from symgate.frontend.functions import MatVec, MatVecT, Var, relu, sigmoid, softplus, step

x, y, h_next, W = Var("x"), Var("y"), Var("h'"), Var("W")
NAMES = {"x": "x", "y": "y", "h'": "h_next", "W": "W"}


def c(expr: sympy.Expr, dtype: str = "float64") -> str:
    return printer_for(dtype, NAMES).doprint(expr)


def test_symbols_print_as_the_names_given():
    assert c(h_next + x) == "h_next + x"


@pytest.mark.parametrize(
    ("expr", "float64", "float32"),
    [
        (sympy.exp(x), "exp(x)", "expf(x)"),
        (sympy.tanh(x), "tanh(x)", "tanhf(x)"),
        (sympy.log(x), "log(x)", "logf(x)"),
        (sympy.Float(1.0) * x, "1.0*x", "1.0F*x"),
        (x / 2, "(1.0/2.0)*x", "(1.0F/2.0F)*x"),
    ],
)
def test_float32_comes_from_the_type_settings(expr, float64, float32):
    assert c(expr, "float64") == float64
    assert c(expr, "float32") == float32


@pytest.mark.parametrize(
    ("expr", "float64", "float32"),
    [
        (x**2, "(x*x)", "(x*x)"),
        (x**3 * y, "(x*x*x)*y", "(x*x*x)*y"),
        (x**4, "(x*x*x*x)", "(x*x*x*x)"),
        ((x + y) ** 2, "((x + y)*(x + y))", "((x + y)*(x + y))"),
        (x**-2, "1/(x*x)", "1/(x*x)"),
        (x**5, "pow(x, 5.0)", "powf(x, 5.0F)"),  # beyond the small powers: one call
    ],
)
def test_small_integer_powers_print_as_products(expr, float64, float32):
    assert c(expr, "float64") == float64
    assert c(expr, "float32") == float32


@pytest.mark.parametrize(
    ("expr", "float64", "float32"),
    [
        (x ** sympy.Rational(1, 2), "sqrt(x)", "sqrtf(x)"),  # what x**0.5 in a cell is parsed to
        (x ** sympy.Rational(-1, 2), "1/sqrt(x)", "1/sqrtf(x)"),
        (x ** sympy.Rational(1, 3), "pow(x, 0.33333333333333331)", "powf(x, 0.333333333F)"),
    ],
)
def test_square_roots_print_as_sqrt(expr, float64, float32):
    assert c(expr, "float64") == float64
    assert c(expr, "float32") == float32


@pytest.mark.parametrize(
    ("function", "helper"), [(sigmoid, "sigmoid"), (relu, "relu"), (step, "step"), (softplus, "softplus")]
)
def test_activations_print_as_the_runtime_headers_helpers(function, helper):
    for dtype, prefix in (("float64", "sg_"), ("float32", "sg_"), ("complex128", "sg_c")):
        printer = printer_for(dtype, NAMES)
        assert printer.doprint(function(x + y)) == f"{prefix}{helper}(x + y)"


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
def test_an_unknown_function_raises(dtype):
    with pytest.raises(NotImplementedError, match="mystery"):
        c(sympy.Function("mystery")(x), dtype)


@pytest.mark.parametrize(
    ("expr", "printed"),
    [
        (sympy.exp(x), "cexp(x)"),
        (sympy.tanh(x), "ctanh(x)"),
        (sympy.log(x), "clog(x)"),
        (x ** sympy.Rational(1, 2), "csqrt(x)"),
        (x**5, "cpow(x, 5.0)"),
        (sympy.Float(1.0) * x, "1.0*x"),  # double constants, no F
    ],
)
def test_complex_printer_uses_the_complex_analytic_functions(expr, printed):
    assert c(expr, "complex128") == printed


@pytest.mark.parametrize("expr", [sympy.Abs(x), sympy.atan(x), sympy.erf(x)])
def test_complex_printer_refuses_a_function_without_a_complex_analytic_form(expr):
    with pytest.raises(TypeError, match=f"no complex-analytic C function for {type(expr).__name__}"):
        c(expr, "complex128")


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
def test_products_must_be_lowered_before_printing(dtype):
    with pytest.raises(TypeError, match=r"products must be lowered before printing: MatVec\(W, x\)"):
        c(MatVec(W, x) + y, dtype)
    # SymPy does not hand a subclass of a Function to its parent's print method: the strict printer refuses it
    with pytest.raises((TypeError, NotImplementedError), match="MatVecT"):
        c(MatVecT(W, x) + y, dtype)
