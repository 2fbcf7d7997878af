"""Checking cells: roles, evaluation order, sizes, and an error naming line and symbol for every mistake."""

from __future__ import annotations

import pytest
import sympy
from conftest import LSTM

import symgate as sg


def cell_text(*equations: str, declarations: str = "input x: D\nstate h: H") -> str:
    return "cell t\n" + declarations + "\n" + "\n".join(equations) + "\n"


def test_lstm_roles_and_shapes():
    cell = sg.parse(LSTM)
    assert cell.inputs == {"x": "D"} and cell.states == {"h": "H", "c": "H"}
    assert cell.dims == ("D", "H")
    shapes = {p.name: p.shape for p in cell.params}
    assert shapes["W_f"] == ("H", "D") and shapes["U_f"] == ("H", "H") and shapes["b_f"] == ("H",)
    assert len(cell.params) == 12
    assert [p.name for p in cell.params][:3] == ["W_f", "U_f", "b_f"]  # order of the text
    assert [e.kind for e in cell.equations] == ["intermediate"] * 4 + ["next", "next"]


def test_canonical_text_parses_back_to_the_same_cell():
    cell = sg.parse(LSTM)
    again = sg.parse(cell.text())
    assert again.text() == cell.text()
    assert [e.expr for e in again.equations] == [e.expr for e in cell.equations]


def test_product_of_an_expression_is_lifted_into_a_named_vector():
    cell = sg.parse(cell_text("r = sigmoid(W_r @ x)", "h' = tanh(U @ (r*h))"))
    lifted = cell.equations[1]
    assert lifted.target.name == "U_arg" and lifted.expr == sg.Var("r") * sg.Var("h")
    assert cell.param("U").shape == ("H", "H")


def test_sizes_of_different_vectors_may_feed_one_sum_through_products():
    cell = sg.parse(cell_text("h' = tanh(W @ x + U @ c + h)", "c' = c", declarations="input x: D\nstate h: H, c: C"))
    assert cell.param("W").shape == ("H", "D") and cell.param("U").shape == ("H", "C")


def test_sympy_route_gives_the_same_cell_as_text():
    W, U, b, x, h = sg.symbols("W U b x h")
    cell = sg.define(
        "elman", inputs={"x": "D"}, states={"h": "H"}, equations=[(sg.next_state("h"), sympy.tanh(W @ x + U @ h + b))]
    )
    text = sg.parse("cell elman\ninput x: D\nstate h: H\nh' = tanh(W @ x + U @ h + b)\n")
    assert cell.text() == text.text()
    assert {p.name: p.shape for p in cell.params} == {p.name: p.shape for p in text.params}


def test_sympy_route_accepts_plain_sympy_symbols():
    x, h, w = sympy.symbols("x h w")
    cell = sg.define("scaled", inputs={"x": "D"}, states={"h": "D"}, equations={"h'": w * x + h})
    assert cell.param("w").shape == ("D",)


@pytest.mark.parametrize(
    ("text", "error", "line", "symbol", "words"),
    [
        (cell_text("y = tanh(W @ x)", declarations="input x: D\nstate h: H"), sg.StateUpdateError, 3, "h", "no update"),
        (cell_text("h' = tanh(W @ x)", "h' = x"), sg.StateUpdateError, 5, "h'", "updated twice"),
        (cell_text("a = tanh(W @ x)", "a = x", "h' = a"), sg.EquationOrderError, 5, "a", "assigned twice"),
        (cell_text("h' = tanh(a)", "a = W @ x"), sg.EquationOrderError, 4, "a", "before it is assigned"),
        (cell_text("a = tanh(b)", "b = a + W @ x", "h' = b"), sg.EquationOrderError, 4, "b", "cycle"),
        (cell_text("a = a + W @ x", "h' = a"), sg.EquationOrderError, 4, "a", "own definition"),
        (
            cell_text("h' = h + c", "c' = c", declarations="input x: D\nstate h: H, c: C"),
            sg.DimensionError,
            4,
            None,
            "H",
        ),
        (cell_text("h' = tanh(W @ x + x)"), sg.DimensionError, 4, "h'", "has size D"),
        (cell_text("h' = tanh(W @ x) + W"), sg.DimensionError, 4, "W", "matrix"),
        (cell_text("h' = h + 2*b + q", "q = 3"), sg.EquationOrderError, 4, "q", "before"),
        (cell_text("q = 2*k", "h' = tanh(W @ x + U @ q)"), sg.DimensionError, 4, "q", "cannot infer the size of q"),
        (cell_text("h' = x @ h"), sg.CellNameError, 4, "x", "parameter matrix"),
        (cell_text("x = h", "h' = x"), sg.CellNameError, 4, "x", "input"),
        (cell_text("h = x", "h' = h"), sg.CellNameError, 4, "h", "h'"),
        (cell_text("z' = x", "h' = h"), sg.CellNameError, 4, "z'", "not a declared state"),
        (cell_text("u = tanh(x)", "h' = W @ x"), sg.CellNameError, 4, "u", "never used"),
        (cell_text("h' = sigmod(W @ x)"), sg.UnknownFunctionError, 4, "sigmod", "sigmod"),
        (cell_text("h' = h", declarations="input x: D\nstate h: H, h: H"), sg.CellNameError, 3, "h", "twice"),
    ],
)
def test_each_mistake_names_line_and_symbol(text, error, line, symbol, words):
    with pytest.raises(error) as info:
        sg.parse(text, source="bad.cell")
    err = info.value
    assert isinstance(err, sg.SymgateError)
    if line is not None:
        assert err.line == line
        assert str(err).startswith(f"bad.cell:{line}:")
    if symbol is not None:
        assert err.symbol == symbol
    assert words in str(err)


def test_size_conflict_message_names_both_sides():
    text = cell_text("h' = tanh(h + c)", "c' = c", declarations="input x: D\nstate h: H, c: C")
    with pytest.raises(sg.DimensionError, match=r"`c` has size C") as info:
        sg.parse(text)
    assert "h + c" in str(info.value) and "h' = tanh(h + c)" in str(info.value)


def test_names_that_clash_with_c_are_accepted_and_mangled_later():
    cell = sg.parse(cell_text("h' = tanh(int @ x + double*h + exp + main)"))
    assert {p.name for p in cell.params} == {"int", "double", "exp", "main"}


def test_load_reports_missing_file(tmp_path):
    with pytest.raises(sg.CellError, match="cannot read"):
        sg.load(tmp_path / "missing.cell")


def test_unknown_builtin_suggests_close_names():
    with pytest.raises(sg.UnknownCellError, match="lstm"):
        sg.cells.get("lstn")
