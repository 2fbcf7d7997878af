"""Gradient flow measured with the compiled kernels: exact step Jacobians, their products, the claim."""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg
from symgate.frontend.functions import dims_of
from symgate.inspect.flow import flow_csv, flow_table, gradients_to_last, measure_flow, step_jacobians

SIZES = {"D": 3, "H": 4, "K": 3, "V": 4, "1": 1}


def sequence(name: str, steps: int = 6):
    """A cell's kernel and a forward run from a random initial state."""
    cell = sg.cells.get(name)
    kernel = sg.build(cell)
    rng = np.random.default_rng(5)
    params = kernel.init_params(SIZES, seed=3)
    x = rng.standard_normal((steps, 2, SIZES["D"]))
    init = {s: rng.uniform(-0.5, 0.5, (2, *extent(d))) for s, d in cell.states.items()}
    return cell, kernel, kernel.forward(x, params, init)


def extent(size: str) -> tuple[int, ...]:
    return tuple(SIZES[d] for d in dims_of(size))


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "lstm_peephole", "deltanet", "fast_weights", "xlstm_mlstm"])
def test_kernel_step_jacobians_equal_the_symbolic_blocks(name):
    """Two independent roads: the backward C kernel, and the symbolic blocks evaluated by NumPy (a
    matrix state's K·V units row after row in both)."""
    cell, kernel, run = sequence(name)
    jacobians = step_jacobians(kernel, run)
    widths = {s: int(np.prod(extent(d))) for s, d in cell.states.items()}
    offsets = dict(zip(cell.states, np.cumsum([0, *widths.values()]), strict=False))
    for t in range(run.sizes["T"]):
        state = {s: (run.init[s] if t == 0 else run.states[s][t - 1]) for s in cell.states}
        for block in sg.derive(cell).jacobians():
            new, old = block.new.removesuffix("'"), block.old
            rows = slice(offsets[new], offsets[new] + widths[new])
            cols = slice(offsets[old], offsets[old] + widths[old])
            expected = block.evaluate(run.params, state, {"x": run.inputs["x"][t]})
            np.testing.assert_allclose(jacobians[t][:, rows, cols], expected, rtol=1e-12, atol=1e-14)


def test_chained_jacobians_equal_a_backward_pass_over_the_remaining_steps():
    """uᵀ ∂s_T/∂s_{T-k} from the chain rule equals the backward kernel run over the last k steps."""
    cell, kernel, run = sequence("lstm", steps=7)
    chained = gradients_to_last(step_jacobians(kernel, run))
    u = np.random.default_rng(1).standard_normal((2, 8))
    steps = run.sizes["T"]
    np.testing.assert_array_equal(chained[0], np.broadcast_to(np.eye(8), (2, 8, 8)))
    for k in (1, 3, steps):
        t = steps - k
        init = {s: np.ascontiguousarray(run.init[s] if t == 0 else run.states[s][t - 1]) for s in cell.states}
        rest = kernel.forward(np.ascontiguousarray(run.inputs["x"][t:]), run.params, init)
        grads = kernel.backward(rest, {"final": {"h": u[:, :4].copy(), "c": u[:, 4:].copy()}})
        direct = np.concatenate([grads.init["h"], grads.init["c"]], axis=1)
        np.testing.assert_allclose(np.einsum("bi,bij->bj", u, chained[k]), direct, rtol=1e-10, atol=1e-15)


def test_the_simple_rnn_gradient_vanishes_orders_of_magnitude_faster_than_lstm_and_gru():
    flows = {name: measure_flow(sg.cells.get(name), steps=100, samples=2) for name in ("elman_rnn", "lstm", "gru_cho")}
    for flow in flows.values():
        assert flow.norms.shape == (101, 2) and flow.typical[0] == pytest.approx(1.0)
    elman, lstm, gru = (flows[n].typical[100] for n in ("elman_rnn", "lstm", "gru_cho"))
    assert elman < 1e-8 * lstm and elman < 1e-8 * gru
    assert flows["elman_rnn"].per_step_factor() < flows["lstm"].per_step_factor() - 0.1


def test_a_larger_forget_gate_bias_lets_the_lstm_gradient_reach_further():
    cell = sg.cells.get("lstm")
    default = measure_flow(cell, steps=40, samples=2)
    biased = measure_flow(cell, steps=40, samples=2, forget_bias=3.0)
    assert biased.forget_bias == {"b_f": 3.0} and default.forget_bias == {}
    assert biased.typical[40] > 1e6 * default.typical[40]
    assert "forget-gate bias b_f = 3" in biased.settings() and "as drawn" in default.settings()


def test_scale_and_seed_are_honoured():
    cell = sg.cells.get("elman_rnn")
    first, again = (measure_flow(cell, steps=20, samples=2, seed=4) for _ in range(2))
    np.testing.assert_array_equal(first.norms, again.norms)
    assert not np.array_equal(measure_flow(cell, steps=20, samples=2, seed=5).norms, first.norms)
    small = measure_flow(cell, steps=20, samples=2, seed=4, scale=0.5)
    assert small.typical[20] < first.typical[20] and small.scale == 0.5


def test_table_and_csv_report_every_cell():
    flows = [measure_flow(sg.cells.get(n), steps=12, samples=2, sizes={"H": 8}) for n in ("elman_rnn", "gru_cho")]
    table = flow_table(flows).splitlines()
    assert table[1].split() == ["distance", "k", "elman_rnn", "gru_cho"]
    assert [line.split()[0] for line in table[2:7]] == ["1", "2", "5", "10", "12"]
    assert "elman_rnn: D=32 H=8, scale 1, forget-gate bias as drawn, seed 0" in table[-2]
    rows = flow_csv(flows).splitlines()
    assert rows[0] == "cell,distance,geometric_mean,min,max" and len(rows) == 1 + 2 * 13
    assert rows[13].startswith("elman_rnn,12,") and rows[14].startswith("gru_cho,0,1.000000e+00")


def test_bad_requests_name_the_cell():
    short, long = (measure_flow(sg.cells.get("elman_rnn"), steps=n, samples=1, sizes={"H": 4}) for n in (2, 3))
    with pytest.raises(sg.SymgateError, match="different numbers of steps"):
        flow_table([short, long])
    with pytest.raises(sg.SymgateError, match="no gradient flows"):
        flow_table([])
    with pytest.raises(sg.SymgateError, match="gradient flow of lstm needs steps >= 1"):
        measure_flow(sg.cells.get("lstm"), steps=0)
    with pytest.raises(sg.SymgateError, match="cell elman_rnn has no forget gate"):
        measure_flow(sg.cells.get("elman_rnn"), steps=3, forget_bias=1.0)
