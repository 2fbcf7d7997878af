"""DeltaNet and the mLSTM as a careful user writes them: one text for PyTorch and JAX (issue 21).

Both cells keep a K x V matrix per sample (``symgate/frontend/cells/deltanet.cell`` and
``xlstm_mlstm.cell``; the equations here follow those files' headers and the PyTorch steps of
``tests/test_matrix_state_cells.py``). Everything that depends on x alone is computed for all steps
before the loop: one product of x (T·B, D) by the input matrices stacked into one (biases folded
in), then the cell's feature maps and gates on the whole sequence. The loop (or ``lax.scan``) does
only the recurrence: per-sample matrix-vector and outer products (``einsum``) and elementwise work.
That is how DeltaNet and xLSTM implementations are written, and it leaves the anchors nothing
symgate's kernels could save them on the input side.

The functions take an ``ops`` namespace (``einsum``, ``sigmoid``, ``exp``, ``elu``,
``log_sigmoid``, ``maximum``, ``abs``, ``split``: a tensor split along its last axis into pieces
of the given sizes) so one text serves PyTorch and JAX, as ``hoisted.py`` does for the vector cells.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

Arrays = dict[str, Any]


@dataclass(frozen=True)
class MatrixCell:
    """One cell, split into what depends on x alone and the recurrence.

    ``projections``: the matrices that multiply x, stacked in this order (with their biases when
    ``biased``); ``features(ops, parts)``: the per-step inputs of the recurrence from the
    projections' parts (each (T, B, rows)); ``recur(ops, f_t, state)``: the next state and the
    step's output from one step's features. ``output`` and ``matrix_state`` name the cell's output
    and its K x V state (whose initial value's gradient is compared).
    """

    name: str
    output: str
    matrix_state: str
    projections: tuple[str, ...]
    biased: bool
    features: Callable[[SimpleNamespace, list[Any]], Arrays]
    recur: Callable[[SimpleNamespace, Arrays, Arrays], tuple[Arrays, Any]]


def normalised_phi(a: Any, ops: SimpleNamespace) -> Any:
    """φ(a) = elu(a) + 1 divided by its sum over the last axis (Schlag et al.'s normalisation)."""
    phi = ops.elu(a) + 1
    return phi / phi.sum(-1)[..., None]


def deltanet_features(ops: SimpleNamespace, parts: list[Any]) -> Arrays:
    q, k, v, b = parts
    return {"q": normalised_phi(q, ops), "k": normalised_phi(k, ops), "v": v, "beta": ops.sigmoid(b)}


def deltanet_recur(ops: SimpleNamespace, f: Arrays, s: Arrays) -> tuple[Arrays, Any]:
    """S' = S + β k (v - Sᵀ k)ᵀ, y = S'ᵀ q."""
    S, k = s["S"], f["k"]
    v_bar = ops.einsum("bkv,bk->bv", S, k)
    S_new = S + f["beta"][:, :, None] * (k[:, :, None] * (f["v"] - v_bar)[:, None, :])
    return {"S": S_new}, ops.einsum("bkv,bk->bv", S_new, f["q"])


def mlstm_features(ops: SimpleNamespace, parts: list[Any]) -> Arrays:
    q, k, v, o, i_pre, f_pre = parts
    return {"q": q, "k": k, "v": v, "o": ops.sigmoid(o), "i_pre": i_pre, "log_f": ops.log_sigmoid(f_pre)}


def mlstm_recur(ops: SimpleNamespace, f: Arrays, s: Arrays) -> tuple[Arrays, Any]:
    """The stabilised mLSTM: m' = max(log f + m, ĩ), C' = f C + i k vᵀ, n' = f n + i k,
    h = o ⊙ C'ᵀ q / max(|n'ᵀ q|, exp(-m'))."""
    C, n, m, q, k = s["C"], s["n"], s["m"], f["q"], f["k"]
    m_new = ops.maximum(f["log_f"] + m, f["i_pre"])
    i, fg = ops.exp(f["i_pre"] - m_new), ops.exp(f["log_f"] + m - m_new)
    C_new = fg[:, :, None] * C + i[:, :, None] * (k[:, :, None] * f["v"][:, None, :])
    n_new = fg * n + i * k
    denominator = ops.maximum(ops.abs((n_new * q).sum(-1)[:, None]), ops.exp(-m_new))
    h = f["o"] * ops.einsum("bkv,bk->bv", C_new, q) / denominator
    return {"C": C_new, "n": n_new, "m": m_new}, h


CELLS: dict[str, MatrixCell] = {
    "deltanet": MatrixCell(
        name="deltanet",
        output="y",
        matrix_state="S",
        projections=("W_q", "W_k", "W_v", "W_b"),
        biased=False,
        features=deltanet_features,
        recur=deltanet_recur,
    ),
    "xlstm_mlstm": MatrixCell(
        name="xlstm_mlstm",
        output="h",
        matrix_state="C",
        projections=tuple(f"W_{g}" for g in "qkvoif"),
        biased=True,
        features=mlstm_features,
        recur=mlstm_recur,
    ),
}


def stack(cell: MatrixCell, p: Mapping[str, Any], cat: Callable[[list[Any]], Any]) -> Arrays:
    """The parameters as a user keeps them: ``W`` (rows, D), the input matrices stacked, and ``b``
    (rows) their biases, when the cell has them."""
    stacked = {"W": cat([p[m] for m in cell.projections])}
    if cell.biased:
        stacked["b"] = cat([p["b" + m[1:]] for m in cell.projections])
    return stacked


def features(ops: SimpleNamespace, cell: MatrixCell, q: Mapping[str, Any], rows: list[int], x: Any) -> Arrays:
    """Every step's features at once, from one (T·B, D) @ (D, rows) product; arrays (T, B, ·)."""
    T, B, D = x.shape
    xw = x.reshape(T * B, D) @ q["W"].T
    if cell.biased:
        xw = xw + q["b"]
    return cell.features(ops, ops.split(xw.reshape(T, B, -1), rows))
