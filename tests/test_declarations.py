"""``param`` declarations (once one parameter is declared, all are, with checked shapes) and sized
intermediates (``m: M = ...``), through the whole pipeline: a multiplicative LSTM and a low-rank RNN
are gradient-checked and compared with NumPy implementations of their equations."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgate as sg
from symgate.frontend.syntax import ParamDeclaration, parse_source

HEAD = "cell t\ninput x: D\nstate h: H\n"
ELMAN = HEAD + "param W: H x D, U: H x H\nparam b: H\nh' = tanh(W @ x + U @ h + b)\n"

MLSTM = """\
# Multiplicative LSTM (Krause et al. 2016): the gates read m, of its own size M.
cell mlstm
input x: D
state h: H, c: H
m: M = (W_mx @ x)*(W_mh @ h)
i = sigmoid(W_i @ x + U_i @ m + b_i)
f = sigmoid(W_f @ x + U_f @ m + b_f)
o = sigmoid(W_o @ x + U_o @ m + b_o)
g = tanh(W_g @ x + U_g @ m + b_g)
c' = f*c + i*g
h' = o*tanh(c')
"""

LOW_RANK = """\
cell low_rank
input x: D
state h: H
r: R = Q @ h
h' = tanh(W @ x + P @ r + b)
"""


def error_of(text: str) -> sg.CellError:
    with pytest.raises(sg.CellError) as info:
        sg.parse(text, source="t.cell")
    return info.value


# -- param declarations ---------------------------------------------------------------------------


def test_param_lines_declare_matrices_vectors_and_scalars_several_to_a_line():
    source = parse_source(HEAD + "param W: H x D, b: H\nparam dt: 1\n")
    assert source.params == (
        ParamDeclaration("W", ("H", "D"), 4),
        ParamDeclaration("b", ("H",), 4),
        ParamDeclaration("dt", ("1",), 5),
    )


def test_declared_parameters_take_their_declared_order_and_shapes():
    cell = sg.parse(ELMAN)
    assert [(p.name, p.shape) for p in cell.params] == [("W", ("H", "D")), ("U", ("H", "H")), ("b", ("H",))]
    assert cell.params_declared and not sg.parse(HEAD + "h' = tanh(W @ x + U @ h + b)\n").params_declared


def test_the_canonical_text_carries_the_declarations_and_parses_back_to_the_same_cell():
    cell = sg.parse(ELMAN)
    assert cell.text() == (
        "cell t\ninput x: D\nstate h: H\nparam W: H x D\nparam U: H x H\nparam b: H\nh' = tanh(b + U @ h + W @ x)\n"
    )
    again = sg.parse(cell.text())
    assert again.text() == cell.text() and again.params == cell.params and again.params_declared


def test_declared_shapes_give_the_rank_of_a_product_inside_a_product():
    cell = sg.parse(HEAD + "param W: H x D, P: H x R, Q: R x H, b: H\nh' = tanh(W @ x + P @ (Q @ h) + b)\n")
    assert cell.param("Q").shape == ("R", "H") and cell.param("P").shape == ("H", "R")
    assert sg.parse(cell.text()).text() == cell.text()


def test_define_takes_the_same_declarations():
    W, U, b, x, h = sg.symbols("W U b x h")
    cell = sg.define(
        "t",
        inputs={"x": "D"},
        states={"h": "H"},
        equations=[(sg.next_state("h"), sympy.tanh(W @ x + U @ h + b))],
        params={"W": ("H", "D"), "U": ("H", "H"), "b": ("H",)},
    )
    assert cell.text() == sg.parse(ELMAN).text()


def test_define_names_the_form_of_params_when_it_is_wrong():
    x, h = sg.symbols("x h")
    with pytest.raises(sg.CellNameError) as info:
        sg.define("t", inputs={"x": "D"}, states={"h": "H"}, equations=[("h'", x + h)], params={"b": "H"})
    assert info.value.reason == (
        'params must map names to shapes of one or two dimension names: {"W": ("H", "D"), "b": ("H",)}'
    )


def test_declared_parameters_are_not_suspected_of_being_slips(recwarn):
    sg.parse("cell t\ninput x: D\nstate h: H, c: H\nparam C: H, W: H x D\nh' = tanh(W @ x + h) + C*c\nc' = c\n")
    assert not [w for w in recwarn if issubclass(w.category, sg.SymgateWarning)]


@pytest.mark.parametrize(
    ("text", "error", "line", "symbol", "message"),
    [
        (
            HEAD + "param W: H x D\nparam b: H\nh' = tanh(W @ x + U @ h + b)\n",
            sg.CellNameError,
            6,
            "U",
            "U is not declared: this cell declares its parameters (`param` lines) and U is not one of them, nor an "
            "input, state, constant or assigned name; declare it (`param U: H x H`) or, if it is a slip, write the "
            "name it stands for",
        ),
        (
            HEAD + "param W: H x D\nh' = tanh(W @ x + h) + sum(a)\n",
            sg.CellNameError,
            5,
            "a",
            "a is not declared: this cell declares its parameters (`param` lines) and a is not one of them, nor an "
            "input, state, constant or assigned name; declare it (`param a: DIM`) or, if it is a slip, write the "
            "name it stands for",
        ),
        (
            HEAD + "param W: H x D, U: H x H, V: H x H\nparam b: H\nh' = tanh(W @ x + U @ h + b)\n",
            sg.CellNameError,
            4,
            "V",
            "parameter V is never used: no equation reads it; use it or remove its declaration",
        ),
        (
            HEAD + "param W: H x E, U: H x H\nparam b: H\nh' = tanh(W @ x + U @ h + b)\n",
            sg.DimensionError,
            6,
            "W",
            "W is declared `param W: H x E` (line 4) but the equations make it H x D (line 6): change the declaration "
            "or the equations",
        ),
        (
            HEAD + "param W: H x D, U: H x H, b: E\na = W @ x\nh' = tanh(a + U @ h + b)\n",
            sg.DimensionError,
            6,
            "b",
            "b is declared `param b: E` (line 4) but the equations make it H (line 6): change the declaration or the "
            "equations",
        ),
        (
            HEAD + "param W: H x D, U: H\nparam b: H\nh' = tanh(W @ x + U @ h + b)\n",
            sg.DimensionError,
            6,
            "U",
            "U is declared `param U: H` (line 4) but used as a matrix (on the left of '@') in line 6",
        ),
        (
            HEAD + "param W: H x D, U: H x H\nparam b: H x H\nh' = tanh(W @ x + U @ h + b)\n",
            sg.DimensionError,
            6,
            "b",
            "b is declared `param b: H x H` (line 5) but used as a vector in line 6",
        ),
        (
            HEAD + "param W: H x D\nW = x\nh' = tanh(W @ x)\n",
            sg.CellNameError,
            5,
            "W",
            "W is a parameter (line 4): parameters are learned, never assigned",
        ),
        (
            HEAD + "param W: H x D, h: H\nh' = tanh(W @ x)\n",
            sg.CellNameError,
            4,
            "h",
            "h is declared twice (first on line 3)",
        ),
        (
            HEAD + "param W: H x D, W: H\nh' = tanh(W @ x)\n",
            sg.CellNameError,
            4,
            "W",
            "W is declared twice (first on line 4)",
        ),
        (
            HEAD + "param W: H x D\nconst W = 2\nh' = tanh(W @ x)\n",
            sg.CellNameError,
            5,
            "W",
            "W is defined twice",
        ),
        (
            HEAD + "param W: T x D\nh' = tanh(W @ x)\n",
            sg.CellNameError,
            4,
            "T",
            "dimension T is taken: T is the number of steps and B the batch size",
        ),
        (HEAD + "param W: H x 2\nh' = tanh(W @ x)\n", sg.CellSyntaxError, 4, "2", None),
        (HEAD + "param W H\nh' = tanh(W @ x)\n", sg.CellSyntaxError, 4, "H", None),
        (HEAD + "param: H\nh' = tanh(W @ x)\n", sg.CellSyntaxError, 4, ":", None),
        ("cell t\ninput x: D\nstate h: H\nparam = 2\nh' = x\n", sg.CellNameError, 4, "param", None),
    ],
)
def test_declaration_mistakes_name_the_line_the_symbol_and_the_fix(text, error, line, symbol, message):
    err = error_of(text)
    assert type(err) is error and err.line == line and err.symbol == symbol
    if message is not None:
        assert err.reason == message


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            "param W: H x 2",
            "expected a dimension name after 'x', found '2' at column 14: "
            "sizes are named and given when the kernel runs; 1 declares a per-sample scalar",
        ),
        (
            "param W H",
            "expected ':' (parameters are declared as 'NAME: ROWS x COLS' or 'NAME: DIM') after 'W', "
            "found 'H' at column 9",
        ),
        ("param: H", "expected a parameter name after 'param', found ':' at column 6"),
        ("param = 2", "'param' is a keyword and cannot be assigned"),
    ],
)
def test_malformed_declarations_say_what_was_expected(declaration, message):
    assert error_of(HEAD + declaration + "\nh' = tanh(W @ x)\n").reason == message


# -- sized intermediates ----------------------------------------------------------------------------


def test_a_sized_intermediate_has_its_size_and_keeps_it_in_the_canonical_text():
    cell = sg.parse(MLSTM)
    assert cell.sizes["m"] == "M" and cell.dims == ("D", "H", "M")
    assert cell.param("W_mx").shape == ("M", "D") and cell.param("U_i").shape == ("H", "M")
    assert "\nm: M = (W_mh @ h)*(W_mx @ x)\n" in cell.text()
    assert sg.parse(cell.text()).text() == cell.text()


@pytest.mark.parametrize(
    ("body", "line", "symbol", "message"),
    [
        (
            "h' = tanh(W @ x + P @ (Q @ h) + b)",
            4,
            "Q @ h",
            "the size of `Q @ h` (the right side of `P @ (Q @ h)`) cannot be inferred: name it with its size, e.g. "
            "`r: R = Q @ h`, then write `P @ r`",
        ),
        (
            "r = h\nh' = tanh(W @ x + P @ (Q @ h) + r)",
            5,
            "Q @ h",
            "the size of `Q @ h` (the right side of `P @ (Q @ h)`) cannot be inferred: name it with its size, e.g. "
            "`r2: R = Q @ h`, then write `P @ r2`",
        ),
        (
            "h' = tanh(W @ x) + sum(Q @ h)",
            4,
            "Q @ h",
            "the size of `Q @ h` (the argument of `sum(Q @ h)`) cannot be inferred: name it with its size, e.g. "
            "`r: R = Q @ h`, then write `sum(r)`",
        ),
        (
            "r = Q @ h\nh' = tanh(W @ x + P @ r)",
            4,
            "r",
            "cannot infer the size of r: it meets no input, state or vector of known size (only constants, and "
            "reductions, which fit any size); declare it: `r: DIM = ...`",
        ),
        (
            "m: M = 2*h\nh' = tanh(W @ x + m)",
            4,
            "m",
            "m has size M but `2*h` has size H",
        ),
        ("h': H = tanh(W @ x)", 4, "h'", "h' is the next value of state h and has its size; write h' = ..."),
    ],
)
def test_unsized_products_say_what_to_declare(body, line, symbol, message):
    err = error_of(HEAD + body + "\n")
    assert (err.line, err.symbol, err.reason) == (line, symbol, message)
    assert "_arg" not in str(err)


# -- through the pipeline ---------------------------------------------------------------------------


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def mlstm_step(p: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    """One step of the multiplicative LSTM on a batch (rows are samples), as Krause et al. write it."""
    m = (x @ p["W_mx"].T) * (h @ p["W_mh"].T)
    i, f, o = (sigmoid(x @ p[f"W_{k}"].T + m @ p[f"U_{k}"].T + p[f"b_{k}"]) for k in "ifo")
    g = np.tanh(x @ p["W_g"].T + m @ p["U_g"].T + p["b_g"])
    c = f * c + i * g
    return o * np.tanh(c), c


def low_rank_step(p: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    """One step of the rank-R recurrence h' = tanh(W x + P (Q h) + b)."""
    return (np.tanh(x @ p["W"].T + (h @ p["Q"].T) @ p["P"].T + p["b"]),)


