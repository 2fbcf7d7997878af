"""The built-in cells with matrix-valued states (``state S: K x V``, one K x V matrix per sample),
each checked against an independent PyTorch step written here from its paper's equations:

* linear_attention: Katharopoulos, Vyas, Pappas & Fleuret 2020 (arXiv:2006.16236), eqs. 16-20
* deltanet:         Schlag, Irie & Schmidhuber 2021 (arXiv:2102.11174), the delta update rule
* gla:              Yang, Wang, Shen, Panda & Kim 2024 (arXiv:2312.06635), the recurrent form
* fast_weights:     Ba, Hinton, Mnih, Leibo & Ionescu 2016 (arXiv:1610.06258), eqs. 1-2
* xlstm_mlstm:      Beck et al. 2024 (arXiv:2405.04517), the mLSTM and its stabilised form

Why: matrix states add two ways to be wrong that vector states cannot show: an axis slip (S for
Sᵀ, a row scaling applied to columns, an outer product the wrong way round) and a layout slip
between the kernel's (T, B, K, V) arrays and the equations. So the steps below are written the way
a PyTorch user would write them (batched ``einsum`` and broadcasting, a matrix ``W`` (rows, cols)
acting on a batch of row vectors as ``x @ W.T``, a (1, D) matrix giving a (B, 1) scalar), from the
papers and the conventions stated in each cell file's header (which axis of S follows the keys,
the feature map, the scalar gates, the stabiliser), not from the cells' equations. Sizes are
D=3, K=4, V=5, H=4 (K != V, so an axis slip is a shape error or a wrong value), and again with
K == V == 4, where an axis slip has the right shape and only the values can show it.

What is checked, in float64:

1. the reference steps themselves against the papers' other forms, without symgate: the causal
   parallel form of linear attention and of GLA, DeltaNet's "remove the old value, write the new"
   form in the paper's value x key orientation, the fast weights as attention to past hidden
   states (Ba et al. eq. 3), and the mLSTM's unstabilised equations (the stabilised states are the
   unstabilised ones times exp(-m)); tolerance 1e-12 relative to the largest magnitude;
2. each cell's declared states, outputs and inferred parameter shapes against its header;
3. every state and output over T=5 steps, and every gradient (parameters, inputs, initial states)
   of loss = Σ_t Σ_n <n_t, cotangent_n,t> over every state and output n, against PyTorch's
   autograd of the same loss: tolerance 1e-10 relative to the largest magnitude of each array;
   shapes must match exactly (a state (T, B, K, V), its initial value and gradient (B, K, V), a
   size-1 state (T, B, 1) / (B, 1));
4. ``symgate check <name>`` (the command's entry point) exits with status 0 for every cell;
5. ``forward(..., recompute=True)`` over T=17 (segments of 5, 5, 5 and 2 steps), with every
   sample running all 17 steps and with lengths 17, 6 and 0, gives the taped run's vector states,
   outputs and final states exactly and its gradients to 1e-12 relative to the largest magnitude
   (the segments sum the parameter gradients in another order); it keeps a matrix state at the
   three segment ends only (``run.checkpoints``, and its last state in ``run.final``), not in
   ``run.states``: 4 matrices a sample in place of 17, as ``run.kept_bytes`` says.

Values are drawn where every cell is defined and away from its kinks: linear attention's
normaliser z starts in (0.5, 1) (the paper starts it at 0 and adds φ(k) > 0, so its denominator
stays positive), the mLSTM's stabiliser m in (-0.5, 0.5); every other state and input in
(-0.5, 0.5) and (-1, 1). Each reference step also returns its distance to the nearest kink or
pole (the mLSTM's two maxima, linear attention's denominator), and the test refuses a draw closer
than 1e-3, where a one-sided derivative would make the comparison meaningless.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgate as sg
from symgate.cli import main

torch = pytest.importorskip("torch")

SIZES = {"D": 3, "K": 4, "V": 5, "H": 4}
SQUARE = {"D": 3, "K": 4, "V": 4, "H": 4}  # K == V: an axis slip keeps its shape
T, B = 5, 2
TOLERANCE = 1e-10  # kernels vs autograd, relative to the largest magnitude of each compared array
RECOMPUTE_TOLERANCE = 1e-12  # recomputing vs taped gradients, relative likewise
SELF_TOLERANCE = 1e-12  # a reference step vs the paper's other form of it, relative likewise
KINK_MARGIN = 1e-3  # the least distance of a draw from a kink or a pole

STATES = {  # name -> dimension string, as each cell file's header states them
    "linear_attention": {"S": "K x V", "z": "K"},
    "deltanet": {"S": "K x V"},
    "gla": {"S": "K x V"},
    "fast_weights": {"h": "H", "A": "H x H"},
    "xlstm_mlstm": {"C": "K x V", "n": "K", "m": "1"},
}
OUTPUTS = {
    "linear_attention": {"y": "V"},
    "deltanet": {"y": "V"},
    "gla": {"y": "V"},
    "fast_weights": {},
    "xlstm_mlstm": {"h": "V"},
}
PARAM_SHAPES = {  # the parameters each header lists, with their shapes
    "linear_attention": {"W_q": ("K", "D"), "W_k": ("K", "D"), "W_v": ("V", "D")},
    "deltanet": {"W_q": ("K", "D"), "W_k": ("K", "D"), "W_v": ("V", "D"), "W_b": ("1", "D")},
    "gla": {"W_q": ("K", "D"), "W_k": ("K", "D"), "W_v": ("V", "D"), "W_a": ("K", "D"), "b_a": ("K",)},
    "fast_weights": {"W": ("H", "H"), "C": ("H", "D"), "b": ("H",)},
    "xlstm_mlstm": {
        **{f"W_{g}": ("K", "D") for g in "qk"},
        **{f"W_{g}": ("V", "D") for g in "vo"},
        **{f"W_{g}": ("1", "D") for g in "if"},
        **{f"b_{g}": ("K",) for g in "qk"},
        **{f"b_{g}": ("V",) for g in "vo"},
        **{f"b_{g}": ("1",) for g in "if"},
    },
}
INIT_RANGES = {("linear_attention", "z"): (0.5, 1.0), ("xlstm_mlstm", "m"): (-0.5, 0.5)}  # others: (-0.5, 0.5)


# -- the reference steps, from the papers -------------------------------------------------------


def mv(W, v):
    """A parameter matrix W (rows, cols) applied to a batch of row vectors v (B, cols)."""
    return v @ W.T


def elu_plus_one(a):
    """Katharopoulos et al.'s feature map φ(a) = elu(a) + 1 (positive everywhere)."""
    return torch.nn.functional.elu(a) + 1


