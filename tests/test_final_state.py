"""A state named ``final`` (issue 19, point 5): gradients with respect to the final states have a
keyword of their own, ``Kernel.backward(run, grads, final={...})``, so they no longer share the
``grads`` namespace with the states and outputs; the older ``grads["final"]`` still works where
no state or output has that name, and is an error that says which spelling to use where one does.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LSTM

import symgate as sg
from symgate.cli import main

FINAL = """\
cell named_final
input x: D
state final: H
final' = tanh(W @ x + U @ final + b)
output y = 2*final'
"""
SIZES = {"D": 2, "H": 3}
STEPS, BATCH = 4, 2


@pytest.fixture(scope="module")
def kernel() -> sg.Kernel:
    return sg.build(sg.parse(FINAL))


def _data(kernel: sg.Kernel, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((STEPS, BATCH, SIZES["D"])), kernel.init_params(SIZES, seed=seed)


def test_a_state_named_final_takes_its_own_gradients_and_final_ones(kernel):
    rng, x, params = _data(kernel)
    run = kernel.forward(x, params)
    per_step = rng.standard_normal((STEPS, BATCH, 3))
    last = rng.standard_normal((BATCH, 3))
    both = kernel.backward(run, {"final": per_step}, final={"final": last})
    # The final state is the last step's: its gradient is that step's, added to the per-step one.
    folded = per_step.copy()
    folded[-1] += last
    alone = kernel.backward(run, {"final": folded})
    for name in both.params:
        np.testing.assert_allclose(both.params[name], alone.params[name], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(both.init["final"], alone.init["final"], rtol=1e-13, atol=1e-15)
    only_final = kernel.backward(run, final={"final": last})
    assert np.abs(only_final.params["W"]).sum() > 0


def test_the_old_spelling_is_refused_where_it_is_ambiguous_naming_the_new_one(kernel):
    _, x, params = _data(kernel)
    run = kernel.forward(x, params)
    with pytest.raises(sg.ArrayError, match=r"state 'final' of cell named_final.*final=\{\.\.\.\}"):
        kernel.backward(run, {"final": {"final": np.zeros((BATCH, 3))}})


def test_recomputing_runs_take_final_gradients_too(kernel):
    rng, x, params = _data(kernel, seed=1)
    last = {"final": rng.standard_normal((BATCH, 3))}
    taped = kernel.backward(kernel.forward(x, params), final=last)
    recomputed = kernel.backward(kernel.forward(x, params, recompute=True), final=last)
    for name in taped.params:
        np.testing.assert_allclose(recomputed.params[name], taped.params[name], rtol=1e-13, atol=1e-15)


def test_gradcheck_passes_for_a_state_named_final(kernel):
    assert sg.gradcheck(kernel.cell, sizes=SIZES, steps=3, batch=2, seed=0).ok


def test_symgate_check_accepts_a_state_named_final(kernel, tmp_path, capsys):
    path = tmp_path / "named_final.cell"
    path.write_text(FINAL)
    assert main(["check", str(path), "--sizes", "D=2,H=3"]) == 0
    assert "ok" in capsys.readouterr().out


def test_the_torch_module_trains_a_cell_with_a_state_named_final(kernel):
    torch = pytest.importorskip("torch")
    from symgate.torch import CellModule

    module = CellModule(kernel.cell, SIZES, dtype=torch.float64, seed=0)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    x = torch.randn(STEPS, BATCH, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out, (final,) = module(x)
    loss = out.square().sum() + final.sum()
    loss.backward()
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    assert all(not torch.equal(p, before[n]) for n, p in module.named_parameters())
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_both_spellings_agree_where_the_old_one_is_unambiguous():
    lstm = sg.build(sg.parse(LSTM))
    rng = np.random.default_rng(2)
    params = lstm.init_params({"D": 3, "H": 4}, seed=2)
    run = lstm.forward(rng.standard_normal((STEPS, BATCH, 3)), params)
    last = {"c": rng.standard_normal((BATCH, 4))}
    per_step = {"h": rng.standard_normal((STEPS, BATCH, 4))}
    new = lstm.backward(run, per_step, final=last)
    old = lstm.backward(run, {**per_step, "final": last})
    for name in new.params:
        np.testing.assert_array_equal(new.params[name], old.params[name])
    np.testing.assert_array_equal(new.init["c"], old.init["c"])
    with pytest.raises(sg.ArrayError, match="given twice"):
        lstm.backward(run, {"final": last}, final=last)
    with pytest.raises(sg.ArrayError, match=r"final\['c'\] has shape \(2, 3\)"):
        lstm.backward(run, final={"c": last["c"][:, :3].copy()})
