"""Keras, TF1 and ONNX weight importers: the imported cell computes what the framework computes.

Each framework's equations are written out here in NumPy, in the framework's own layout (fused
(in, out) kernels for Keras and TF1, (out, in) row blocks for ONNX, its own gate order), from
../shared/reference/cells.md sections 1, 2, 5.4 and 8 and the frameworks' sources, independently of symgate's cells.
The symgate kernel, run with the imported parameters over several steps from non-zero initial
states, must reproduce them to 1e-12.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

import symgate as sg
from symgate.frameworks.interop import (
    WeightLayoutError,
    from_keras_gru,
    from_keras_lstm,
    from_keras_simple_rnn,
    from_onnx_gru,
    from_onnx_lstm,
    from_tf1_lstm,
)

D, H, B, T = 3, 4, 2, 5


@cache
def kernel(name: str, dtype: str = "float64") -> sg.Kernel:
    return sg.build(sg.cells.get(name), dtype=dtype)


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def cols(m: np.ndarray, k: int) -> np.ndarray:
    """The k-th block of H columns (Keras / TF1 layout)."""
    return m[..., k * H : (k + 1) * H]


def rows(m: np.ndarray, k: int) -> np.ndarray:
    """The k-th block of H rows (ONNX layout)."""
    return m[k * H : (k + 1) * H]


# -- the frameworks' equations, in their layouts (row-vector convention: x_t is (B, D)) ---------


def keras_simple_rnn(x, h, kernel, recurrent_kernel, bias):
    out = []
    for xt in x:
        h = np.tanh(xt @ kernel + h @ recurrent_kernel + bias)
        out.append(h)
    return {"h": np.stack(out)}


def keras_lstm(x, h, c, kernel, recurrent_kernel, bias):
    """keras LSTMCell: z = x K + h R + b split i, f, c, o."""
    hs, cs = [], []
    for xt in x:
        z = xt @ kernel + h @ recurrent_kernel + bias
        i, f, o = sigmoid(cols(z, 0)), sigmoid(cols(z, 1)), sigmoid(cols(z, 3))
        c = f * c + i * np.tanh(cols(z, 2))
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return {"h": np.stack(hs), "c": np.stack(cs)}


def keras_gru(x, h, kernel, recurrent_kernel, bias, reset_after):
    """keras GRUCell, gates z, r, h; reset after (bias (2, 3H)) or before the recurrent product."""
    out = []
    for xt in x:
        if reset_after:
            input_bias, recurrent_bias = bias
            matrix_x = xt @ kernel + input_bias
            matrix_inner = h @ recurrent_kernel + recurrent_bias
            z = sigmoid(cols(matrix_x, 0) + cols(matrix_inner, 0))
            r = sigmoid(cols(matrix_x, 1) + cols(matrix_inner, 1))
            hh = np.tanh(cols(matrix_x, 2) + r * cols(matrix_inner, 2))
        else:
            matrix_x = xt @ kernel + bias
            z = sigmoid(cols(matrix_x, 0) + h @ cols(recurrent_kernel, 0))
            r = sigmoid(cols(matrix_x, 1) + h @ cols(recurrent_kernel, 1))
            hh = np.tanh(cols(matrix_x, 2) + (r * h) @ cols(recurrent_kernel, 2))
        h = z * h + (1 - z) * hh
        out.append(h)
    return {"h": np.stack(out)}


def tf1_lstm(x, h, c, kernel, bias, forget_bias):
    """tf.nn.rnn_cell.LSTMCell: [x, h] K + b split i, j, f, o; forget_bias added at run time."""
    hs, cs = [], []
    for xt in x:
        m = np.concatenate([xt, h], axis=1) @ kernel + bias
        i, j, f, o = (cols(m, k) for k in range(4))
        c = sigmoid(f + forget_bias) * c + sigmoid(i) * np.tanh(j)
        h = sigmoid(o) * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return {"h": np.stack(hs), "c": np.stack(cs)}


def onnx_lstm(x, h, c, w, r, b):
    """ONNX LSTM (default activations, no peepholes): gates i, o, f, c; B = [Wb; Rb]."""
    wb, rb = b[: 4 * H], b[4 * H :]
    hs, cs = [], []
    for xt in x:
        gate = [xt @ rows(w, k).T + h @ rows(r, k).T + rows(wb, k) + rows(rb, k) for k in range(4)]
        i, o, f, ct = sigmoid(gate[0]), sigmoid(gate[1]), sigmoid(gate[2]), np.tanh(gate[3])
        c = f * c + i * ct
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return {"h": np.stack(hs), "c": np.stack(cs)}


def onnx_gru(x, h, w, r, b, linear_before_reset):
    """ONNX GRU: gates z, r, h; Ht = (1 - zt) * ht + zt * Ht-1."""
    (wz, wr, wh), (rz, rr, rh) = ([rows(m, k) for k in range(3)] for m in (w, r))
    (wbz, wbr, wbh), (rbz, rbr, rbh) = ([rows(v, k) for k in range(3)] for v in (b[: 3 * H], b[3 * H :]))
    out = []
    for xt in x:
        z = sigmoid(xt @ wz.T + h @ rz.T + wbz + rbz)
        rt = sigmoid(xt @ wr.T + h @ rr.T + wbr + rbr)
        if linear_before_reset:
            ht = np.tanh(xt @ wh.T + rt * (h @ rh.T + rbh) + wbh)
        else:
            ht = np.tanh(xt @ wh.T + (rt * h) @ rh.T + rbh + wbh)
        h = (1 - z) * ht + z * h
        out.append(h)
    return {"h": np.stack(out)}


# -- the cases ----------------------------------------------------------------------------------


def weights(seed: int, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.6, 0.6, size=shape) for shape in shapes]


def case(name: str, seed: int):
    """(imported pair, the framework's per-step hidden and cell states, which init they start from)."""
    rng = np.random.default_rng(100 + seed)
    x, h0, c0 = rng.standard_normal((T, B, D)), 0.5 * rng.standard_normal((B, H)), 0.5 * rng.standard_normal((B, H))
    if name == "keras_simple_rnn":
        k, rk, b = weights(seed, (D, H), (H, H), (H,))
        return from_keras_simple_rnn(k, rk, b), keras_simple_rnn(x, h0, k, rk, b), x, h0, None
    if name == "keras_lstm":
        k, rk, b = weights(seed, (D, 4 * H), (H, 4 * H), (4 * H,))
        return from_keras_lstm(k, rk, b), keras_lstm(x, h0, c0, k, rk, b), x, h0, c0
    if name.startswith("keras_gru"):
        reset_after = name.endswith("reset_after")
        k, rk, b = weights(seed, (D, 3 * H), (H, 3 * H), (2, 3 * H) if reset_after else (3 * H,))
        expected = keras_gru(x, h0, k, rk, b, reset_after)
        return from_keras_gru(k, rk, b, reset_after=reset_after), expected, x, h0, None
    if name.startswith("tf1_lstm"):
        forget_bias = 1.0 if name == "tf1_lstm" else -0.3
        k, b = weights(seed, (D + H, 4 * H), (4 * H,))
        return from_tf1_lstm(k, b, forget_bias=forget_bias), tf1_lstm(x, h0, c0, k, b, forget_bias), x, h0, c0
    if name == "onnx_lstm":
        w, r, b = weights(seed, (4 * H, D), (4 * H, H), (8 * H,))
        return from_onnx_lstm(w, r, b), onnx_lstm(x, h0, c0, w, r, b), x, h0, c0
    if name.startswith("onnx_gru"):
        lbr = name.endswith("linear_before_reset")
        w, r, b = weights(seed, (3 * H, D), (3 * H, H), (6 * H,))
        return from_onnx_gru(w, r, b, linear_before_reset=lbr), onnx_gru(x, h0, w, r, b, lbr), x, h0, None
    raise AssertionError(name)


CASES = {
    "keras_simple_rnn": "elman_rnn",
    "keras_lstm": "lstm",
    "keras_gru_reset_after": "gru_pytorch",
    "keras_gru_reset_before": "r2rt_gru",
    "tf1_lstm": "lstm",
    "tf1_lstm_forget_bias": "lstm",
    "onnx_lstm": "lstm_pytorch",
    "onnx_gru_linear_before_reset": "gru_pytorch",
    "onnx_gru_reset_before": "r2rt_gru",
}


def run_imported(pair, x, h0, c0) -> dict[str, np.ndarray]:
    """The symgate kernel's per-step states, keyed h (the hidden state, whatever the cell calls it) and c."""
    cell, params = pair
    hidden = next(iter(cell.states))
    init = {hidden: h0} | ({"c": c0} if c0 is not None else {})
    run = kernel(cell.name).forward(x, params, init)
    return {"h": run.states[hidden]} | ({"c": run.states["c"]} if c0 is not None else {})


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(CASES))
def test_imported_cell_matches_the_framework_equations(name, seed):
    pair, expected, x, h0, c0 = case(name, seed)
    cell, params = pair
    assert cell.name == CASES[name]
    assert list(params) == [p.name for p in cell.params]
    assert all(a.dtype == np.float64 and a.flags.c_contiguous for a in params.values())
    ours = run_imported(pair, x, h0, c0)
    assert ours.keys() == expected.keys()
    for state, values in expected.items():
        np.testing.assert_allclose(ours[state], values, rtol=1e-12, atol=1e-14, err_msg=state)