def linear_attention(p, x, s):
    """S_i = S_{i-1} + φ(k_i) v_iᵀ, z_i = z_{i-1} + φ(k_i), y_i = S_iᵀ φ(q_i) / (z_iᵀ φ(q_i)):
    the paper's causal recurrence (its s_i, rows following the keys), without the layer's f_l and
    residual."""
    x = x["x"]
    q, k, v = elu_plus_one(mv(p["W_q"], x)), elu_plus_one(mv(p["W_k"], x)), mv(p["W_v"], x)
    S = s["S"] + k[:, :, None] * v[:, None, :]
    z = s["z"] + k
    denominator = torch.einsum("bk,bk->b", z, q)[:, None]
    y = torch.einsum("bkv,bk->bv", S, q) / denominator
    return {"S": S, "z": z, "y": y, "_margin": denominator.abs()}


def deltanet(p, x, s):
    """The delta rule with S the paper's fast weight matrix W transposed (K x V):
    v̄ = Sᵀ φ(k), S' = S + β φ(k) (v - v̄)ᵀ, y = S'ᵀ φ(q); φ is elu + 1 followed by the paper's sum
    normalisation, β = σ(W_β x) one scalar per sample."""
    x = x["x"]
    phi_q, phi_k = elu_plus_one(mv(p["W_q"], x)), elu_plus_one(mv(p["W_k"], x))
    q, k = phi_q / phi_q.sum(dim=1, keepdim=True), phi_k / phi_k.sum(dim=1, keepdim=True)
    v = mv(p["W_v"], x)
    beta = torch.sigmoid(mv(p["W_b"], x))  # (B, 1)
    S = s["S"]
    v_bar = torch.bmm(S.transpose(1, 2), k[:, :, None])[:, :, 0]  # the value S holds for k: (B, V)
    S_new = S + beta[:, :, None] * (k[:, :, None] * (v - v_bar)[:, None, :])
    y = torch.bmm(S_new.transpose(1, 2), q[:, :, None])[:, :, 0]
    return {"S": S_new, "y": y}


