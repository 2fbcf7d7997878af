"""Keras, TF1 and ONNX recurrent weights -> symgate ``(cell, params)``, from plain NumPy arrays.

Why: these formats store a layer as fused matrices, each in its own gate order and orientation,
and the differences are easy to get silently wrong. Each function here takes the arrays exactly
as the framework stores them (``layer.get_weights()``, a TF1 checkpoint, ONNX initializers), so no
framework is needed, and returns a built-in cell with its per-gate parameters:

======================================  ==================  ==========================================
format                                  symgate cell        layout read
======================================  ==================  ==========================================
Keras ``SimpleRNN``                     ``elman_rnn``       kernel (D, H), recurrent_kernel (H, H), bias (H)
Keras ``LSTM``                          ``lstm``            kernel (D, 4H), recurrent (H, 4H), bias (4H);
                                                            gate columns i, f, c, o
Keras ``GRU(reset_after=True)``         ``gru_pytorch``     kernel (D, 3H), recurrent (H, 3H),
                                                            bias (2, 3H) = [input; recurrent]; z, r, h
Keras ``GRU(reset_after=False)``        ``r2rt_gru``        the same with bias (3H); reset before U
TF1 ``LSTMCell`` / ``BasicLSTMCell``    ``lstm``            kernel (D+H, 4H) on [x, h], bias (4H);
                                                            i, j, f, o; ``forget_bias`` added to b_f
ONNX ``LSTM`` (one direction)           ``lstm_pytorch``    W (4H, D), R (4H, H), B (8H) = [Wb; Rb]; i, o, f, c
ONNX ``GRU`` (one direction)            ``gru_pytorch`` /   W (3H, D), R (3H, H), B (6H) = [Wb; Rb]; z, r, h;
                                        ``r2rt_gru``        linear_before_reset=1 / 0
======================================  ==================  ==========================================

Keras and TF1 kernels are (in, out): their gate blocks are columns, transposed here into
symgate's (H, D) rows. ONNX is stored (out, in) like PyTorch. Where a format keeps two biases
per gate and the cell has them too (``gru_pytorch``, ``lstm_pytorch``), they are copied apart;
for ONNX's Cho-form GRU (``r2rt_gru``, one bias per gate) the two biases only ever enter as a sum
and are added. Only the default activations are covered (sigmoid gates, tanh candidate and
output); Keras ``GRU(reset_after=False)`` and ONNX ``GRU(linear_before_reset=0)`` use the same
z ("keep") convention as PyTorch. A missing bias (``use_bias=False``, no ``B`` input) is zero.

Parameters are float32 when every array given is float32, float64 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from ...errors import InternalError
from ...frontend import cells
from ...frontend.cell import Cell
from .common import Pair, WeightLayoutError, float_dtype, split_gates

# Each framework's gate order, spelled with the symgate cell's gate names (pattern "W_{}" etc.).
_KERAS_LSTM = "ifgo"  # Keras i, f, c, o -> lstm's i, f, g, o
_TF1_LSTM = "igfo"  # TF1 i, j, f, o
_ONNX_LSTM = "iofg"  # ONNX i, o, f, c -> lstm_pytorch's i, o, f, g
_ZRH_LINEAR_BEFORE_RESET = "zrn"  # Keras / ONNX z, r, h -> gru_pytorch's z, r, n
_ZRH_RESET_BEFORE = ("_z", "_r", "")  # Keras / ONNX z, r, h -> r2rt_gru's W_z, W_r, W (pattern "W{}")


# -- Keras ------------------------------------------------------------------------------------


def from_keras_simple_rnn(kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None = None) -> Pair:
    """Keras ``SimpleRNN`` (tanh) -> ``elman_rnn``: W = kernel.T, U = recurrent_kernel.T, b = bias."""
    fmt = "Keras SimpleRNN"
    dtype = float_dtype(*_given(kernel, recurrent_kernel, bias))
    h, kernel, recurrent_kernel = _keras_kernels(fmt, kernel, recurrent_kernel, 1, dtype)
    bias = _vector(fmt, "bias", bias, (h,), "(H,)", dtype)
    one = ("",)  # a single block: W, U, b
    params = _blocks("W{}", kernel.T, one, "kernel") | _blocks("U{}", recurrent_kernel.T, one, "recurrent_kernel")
    return _pair("elman_rnn", params | _blocks("b{}", bias, one, "bias"))


def from_keras_lstm(kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None = None) -> Pair:
    """Keras ``LSTM`` / ``LSTMCell`` -> ``lstm``.

    kernel (D, 4H), recurrent_kernel (H, 4H) and bias (4H,) hold the gates i, f, c, o in column
    blocks; Keras's candidate c is the cell's g. ``unit_forget_bias`` only initialises the bias,
    so the stored bias is used as it is.
    """
    fmt = "Keras LSTM"
    dtype = float_dtype(*_given(kernel, recurrent_kernel, bias))
    h, kernel, recurrent_kernel = _keras_kernels(fmt, kernel, recurrent_kernel, 4, dtype)
    bias = _vector(fmt, "bias", bias, (4 * h,), "(4H,)", dtype)
    return _single_bias_lstm(kernel.T, recurrent_kernel.T, bias, _KERAS_LSTM)


def from_keras_gru(
    kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None = None, reset_after: bool = True
) -> Pair:
    """Keras ``GRU`` / ``GRUCell`` -> ``gru_pytorch`` (``reset_after=True``) or ``r2rt_gru`` (``False``).

    kernel (D, 3H) and recurrent_kernel (H, 3H) hold the gates z, r, h in column blocks. With
    ``reset_after=True`` (the TF2 default) bias is (2, 3H) = [input bias; recurrent bias] and the
    reset gate multiplies the recurrent product, bias included, as in PyTorch; with ``False`` bias
    is (3H,) and the reset gate multiplies h before the recurrent product (Cho's form).
    """
    reset_after = _flag("Keras GRU", "reset_after", reset_after)
    fmt = f"Keras GRU(reset_after={reset_after})"
    dtype = float_dtype(*_given(kernel, recurrent_kernel, bias))
    h, kernel, recurrent_kernel = _keras_kernels(fmt, kernel, recurrent_kernel, 3, dtype)
    if reset_after:
        bias = _vector(fmt, "bias", bias, (2, 3 * h), "(2, 3H) = [input_bias; recurrent_bias]", dtype)
        return _gru(kernel.T, recurrent_kernel.T, bias[0], bias[1], linear_before_reset=True)
    bias = _vector(fmt, "bias", bias, (3 * h,), "(3H,)", dtype)
    return _gru(kernel.T, recurrent_kernel.T, bias, None, linear_before_reset=False)


# -- TF1 --------------------------------------------------------------------------------------


def from_tf1_lstm(kernel: np.ndarray, bias: np.ndarray | None = None, forget_bias: float = 1.0) -> Pair:
    """TF1 ``LSTMCell`` / ``BasicLSTMCell`` (no peepholes, projection or clipping) -> ``lstm``.

    kernel (D+H, 4H) multiplies the concatenation [x, h]: its first D rows are the input
    weights, the last H the recurrent ones; the column blocks are the gates i, j, f, o (j is the
    candidate g). TF adds ``forget_bias`` inside the forget gate at run time, outside the stored
    bias; here it is folded into ``b_f``, so the returned cell needs no offset.
    """
    fmt = "TF1 LSTMCell"
    forget_bias = _finite_number(fmt, "forget_bias", forget_bias)
    dtype = float_dtype(*_given(kernel, bias))
    kernel = _matrix(fmt, "kernel", kernel, dtype)
    if kernel.shape[1] % 4 or not 0 < kernel.shape[1] // 4 < kernel.shape[0]:
        raise WeightLayoutError(
            f"{fmt}: kernel has shape {kernel.shape}; expected (D+H, 4H) on [x, h] with D >= 1 and H >= 1"
        )
    h = kernel.shape[1] // 4
    d = kernel.shape[0] - h
    bias = _vector(fmt, "bias", bias, (4 * h,), "(4H,)", dtype).copy()
    bias[2 * h : 3 * h] += forget_bias  # the f block of i, j, f, o
    return _single_bias_lstm(kernel[:d].T, kernel[d:].T, bias, _TF1_LSTM)


# -- ONNX -------------------------------------------------------------------------------------


def from_onnx_lstm(w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None, *, direction: int = 0) -> Pair:
    """ONNX ``LSTM`` inputs W, R, B of one direction -> ``lstm_pytorch`` (biases Wb, Rb kept apart).

    W (4H, D), R (4H, H) and B (8H,) = [Wb; Rb] hold the gates i, o, f, c in row blocks (c is the
    candidate g). Arrays with ONNX's leading num_directions axis are accepted; ``direction``
    picks one (0 forward, 1 reverse for a bidirectional node). Peepholes (input P),
    ``input_forget``, ``clip`` and non-default activations are not covered.
    """
    fmt = "ONNX LSTM"
    dtype = float_dtype(*_given(w, r, b))
    h, w, r = _onnx_weights(fmt, w, r, 4, direction, dtype)
    b = _vector(fmt, "B", _direction(fmt, "B", b, direction, 2), (8 * h,), "(8H,) = [Wb; Rb]", dtype)
    params = _blocks("W_i{}", w, _ONNX_LSTM, "W") | _blocks("W_h{}", r, _ONNX_LSTM, "R")
    params |= _blocks("b_i{}", b[: 4 * h], _ONNX_LSTM, "Wb") | _blocks("b_h{}", b[4 * h :], _ONNX_LSTM, "Rb")
    return _pair("lstm_pytorch", params)


def from_onnx_gru(
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None = None,
    linear_before_reset: bool = False,
    *,
    direction: int = 0,
) -> Pair:
    """ONNX ``GRU`` inputs W, R, B of one direction -> ``gru_pytorch`` or ``r2rt_gru``.

    W (3H, D), R (3H, H) and B (6H,) = [Wb; Rb] hold the gates z, r, h in row blocks.
    ``linear_before_reset`` is the node's attribute (ONNX's default 0): 1 is PyTorch's form
    (``gru_pytorch``, the biases kept apart); 0 is Cho's (``r2rt_gru``, with b = Wb + Rb, the two
    only ever entering as a sum). A leading num_directions axis is accepted, ``direction``
    picking one.
    """
    linear_before_reset = _flag("ONNX GRU", "linear_before_reset", linear_before_reset)
    fmt = f"ONNX GRU(linear_before_reset={int(linear_before_reset)})"
    dtype = float_dtype(*_given(w, r, b))
    h, w, r = _onnx_weights(fmt, w, r, 3, direction, dtype)
    b = _vector(fmt, "B", _direction(fmt, "B", b, direction, 2), (6 * h,), "(6H,) = [Wb; Rb]", dtype)
    return _gru(w, r, b[: 3 * h], b[3 * h :], linear_before_reset=linear_before_reset)


# -- shared -----------------------------------------------------------------------------------


def _single_bias_lstm(w: np.ndarray, u: np.ndarray, b: np.ndarray, order: str) -> Pair:
    """``lstm`` from row-stacked (4H, D), (4H, H), (4H,) in the given gate order."""
    params = _blocks("W_{}", w, order, "input weights") | _blocks("U_{}", u, order, "recurrent weights")
    return _pair("lstm", params | _blocks("b_{}", b, order, "bias"))


def _gru(
    w: np.ndarray, u: np.ndarray, b_input: np.ndarray, b_recurrent: np.ndarray | None, *, linear_before_reset: bool
) -> Pair:
    """A z, r, h row-stacked GRU: ``gru_pytorch`` if the reset follows the recurrent product, else ``r2rt_gru``."""
    if linear_before_reset:
        order = _ZRH_LINEAR_BEFORE_RESET
        params = _blocks("W_i{}", w, order, "input weights") | _blocks("W_h{}", u, order, "recurrent weights")
        params |= _blocks("b_i{}", b_input, order, "input bias") | _blocks(
            "b_h{}", b_recurrent, order, "recurrent bias"
        )
        return _pair("gru_pytorch", params)
    bias = b_input if b_recurrent is None else b_input + b_recurrent
    order = _ZRH_RESET_BEFORE
    params = _blocks("W{}", w, order, "input weights") | _blocks("U{}", u, order, "recurrent weights")
    return _pair("r2rt_gru", params | _blocks("b{}", bias, order, "bias"))


def _blocks(pattern: str, fused: np.ndarray, gates: Sequence[str], label: str) -> dict[str, np.ndarray]:
    """Row blocks of ``fused``, named ``pattern.format(gate)`` in the framework's gate order."""
    return split_gates(fused, [pattern.format(g) for g in gates], label=label)


