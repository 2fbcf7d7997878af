"""The cell language's matrix states: what a matrix expression means, and each mistake an author
can make with one, refused with a message that names the line, the symbol and the fix.

Meaning: beside a matrix a vector is a column (``f * S`` scales rows) and ``g.T`` a row (scales
columns); ``outer(a, b)`` is ``a * b.T``; ``S @ v`` / ``S.T @ v`` multiply each sample's own matrix;
``rowsum``/``colsum`` sum along an axis. Each is checked on numbers against NumPy's broadcasting
(the NumPy reference is an independent evaluator of the equations) and the compiled kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg
from symgate.errors import CellNameError, CellSyntaxError, DimensionError

HEAD = "cell m\ninput x: D\nstate S: K x V, h: K\n"
SIZES = {"D": 2, "K": 3, "V": 4}


def _run(body: str, init: dict, x: np.ndarray) -> sg.Run:
    kernel = sg.build(sg.parse(HEAD + body), "float64")
    params = kernel.init_params(SIZES, seed=0)
    return kernel.forward(x, params, init), params


def test_columns_rows_outer_products_and_per_sample_products_mean_what_numpy_means():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, SIZES["D"]))
    S, h = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3))
    body = (
        "f = W_f @ x\n"  # size K: a column beside S
        "g = W_g @ x\n"  # size V: a row when written g.T
        "S' = f*S + S*g.T + outer(h, g) + 2\n"
        "h' = S @ g + rowsum(S')\n"
        "output y: V = S'.T @ h + colsum(S)\n"
    )
    run, p = _run(body, {"S": S, "h": h}, x)
    f, g = x[0] @ p["W_f"].T, x[0] @ p["W_g"].T
    S_next = f[:, :, None] * S + S * g[:, None, :] + h[:, :, None] * g[:, None, :] + 2
    np.testing.assert_allclose(run.states["S"][0], S_next, rtol=1e-14)
    h_next = np.einsum("bkv,bv->bk", S, g) + S_next.sum(axis=2)
    np.testing.assert_allclose(run.states["h"][0], h_next, rtol=1e-13)
    y = np.einsum("bkv,bk->bv", S_next, h) + S.sum(axis=1)
    np.testing.assert_allclose(run.outputs["y"][0], y, rtol=1e-13)


def test_the_canonical_text_of_every_matrix_cell_parses_back_to_it():
    for name in ("linear_attention", "deltanet", "gla", "fast_weights", "xlstm_mlstm"):
        cell = sg.cells.get(name)
        again = sg.parse(cell.text())
        assert [(e.target, e.expr) for e in again.equations] == [(e.target, e.expr) for e in cell.equations]
        assert again.states == cell.states and again.sizes == cell.sizes


MISTAKES = [
    # (cell text after `cell m`, exception, line, symbol, what the message must say)
    (
        "input X: K x V\nstate h: K\nh' = rowsum(X)",
        CellSyntaxError,
        2,
        None,
        "an input is a vector: X cannot be a matrix",
    ),
    ("input x: D\nstate S: K x 1\nS' = S", CellSyntaxError, 3, None, "a matrix state has two named dimensions"),
    (
        "input x: D\nstate S: K x V\nk = W @ x\nv = U @ x\nS' = S + k*v.T + v",
        DimensionError,
        6,
        "v",
        "`k*v.T` has rows of size K but `v` has size V; a vector beside a matrix scales its rows, and v.T its columns",
    ),
    (
        "input x: D\nstate h: H\na = W @ x\nh' = outer(a, h)",
        DimensionError,
        5,
        "h'",
        "h' = `a*h.T` is a matrix (`h.T` lays h as a row, and a column beside a row makes a matrix, their outer "
        "product), but state h is declared a vector of size H",
    ),
    (
        "input x: D\nstate S: K x V\nS' = W @ x",
        DimensionError,
        4,
        "S'",
        "S' is a matrix (K x V) but `W @ x` is a vector; make it a matrix (outer(a, b), f * S)",
    ),
    (
        "input x: D\nstate h: H\nh' = h + U @ x\nv = W @ x\noutput y = v.T",
        DimensionError,
        6,
        "y",
        "`v.T` is a row (a vector laid along a matrix's columns: v.T, or outer's second argument beside a "
        "constant), which only broadcasts over a matrix",
    ),
    (
        "input x: D\nstate h: H\nh' = rowsum(h) + x",
        DimensionError,
        4,
        "h",
        "rowsum sums a matrix along one axis (sum(v) sums a vector), and `h` is a vector",
    ),
    (
        "input x: D\nstate S: K x V, h: K\nS' = S\nh' = W @ S",
        DimensionError,
        5,
        "S",
        "the right side of '@' must be a vector, and `S` is a matrix",
    ),
    (
        "input x: D\nstate S: K x V\nS' = S * S.T",
        DimensionError,
        4,
        "S",
        "only a vector can be laid as a row, and `S` is a matrix",
    ),
    (
        "input x: D\nstate h: H\nh' = h @ x",
        CellNameError,
        4,
        "h",
        "h is a state (a vector of size H); the left side of '@' must be a parameter matrix or a matrix state",
    ),
]


@pytest.mark.parametrize(("body", "kind", "line", "symbol", "message"), MISTAKES)
def test_each_mistake_names_line_symbol_and_fix(body, kind, line, symbol, message):
    with pytest.raises(kind) as info:
        sg.parse(f"cell m\n{body}\n")
    assert message in str(info.value)
    assert info.value.line == line
    if symbol is not None:
        assert info.value.symbol == symbol
