"""Constants a kernel's type cannot hold (issue 19, failures 1, 3 and 8): every constant, literal or
expression, is evaluated before code generation and refused by name and line, in the line's own
words, when it would be inf or 0; huge and tiny numbers never crash the message that names them.

The checks run on the rendered C (``sg.generate``), not on compiled kernels, to stay fast; the
fuzz at the end draws 120 cells with extreme numbers spelled many ways.
"""

from __future__ import annotations

import re
import warnings
from decimal import Decimal

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgate as sg
from symgate.cli import main

HEAD = "cell a\ninput x: D\nstate h: H\n"
LIMITS = {  # the type, the magnitude a literal rounds to inf from, and 2**-e below which it rounds to 0
    "float64": (np.float64, 2**1024 - 2**970, 1075),
    "float32": (np.float32, 2**128 - 2**103, 150),
}
STEP = "tanh(W @ x + U @ h)"


def refusal(text: str, dtype: str | None = None) -> sg.CellError:
    """The error ``text`` gets: from parsing, or (given a ``dtype``) from generating its C."""
    with pytest.raises(sg.CellError) as info:
        cell = sg.parse(text)
        if dtype:
            sg.generate(cell, dtype)
    return info.value


@pytest.mark.parametrize(
    ("constant", "dtype", "words"),
    [
        ("exp(710)", "float64", "constant a = exp(710) ≈ 2.2339947661617110E+308 is beyond the range of float64"),
        ("exp(-746)", "float64", "constant a = exp(-746) ≈ 1.0382848095158282E-324 is below the range of float64"),
        ("exp(89)", "float32", "constant a = 4.4896128191743452E+38 is beyond the range of float32"),
        ("exp(-104)", "float32", "constant a = 6.8135568215452985E-46 is below the range of float32"),
    ],
)
def test_a_named_constant_expression_the_type_cannot_hold_is_refused_by_name_and_line(constant, dtype, words):
    line = f"const a = {constant}"
    error = refusal(f"{HEAD}{line}\nh' = {STEP}*a\n", dtype)
    assert (error.line, error.symbol, error.text) == (4, "a", line)
    assert words in str(error)


@pytest.mark.parametrize(
    ("constant", "fits"),
    [("exp(709)", "float64"), ("exp(-745)", "float64"), ("exp(88)", "float32"), ("exp(-103)", "float32")],
)
def test_the_constants_next_to_the_limits_fit_and_reach_the_c_as_literals(constant, fits):
    source = sg.generate(sg.parse(f"{HEAD}const a = {constant}\nh' = {STEP}*a\n"), fits).c_source
    declared = re.search(r"const (?:double|float) a = (.*);", source).group(1)
    exact = mpmath.exp(mpmath.mpf(constant[4:-1]))
    np_type = LIMITS[fits][0]
    assert np_type(float(declared.rstrip("F"))) == np_type(float(exact)) != 0  # the nearest value of the type


def test_constants_are_folded_to_literals_exactly_evaluated():
    text = f"{HEAD}const a = exp(1)/3\nconst third = 1/3\nh' = {STEP}*a*third + log(1 + exp(1000))*h\n"
    cell = sg.parse(text)
    source = sg.generate(cell).c_source
    assert "const double a = 0.9060939428196817" in source and "M_E" not in source
    assert "const double third = 1.0/3.0;" in source  # a rational a double holds exactly stays exact
    assert "1000.0*h" in source  # exp(1000) alone fits no type, but log(1 + exp(1000)) does


@pytest.mark.parametrize(
    ("factor", "words"),
    [
        ("exp(1e300)", "constant 10^(4.3e+299) is beyond the range of float64"),
        ("exp(-1e300)", "constant 10^(-4.3e+299) is below the range of float64"),
        ("exp(800)", "constant exp(800) ≈ 2.7263745721125666E+347 is beyond the range of float64"),
        ("1e-300**2", "constant 1.00000000000000E-600 is below the range of float64"),
        ("tanh(exp(1e300))", "cannot evaluate the constants at column 26 ('tanh'): constant 10^(4.3e+299)"),
        ("floor(exp(1e300))", "cannot evaluate the constants at column 26 ('floor')"),
        ("exp(1e300)**2", "cannot evaluate the constants at column 36 ('**')"),
        ("sin(exp(1e10))", "constant 10^(4.3e+9) is beyond the range of float64"),
        ("exp(exp(exp(710)))", "constant exp(exp(710)) ≈ 10^(9.7e+307) is beyond the range of float64"),
        ("mod(exp(10**29), 3)", "constant exp(100000000000000000000000000000) ≈ 10^(4.3e+28)"),
    ],
)
def test_a_constant_part_of_an_equation_the_type_cannot_hold_is_refused_quoting_the_line_as_written(factor, words):
    line = f"h' = {STEP}*{factor}"
    error = refusal(f"{HEAD}{line}\n")
    assert error.line == 4 and str(error).endswith(f"\n    {line}"), str(error)
    assert words in str(error)


def test_a_float32_refusal_at_build_quotes_the_line_as_written():
    line = f"h' = {STEP}*exp(89)"
    error = refusal(f"{HEAD}{line}\n", "float32")
    assert str(error) == (
        "<string>:4: constant 4.4896128191743452E+38 is beyond the range of float32 (±3.4e38): it would be inf; "
        f"build in float64\n    {line}"
    )
    assert sg.generate(sg.parse(f"{HEAD}{line}\n"), "float64")