@cache
def _cell(name: str) -> Cell:
    return cells.get(name)


def _pair(cell_name: str, params: dict[str, np.ndarray]) -> Pair:
    cell = _cell(cell_name)
    if set(params) != {p.name for p in cell.params}:
        raise InternalError(f"the converted weights {sorted(params)} are not the parameters of the cell {cell_name}")
    return cell, {p.name: params[p.name] for p in cell.params}


def _given(*arrays: np.ndarray | None) -> list[np.ndarray]:
    return [np.asarray(a) for a in arrays if a is not None]


def _floats(fmt: str, name: str, array: object, dtype: np.dtype) -> np.ndarray:
    """``array`` as an array of ``dtype``, or an error naming it when it holds no numbers."""
    try:
        return np.asarray(array, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise WeightLayoutError(f"{fmt}: {name} must be an array of numbers ({err})") from None


def _finite_number(fmt: str, name: str, value: object) -> float:
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (number and np.isfinite(value)):
        raise WeightLayoutError(f"{fmt}: {name} must be a finite number, not {value!r}")
    return float(value)


def _flag(fmt: str, name: str, value: object) -> bool:
    """A yes/no attribute: a bool, or ONNX's integer 0 or 1."""
    if not (isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1))):
        raise WeightLayoutError(f"{fmt}: {name} must be True or False (or 0 or 1), not {value!r}")
    return bool(value)