def test_the_two_keras_gru_forms_differ():
    """Guards against both reset conventions silently mapping to one cell."""
    _, after, x, h0, _ = case("keras_gru_reset_after", 0)
    k, rk, b = weights(0, (D, 3 * H), (H, 3 * H), (2, 3 * H))
    before = keras_gru(x, h0, k, rk, b[0], reset_after=False)
    assert np.abs(after["h"] - before["h"]).max() > 1e-3


def test_missing_biases_are_zero():
    k, rk = weights(3, (D, 3 * H), (H, 3 * H))
    cell, params = from_keras_gru(k, rk, None)
    assert cell.name == "gru_pytorch" and not any(params[n].any() for n in params if n.startswith("b_"))
    w, r = weights(3, (4 * H, D), (4 * H, H))
    _, onnx = from_onnx_lstm(w, r)
    assert not onnx["b_ii"].any() and not onnx["b_ho"].any()
    _, tf1 = from_tf1_lstm(*weights(3, (D + H, 4 * H)))
    np.testing.assert_array_equal(tf1["b_f"], np.ones(H))  # only the forget bias
    assert not tf1["b_i"].any()


def test_onnx_direction_axis_is_accepted():
    w, r, b = weights(4, (2, 3 * H, D), (2, 3 * H, H), (2, 6 * H))
    _, reverse = from_onnx_gru(w, r, b, linear_before_reset=True, direction=1)
    _, plain = from_onnx_gru(w[1], r[1], b[1], linear_before_reset=True)
    for name, array in plain.items():
        np.testing.assert_array_equal(reverse[name], array)
    np.testing.assert_array_equal(plain["W_iz"], w[1][:H])  # z is ONNX's first block
    with pytest.raises(WeightLayoutError, match="no direction 2"):
        from_onnx_gru(w, r, b, direction=2)