def test_a_defined_cell_with_a_constant_beyond_float64_is_refused_naming_it():
    x, h, k = sympy.symbols("x h k")
    with pytest.raises(sg.CellError, match=r"^<sympy>: constant k = exp\(800\) ≈ 2\.72637457211256\d*E\+347 is beyond"):
        sg.define("a", inputs={"x": "D"}, states={"h": "D"}, equations=[("h'", sympy.tanh(k * h + x))],
                  constants={"k": sympy.exp(800)})  # fmt: skip
    for big, words in [
        (sympy.Integer(10) ** 5000, r"constant 10\^\(5\.0e\+3\) is beyond the range of float64"),
        (sympy.Rational(1, 10**5000), r"constant 10\^\(-5\.0e\+3\) is below the range of float64"),
        (sympy.Rational(3, 2**1080), r"constant 2\.3159327148808432E-325 is below the range of float64"),
    ]:  # beyond what symgate evaluates, and beyond what str() prints; a rational that is not an integer
        with pytest.raises(sg.CellError, match=words):
            sg.define("a", inputs={"x": "D"}, states={"h": "D"}, equations=[("h'", sympy.tanh(big * h + x))])


def test_the_command_names_a_huge_constant_in_one_message_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "huge.cell"
    path.write_text(f"{HEAD}h' = {STEP}*exp(1e300)\n")
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"symgate: error: {path}:4: constant 10^(4.3e+299)") and "Traceback" not in err


# -- fuzz: extreme numbers spelled many ways, inside functions and powers ------------------------------
LITERALS = [
    "1e308", "1E308", "1.0e+308", "10e307", "0.1e309", "179769313486231570000000000000e279", "1.7976931348623157e308",
    "1.8e308", "1e309", "1e-320", "1E-320", "0.00001e-315", "5e-324", "4.9e-324", "2.5e-324", "2e-324", "1e-400",
    "0e999", "0.0e-400", "3.4e38", "3.5e38", "1.4e-45", "7e-46", "1e-46", "1e38", "1e39", "inf", "nan",
    "Infinity", "NaN", "(1/0)", "(0/0)", "0**-1", "(-1)**(1/2)", "999999999999999999999999999999", "2**64", "2**1023",
    "2**-1074", "2**-1075", "10**-323", "10**-324",
]  # fmt: skip
WRAPPERS = [
    "{}", "-{}", "exp({})", "exp(-{})", "log({})", "sqrt({})", "{}**2", "{}**-1", "{}**(1/2)", "{}**64", "{}*{}",
    "{}/{}", "1/{}", "sin({})", "cos({})", "floor({})", "mod({}, 3)", "sigmoid({})", "softplus({})", "tanh({})",
    "exp(exp({}))", "log(1 + exp({}))", "abs(-{})", "max({}, 2)", "clip(h, -{}, {})", "{}*h",
]  # fmt: skip


def c_literals_unfit(source: str, dtype: str) -> list[str]:
    """The numeric literals of ``source``'s code (not its comments) that ``dtype`` cannot hold, and
    any call of an inexact libm function on a number (a constant left for the compiler to round);
    ``floor``, ``fabs``, ``fmax`` and ``fmod`` of numbers within range are exact, and may stay."""
    _, overflow, underflow_exponent = LIMITS[dtype]
    overflow, underflow = Decimal(overflow), Decimal(2) ** -underflow_exponent
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("/*", "*", "//")))
    found = re.findall(r"\b(?:exp|log|sqrt|sin|cos|tanh|pow|log1p|expm1)f?\(\s*-?[\d.]+(?:[eE][-+]?\d+)?F?\s*\)", code)
    for literal in re.findall(r"(?<![\w.])(\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?)F?", code):
        value = Decimal(literal)  # exactly as written: the compiler rounds it to the type once
        if value >= overflow or (value and value <= underflow):
            found.append(literal)
    return found


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    literal=st.sampled_from(LITERALS),
    wrappers=st.lists(st.sampled_from(WRAPPERS), min_size=1, max_size=2),
    named=st.booleans(),
)
def test_extreme_numbers_anywhere_are_refused_as_cell_errors_or_reach_the_c_as_numbers_the_type_holds(
    literal, wrappers, named
):
    expr = literal
    for wrapper in wrappers:
        argument = expr if expr == literal else f"({expr})"
        expr = wrapper.format(*[argument] * wrapper.count("{}"))
    body = f"const c = {expr}\nh' = {STEP}*c\n" if named and "h" not in expr else f"h' = {STEP}*({expr})\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sg.SymgateWarning)  # a parameter named inf or nan: valid, warned of
            cell = sg.parse(HEAD + body)
    except sg.SymgateError as err:
        assert isinstance(err, sg.CellError) and isinstance(err.line, int), repr(err)
        return
    for dtype in ("float64", "float32"):
        try:
            source = sg.generate(cell, dtype).c_source
        except sg.CellError as err:
            assert err.line == 4 or err.line is None, str(err)
            continue
        assert not c_literals_unfit(source, dtype), (body, dtype)


def test_the_fuzz_checker_sees_an_unfit_literal_and_an_unfolded_call():
    assert c_literals_unfit("x = 1e39F*h + 1e-46F;", "float32") == ["1e39", "1e-46"]
    assert c_literals_unfit("x = exp(710)*h;", "float64") == ["exp(710)"]
    assert not c_literals_unfit("x = 1e38F*h;\n/* 1e999 */", "float32")
    assert not c_literals_unfit("x = 3.4e38F*h + 1.4e-45F;", "float32")
