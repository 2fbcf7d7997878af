"""The cells of ``docs/cells-from-papers.md`` (``examples/cells/``), each checked against an
independent PyTorch step written here from the paper's equations: every state and output over a
sequence, and every gradient (parameters, inputs, initial states) by PyTorch's autograd of the same
loss, agree with symgate's kernels to 1e-10 in float64.

The steps below are written from the papers, not from the ``.cell`` files: a matrix ``W`` (rows,
cols) acts on a batch of row vectors as ``v @ W.T``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symgate as sg

torch = pytest.importorskip("torch")

CELLS = Path(__file__).resolve().parents[1] / "examples" / "cells"
SIZES = {"D": 3, "H": 4, "M": 5, "R": 2, "O": 3}
T, B = 5, 2
TOLERANCE = 1e-10  # relative to the largest magnitude of each compared array


def mv(W, v):
    return v @ W.T


def antisymmetric_rnn(p, x, s):
    eps, gamma = 0.1, 0.01
    h = s["h"]
    A = p["W_h"] - p["W_h"].T
    return {"h": h + eps * torch.tanh(mv(A, h) - gamma * h + mv(p["V_h"], x["x"]) + p["b_h"])}


def lipschitz_rnn(p, x, s):
    eps, beta, gamma_a, gamma_w = 0.03, 0.75, 0.001, 0.001
    h = s["h"]
    eye = torch.eye(h.shape[1], dtype=h.dtype)
    A = (1 - beta) * (p["M_A"] + p["M_A"].T) + beta * (p["M_A"] - p["M_A"].T) - gamma_a * eye
    W = (1 - beta) * (p["M_W"] + p["M_W"].T) + beta * (p["M_W"] - p["M_W"].T) - gamma_w * eye
    return {"h": h + eps * (mv(A, h) + torch.tanh(mv(W, h) + mv(p["U"], x["x"]) + p["b"]))}


def multiplicative_lstm(p, x, s):
    x, h, c = x["x"], s["h"], s["c"]
    m = mv(p["W_mx"], x) * mv(p["W_mh"], h)
    g = torch.tanh(mv(p["W_hx"], x) + mv(p["W_hm"], m) + p["b_h"])
    i, o, f = (torch.sigmoid(mv(p[f"W_{k}x"], x) + mv(p[f"W_{k}m"], m) + p[f"b_{k}"]) for k in "iof")
    c_new = f * c + i * g
    return {"h": torch.tanh(c_new) * o, "c": c_new}


def _lstm_gates(p, prefix_w, prefix_u, prefix_b, x, h):
    return {k: mv(p[f"{prefix_w}_{k}"], x) + mv(p[f"{prefix_u}_{k}"], h) + p[f"{prefix_b}_{k}"] for k in "ifgo"}


def nested_lstm(p, x, s):
    h, c, d = s["h"], s["c"], s["d"]
    outer = _lstm_gates(p, "W", "U", "b", x["x"], h)
    i, f, o = (torch.sigmoid(outer[k]) for k in "ifo")
    g = torch.tanh(outer["g"])
    inner = _lstm_gates(p, "Wi", "Ui", "bi", i * g, f * c)  # inner input i ⊙ g, inner hidden f ⊙ c
    ii, fi, oi = (torch.sigmoid(inner[k]) for k in "ifo")
    d_new = fi * d + ii * torch.tanh(inner["g"])
    c_new = oi * torch.tanh(d_new)
    return {"h": o * torch.tanh(c_new), "c": c_new, "d": d_new}


def low_rank_rnn(p, x, s):
    return {"h": torch.tanh(mv(p["W"], x["x"]) + mv(p["P"] @ p["Q"], s["h"]) + p["b"])}


def ltc_irregular(p, x, s):
    h, dt = s["h"], x["dt"]
    f = torch.sigmoid(mv(p["W"], x["x"]) + mv(p["U"], h) + p["b"])
    return {"h": (h + dt * f * p["A"]) / (1 + dt * (1 / torch.exp(p["log_tau"]) + f))}


def slstm(p, x, s):
    x, h, c, n, m = x["x"], s["h"], s["c"], s["n"], s["m"]
    pre = {k: mv(p[f"W_{k}"], x) + mv(p[f"R_{k}"], h) + p[f"b_{k}"] for k in "zifo"}
    log_i, log_f = pre["i"], torch.nn.functional.logsigmoid(pre["f"])
    m_new = torch.maximum(log_f + m, log_i)
    i_stab, f_stab = torch.exp(log_i - m_new), torch.exp(log_f + m - m_new)
    c_new = f_stab * c + i_stab * torch.tanh(pre["z"])
    n_new = f_stab * n + i_stab
    return {"h": torch.sigmoid(pre["o"]) * c_new / n_new, "c": c_new, "n": n_new, "m": m_new}


def phased_lstm(p, x, s):
    r_on, alpha = 0.05, 0.001
    x_t, h, c = x["x"], s["h"], s["c"]
    gate = {k: mv(p[f"W_{k}"], x_t) + mv(p[f"U_{k}"], h) + p[f"b_{k}"] for k in "ifoc"}
    c_tilde = torch.sigmoid(gate["f"]) * c + torch.sigmoid(gate["i"]) * torch.tanh(gate["c"])
    h_tilde = torch.sigmoid(gate["o"]) * torch.tanh(c_tilde)
    tau = torch.exp(p["log_tau"])
    phi = torch.remainder(x["t"] - p["s"], tau) / tau
    k = torch.where(phi < r_on / 2, 2 * phi / r_on, torch.where(phi < r_on, 2 - 2 * phi / r_on, alpha * phi))
    return {"h": k * h_tilde + (1 - k) * h, "c": k * c_tilde + (1 - k) * c}


def lru_real(p, x, s):
    x_t = x["x"]
    h = torch.complex(s["a"], s["b"])
    lam = torch.exp(torch.complex(-torch.exp(p["nu"]), torch.exp(p["theta"])))
    gamma = torch.sqrt(1 - torch.abs(lam) ** 2)
    h_new = lam * h + gamma * mv(torch.complex(p["B_re"], p["B_im"]), torch.complex(x_t, torch.zeros_like(x_t)))
    y = mv(p["C_re"], h_new.real) - mv(p["C_im"], h_new.imag) + mv(p["D_x"], x_t)
    return {"a": h_new.real, "b": h_new.imag, "y": y}


def cornn(p, x, s):
    gamma, eps = 2.7, 4.7
    y, z, dt = s["y"], s["z"], p["dt"]
    z_new = z + dt * (torch.tanh(mv(p["W"], y) + mv(p["Wz"], z) + mv(p["V"], x["u"]) + p["b"]) - gamma * y - eps * z)
    return {"y": y + dt * z_new, "z": z_new}


STEPS = {
    f.__name__: f
    for f in (
        antisymmetric_rnn,
        lipschitz_rnn,
        multiplicative_lstm,
        nested_lstm,
        low_rank_rnn,
        ltc_irregular,
        slstm,
        phased_lstm,
        lru_real,
        cornn,
    )
}
PLACES = {  # parameters a paper keeps in a range: drawn there
    "phased_lstm": {"log_tau": (0.0, 1.1), "s": (0.0, 1.0)},
    "cornn": {"dt": (0.02, 0.05)},
}
INPUT_RANGES = {"t": (0.0, 10.0), "dt": (0.1, 1.5)}


def test_every_cell_of_the_page_is_checked_here():
    assert sorted(p.stem for p in CELLS.glob("*.cell") if p.stem in STEPS) == sorted(STEPS)
    assert len(STEPS) >= 10


@pytest.mark.parametrize("name", sorted(STEPS))
def test_the_kernels_agree_with_an_independent_pytorch_step(name):
    cell = sg.load(CELLS / f"{name}.cell", strict=True)
    kernel = sg.build(cell, "float64")
    rng = np.random.default_rng(7)
    sizes = {d: SIZES[d] for d in cell.dims}
    params = kernel.init_params(sizes, seed=3)
    for param, (low, high) in PLACES.get(name, {}).items():
        params[param] = rng.uniform(low, high, size=params[param].shape)

    def draw(shape, name_=""):
        low, high = INPUT_RANGES.get(name_, (-1.0, 1.0))
        return rng.uniform(low, high, size=shape)

    def extent(dim):
        return 1 if dim == "1" else sizes[dim]

    inputs = {n: draw((T, B, extent(d)), n) for n, d in cell.inputs.items()}
    init = {n: draw((B, extent(d))) * 0.5 for n, d in cell.states.items()}
    cotangents = {n: draw((T, B, extent(d))) for n, d in {**cell.states, **cell.outputs}.items()}
    run = kernel.forward(inputs, params, init)
    grads = kernel.backward(run, cotangents)

    tensor = {
        kind: {n: torch.tensor(a, requires_grad=True) for n, a in values.items()}
        for kind, values in (("param", params), ("input", inputs), ("init", init))
    }
    state = dict(tensor["init"])
    loss = 0.0
    sequences = {n: [] for n in cotangents}
    for t in range(T):
        new = STEPS[name](tensor["param"], {n: a[t] for n, a in tensor["input"].items()}, state)
        state = {n: new[n] for n in cell.states}
        for n in cotangents:
            sequences[n].append(new[n])
            loss = loss + (new[n] * torch.tensor(cotangents[n][t])).sum()
    loss.backward()

    def agree(label, ours, theirs):
        theirs = theirs.detach().numpy().reshape(ours.shape)
        scale = max(float(np.max(np.abs(theirs))), 1e-300)
        assert float(np.max(np.abs(ours - theirs))) <= TOLERANCE * scale, f"{name}: {label}"

    for n, values in sequences.items():
        agree(n, {**run.states, **run.outputs}[n], torch.stack(values))
    for kind, ours in (("param", grads.params), ("input", grads.inputs), ("init", grads.init)):
        for n, value in ours.items():
            agree(f"gradient of {kind} {n}", value, tensor[kind][n].grad)


def test_the_page_shows_each_cell_as_its_file_holds_it():
    page = (CELLS.parents[1] / "docs" / "cells-from-papers.md").read_text()
    for name in STEPS:
        assert (CELLS / f"{name}.cell").read_text().rstrip() in page, name
        assert f"$ symgate check examples/cells/{name}.cell --strict" in page, name
    assert "docs/cells-from-papers.md" in (CELLS.parents[1] / "README.md").read_text()