def test_float32_arrays_give_float32_parameters_that_run():
    k, rk, b = (a.astype(np.float32) for a in weights(5, (D, 4 * H), (H, 4 * H), (4 * H,)))
    cell, params = from_keras_lstm(k, rk, b)
    assert all(a.dtype == np.float32 for a in params.values())
    x = np.random.default_rng(5).standard_normal((T, B, D))
    expected = keras_lstm(x, np.zeros((B, H)), np.zeros((B, H)), k.astype(float), rk.astype(float), b.astype(float))
    run = kernel(cell.name, "float32").forward(x.astype(np.float32), params)
    np.testing.assert_allclose(run.states["h"], expected["h"], rtol=1e-4, atol=1e-6)


def test_layouts_that_do_not_fit_are_refused():
    k, rk, b = weights(6, (D, 4 * H), (H, 4 * H), (4 * H,))
    with pytest.raises(WeightLayoutError, match=r"Keras GRU\(reset_after=True\): recurrent_kernel"):
        from_keras_gru(k, rk, b)  # LSTM weights: 4H columns
    with pytest.raises(WeightLayoutError, match=r"bias has shape \(16,\), expected \(2, 3H\)"):
        from_keras_gru(k[:, : 3 * H], rk[:, : 3 * H], b)
    with pytest.raises(WeightLayoutError, match="kernel has shape"):
        from_keras_lstm(k[:, :-1], rk, b)
    with pytest.raises(WeightLayoutError, match=r"\(D\+H, 4H\)"):
        from_tf1_lstm(k[:, :6], b)
    with pytest.raises(WeightLayoutError, match="must be a matrix"):
        from_keras_simple_rnn(b, rk[:, :H], b[:H])
    with pytest.raises(WeightLayoutError, match="R has shape"):
        from_onnx_lstm(k.T, rk, None)
    with pytest.raises(sg.SymgateError):
        from_onnx_gru(*weights(7, (3 * H, D), (3 * H, H), (3 * H,)))  # B holds only Wb
