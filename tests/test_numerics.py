"""Numerics at the edges: saturated activations, NaN and inf in the inputs, floating-point
warnings, and a gradient check that knows where finite differences cannot judge.

Every test here runs with NumPy's floating-point errors raised and warnings turned into errors,
so no overflow, invalid operation or division by zero escapes as a warning.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import sympy

import symgate as sg
from symgate.export import render_export
from symgate.frontend import functions
from symgate.symbolic import ranges
from symgate.verify import reference

DTYPES = ["float64", "float32"]


@pytest.fixture(autouse=True)
def floating_point_errors_are_errors():
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        yield


ACTIVATIONS = sg.parse(
    "cell act\ninput x: D\nstate h: D\n"
    "output s = sigmoid(x)\noutput t = tanh(x)\noutput p = softplus(x)\noutput r = relu(x)\nh' = tanh(h + x)\n"
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pre_activations_of_plus_minus_1e4_give_exact_limits_forward_and_backward(dtype):
    k = sg.build(ACTIVATIONS, dtype)
    x = np.array([[[1e4, -1e4, 1e4 / 3, -1e4 / 7]]], dtype)
    run = k.forward(x, {})
    one = np.float32(1) if dtype == "float32" else 1.0
    assert run.outputs["s"].tolist() == [[[1, 0, 1, 0]]] and run.outputs["t"].tolist() == [[[1, -1, 1, -1]]]
    assert run.outputs["p"].tolist() == [[[1e4 * one, 0, (x[0, 0, 2]).item(), 0]]]
    assert run.states["h"].tolist() == [[[1, -1, 1, -1]]]
    for output in ("s", "t", "h"):  # each saturated derivative is exactly 0
        g = k.backward(run, {output: np.ones_like(x)})
        assert g.inputs["x"].tolist() == [[[0, 0, 0, 0]]], output
    g = k.backward(run, {"p": np.ones_like(x), "r": np.ones_like(x)})
    assert g.inputs["x"].tolist() == [[[2, 0, 2, 0]]]  # softplus' = sigmoid, relu' = step


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_saturated_lstm_stays_finite_and_its_gradients_vanish_exactly(dtype):
    k = sg.build(sg.cells.get("lstm"), dtype)
    params = {n: (a * 1e4).astype(dtype) for n, a in k.init_params({"D": 3, "H": 4}, seed=1).items()}
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(dtype)
    run = k.forward(x, params)
    grads = k.backward(run, {"h": np.ones((6, 2, 4), dtype)})
    everything = [*run.states.values(), *run.tape.values(), *grads.params.values(), *grads.inputs.values()]
    assert all(np.isfinite(a).all() for a in everything)
    assert np.all(np.abs(run.states["h"]) <= 1)
    assert not grads.params["W_g"].any() and not grads.params["U_f"].any()  # every gate is saturated


def poisoned(cell, dtype, value, seed=0):
    """Inputs with ``value`` at step 2 of sample 0, unit 0 of the first input."""
    sizes = {d: 3 + i for i, d in enumerate(cell.dims)}
    rng = np.random.default_rng(seed)
    x = {n: rng.standard_normal((5, 2, sizes[d])).astype(dtype) for n, d in cell.inputs.items()}
    next(iter(x.values()))[2, 0, 0] = value
    return sizes, x


CELLS = ["lstm", "gru_cho", "indrnn", "rnn_relu_pytorch", "r2rt_normalized_prototype", "sru", "qrnn_ifo", "mgu"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_in_one_sample_reach_what_the_reference_says_they_touch_and_nothing_else(name, dtype, value):
    cell = sg.cells.get(name)
    k = sg.build(cell, dtype)
    sizes, x = poisoned(cell, dtype, value)
    params = k.init_params(sizes, seed=0)
    run = k.forward(x, params)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in the reference is the point
        states, outputs = reference.forward(
            cell,
            {n: a.astype(np.float64) for n, a in x.items()},
            {n: a.astype(np.float64) for n, a in params.items()},
            {s: np.zeros((2, sizes[d])) for s, d in cell.states.items()},
        )
    expected = {**states, **outputs}
    for s, seq in [*run.states.items(), *run.outputs.items()]:
        assert np.isfinite(seq[:, 1]).all() and np.isfinite(seq[:2, 0]).all(), f"{s} outside the poisoned step"
        np.testing.assert_array_equal(np.isnan(seq), np.isnan(expected[s]), err_msg=s)
        np.testing.assert_array_equal(np.isinf(seq), np.isinf(expected[s]), err_msg=s)
        tolerance = 1e-4 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(seq, expected[s], rtol=tolerance, atol=tolerance, err_msg=s)
    if np.isnan(value):
        assert any(np.isnan(seq[2:, 0]).any() for seq in run.states.values())
    grads = k.backward(run, {s: np.ones_like(a) for s, a in run.states.items()})
    for n, g in [*grads.inputs.items(), *grads.init.items()]:
        assert np.isfinite(g[..., 1, :]).all(), f"gradient of sample 1's {n}"
    if np.isnan(value):  # parameter gradients sum over the batch: sample 0 touches them
        assert np.isnan(next(iter(grads.inputs.values()))[2, 0]).any()
        assert any(np.isnan(g).any() for g in grads.params.values())


SATURATING = (
    "cell sat\ninput x: D\nstate h: H\nf = sigmoid(W @ (1000*x) + U @ h)\nh' = f*h + (1-f)*tanh(V @ (1000*x))\n"
)


def test_the_gradient_check_reports_elements_finite_differences_cannot_resolve_instead_of_failing():
    """Inputs scaled by 1000 move pre-activations by units within the stencil (e = 1e-3): there
    finite differences at e and e/2 disagree, and no tolerance could be honest about them."""
    report = sg.gradcheck(sg.parse(SATURATING), {"D": 3, "H": 4})
    assert report.ok, str(report)
    assert report.unresolved > 0 and sum(t.unresolved for t in report.gradients) == report.unresolved
    assert f"unresolved: {report.unresolved} elements (" in str(report) and "saturates" in str(report)
    plain = sg.gradcheck(sg.parse(SATURATING.replace("1000*x", "x")), {"D": 3, "H": 4})
    assert plain.ok and plain.unresolved == 0 and "unresolved" not in str(plain)


def test_a_wrong_derivative_is_still_caught_where_elements_are_unresolved(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))  # kernels of the wrong rule stay apart
    monkeypatch.setattr(functions.sigmoid, "fdiff", lambda self, argindex=1: self * (1 - self) * 1.0001)
    report = sg.gradcheck(sg.parse(SATURATING), {"D": 3, "H": 4})
    assert not report.ok and "exceeds tolerance" in str(report)


HEAD = "cell big\ninput x: D\nstate h: H\n"
FLOAT32_RANGE = "beyond the range of float32 (±3.4e38): it would be inf; build in float64"


@pytest.mark.parametrize(
    ("body", "line", "quoted", "words"),
    [
        (
            "const k = 1e39\nh' = tanh(k*h + W @ x)",
            4,
            "const k = 1e39",
            f"constant k = 1.00000000000000E+39 is {FLOAT32_RANGE}",
        ),
        (
            "h' = tanh(1e39*h + W @ x)",
            4,
            "h' = tanh(1e39*h + W @ x)",
            f"constant 1.00000000000000E+39 is {FLOAT32_RANGE}",
        ),
        (
            "a = 3e38*h**2\nh' = tanh(a + W @ x)",
            4,
            "a = 3e38*h**2",
            f"differentiating it gives the constant 6.00000000000000E+38, {FLOAT32_RANGE}",
        ),
        (
            "h' = tanh(1e-50*h + W @ x)",
            4,
            "h' = tanh(1e-50*h + W @ x)",
            "constant 1.00000000000000E-50 is below the range of float32 (smallest 1.4e-45): it would be 0; "
            "build in float64",
        ),
    ],
    ids=["named constant", "constant", "derived constant", "constant flushed to 0"],
)
def test_a_constant_float32_cannot_hold_refuses_the_float32_build_by_name_and_float64_builds(body, line, quoted, words):
    cell = sg.parse(HEAD + body + "\n")
    with pytest.raises(sg.CellError) as info:
        sg.build(cell, "float32")
    where = f"<string>:{line}: " if line else "<string>: "
    assert info.value.line == line and str(info.value) == where + words + (f"\n    {quoted}" if quoted else "")
    k = sg.build(cell, "float64")
    h = np.full((1, 3), 1e-40)  # the constants times h are moderate
    run = k.forward(np.ones((1, 1, 2)), k.init_params({"D": 2, "H": 3}, seed=0), {"h": h})
    grads = k.backward(run, {"h": np.ones((1, 1, 3))})
    assert all(np.isfinite(a).all() and a.all() for a in (run.states["h"], grads.init["h"]))


def test_a_derived_constant_beyond_float64_refuses_float64_too():
    with pytest.raises(
        sg.CellError,
        match=r"^<string>:4: differentiating it gives the constant 2.00000000000000E\+308, "
        r"beyond the range of float64 \(±1.8e308\): it would be inf; rescale the equation",
    ):
        sg.build(sg.parse(HEAD + "h' = tanh(1e308*h**2 + W @ x)\n"))


def test_subnormal_float32_constants_are_kept_not_flushed_to_zero():
    k = sg.build(sg.parse(HEAD + "h' = tanh(1e-40*h + W @ x)\n"), "float32")
    run = k.forward(
        np.ones((1, 1, 2), "float32"), k.init_params({"D": 2, "H": 3}, seed=0), {"h": np.ones((1, 3), "float32")}
    )
    grads = k.backward(run, {"h": np.ones((1, 1, 3), "float32")})
    h_next = run.states["h"][0].astype(float)
    np.testing.assert_allclose(grads.init["h"], 1e-40 * (1 - h_next**2), rtol=1e-4)  # ~9.99995e-41 in float32


def test_an_inference_only_export_has_no_backward_pass_so_only_its_forward_constants_must_fit():
    cell = sg.parse(HEAD + "a = 3e38*h**2\nh' = tanh(a + W @ x)\n")
    params = sg.build(cell).init_params({"D": 2, "H": 3}, seed=0)
    assert render_export(cell, dtype="float32", params=params).files  # derivative 6e38: not exported
    with pytest.raises(sg.CellError, match=r"differentiating it gives the constant 6\.0"):
        render_export(cell, dtype="float32")  # forward and backward kernels


def test_a_constant_only_a_sum_of_derivatives_makes_names_the_backward_equation():
    cell = sg.parse(HEAD + "h' = tanh(h + W @ x)\n")
    derivation = sg.derive(cell)
    equations = [
        dataclasses.replace(e, expr=e.expr * sympy.Float(1e39)) if e.target.name == "δh" else e  # as if terms summed
        for e in derivation.equations
    ]
    with pytest.raises(sg.CellError, match=r"^<string>: the backward equation δh = .* has the constant 1.0+E\+39, "):
        ranges.check_numbers(cell, "float32", dataclasses.replace(derivation, equations=tuple(equations)))