def gla(p, x, s):
    """S_t = diag(α_t) S_{t-1} + k_t v_tᵀ (the paper's G_t ⊙ S_{t-1} with G_t = α_tᵀ 1: each key
    row decays by its own gate), α_t = σ(W_α x_t + b_α)^(1/τ) with τ = 16, y_t = S_tᵀ q_t."""
    tau = 16
    x = x["x"]
    q, k, v = mv(p["W_q"], x), mv(p["W_k"], x), mv(p["W_v"], x)
    alpha = torch.sigmoid(mv(p["W_a"], x) + p["b_a"]) ** (1 / tau)
    S = alpha[:, :, None] * s["S"] + k[:, :, None] * v[:, None, :]
    return {"S": S, "y": torch.einsum("bkv,bk->bv", S, q)}


def fast_weights(p, x, s):
    """A(t) = λ A(t-1) + η h(t) h(t)ᵀ; h_0(t+1) = f(W h(t) + C x(t)), and one inner step
    h(t+1) = f(W h(t) + C x(t) + A(t) h_0(t+1)); f = tanh, λ = 0.95, η = 0.5, a bias b, no layer
    norm (the cell's stated conventions)."""
    lam, eta = 0.95, 0.5
    h, A = s["h"], s["A"]
    boundary = mv(p["W"], h) + mv(p["C"], x["x"]) + p["b"]  # the paper's sustained boundary condition
    h0 = torch.tanh(boundary)
    A_new = lam * A + eta * torch.einsum("bi,bj->bij", h, h)
    h_new = torch.tanh(boundary + torch.bmm(A_new, h0[:, :, None])[:, :, 0])
    return {"h": h_new, "A": A_new}


def xlstm_mlstm(p, x, s):
    """The mLSTM with C, n kept scaled by exp(-m) (the paper's stabiliser), C the paper's C
    transposed (K x V): m' = max(log f + m, ĩ), i = exp(ĩ - m'), f = exp(log f + m - m'),
    C' = f C + i k vᵀ, n' = f n + i k, h = o ⊙ C'ᵀ q / max(|n'ᵀ q|, exp(-m')); f = σ(f̃)."""
    x, C, n, m = x["x"], s["C"], s["n"], s["m"]
    q = mv(p["W_q"], x) + p["b_q"]
    k = mv(p["W_k"], x) + p["b_k"]
    v = mv(p["W_v"], x) + p["b_v"]
    o = torch.sigmoid(mv(p["W_o"], x) + p["b_o"])
    i_tilde = mv(p["W_i"], x) + p["b_i"]  # (B, 1)
    log_f = torch.nn.functional.logsigmoid(mv(p["W_f"], x) + p["b_f"])  # (B, 1)
    m_new = torch.maximum(log_f + m, i_tilde)
    i, f = torch.exp(i_tilde - m_new), torch.exp(log_f + m - m_new)
    C_new = f[:, :, None] * C + i[:, :, None] * torch.einsum("bk,bv->bkv", k, v)
    n_new = f * n + i * k
    qn = torch.einsum("bk,bk->b", n_new, q)[:, None].abs()
    floor = torch.exp(-m_new)
    h = o * torch.einsum("bkv,bk->bv", C_new, q) / torch.maximum(qn, floor)
    margin = torch.cat([(log_f + m - i_tilde).abs(), (qn - floor).abs()], dim=1)
    return {"C": C_new, "n": n_new, "m": m_new, "h": h, "_margin": margin}


