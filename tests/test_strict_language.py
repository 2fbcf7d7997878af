"""The cell a user means: declarations nobody reads are errors, parameters spelled like a declared
name (or like pi, e, t) are warnings, ``strict`` makes them errors, and errors name only what the
user wrote, never a vector the checker lifted out of a product or a reduction (``U_arg``)."""

from __future__ import annotations

import warnings

import pytest
import sympy

import symgate as sg
import symgate.errors
from symgate.cli import main
from symgate.frontend.typos import how_close

HEAD = "cell t\ninput x: D\nstate h: H\n"
LSTM_TYPO = """\
cell lstm
input x: D
state h: H, c: H
i = sigmoid(W_i @ x + U_i @ h + b_i)
f = sigmoid(W_f @ x + U_f @ h + b_f)
g = tanh(W_g @ x + U_g @ h + b_g)
o = sigmoid(W_o @ x + U_o @ h + b_o)
c' = f*C + i*g
h' = o*tanh(c')
"""
PEEPHOLE_TYPO = LSTM_TYPO.replace("b_f)", "b_f + p_f*c)")  # c is read, so C is only suspicious


def parse_warnings(text: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sg.parse(text, source="t.cell")
    return [str(w.message) for w in caught]


# -- declarations nobody reads ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "symbol", "message"),
    [
        (
            LSTM_TYPO,
            3,
            "c",
            "t.cell:3: state c is never read; the parameter C in line 8 differs from it only by case: "
            "write c there if it is meant\n    state h: H, c: H",
        ),
        (
            "cell t\ninput x: D, u: E\nstate h: H\nh' = tanh(W @ x + U @ h)\n",
            2,
            "u",
            "t.cell:2: input u is never read: no equation uses it; use it or remove it\n    input x: D, u: E",
        ),
        (
            HEAD + "h' = tanh(W @ x)\n",
            3,
            "h",
            "t.cell:3: state h is never read: no equation uses its previous value, so it carries nothing from step "
            "to step; use it, or compute the value as an output (`output h = ...`)\n    state h: H",
        ),
    ],
)
def test_a_declaration_no_equation_reads_is_an_error_naming_it(text, line, symbol, message):
    with pytest.raises(sg.CellNameError) as info:
        sg.parse(text, source="t.cell")
    assert str(info.value) == message
    assert (info.value.line, info.value.symbol) == (line, symbol)


def test_the_sympy_route_refuses_an_unread_input_too():
    W, h = sg.symbols("W h")
    with pytest.raises(sg.CellNameError, match=r"^<sympy>: input x is never read"):
        sg.define("t", inputs={"x": "D"}, states={"h": "H"}, equations=[(sg.next_state("h"), sympy.tanh(W @ h))])


# -- warnings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            PEEPHOLE_TYPO,
            "t.cell:8: parameter C (line 8) differs from state c (line 3) only by case: write c if it is meant, "
            "or rename the parameter\n    c' = f*C + i*g",
        ),
        (
            HEAD + "h' = tanh(W @ x + U @ h) + hh\n",
            "t.cell:4: parameter hh (line 4) differs from state h (line 3) by one character: write h if it is meant, "
            "or rename the parameter\n    h' = tanh(W @ x + U @ h) + hh",
        ),
        (
            HEAD + "gate = sigmoid(W @ x)\nh' = gate*h + (1 - gaet)*tanh(U @ h)\n",
            "t.cell:5: parameter gaet (line 5) differs from intermediate gate (line 4) by one character: write gate "
            "if it is meant, or rename the parameter\n    h' = gate*h + (1 - gaet)*tanh(U @ h)",
        ),
        (
            HEAD + "h' = tanh(W @ x + U @ h)*pi\n",
            "t.cell:4: parameter pi (line 4) is a learned vector, not the number pi: write 3.141592653589793 or "
            "`const pi = 3.141592653589793`\n    h' = tanh(W @ x + U @ h)*pi",
        ),
        (
            HEAD + "h' = tanh(W @ x + U @ h)*e\n",
            "t.cell:4: parameter e (line 4) is a learned vector, not Euler's number e: write 2.718281828459045 or "
            "`const e = 2.718281828459045`\n    h' = tanh(W @ x + U @ h)*e",
        ),
        (
            HEAD + "h' = tanh(W @ x + U @ h + t)\n",
            "t.cell:4: parameter t (line 4) is a learned vector, not the time: a cell cannot read the step it is at; "
            "if a learned vector is meant, rename it\n    h' = tanh(W @ x + U @ h + t)",
        ),
    ],
)
def test_a_parameter_spelled_like_a_declared_name_or_a_number_is_a_warning_and_strict_an_error(text, message):
    assert parse_warnings(text) == [message]
    with pytest.raises(sg.CellNameError) as info:
        sg.parse(text, source="t.cell", strict=True)
    assert str(info.value) == message


def test_the_warning_carries_where_it_is_and_points_at_the_callers_line():
    with pytest.warns(sg.SymgateWarning) as caught:
        sg.parse(PEEPHOLE_TYPO, source="t.cell")
    warning = caught[0]
    assert (warning.message.line, warning.message.symbol, warning.message.source) == (8, "C", "t.cell")
    assert warning.filename == __file__
    assert sg.SymgateWarning is symgate.errors.SymgateWarning and issubclass(sg.SymgateWarning, UserWarning)


