"""The cells' steps as a careful user writes them: input products hoisted out of the time loop.

``run.py``'s step functions compute every product inside the step. A careful user computes the
input's products for all steps before the loop, as one matrix product of x (T·B, D) by the input
matrices stacked into one (the biases folded in), and inside the loop does one matrix product per
step: h by the recurrent matrices stacked into one. ``nn.LSTM`` and cuDNN work so, and so do the
"JAX, input products hoisted" and "torch.compile" anchors of ``run.py``, with these functions.

Each cell is split by hand into a :class:`Split`: which matrices (with which biases) act on x,
which act on h, and the rest of the step given those products. ``mgu`` cannot do with one product
a step: its candidate multiplies ``f * h``, which needs that step's gate first, so its step does a
second product (``U_h``) inside the loop.

The functions take an ``ops`` namespace (``sigmoid``, ``tanh``, ``cat``, ``split``) so one text
serves PyTorch and JAX. Parameters are stacked once (:func:`stack`), as a user keeps them stacked
(``nn.LSTM``'s ``weight_ih_l0`` is the four gates' matrices in one); the stacked parameters are
what is differentiated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

State = dict[str, Any]
Rest = Callable[[SimpleNamespace, Mapping[str, Any], list[Any], list[Any], State], State]


@dataclass(frozen=True)
class Split:
    """One cell's step, split around its stacked products.

    ``inputs``: per gate, the matrix that multiplies x and the biases added to its product;
    ``recurrent``: the matrices that multiply h, stacked in this order; ``rest(ops, q, xw, hu,
    state)``: the next state from the gates' input products ``xw`` and recurrent products ``hu``
    (lists of (B, H) arrays, in the order above) and the parameters ``q`` (stacked and left).
    """

    inputs: tuple[tuple[str, tuple[str, ...]], ...]
    recurrent: tuple[str, ...]
    rest: Rest

    def stacked_names(self) -> set[str]:
        return {m for m, _ in self.inputs} | {b for _, bs in self.inputs for b in bs} | set(self.recurrent)


def lstm_pytorch_rest(ops: SimpleNamespace, q: Mapping[str, Any], xw: list[Any], hu: list[Any], s: State) -> State:
    i, f, g, o = (a + b for a, b in zip(xw, hu, strict=True))
    c = ops.sigmoid(f) * s["c"] + ops.sigmoid(i) * ops.tanh(g)
    return {"h": ops.sigmoid(o) * ops.tanh(c), "c": c}


def gru_pytorch_rest(ops: SimpleNamespace, q: Mapping[str, Any], xw: list[Any], hu: list[Any], s: State) -> State:
    (xr, xz, xn), (hr, hz, hn) = xw, hu
    r, z = ops.sigmoid(xr + hr), ops.sigmoid(xz + hz)
    n = ops.tanh(xn + r * (hn + q["b_hn"]))
    return {"h": (1 - z) * n + z * s["h"]}


def lstm_peephole_rest(ops: SimpleNamespace, q: Mapping[str, Any], xw: list[Any], hu: list[Any], s: State) -> State:
    i, f, g, o = (a + b for a, b in zip(xw, hu, strict=True))
    c = s["c"]
    c_next = ops.sigmoid(f + q["p_f"] * c) * c + ops.sigmoid(i + q["p_i"] * c) * ops.tanh(g)
    return {"h": ops.sigmoid(o + q["p_o"] * c_next) * ops.tanh(c_next), "c": c_next}


def mgu_rest(ops: SimpleNamespace, q: Mapping[str, Any], xw: list[Any], hu: list[Any], s: State) -> State:
    (xf, xh), (hf,) = xw, hu
    h = s["h"]
    f = ops.sigmoid(xf + hf)
    h_tilde = ops.tanh(xh + (f * h) @ q["U_h"].T)  # the step's second product: it needs f first
    return {"h": (1 - f) * h + f * h_tilde}


SPLITS: dict[str, Split] = {
    "lstm_pytorch": Split(
        inputs=tuple((f"W_i{g}", (f"b_i{g}", f"b_h{g}")) for g in "ifgo"),
        recurrent=tuple(f"W_h{g}" for g in "ifgo"),
        rest=lstm_pytorch_rest,
    ),
    "gru_pytorch": Split(
        inputs=(("W_ir", ("b_ir", "b_hr")), ("W_iz", ("b_iz", "b_hz")), ("W_in", ("b_in",))),
        recurrent=("W_hr", "W_hz", "W_hn"),
        rest=gru_pytorch_rest,
    ),
    "lstm_peephole": Split(
        inputs=tuple((f"W_{g}", (f"b_{g}",)) for g in "ifgo"),
        recurrent=tuple(f"U_{g}" for g in "ifgo"),
        rest=lstm_peephole_rest,
    ),
    "mgu": Split(inputs=(("W_f", ("b_f",)), ("W_h", ("b_h",))), recurrent=("U_f",), rest=mgu_rest),
}


def stack(split: Split, p: Mapping[str, Any], cat: Callable[[list[Any]], Any]) -> dict[str, Any]:
    """The parameters as a user keeps them: ``W`` (gates·H, D) and ``b`` (gates·H) for the input
    products, ``U`` (gates·H, H) for the recurrent one, and the parameters not stacked, by name."""
    out = {
        "W": cat([p[m] for m, _ in split.inputs]),
        "b": cat([sum((p[b] for b in bs[1:]), p[bs[0]]) for _, bs in split.inputs]),
        "U": cat([p[m] for m in split.recurrent]),
    }
    return out | {k: v for k, v in p.items() if k not in split.stacked_names()}


def input_products(q: Mapping[str, Any], x: Any) -> Any:
    """Every step's input products at once: one (T·B, D) @ (D, gates·H) product, biases added; (T, B, gates·H)."""
    T, B, D = x.shape
    return (x.reshape(T * B, D) @ q["W"].T + q["b"]).reshape(T, B, -1)


def step(ops: SimpleNamespace, split: Split, q: Mapping[str, Any], xw_t: Any, s: State) -> State:
    """One step from its hoisted input products ``xw_t`` (B, gates·H): one product h @ U.T, then the rest."""
    hu = s["h"] @ q["U"].T
    return split.rest(ops, q, ops.split(xw_t, len(split.inputs)), ops.split(hu, len(split.recurrent)), s)