STEPS = {f.__name__: f for f in (linear_attention, deltanet, gla, fast_weights, xlstm_mlstm)}
CELLS = sorted(STEPS)
WITH_K_AND_V = [name for name in CELLS if "K x V" in STATES[name].values()]
CASES = [pytest.param(name, SIZES, id=name) for name in CELLS]
CASES += [pytest.param(name, SQUARE, id=f"{name}-K=V") for name in WITH_K_AND_V]


# -- the reference steps against the papers' other forms (no symgate needed) --------------------


def phi(a):
    """elu(a) + 1 spelled out: a + 1 above zero, exp(a) below."""
    return torch.where(a > 0, a + 1, torch.exp(torch.clamp(a, max=0)))


def random_params(name, sizes, rng):
    return {
        n: torch.tensor(rng.uniform(-0.8, 0.8, tuple(1 if d == "1" else sizes[d] for d in shape)))
        for n, shape in PARAM_SHAPES[name].items()
    }


def unrolled(name, p, xs, init):
    """The reference step run over xs (T, B, D): every step's new values, stacked."""
    state, out = dict(init), {}
    for t in range(xs.shape[0]):
        new = STEPS[name](p, {"x": xs[t]}, state)
        state = {n: new[n] for n in STATES[name]}
        for n, value in new.items():
            out.setdefault(n, []).append(value)
    return {n: torch.stack(values) for n, values in out.items()}


def close(ours, theirs, tolerance=SELF_TOLERANCE):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = max(float(theirs.abs().max()), 1e-300)
    assert float((ours - theirs).abs().max()) <= tolerance * scale


@pytest.mark.parametrize("sizes", [SIZES, SQUARE], ids=["K!=V", "K=V"])
def test_linear_attention_is_the_papers_causal_attention(sizes):
    """From S_0 = 0, z_0 = 0 (the paper's start): y_i = Σ_{j≤i} φ(q_i)·φ(k_j) v_j / Σ_{j≤i} φ(q_i)·φ(k_j)."""
    rng = np.random.default_rng(11)
    p, xs = random_params("linear_attention", sizes, rng), torch.tensor(rng.uniform(-1, 1, (T, B, sizes["D"])))
    zero = {"S": torch.zeros(B, sizes["K"], sizes["V"]), "z": torch.zeros(B, sizes["K"])}
    run = unrolled("linear_attention", p, xs, {n: a.double() for n, a in zero.items()})
    Q, K, V = phi(xs @ p["W_q"].T), phi(xs @ p["W_k"].T), xs @ p["W_v"].T  # (T, B, ·)
    scores = torch.einsum("ibk,jbk->bij", Q, K) * torch.tril(torch.ones(T, T, dtype=torch.float64))
    y = torch.einsum("bij,jbv->ibv", scores, V) / scores.sum(dim=2).T[:, :, None]
    close(run["y"], y)
    close(run["S"][-1], torch.einsum("tbk,tbv->bkv", K, V))
    close(run["z"][-1], K.sum(dim=0))


@pytest.mark.parametrize("sizes", [SIZES, SQUARE], ids=["K!=V", "K=V"])
def test_gla_is_the_papers_parallel_form(sizes):
    """From S_0 = 0, with b_t = Π_{s≤t} α_s: y_t = Σ_{j≤t} ((q_t ⊙ b_t)·(k_j / b_j)) v_j."""
    rng = np.random.default_rng(12)
    p, xs = random_params("gla", sizes, rng), torch.tensor(rng.uniform(-1, 1, (T, B, sizes["D"])))
    run = unrolled("gla", p, xs, {"S": torch.zeros(B, sizes["K"], sizes["V"], dtype=torch.float64)})
    alpha = torch.sigmoid(xs @ p["W_a"].T + p["b_a"]) ** (1 / 16)  # (T, B, K)
    b = torch.cumprod(alpha, dim=0)
    Q, K, V = xs @ p["W_q"].T, xs @ p["W_k"].T, xs @ p["W_v"].T
    scores = torch.einsum("ibk,jbk->bij", Q * b, K / b) * torch.tril(torch.ones(T, T, dtype=torch.float64))
    close(run["y"], torch.einsum("bij,jbv->ibv", scores, V))


