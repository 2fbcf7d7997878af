"""The exact identities of the development reference (../shared/reference/cells.md, section 9) as
equalities of compiled kernels.

Each test builds the float64 kernels of two built-in cells, draws random parameters for one,
maps them to the other exactly as the identity says, runs both on the same random sequence from
the same non-zero initial states, and requires states and outputs to agree to 1e-12 relative.
Where the parameter map is linear, p_B = M p_A, the gradients must agree too: grad_A = Mᵀ grad_B
(a negated tensor's gradient flips sign; merged biases each get the merged bias's gradient).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import symgate as sg

SIZES = {"D": 3, "H": 4}
SQUARE = {"H": 4}  # cells that need D = H
STEPS, BATCH = 5, 2
CLOSE = {"rtol": 1e-12, "atol": 1e-14}


def elman_relu() -> sg.Cell:
    """elman_rnn's equations with relu for tanh: what rnn_relu_pytorch merges into (not shipped)."""
    text = sg.cells.get("elman_rnn").text()
    assert text.count("tanh(") == 1
    return sg.parse(text.replace("tanh(", "relu(").replace("cell elman_rnn", "cell elman_relu"))


@functools.cache
def kernel(name: str) -> sg.Kernel:
    return sg.build(elman_relu() if name == "elman_relu" else sg.cells.get(name))


def sizes_of(k: sg.Kernel) -> dict[str, int]:
    return {d: {**SIZES, **SQUARE}[d] for d in k.cell.dims}