def test_load_and_define_take_strict(tmp_path):
    path = tmp_path / "typo.cell"
    path.write_text(PEEPHOLE_TYPO)
    with pytest.warns(sg.SymgateWarning, match="parameter C"):
        sg.load(path)
    with pytest.raises(sg.CellNameError, match=r"typo.cell:8: parameter C \(line 8\) differs from state c"):
        sg.load(path, strict=True)
    W, x, h, pi = sg.symbols("W x h pi")
    equations = [(sg.next_state("h"), sympy.tanh(W @ x) * h * pi)]
    with pytest.warns(sg.SymgateWarning, match=r"^<sympy>:1: parameter pi \(line 1\) is a learned vector"):
        sg.define("t", inputs={"x": "D"}, states={"h": "H"}, equations=equations)
    with pytest.raises(sg.CellNameError, match=r"^<sympy>:1: parameter pi \(line 1\) is a learned vector"):
        sg.define("t", inputs={"x": "D"}, states={"h": "H"}, equations=equations, strict=True)


@pytest.mark.parametrize(
    ("parameter", "declared", "how"),
    [
        ("C", "c", "only by case"),
        ("hh", "h", "by one character"),
        ("xpp", "xp", "by one character"),
        ("hx", "hy", None),  # two-character names are too close to one another to judge
        ("b1", "a1", None),
        ("gaet", "gate", "by one character"),
        ("gat", "gate", "by one character"),
        ("b", "h", None),  # one-letter names are all one edit apart
        ("x1", "x", None),  # a short name is matched only by its case twin and a doubled character
        ("W_f", "f", None),
        ("h", "h", None),
    ],
)
def test_which_names_are_close(parameter, declared, how):
    assert how_close(parameter, declared) == how


def test_no_warning_for_matrices_named_like_vectors_or_parameters_named_like_each_other():
    text = HEAD + "u = tanh(W_i @ x + W_f @ x + h)\nh' = tanh(U @ u)\n"  # U beside u; W_i beside W_f
    assert parse_warnings(text) == []


def test_builtin_cells_give_no_warning_in_strict_mode():
    for name in sg.cells.names():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sg.cells.get(name, strict=True)


def test_show_and_check_print_warnings_and_strict_makes_them_errors(capsys, tmp_path):
    path = tmp_path / "typo.cell"
    path.write_text(PEEPHOLE_TYPO)
    assert main(["show", str(path)]) == 0
    _, err = capsys.readouterr()
    message = f"{path}:8: parameter C (line 8) differs from state c (line 3) only by case"
    assert err.startswith(f"symgate: warning: {message}")
    assert main(["show", str(path), "--strict"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith(f"symgate: error: {message}")
    assert main(["check", str(path), "--strict"]) == 2
    _, err = capsys.readouterr()
    assert "symgate: error:" in err and "parameter C" in err


# -- errors name what the user wrote ------------------------------------------------------------

UNKNOWN_SIZE = "it meets no input, state or vector of known size (only constants, and reductions, which fit any size)"


@pytest.mark.parametrize(
    ("body", "symbol", "message"),
    [
        (
            "h' = tanh(W @ x + U_f @ hh)",
            "hh",
            f"cannot infer the size of `hh` (the right side of `U_f @ hh`): {UNKNOWN_SIZE}; hh is not declared, so it "
            "is a parameter: did you mean state h (line 3)?",
        ),
        ("h' = tanh(W @ x) + sum(q)", "q", f"cannot infer the size of `q` (the argument of `sum(q)`): {UNKNOWN_SIZE}"),
        (
            "h' = tanh(W @ x) + var(3*b)",
            "3*b",
            f"cannot infer the size of `3*b` (the argument of `var(3*b)`): {UNKNOWN_SIZE}",
        ),
        (
            "h' = tanh(W @ x + U @ (2*b))",
            "2*b",
            f"cannot infer the size of `2*b` (the right side of `U @ (2*b)`): {UNKNOWN_SIZE}",
        ),
        ("h' = tanh(W @ x + U @ (h*h'))", "h'", "h' is used in its own definition (a cycle)"),
        (
            "a = W @ x\nh' = tanh(U @ (a + b) + W @ (a + h))",
            "a + h",
            "size conflict in `W @ (a + h)`: `W` has columns of size D but `a + h` has size H",
        ),
        (
            "a = tanh(U @ (b*h))\nb = a*h\nh' = b + W @ x",
            "b",
            "cycle: a -> b -> a (each uses the next; b is assigned on line 5)",
        ),
        (
            "h' = tanh(W @ x + x @ (h + 1))",
            "x",
            "x is an input (a vector of size D); the left side of '@' must be a parameter matrix or a matrix state "
            "(`state S: K x V`, S' or a matrix computed from them)",
        ),
    ],
)
def test_errors_name_what_the_user_wrote_never_a_lifted_vector(body, symbol, message):
    with pytest.raises(sg.CellError) as info:
        sg.parse(HEAD + body + "\n", source="t.cell")
    assert info.value.reason == message and info.value.symbol == symbol
    assert "_arg" not in str(info.value)