@pytest.mark.parametrize("sizes", [SIZES, SQUARE], ids=["K!=V", "K=V"])
def test_deltanet_is_the_papers_remove_and_write_form(sizes):
    """In the paper's orientation, W (V x K) = Sᵀ: v̄ = W φ(k), v_new = β v + (1 - β) v̄,
    W' = W - v̄ ⊗ φ(k) + v_new ⊗ φ(k), y = W' φ(q); φ sum-normalised."""
    rng = np.random.default_rng(13)
    p, xs = random_params("deltanet", sizes, rng), torch.tensor(rng.uniform(-1, 1, (T, B, sizes["D"])))
    S0 = torch.tensor(rng.uniform(-0.5, 0.5, (B, sizes["K"], sizes["V"])))
    run = unrolled("deltanet", p, xs, {"S": S0})
    W = S0.transpose(1, 2)
    for t in range(T):
        fq, fk = phi(xs[t] @ p["W_q"].T), phi(xs[t] @ p["W_k"].T)
        q, k = fq / fq.sum(1, keepdim=True), fk / fk.sum(1, keepdim=True)
        v, beta = xs[t] @ p["W_v"].T, torch.sigmoid(xs[t] @ p["W_b"].T)
        v_bar = torch.einsum("bvk,bk->bv", W, k)
        v_new = beta * v + (1 - beta) * v_bar
        W = W - torch.einsum("bv,bk->bvk", v_bar, k) + torch.einsum("bv,bk->bvk", v_new, k)
        close(run["S"][t], W.transpose(1, 2))
        close(run["y"][t], torch.einsum("bvk,bk->bv", W, q))


def test_fast_weights_attend_to_the_past_hidden_states():
    """Ba et al. eq. 3: A(t) h_0 = λ^(t+1) A(0) h_0 + η Σ_{τ≤t} λ^(t-τ) h(τ) <h(τ), h_0>, so
    h(t+1) = tanh(z + that), with z = W h(t) + C x(t) + b and h_0 = tanh(z)."""
    lam, eta, sizes = 0.95, 0.5, SIZES
    rng = np.random.default_rng(14)
    p, xs = random_params("fast_weights", sizes, rng), torch.tensor(rng.uniform(-1, 1, (T, B, sizes["D"])))
    A0 = torch.tensor(rng.uniform(-0.5, 0.5, (B, sizes["H"], sizes["H"])))  # not symmetric: A h, not Aᵀ h
    hs = [torch.tensor(rng.uniform(-0.5, 0.5, (B, sizes["H"])))]
    run = unrolled("fast_weights", p, xs, {"h": hs[0], "A": A0})
    for t in range(T):
        z = hs[t] @ p["W"].T + xs[t] @ p["C"].T + p["b"]
        h0 = torch.tanh(z)
        attended = lam ** (t + 1) * torch.einsum("bij,bj->bi", A0, h0)
        for tau in range(t + 1):
            attended = attended + eta * lam ** (t - tau) * hs[tau] * (hs[tau] * h0).sum(1, keepdim=True)
        hs.append(torch.tanh(z + attended))
        close(run["h"][t], hs[-1])


