"""``Kernel.forward(..., backward=False)``: the states and outputs of the taped forward pass, from
the kernel's inference pass, which writes no saved values; no copies of the caller's arrays; such
a run is refused by the backward pass."""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg

CELLS = ["lstm_pytorch", "gru_cho", "mgu", "lstm_peephole", "elman_rnn", "intersection_rnn"]
STEPS, BATCH = 23, 3


def case(kernel, seed=0):
    rng = np.random.default_rng(seed)
    sizes = {d: 4 + i for i, d in enumerate(kernel.cell.dims)}
    x = {name: rng.standard_normal((STEPS, BATCH, sizes[dim])) for name, dim in kernel.cell.inputs.items()}
    init = {s: rng.uniform(-0.5, 0.5, (BATCH, sizes[dim])) for s, dim in kernel.cell.states.items()}
    return x, kernel.init_params(sizes, seed=seed), init


@pytest.fixture(scope="module", params=CELLS)
def kernel(request):
    return sg.build(sg.cells.get(request.param))


def test_states_and_outputs_equal_the_taped_runs_and_nothing_else_is_kept(kernel):
    x, params, init = case(kernel)
    taped = kernel.forward(x, params, init)
    run = kernel.forward(x, params, init, backward=False)
    assert run.tape == {} and not run.for_backward
    for part in ("states", "outputs"):
        got, want = getattr(run, part), getattr(taped, part)
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
            assert got[name].flags.writeable  # fresh arrays: nothing depends on them
    assert run.kept_bytes == sum(a.nbytes for a in (*run.states.values(), *run.outputs.values()))
    assert all(run.params[p] is params[p] for p in params)  # shared, not copied


def test_the_inference_pass_is_planned_without_a_tape(kernel):
    """A cell that saves values for its backward pass gets a second forward pass that writes none
    (and so needs no memory for them at any T); one that saves nothing runs its forward pass."""
    interface = kernel.interface
    assert all(a.role != "tape" for a in interface.infer.arguments)
    tape = [a.c_name for a in interface.forward.arguments if a.role == "tape"]
    if not tape:
        assert interface.infer == interface.forward
        return
    assert interface.infer.function != interface.forward.function

    def definition(function: str) -> str:  # after the declarations at the top of the file
        text = kernel.source[kernel.source.rindex(f"void {function}(") :]
        return text[: text.index("\n}\n")]

    assert all(c in definition(interface.forward.function) for c in tape)
    assert not [c for c in tape if c in definition(interface.infer.function)]


def test_the_backward_pass_refuses_such_a_run(kernel):
    x, params, init = case(kernel)
    run = kernel.forward(x, params, init, backward=False)
    with pytest.raises(sg.ArrayError, match=r"forward\(\.\.\., backward=False\)"):
        kernel.backward(run, {})


def test_zero_steps_and_bad_arrays_behave_as_in_the_taped_pass(kernel):
    x, params, init = case(kernel)
    empty = {name: a[:0] for name, a in x.items()}
    run = kernel.forward(empty, params, init, backward=False)
    for s in kernel.cell.states:
        np.testing.assert_array_equal(run.final[s], init[s])
    wrong = dict(params)
    name = next(iter(wrong))
    wrong[name] = wrong[name].astype(np.float32)
    with pytest.raises(sg.ArrayError, match=rf"params\['{name}'\] has dtype float32"):
        kernel.forward(x, wrong, init, backward=False)


def test_torch_modules_keep_no_saved_values_without_grad(monkeypatch):
    torch = pytest.importorskip("torch")
    from symgate.torch import CellModule

    module = CellModule("lstm_pytorch", {"D": 3, "H": 5}, dtype=torch.float64, seed=0)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    kernel = module.kernel(torch.float64)
    seen = []
    forward = kernel.forward
    monkeypatch.setattr(kernel, "forward", lambda *a, **kw: seen.append(kw["backward"]) or forward(*a, **kw))
    with torch.no_grad():
        out_no_grad, _ = module(x)
    out, _ = module(x)
    out.sum().backward()
    for p in module.parameters():
        p.requires_grad_(False)
    module(x)
    assert seen == [False, True, False]
    torch.testing.assert_close(out_no_grad, out.detach(), rtol=0, atol=0)