def params_of(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    k = kernel(name)
    return {n: v.copy() for n, v in k.init_params(sizes_of(k), seed=seed).items()}


def check_equal(
    a: str,
    params_a: dict[str, np.ndarray],
    b: str,
    params_b: dict[str, np.ndarray],
    *,
    rename: dict[str, str] | None = None,
    grads: dict[str, list[tuple[float, str]]] | None = None,
    partial: bool = False,
    seed: int = 0,
) -> tuple[sg.Gradients, sg.Gradients] | None:
    """Cell ``a`` with ``params_a`` equals cell ``b`` with ``params_b`` (states and outputs).

    ``rename`` maps a's state and output names to b's (default: the same names); b's states that
    a lacks start at zero (their default). ``grads`` gives, for a's parameters, each one's gradient
    as a combination ``[(coefficient, b's parameter), ...]`` of b's; the gradients of the input
    sequence and of the initial states must then agree too, and ``grads`` must cover every
    parameter of a unless ``partial``. Returns both gradients.
    """
    ka, kb = kernel(a), kernel(b)
    rename = rename or {}
    to_b = lambda name: rename.get(name, name)  # noqa: E731
    rng = np.random.default_rng(seed + 100)
    sizes = {**sizes_of(ka), **{"T": STEPS, "B": BATCH}}
    x = rng.standard_normal((STEPS, BATCH, sizes[ka.cell.inputs["x"]]))
    init_a = {s: rng.uniform(-0.8, 0.8, (BATCH, sizes[d])) for s, d in ka.cell.states.items()}
    init_b = {to_b(s): v for s, v in init_a.items()}
    run_a, run_b = ka.forward(x, params_a, init_a), kb.forward(x, params_b, init_b)
    values_a = {**run_a.states, **run_a.outputs}
    values_b = {**run_b.states, **run_b.outputs}
    for name, value in values_a.items():
        np.testing.assert_allclose(value, values_b[to_b(name)], **CLOSE, err_msg=f"{a}.{name} vs {b}.{to_b(name)}")
    if grads is None:
        return None

    cotangents = {n: rng.standard_normal(v.shape) for n, v in values_a.items()}
    grads_a = ka.backward(run_a, cotangents)
    grads_b = kb.backward(run_b, {to_b(n): g for n, g in cotangents.items()})
    assert set(grads) <= set(params_a) and (partial or set(grads) == set(params_a))
    for name, combination in grads.items():
        expected = sum(coefficient * grads_b.params[other] for coefficient, other in combination)
        np.testing.assert_allclose(grads_a.params[name], expected, **CLOSE, err_msg=f"d/d{name}")
    np.testing.assert_allclose(grads_a.inputs["x"], grads_b.inputs["x"], **CLOSE, err_msg="d/dx")
    for s in ka.cell.states:
        np.testing.assert_allclose(grads_a.init[s], grads_b.init[to_b(s)], **CLOSE, err_msg=f"d/d{s}_0")
    return grads_a, grads_b


def same(names) -> dict[str, list[tuple[float, str]]]:
    """Gradients of parameters that keep their names: each is its namesake's."""
    return {n: [(1.0, n)] for n in names}


def renamed(names: dict[str, str]) -> dict[str, list[tuple[float, str]]]:
    """Gradients of a renaming: each parameter's gradient is its image's."""
    return {n: [(1.0, m)] for n, m in names.items()}


# -- 1. sign flips ------------------------------------------------------------------------------


def test_gru_chung_is_gru_cho_with_the_update_gate_negated():
    p = params_of("gru_chung")
    q = {**p, "W_z": -p["W_z"], "U_z": -p["U_z"]}
    grads = same(p) | {"W_z": [(-1.0, "W_z")], "U_z": [(-1.0, "U_z")]}
    check_equal("gru_chung", p, "gru_cho", q, grads=grads)


def test_lstm_coupled_tf_is_lstm_cifg_with_the_forget_gate_negated():
    p = params_of("lstm_coupled_tf")
    forget_bias = float(sg.cells.get("lstm_coupled_tf").constants["forget_bias"])
    q = {
        "W_i": -p["W_f"],
        "U_i": -p["U_f"],
        "b_i": -(p["b_f"] + forget_bias),
        "W_g": p["W_j"],
        "U_g": p["U_j"],
        "b_g": p["b_j"],
        "W_o": p["W_o"],
        "U_o": p["U_o"],
        "b_o": p["b_o"],
    }
    grads = {"W_f": [(-1.0, "W_i")], "U_f": [(-1.0, "U_i")], "b_f": [(-1.0, "b_i")]}
    grads |= renamed({"W_j": "W_g", "U_j": "U_g", "b_j": "b_g", "W_o": "W_o", "U_o": "U_o", "b_o": "b_o"})
    check_equal("lstm_coupled_tf", p, "lstm_cifg", q, grads=grads)


# -- 2. bias merging ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "elman"), [("rnn_tanh_pytorch", "elman_rnn"), ("rnn_relu_pytorch", "elman_relu")])
def test_rnn_pytorch_is_elman_rnn_with_merged_biases(name, elman):
    """rnn_relu_pytorch against elman_rnn's equations with relu (seed 0 keeps the kink away)."""
    p = params_of(name)
    q = {"W": p["W_ih"], "U": p["W_hh"], "b": p["b_ih"] + p["b_hh"]}
    grads = {"W_ih": [(1.0, "W")], "W_hh": [(1.0, "U")], "b_ih": [(1.0, "b")], "b_hh": [(1.0, "b")]}
    check_equal(name, p, elman, q, grads=grads)


def test_lstm_pytorch_is_lstm_with_merged_biases():
    p = params_of("lstm_pytorch")
    q, grads = {}, {}
    for gate in "ifgo":
        q |= {
            f"W_{gate}": p[f"W_i{gate}"],
            f"U_{gate}": p[f"W_h{gate}"],
            f"b_{gate}": p[f"b_i{gate}"] + p[f"b_h{gate}"],
        }
        grads |= {f"W_i{gate}": [(1.0, f"W_{gate}")], f"W_h{gate}": [(1.0, f"U_{gate}")]}
        grads |= {f"b_i{gate}": [(1.0, f"b_{gate}")], f"b_h{gate}": [(1.0, f"b_{gate}")]}
    check_equal("lstm_pytorch", p, "lstm", q, grads=grads)


# -- 3. equal cells (renamings) -----------------------------------------------------------------

LSTM = [f"{m}_{gate}" for gate in "ifgo" for m in "WUb"]


def test_lstm_is_lstm_slp3_with_zero_biases():
    p = params_of("lstm_slp3")
    q = p | {f"b_{gate}": np.zeros(SIZES["H"]) for gate in "ifgo"}
    check_equal("lstm_slp3", p, "lstm", q, grads=same(p))


def test_lstm_is_lstm_greff_np():
    """Renaming g -> z (block input), h -> y (block output), U -> R."""
    p = params_of("lstm")
    names = {
        f"{m}_{gate}": f"{'R' if m == 'U' else m}_{'z' if gate == 'g' else gate}"
        for m, gate in (n.split("_") for n in LSTM)
    }
    q = {names[n]: v for n, v in p.items()}
    check_equal("lstm", p, "lstm_greff_np", q, rename={"h": "y"}, grads=renamed(names))


def test_lstm_is_r2rt_lstm():
    """Renaming the candidate's W_g, U_g, b_g to R2RT's unsubscripted W, U, b."""
    p = params_of("lstm")
    names = {n: (n[0] if n.endswith("_g") else n) for n in LSTM}
    q = {names[n]: v for n, v in p.items()}
    check_equal("lstm", p, "r2rt_lstm", q, grads=renamed(names))


def test_lstm_peephole_is_lstm_greff_vanilla():
    p = params_of("lstm_peephole")
    names = {n: n.replace("U_", "R_").replace("_g", "_z") for n in p}
    q = {names[n]: v for n, v in p.items()}
    check_equal("lstm_peephole", p, "lstm_greff_vanilla", q, rename={"h": "y"}, grads=renamed(names))


def test_r2rt_lstm_peephole_is_lstm_peephole():
    p = params_of("r2rt_lstm_peephole")
    check_equal("r2rt_lstm_peephole", p, "lstm_peephole", dict(p), grads=same(p))


def test_r2rt_gru_with_zero_biases_is_gru_cho():
    p = params_of("gru_cho")
    names = {"W_r": "W_r", "U_r": "U_r", "W_z": "W_z", "U_z": "U_z", "W_h": "W", "U_h": "U"}
    q = {names[n]: v for n, v in p.items()} | {b: np.zeros(SIZES["H"]) for b in ("b_r", "b_z", "b")}
    check_equal("gru_cho", p, "r2rt_gru", q, rename={"h": "s"}, grads=renamed(names))


# -- 4. reductions ------------------------------------------------------------------------------


def test_lstm_greff_vanilla_without_peepholes_is_lstm_greff_np():
    p = params_of("lstm_greff_np")
    q = p | {f"p_{gate}": np.zeros(SIZES["H"]) for gate in "ifo"}
    check_equal("lstm_greff_np", p, "lstm_greff_vanilla", q, grads=same(p))


def test_lstm_greff_fgr_without_gate_recurrence_is_lstm_greff_vanilla():
    """All nine R_ab = 0; FGR's gate states i, f, o start at zero (its default) and are not compared."""
    p = params_of("lstm_greff_vanilla")
    q = p | {f"R_{a}{b}": np.zeros((SIZES["H"], SIZES["H"])) for a in "ifo" for b in "ifo"}
    assert set(q) == {prm.name for prm in sg.cells.get("lstm_greff_fgr").params}
    check_equal("lstm_greff_vanilla", p, "lstm_greff_fgr", q, grads=same(p))


def test_sru_without_cell_feedback_is_sru_2017():
    """v_f = v_r = 0; sru's scale_x = 1 and act = tanh are sru_2017's x and g = tanh."""
    assert sg.cells.get("sru").constants["scale_x"] == 1
    p = params_of("sru_2017")
    q = p | {"v_f": np.zeros(SQUARE["H"]), "v_r": np.zeros(SQUARE["H"])}
    check_equal("sru_2017", p, "sru", q, grads=same(p))


def gru_pytorch_params(w_hn: np.ndarray) -> dict[str, np.ndarray]:
    """gru_pytorch parameters with every bias zero (gru_cho has none) and the given W_hn."""
    p = params_of("gru_pytorch")
    return p | {n: np.zeros_like(v) for n, v in p.items() if n.startswith("b_")} | {"W_hn": w_hn}


GRU_CHO_NAMES = {"W_ir": "W_r", "W_hr": "U_r", "W_iz": "W_z", "W_hz": "U_z", "W_in": "W_h", "W_hn": "U_h"}


def gru_cho_params(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {GRU_CHO_NAMES[n]: v for n, v in p.items() if n in GRU_CHO_NAMES}


def test_gru_pytorch_with_diagonal_w_hn_is_gru_cho():
    """r*(W_hn h) = W_hn (r*h) when W_hn is diagonal; b_hn = 0 and, as gru_cho has no biases, all zero."""
    diagonal = np.diag(np.random.default_rng(7).uniform(-1.0, 1.0, SIZES["H"]))
    p = gru_pytorch_params(diagonal)
    weights = {n: m for n, m in GRU_CHO_NAMES.items() if n != "W_hn"}
    grads_pytorch, grads_cho = check_equal(
        "gru_pytorch", p, "gru_cho", gru_cho_params(p), grads=renamed(weights), partial=True
    )
    # Only W_hn's diagonal is shared: off it, r*(W_hn h) and U_h (r*h) have different gradients.
    np.testing.assert_allclose(np.diag(grads_pytorch.params["W_hn"]), np.diag(grads_cho.params["U_h"]), **CLOSE)


# -- 5. the non-identity ------------------------------------------------------------------------


def test_gru_pytorch_differs_from_gru_cho_for_a_full_w_hn():
    """Reset after the product is not reset before it: guards against shipping the wrong GRU."""
    p = gru_pytorch_params(params_of("gru_pytorch", seed=3)["W_hn"])
    x = np.random.default_rng(5).standard_normal((STEPS, BATCH, SIZES["D"]))
    h0 = np.random.default_rng(6).uniform(-0.8, 0.8, (BATCH, SIZES["H"]))
    pytorch = kernel("gru_pytorch").forward(x, p, {"h": h0}).states["h"]
    cho = kernel("gru_cho").forward(x, gru_cho_params(p), {"h": h0}).states["h"]
    assert np.max(np.abs(pytorch - cho)) > 1e-3
