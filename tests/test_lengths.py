"""Sequences of different lengths in one batch (``Kernel.forward(..., lengths=...)``).

The reference for a batch with lengths is each sample run alone over its own steps by the same
kernel (whose gradients the gradient-check tests prove against finite differences), with the
gradients given past a sample's length added to its final state's (a state holds its value
there). Agreement is to 1e-12 in float64 (the two sum the same terms in another order) and
1e-5 in float32.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgate as sg

CELLS = ["lstm", "gru_cho", "qrnn_ifo", "intersection_rnn"]  # gated, one state, outputs, several states
STEPS, BATCH = 6, 5


def _problem(kernel: sg.Kernel, steps: int, batch: int, seed: int = 0):
    cell = kernel.cell
    sizes = {d: 3 + i for i, d in enumerate(cell.dims)}
    rng = np.random.default_rng(seed)
    dtype = np.dtype(kernel.dtype)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    params = kernel.init_params(sizes, seed=seed)
    x = {name: draw(steps, batch, sizes[d]) for name, d in cell.inputs.items()}
    init = {s: draw(batch, sizes[d]) for s, d in cell.states.items()}
    grads = {n: draw(steps, batch, sizes[d]) for n, d in [*cell.states.items(), *cell.outputs.items()]}
    final = {s: draw(batch, sizes[d]) for s, d in cell.states.items()}
    return params, x, init, grads, final


def _alone(kernel, params, x, init, grads, final, lengths):
    """Each sample run alone over its own steps: (states, outputs, final, gradients) in the padded
    layout, with the parameter gradients summed over the samples."""
    cell = kernel.cell
    steps, batch = next(iter(x.values())).shape[:2]
    states = {s: np.zeros((steps, batch, a.shape[1])) for s, a in init.items()}
    outputs = {y: np.zeros((steps, batch, grads[y].shape[2])) for y in cell.outputs}
    last = {s: np.zeros_like(a) for s, a in init.items()}
    dx = {n: np.zeros(a.shape) for n, a in x.items()}
    dinit = {s: np.zeros(a.shape) for s, a in init.items()}
    dparams = {p: np.zeros(a.shape) for p, a in params.items()}
    for b, n in enumerate(lengths):
        run = kernel.forward(
            {k: a[:n, b : b + 1].copy() for k, a in x.items()},
            params,
            {s: a[b : b + 1].copy() for s, a in init.items()},
        )
        for s in cell.states:
            states[s][:n, b] = run.states[s][:, 0]
            states[s][n:, b] = run.final[s][0]
            last[s][b] = run.final[s][0]
        for y in cell.outputs:
            outputs[y][:n, b] = run.outputs[y][:, 0]
        given = {k: a[:n, b : b + 1].copy() for k, a in grads.items()}
        held = {s: (final[s][b] + grads[s][n:, b].sum(axis=0))[None].astype(final[s].dtype) for s in cell.states}
        back = kernel.backward(run, given, final=held)
        for k in x:
            dx[k][:n, b] = back.inputs[k][:, 0]
        for s in cell.states:
            dinit[s][b] = back.init[s][0]
        for p in params:
            dparams[p] += back.params[p]
    return states, outputs, last, dx, dinit, dparams


def _close(actual: dict, expected: dict, tol: float, what: str) -> None:
    for name, a in expected.items():
        np.testing.assert_allclose(actual[name], a, rtol=tol, atol=tol, err_msg=f"{what} {name}")


def _check(kernel, lengths, recompute=False, seed=0, steps=STEPS):
    tol = 1e-12 if kernel.dtype == "float64" else 2e-5
    params, x, init, grads, final = _problem(kernel, steps, len(lengths), seed)
    run = kernel.forward(x, params, init, lengths=lengths, recompute=recompute)
    back = kernel.backward(run, grads, final=final)
    states, outputs, last, dx, dinit, dparams = _alone(kernel, params, x, init, grads, final, lengths)
    _close(run.states, states, tol, "state")
    _close(run.outputs, outputs, tol, "output")
    _close(run.final, last, tol, "final state")
    _close(back.inputs, dx, tol, "input gradient")
    _close(back.init, dinit, tol, "initial state gradient")
    _close(back.params, dparams, tol * 10, "parameter gradient")
    assert run.sizes["T"] == steps and list(run.lengths) == list(lengths)


@pytest.mark.parametrize("name", CELLS)
def test_each_sample_runs_its_own_length_as_if_alone(name):
    _check(sg.build(name), [3, 6, 0, 5, 3])


@pytest.mark.parametrize("name", ["lstm", "qrnn_ifo"])
def test_recomputing_runs_and_float32_agree_too(name):
    _check(sg.build(name), [2, 6, 1, 6, 4], recompute=True)
    _check(sg.build(name, "float32"), [2, 6, 1, 6, 4])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=6), st.booleans(), st.integers(0, 2**16))
def test_any_lengths(lengths, recompute, seed):
    _check(sg.build("gru_cho"), lengths, recompute=recompute, seed=seed, steps=7)


def test_the_kernel_never_reads_the_padding():
    """NaN past every length changes nothing: the steps after a sample's length are not run for it."""
    kernel = sg.build("lstm")
    params, x, init, grads, final = _problem(kernel, STEPS, BATCH)
    lengths = np.array([2, 6, 0, 4, 1])
    past = np.arange(STEPS)[:, None] >= lengths[None, :]
    clean = kernel.forward(x, params, init, lengths=lengths)
    poisoned_x = {k: np.where(past[..., None], np.nan, a) for k, a in x.items()}
    poisoned_grads = {
        k: np.where(past[..., None], np.nan, a) if k not in kernel.cell.states else a for k, a in grads.items()
    }
    run = kernel.forward(poisoned_x, params, init, lengths=lengths)
    for s in kernel.cell.states:
        np.testing.assert_array_equal(run.states[s], clean.states[s])
    back = kernel.backward(run, poisoned_grads, final=final)
    assert all(np.isfinite(g).all() for part in (back.params, back.init) for g in part.values())
    assert np.all(back.inputs["x"][past] == 0)