@pytest.mark.parametrize(
    ("text", "sizes", "step"),
    [(MLSTM, {"D": 3, "H": 4, "M": 5}, mlstm_step), (LOW_RANK, {"D": 3, "H": 5, "R": 2}, low_rank_step)],
    ids=["mlstm", "low_rank"],
)
def test_sized_intermediates_compute_the_equations_and_their_gradients(text, sizes, step):
    cell = sg.parse(text)
    report = sg.gradcheck(cell, sizes, steps=4, batch=3, seed=1)
    assert report.ok, str(report)
    assert report.max_rel_error <= 1e-6

    kernel = sg.build(cell)
    rng = np.random.default_rng(7)
    params = kernel.init_params(sizes, seed=3)
    xs = rng.standard_normal((6, 3, sizes["D"]))
    init = {s: rng.standard_normal((3, sizes[d])) for s, d in cell.states.items()}
    run = kernel.forward(xs, params, init)
    states = tuple(init.values())
    for t in range(xs.shape[0]):
        states = step(params, xs[t], *states)
        for name, value in zip(cell.states, states, strict=True):
            np.testing.assert_allclose(run.states[name][t], value, rtol=0, atol=1e-10)


def test_a_declared_scalar_parameter_is_one_learned_number_that_broadcasts():
    cell = sg.parse(HEAD + "param W: H x D, dt: 1\nh' = h + dt*tanh(W @ x)\n")
    assert {p.name: p.shape for p in cell.params} == {"W": ("H", "D"), "dt": ("1",)}
    assert sg.parse(cell.text()).fingerprint() == cell.fingerprint()
    report = sg.gradcheck(cell, sizes={"D": 2, "H": 3}, steps=3, batch=2, seed=0)
    assert report.ok, str(report)