@pytest.mark.parametrize("sizes", [SIZES, SQUARE], ids=["K!=V", "K=V"])
def test_the_stabilised_mlstm_is_the_papers_unstabilised_one(sizes):
    """The paper's equations in its orientation (C: V x K): C_t = f C + i v kᵀ, n_t = f n + i k,
    h = o ⊙ C_t q / max(|n_tᵀ q|, 1), i = exp(ĩ), f = σ(f̃); the stabilised states are these
    times exp(-m) (C transposed), and h is the same."""
    rng = np.random.default_rng(15)
    p, xs = random_params("xlstm_mlstm", sizes, rng), torch.tensor(rng.uniform(-1, 1, (T, B, sizes["D"])))
    init = {
        "C": torch.tensor(rng.uniform(-0.5, 0.5, (B, sizes["K"], sizes["V"]))),
        "n": torch.tensor(rng.uniform(-0.5, 0.5, (B, sizes["K"]))),
        "m": torch.tensor(rng.uniform(-0.5, 0.5, (B, 1))),
    }
    run = unrolled("xlstm_mlstm", p, xs, init)
    C, n = init["C"].transpose(1, 2) * torch.exp(init["m"])[:, :, None], init["n"] * torch.exp(init["m"])
    branches = set()
    for t in range(T):
        x = xs[t]
        q, k = x @ p["W_q"].T + p["b_q"], x @ p["W_k"].T + p["b_k"]
        v, o = x @ p["W_v"].T + p["b_v"], torch.sigmoid(x @ p["W_o"].T + p["b_o"])
        i, f = torch.exp(x @ p["W_i"].T + p["b_i"]), torch.sigmoid(x @ p["W_f"].T + p["b_f"])
        C = f[:, :, None] * C + i[:, :, None] * torch.einsum("bv,bk->bvk", v, k)
        n = f * n + i * k
        qn = (n * q).sum(1, keepdim=True).abs()
        branches |= set((qn > 1).flatten().tolist())
        close(run["h"][t], o * torch.einsum("bvk,bk->bv", C, q) / torch.clamp(qn, min=1))
        scale = torch.exp(-run["m"][t])
        close(run["C"][t], C.transpose(1, 2) * scale[:, :, None])
        close(run["n"][t], n * scale)
    assert branches == {True, False}  # both branches of the denominator's max were taken


# -- the cells against the reference steps ----------------------------------------------------


def extent(dim, sizes):
    """The array axes of a dimension string: "K x V" -> (K, V), "H" -> (H,), "1" -> (1,)."""
    return tuple(1 if axis == "1" else sizes[axis] for axis in re.split(r"\s+x\s+", dim.strip()))


def kernel_and_sizes(name, sizes):
    kernel = sg.build(name, "float64")
    return kernel, {d: sizes[d] for d in kernel.cell.dims}


def draw(kernel, sizes, steps, seed=7, batch=B):
    """Parameters (``init_params``, seed 3), inputs in (-1, 1), initial states in their ranges,
    and a cotangent for every state and output at every step."""
    cell, rng = kernel.cell, np.random.default_rng(seed)
    params = kernel.init_params(sizes, seed=3)
    inputs = {n: rng.uniform(-1.0, 1.0, (steps, batch, *extent(d, sizes))) for n, d in cell.inputs.items()}
    init = {
        n: rng.uniform(*INIT_RANGES.get((cell.name, n), (-0.5, 0.5)), (batch, *extent(d, sizes)))
        for n, d in cell.states.items()
    }
    cotangents = {
        n: rng.uniform(-1.0, 1.0, (steps, batch, *extent(d, sizes)))
        for n, d in {**cell.states, **cell.outputs}.items()
    }
    return params, inputs, init, cotangents


def agree(label, ours, theirs, tolerance):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"{label}: symgate {ours.shape}, reference {theirs.shape}"
    scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-300)
    error = float(np.max(np.abs(ours - theirs), initial=0.0))
    assert error <= tolerance * scale, f"{label}: max abs error {error:.3e}, largest magnitude {scale:.3e}"


def test_the_cells_declare_the_states_outputs_and_parameters_of_their_headers():
    for name in CELLS:
        cell = sg.cells.get(name)
        assert dict(cell.states) == STATES[name], name
        assert dict(cell.outputs) == OUTPUTS[name], name
        assert set(cell.inputs) == {"x"} and cell.inputs["x"] == "D", name
        assert {p.name: tuple(p.shape) for p in cell.params} == PARAM_SHAPES[name], name
    assert sorted(WITH_K_AND_V) == ["deltanet", "gla", "linear_attention", "xlstm_mlstm"]


