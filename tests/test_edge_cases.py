"""Regression tests for cells and calls at the edges of the language and the API."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgate as sg

HEAD = "cell a\ninput x: D\nstate h: H\n"
SIZES = {"D": 3, "H": 4}


@pytest.mark.parametrize(
    "body",
    [
        "h' = tanh(W @ p + U @ h + V @ (x*p))\n",  # a parameter vector on the right of @
        "a_pre = sigmoid(V @ x)\na = tanh(W @ x + U @ h)*a_pre\nh' = a\n",  # a name like a derived one
        "h' = relu(-exp(W @ x + h)) + 1\n",  # every gradient is exactly zero
        "a0 = 0.5\nh' = tanh(W @ x + M @ a0) + a0*h\n",  # an intermediate that depends on nothing
        "h' = sqrt(2)*tanh(W @ x + U @ h) + log(2)*h + exp(1)\n",  # numeric constants
        "h' = tanh(W @ x + U @ h + linux*h + M_PI + offsetof + HAVE_X + Py_x)\n",  # macro names
        "h' = h*mean(h) + tanh(W @ x) / sqrt(var(W @ x) + 1)\n",  # reductions
    ],
)
def test_unusual_cells_pass_the_gradient_check_and_compile_cleanly(body):
    cell = sg.parse(HEAD + body)
    report = sg.gradcheck(cell, SIZES, float32=True)
    assert report.ok, str(report)


def test_an_output_named_like_a_total_adjoint():
    cell = sg.parse("cell a\ninput x: D\nstate h: D\ny_tot = sigmoid(x)\noutput y = tanh(y_tot + h)\nh' = y*h\n")
    assert sg.gradcheck(cell, {"D": 3}).ok


def test_fractional_powers_mean_the_same_forward_and_backward():
    cell = sg.parse(HEAD + "h' = sigmoid(W @ x)**(1/3) + 0.5*h\n")
    assert "cbrt" not in sg.generate(cell).c_source
    assert sg.gradcheck(cell, SIZES).ok


def test_numbers_are_folded_so_the_cache_key_is_exact():
    (h,) = sg.symbols("h")
    cell = sg.define("p", inputs={}, states={"h": "H"}, equations=[(sg.next_state("h"), sympy.pi * h)])
    assert "3.141592653589793*h" in cell.text() and sg.parse(cell.text()).params == ()


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda W, x, h: [(sg.next_state("h"), "tanh(x)")], sg.CellError, "SymPy expression"),
        (lambda W, x, h: [(h + 1, h)], sg.CellNameError, "must be a name"),
        (lambda W, x, h: [(sg.next_state("h"), sg.MatVec(sympy.tanh(W), x))], sg.CellError, "may only add, subtract"),
        (lambda W, x, h: [(sg.next_state("h"), sg.Var("τ1") * h)], sg.CellNameError, "invalid name"),
        (lambda W, x, h: [(sg.next_state("h"), sympy.atan(h))], sg.UnknownFunctionError, "atan"),
    ],
)
def test_define_refuses_bad_objects_with_a_symgate_error(call, error, words):
    W, x, h = sg.symbols("W x h")
    with pytest.raises(error, match=words):
        sg.define("p", inputs={"x": "D"}, states={"h": "H"}, equations=call(W, x, h))
    with pytest.raises(sg.CellNameError, match="strings"):
        sg.define("p", inputs={"x": 3}, states={"h": "H"}, equations=[(sg.next_state("h"), h)])


@pytest.mark.parametrize("dim", ["T", "B"])
def test_the_step_and_batch_axes_are_not_dimension_names(dim):
    with pytest.raises(sg.CellNameError, match="taken"):
        sg.parse(f"cell a\ninput x: {dim}\nstate h: H\nh' = tanh(W @ x)\n")


def test_a_dimension_no_array_can_size_is_refused():
    with pytest.raises(sg.DimensionError, match="cannot be known"):
        sg.parse("cell a\ninput x: D\nstate h: D\noutput y: E = 3\nh' = h + W @ x\n")


def test_backward_refuses_a_run_from_another_kernel():
    k64, k32 = sg.build(sg.cells.get("lstm")), sg.build(sg.cells.get("lstm"), "float32")
    run = k32.forward(np.ones((5, 2, 3), np.float32), k32.init_params(SIZES))
    with pytest.raises(sg.ArrayError, match="another kernel"):
        k64.backward(run, {"h": np.ones((5, 2, 4))})


def test_changing_the_callers_arrays_after_forward_does_not_change_backward():
    k = sg.build(sg.cells.get("lstm"))
    params = k.init_params(SIZES, seed=1)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    run = k.forward(x, params)
    before = k.backward(run, {"h": np.ones((4, 2, 4))}).params["W_f"].copy()
    params["W_f"][:] = 7.0
    x[:] = 7.0
    after = k.backward(run, {"h": np.ones((4, 2, 4))}).params["W_f"]
    np.testing.assert_array_equal(before, after)


def test_temporaries_renumbered_in_a_cycle_keep_their_sizes():
    """Renumbering τ3 -> τ1, τ1 -> τ2 ... must not mix up the sizes (a vector became a scalar)."""
    cell = sg.parse(
        HEAD + "a0 = M1 @ x\nh' = sigmoid(mean(h))*h + (1 - sigmoid(mean(h)))*tanh(sigmoid(M11 @ x) + a0)\n"
    )
    derivation = sg.derive(cell)
    assert derivation.sizes["τ3"] == "H" and derivation.sizes["τ1"] == "1"
    assert sg.gradcheck(cell, SIZES).ok


def test_a_matrix_applied_to_a_per_sample_scalar_has_one_column():
    cell = sg.parse(HEAD + "a = mean(W @ x + h)\nh' = tanh(V @ a + U @ h)\n")
    assert cell.param("V").shape == ("H", "1")
    params = sg.build(cell).init_params(SIZES)
    assert params["V"].shape == (4, 1)
    assert sg.gradcheck(cell, SIZES).ok