def test_inference_and_zero_lengths():
    kernel = sg.build("gru_cho")
    params, x, init, _, _ = _problem(kernel, STEPS, 3)
    run = kernel.forward(x, params, init, lengths=[0, 0, 0], backward=False)
    np.testing.assert_array_equal(run.final["h"], init["h"])
    np.testing.assert_array_equal(run.states["h"], np.broadcast_to(init["h"], run.states["h"].shape))
    taped = kernel.forward(x, params, init, lengths=[4, 1, 6])
    inferred = kernel.forward(x, params, init, lengths=[4, 1, 6], backward=False)
    np.testing.assert_array_equal(inferred.states["h"], taped.states["h"])


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([3, 4], r"lengths has shape \(2,\), expected \(5,\)"),
        ([3, 4, 7, 1, 1], r"lengths\[2\] = 7 is not within 0 \.\. T = 6"),
        ([3, -1, 2, 1, 1], r"lengths\[1\] = -1"),
        ([1.5, 2, 2, 2, 2], "lengths must be integers"),
        ([True] * 5, "lengths must be integers"),
        ("abcde", "lengths must be integers"),
    ],
)
def test_bad_lengths_are_named(lengths, message):
    kernel = sg.build("elman_rnn")
    params, x, init, _, _ = _problem(kernel, STEPS, BATCH)
    with pytest.raises(sg.ArrayError, match=message):
        kernel.forward(x, params, init, lengths=lengths)


def test_gradients_given_for_every_padded_step_are_checked_against_the_padded_shape():
    kernel = sg.build("elman_rnn")
    params, x, init, grads, _ = _problem(kernel, STEPS, BATCH)
    run = kernel.forward(x, params, init, lengths=[1, 2, 3, 2, 1])
    with pytest.raises(sg.ArrayError, match=r"grads\['h'\]"):
        kernel.backward(run, {"h": grads["h"][:3]})