@pytest.mark.parametrize(("name", "given"), CASES)
def test_the_kernels_agree_with_an_independent_pytorch_step(name, given):
    kernel, sizes = kernel_and_sizes(name, given)
    cell = kernel.cell
    params, inputs, init, cotangents = draw(kernel, sizes, T)
    run = kernel.forward(inputs, params, init)
    grads = kernel.backward(run, cotangents)

    tensor = {
        kind: {n: torch.tensor(a, requires_grad=True) for n, a in values.items()}
        for kind, values in (("param", params), ("input", inputs), ("init", init))
    }
    state, loss = dict(tensor["init"]), 0.0
    sequences = {n: [] for n in cotangents}
    for t in range(T):
        new = STEPS[name](tensor["param"], {n: a[t] for n, a in tensor["input"].items()}, state)
        margin = new.pop("_margin", None)
        if margin is not None:  # the draw must stay off the kinks and poles of this step
            distance = float(margin.detach().min())
            assert distance > KINK_MARGIN, f"{name}: step {t} is {distance:.1e} from a kink"
        assert set(new) == set(cell.states) | set(cell.outputs), name
        state = {n: new[n] for n in cell.states}
        for n in cotangents:
            sequences[n].append(new[n])
            loss = loss + (new[n] * torch.tensor(cotangents[n][t])).sum()
    loss.backward()

    computed = {**run.states, **run.outputs}
    for n, values in sequences.items():
        agree(f"{name}: {n}", computed[n], torch.stack(values), TOLERANCE)
    for kind, ours in (("param", grads.params), ("input", grads.inputs), ("init", grads.init)):
        assert set(ours) == set(tensor[kind]), f"{name}: gradients of {kind}s"
        for n, value in ours.items():
            agree(f"{name}: gradient of {kind} {n}", value, tensor[kind][n].grad, TOLERANCE)


@pytest.mark.parametrize("name", CELLS)
def test_symgate_check_passes(name, capsys):
    code = main(["check", name])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"gradcheck {name}" in out and "ok" in out, out


@pytest.mark.parametrize("lengths", [None, [17, 6, 0]], ids=["full", "lengths"])
@pytest.mark.parametrize("name", CELLS)
def test_a_recomputing_run_gives_the_taped_states_and_gradients(name, lengths):
    steps = 17  # segments of 5, 5, 5 and 2 steps
    kernel, sizes = kernel_and_sizes(name, SIZES)
    params, inputs, init, cotangents = draw(kernel, sizes, steps, seed=8, batch=3)
    rng = np.random.default_rng(9)
    final = {n: rng.uniform(-1.0, 1.0, a.shape) for n, a in init.items()}
    taped = kernel.forward(inputs, params, init, lengths=lengths)
    recomputing = kernel.forward(inputs, params, init, recompute=True, lengths=lengths)
    assert recomputing.tape == {}
    matrices = [n for n, d in kernel.cell.states.items() if " x " in d]
    assert set(recomputing.states) == set(taped.states) - set(matrices)
    assert {n: a.shape for n, a in recomputing.checkpoints.items()} == {
        n: (3, *taped.final[n].shape) for n in matrices
    }
    # What it keeps: the taped run's states and outputs, each matrix state's 17 steps replaced by
    # 4 matrices a sample (the 3 segment ends and the last state), and no tape.
    every_step = sum(a.nbytes for part in (taped.states, taped.outputs) for a in part.values())
    matrix_steps = sum(taped.states[n].nbytes for n in matrices)
    assert recomputing.kept_bytes == every_step - matrix_steps * 13 // 17
    for part in ("states", "outputs", "final"):
        for n, a in getattr(recomputing, part).items():
            np.testing.assert_array_equal(a, getattr(taped, part)[n], err_msg=f"{name}: {part} {n}")
    assert recomputing.final.keys() == taped.final.keys()
    with pytest.raises(KeyError, match=f"keeps matrix state {matrices[0]} at the ends of its segments"):
        recomputing.states[matrices[0]]
    want = kernel.backward(taped, cotangents, final=final)
    got = kernel.backward(recomputing, cotangents, final=final)
    for part in ("params", "inputs", "init"):
        assert getattr(got, part).keys() == getattr(want, part).keys()
        for n, a in getattr(want, part).items():
            agree(f"{name}: recomputed gradient of {part} {n}", getattr(got, part)[n], a, RECOMPUTE_TOLERANCE)
