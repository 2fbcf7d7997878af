"""The kernel's NumPy API: shapes, defaults, outputs, and arrays refused before they reach C."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import LSTM

import symgate as sg
from symgate.verify import reference

SIZES = {"D": 3, "H": 4}


@pytest.fixture(scope="module")
def lstm():
    return sg.build(sg.parse(LSTM))


@pytest.fixture
def data(lstm):
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 2, 3)), lstm.init_params(SIZES, seed=0)


def test_forward_shapes_and_final_state(lstm, data):
    x, params = data
    run = lstm.forward(x, params)
    assert run.states["h"].shape == (6, 2, 4) and run.states["c"].shape == (6, 2, 4)
    np.testing.assert_array_equal(run.final["h"], run.states["h"][-1])
    assert not run.states["h"].flags.writeable


def test_forward_matches_reference_and_zero_default_init(lstm, data):
    x, params = data
    run = lstm.forward(x, params)
    zeros = {s: np.zeros((2, 4)) for s in ("h", "c")}
    states, _ = reference.forward(lstm.cell, {"x": x}, params, zeros)
    np.testing.assert_allclose(run.states["h"], states["h"], rtol=1e-13, atol=1e-15)


def test_backward_shapes_and_final_gradient_equals_last_step_gradient(lstm, data):
    x, params = data
    run = lstm.forward(x, params, init={"h": np.full((2, 4), 0.1), "c": np.full((2, 4), -0.2)})
    dh_last = np.random.default_rng(1).standard_normal((2, 4))
    per_step = np.zeros((6, 2, 4))
    per_step[-1] = dh_last
    g1 = lstm.backward(run, {"h": per_step})
    g2 = lstm.backward(run, {"final": {"h": dh_last}})
    assert g1.params["W_f"].shape == (4, 3) and g1.inputs["x"].shape == (6, 2, 3) and g1.init["c"].shape == (2, 4)
    for name in g1.params:
        np.testing.assert_allclose(g1.params[name], g2.params[name], rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(g1.init["h"], g2.init["h"], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize(
    "options",
    [{}, {"recompute": True}, {"lengths": [6, 3]}, {"recompute": True, "lengths": [6, 3]}],
    ids=["taped", "recompute", "lengths", "recompute-lengths"],
)
def test_loss_gradients_not_given_are_zeros_call_after_call(lstm, data, options):
    """A state's every-step gradient not given reaches the kernel as NULL (nothing to add), an
    output's as zeros shared between calls, which none may change: either way, the gradients are
    those of zeros given, call after call, in every kind of run."""
    x, params = data
    rng = np.random.default_rng(2)
    run = lstm.forward(x, params, **options)
    for _ in range(3):
        dh = rng.standard_normal((6, 2, 4))
        given = lstm.backward(run, {"h": dh, "c": np.zeros((6, 2, 4))})
        left_out = lstm.backward(run, {"h": dh})
        for part in ("params", "inputs", "init"):
            for name, a in getattr(given, part).items():
                np.testing.assert_array_equal(getattr(left_out, part)[name], a, err_msg=f"{part} {name}")


def test_zero_steps(lstm, data):
    _, params = data
    init = {"h": np.ones((2, 4)), "c": np.ones((2, 4))}
    run = lstm.forward(np.zeros((0, 2, 3)), params, init=init)
    assert run.states["h"].shape == (0, 2, 4)
    np.testing.assert_array_equal(run.final["h"], init["h"])
    grads = lstm.backward(run, {"final": {"h": np.ones((2, 4))}})
    np.testing.assert_array_equal(grads.init["h"], np.ones((2, 4)))
    assert not grads.params["W_f"].any()


def test_outputs_and_several_inputs():
    cell = sg.parse(
        "cell two\ninput x: D, u: E\nstate h: H\nh' = tanh(W @ x + V @ u + U @ h)\noutput y: O = sigmoid(P @ h')\n"
    )
    k = sg.build(cell)
    params = k.init_params({"D": 2, "E": 3, "H": 4, "O": 5}, seed=1)
    assert params["P"].shape == (5, 4)
    rng = np.random.default_rng(2)
    inputs = {"x": rng.standard_normal((3, 2, 2)), "u": rng.standard_normal((3, 2, 3))}
    run = k.forward(inputs, params)
    assert run.outputs["y"].shape == (3, 2, 5)
    grads = k.backward(run, {"y": np.ones((3, 2, 5))})
    assert set(grads.inputs) == {"x", "u"} and grads.inputs["u"].shape == (3, 2, 3)
    report = sg.gradcheck(cell, {"D": 2, "E": 3, "H": 4, "O": 5})
    assert report.ok, str(report)


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda x, p: (x.astype(np.float32), p), "dtype float32"),
        (
            lambda x, p: (np.ascontiguousarray(x[:, :, :2]), p),
            "params['W_f'] has shape (4, 3), expected (H, D) with D=2 (from x)",
        ),
        (lambda x, p: (x.transpose(1, 0, 2), p), "contiguous"),
        (lambda x, p: (x, {**p, "W_f": p["W_f"].T.copy()}), "params['W_f']"),
        (lambda x, p: (x, {k: v for k, v in p.items() if k != "b_o"}), "missing 'b_o'"),
        (lambda x, p: (x, {**p, "extra": p["b_o"]}), "unknown names ['extra']"),
        (lambda x, p: (x[0], p), "3-d array"),
        (lambda x, p: (x.tolist(), p), "3-d array"),
        (lambda x, p: (x.astype(">f8"), p), "native byte order"),
    ],
)
def test_bad_arrays_are_refused_with_their_name(lstm, data, mutate, words):
    x, params = mutate(*data)
    with pytest.raises(sg.ArrayError, match=re.escape(words)):
        lstm.forward(x, params)


def test_bad_gradients_are_refused(lstm, data):
    x, params = data
    run = lstm.forward(x, params)
    with pytest.raises(sg.ArrayError, match="grads has unknown names"):
        lstm.backward(run, {"q": np.zeros((6, 2, 4))})
    with pytest.raises(sg.ArrayError, match=r"grads\['h'\] has shape"):
        lstm.backward(run, {"h": np.zeros((5, 2, 4))})
    with pytest.raises(sg.ArrayError, match="Run"):
        lstm.backward(object(), {})


def test_init_params_needs_every_size(lstm):
    with pytest.raises(sg.ArrayError, match="missing"):
        lstm.init_params({"D": 3})
    params = lstm.init_params(SIZES, seed=3)
    assert all(np.all(np.abs(a) <= 0.5) for a in params.values())  # U(-1/sqrt(H), 1/sqrt(H)), H = 4
    assert lstm.init_params(SIZES, seed=3)["W_f"].tolist() == params["W_f"].tolist()


def test_float32_kernel_takes_float32_arrays():
    k = sg.build(sg.parse(LSTM), dtype="float32")
    params = k.init_params(SIZES)
    assert params["W_f"].dtype == np.float32
    run = k.forward(np.zeros((2, 1, 3), np.float32), params)
    assert run.states["h"].dtype == np.float32


def test_parameters_named_like_c_keywords_and_libm_functions_build_and_check():
    cell = sg.parse("cell clash\ninput x: D\nstate h: H\nh' = tanh(int @ x + double*h + exp + main)\n")
    source = sg.generate(cell).c_source
    assert "const double *int_," in source and "exp_[unit]" in source
    report = sg.gradcheck(cell, {"D": 2, "H": 3})
    assert report.ok, str(report)