def _matrix(fmt: str, name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    array = _floats(fmt, name, array, dtype)
    if array.ndim != 2:
        raise WeightLayoutError(f"{fmt}: {name} must be a matrix, got shape {array.shape}")
    return array


def _vector(
    fmt: str, name: str, array: np.ndarray | None, shape: tuple[int, ...], layout: str, dtype: np.dtype
) -> np.ndarray:
    """The bias, zeros when it is absent, checked against its layout."""
    if array is None:
        return np.zeros(shape, dtype)
    array = _floats(fmt, name, array, dtype)
    if array.shape != shape:
        raise WeightLayoutError(f"{fmt}: {name} has shape {array.shape}, expected {layout} = {shape}")
    return array


def _keras_kernels(
    fmt: str, kernel: np.ndarray, recurrent_kernel: np.ndarray, gates: int, dtype: np.dtype
) -> tuple[int, np.ndarray, np.ndarray]:
    """H and the two (in, out) kernels, checked: kernel (D, gates*H), recurrent (H, gates*H)."""
    kernel = _matrix(fmt, "kernel", kernel, dtype)
    recurrent_kernel = _matrix(fmt, "recurrent_kernel", recurrent_kernel, dtype)
    h = recurrent_kernel.shape[0]
    width = "H" if gates == 1 else f"{gates}H"
    if recurrent_kernel.shape != (h, gates * h):
        raise WeightLayoutError(f"{fmt}: recurrent_kernel has shape {recurrent_kernel.shape}, expected (H, {width})")
    if kernel.shape[1] != gates * h:
        raise WeightLayoutError(
            f"{fmt}: kernel has shape {kernel.shape}, expected (D, {width}) = (D, {gates * h}) "
            f"with H={h} from recurrent_kernel"
        )
    return h, kernel, recurrent_kernel


def _onnx_weights(
    fmt: str, w: np.ndarray, r: np.ndarray, gates: int, direction: int, dtype: np.dtype
) -> tuple[int, np.ndarray, np.ndarray]:
    """H and W (gates*H, D), R (gates*H, H) of one direction, checked."""
    w = _matrix(fmt, "W", _direction(fmt, "W", w, direction, 3), dtype)
    r = _matrix(fmt, "R", _direction(fmt, "R", r, direction, 3), dtype)
    h = r.shape[1]
    if r.shape != (gates * h, h):
        raise WeightLayoutError(f"{fmt}: R has shape {r.shape}, expected ({gates}H, H)")
    if w.shape[0] != gates * h:
        raise WeightLayoutError(f"{fmt}: W has shape {w.shape}, expected ({gates}H, D) = ({gates * h}, D) with H={h}")
    return h, w, r


def _direction(fmt: str, name: str, array: np.ndarray | None, direction: int, ndim: int) -> np.ndarray | None:
    """One direction of an ONNX input that has the leading num_directions axis (``ndim`` axes in all)."""
    if isinstance(direction, bool) or not isinstance(direction, (int, np.integer)):
        raise WeightLayoutError(f"{fmt}: direction must be an integer (0 forward, 1 reverse), not {direction!r}")
    if array is None:
        return None
    array = np.asarray(array)
    if array.ndim != ndim:
        if direction != 0:
            raise WeightLayoutError(
                f"{fmt}: {name} has no num_directions axis (shape {array.shape}): direction must be 0"
            )
        return array
    if not 0 <= direction < array.shape[0]:
        raise WeightLayoutError(f"{fmt}: {name} has {array.shape[0]} direction(s), no direction {direction}")
    return array[direction]
