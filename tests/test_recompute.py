"""``forward(..., recompute=True)``: a run that keeps states and outputs but no tape, whose
backward pass recomputes the saved values segment by segment. It must give the taped run's
states exactly and its gradients to rounding, for any cell and any length, in both dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg


def case(kernel, steps, batch, seed=0):
    cell = kernel.cell
    sizes = {d: 3 + i for i, d in enumerate(cell.dims)}
    dtype = np.dtype(kernel.dtype)
    rng = np.random.default_rng(seed)
    x = {n: rng.standard_normal((steps, batch, sizes[d])).astype(dtype) for n, d in cell.inputs.items()}
    init = {s: rng.uniform(-0.5, 0.5, (batch, sizes[d])).astype(dtype) for s, d in cell.states.items()}
    grads = {
        n: rng.standard_normal((steps, batch, sizes[d])).astype(dtype)
        for n, d in {**cell.states, **cell.outputs}.items()
    }
    grads["final"] = {s: rng.standard_normal((batch, sizes[d])).astype(dtype) for s, d in cell.states.items()}
    return x, kernel.init_params(sizes, seed=seed), init, grads


def compare(taped: sg.Gradients, recomputed: sg.Gradients, rtol: float, atol: float) -> None:
    for part in ("params", "inputs", "init"):
        want, got = getattr(taped, part), getattr(recomputed, part)
        assert want.keys() == got.keys()
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol, err_msg=f"{part}[{name!r}]")


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "lstmp_pytorch", "intersection_rnn", "sru", "qrnn_ifo"])
@pytest.mark.parametrize("steps", [0, 1, 2, 5, 17])
def test_a_recomputing_run_gives_the_taped_states_exactly_and_its_gradients_to_rounding(name, steps):
    kernel = sg.build(sg.cells.get(name))
    x, params, init, grads = case(kernel, steps, batch=3)
    taped = kernel.forward(x, params, init)
    recomputing = kernel.forward(x, params, init, recompute=True)
    assert recomputing.tape == {} and recomputing.segment >= 1
    for part in ("states", "outputs"):
        for n, a in getattr(taped, part).items():
            np.testing.assert_array_equal(getattr(recomputing, part)[n], a, err_msg=n)
    # float64; the segments sum the parameter gradients in another order: agreement to 1e-12
    compare(kernel.backward(taped, grads), kernel.backward(recomputing, grads), rtol=1e-12, atol=1e-13)


def test_a_cell_that_saves_nothing_runs_as_taped_when_asked_to_recompute():
    kernel = sg.build(sg.cells.get("elman_rnn"))
    x, params, init, grads = case(kernel, steps=7, batch=2)
    recomputing = kernel.forward(x, params, init, recompute=True)
    assert recomputing.tape == {} and recomputing.segment == 0  # nothing to recompute: one taped call
    compare(kernel.backward(kernel.forward(x, params, init), grads), kernel.backward(recomputing, grads), 0, 0)


def test_float32_and_a_long_sequence_with_a_short_last_segment():
    kernel = sg.build(sg.cells.get("lstm"), "float32")
    x, params, init, grads = case(kernel, steps=103, batch=2, seed=4)  # segments of 11: the last has 4 steps
    taped = kernel.forward(x, params, init)
    recomputing = kernel.forward(x, params, init, recompute=True)
    assert recomputing.segment == 11
    compare(kernel.backward(taped, grads), kernel.backward(recomputing, grads), rtol=1e-4, atol=1e-5)


def test_a_recomputing_run_keeps_no_tape_and_fewer_bytes():
    kernel = sg.build(sg.cells.get("lstm"))
    x, params, init, _ = case(kernel, steps=100, batch=4)
    taped, recomputing = kernel.forward(x, params, init), kernel.forward(x, params, init, recompute=True)
    per_step = {"taped": taped.kept_bytes / 100, "recomputing": recomputing.kept_bytes / 100}
    assert per_step["recomputing"] == 2 * 4 * 4 * 8  # h and c: B = 4 rows of H = 4 doubles
    assert per_step["taped"] > 2 * per_step["recomputing"]


def test_the_callers_arrays_changed_after_forward_do_not_change_the_recomputed_gradients():
    kernel = sg.build(sg.cells.get("gru_cho"))
    x, params, init, grads = case(kernel, steps=9, batch=2)
    want = kernel.backward(kernel.forward(x, params, init), grads)
    run = kernel.forward(x, params, init, recompute=True)
    for a in [*x.values(), *params.values(), *init.values()]:
        a[...] = 7.0
    compare(want, kernel.backward(run, grads), rtol=1e-12, atol=1e-13)
    compare(want, kernel.backward(run, grads), rtol=1e-12, atol=1e-13)  # and again: the run is unchanged
