"""Matrix-valued states through the PyTorch layer: a state ``S: K x V`` is a (B, K, V) tensor.

The module's values are the NumPy kernel's exactly (the same kernels); its gradients are checked
by PyTorch's own finite differences (``torch.autograd.gradcheck``, float64, its default
tolerances: atol 1e-5, rtol 1e-3) with respect to the input, the initial matrix state and every
parameter; ``torch.compile(fullgraph=True)`` gives the eager outputs and gradients exactly; a
matrix state of the wrong shape is refused by name. With ``recompute=True`` (which keeps a matrix
state at segment ends only), eager and compiled, with and without lengths, the outputs and final
states are the taped module's exactly and the gradients equal to 1e-12 relative (the segments sum
the parameter gradients in another order).
"""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg
from symgate.frontend.functions import dims_of

torch = pytest.importorskip("torch")

from symgate.frameworks.torch_ops import kernel_key  # noqa: E402

SIZES = {"D": 3, "K": 4, "V": 2}
T, B = 4, 2


def _module(name: str) -> sg.torch.CellModule:
    return sg.torch.CellModule(name, SIZES, dtype=torch.float64, seed=0)


def test_the_module_gives_the_kernels_values_and_a_matrix_state_as_a_batch_of_matrices():
    module = _module("deltanet")
    rng = np.random.default_rng(0)
    x, start = rng.standard_normal((T, B, SIZES["D"])), rng.standard_normal((B, SIZES["K"], SIZES["V"]))
    y, (final,) = module(torch.tensor(x), torch.tensor(start))
    params = {name: p.detach().numpy() for name, p in module.named_parameters()}
    run = sg.build("deltanet", "float64").forward(x, params, {"S": start})
    assert final.shape == (B, SIZES["K"], SIZES["V"])
    np.testing.assert_array_equal(y.detach().numpy(), run.outputs["y"])
    np.testing.assert_array_equal(final.detach().numpy(), run.final["S"])


@pytest.mark.parametrize("name", ["deltanet", "xlstm_mlstm"])
def test_gradients_pass_pytorchs_own_check(name):
    module = _module(name)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, SIZES["D"], dtype=torch.float64, generator=generator, requires_grad=True)
    extents = {**SIZES, "1": 1}
    starts = {
        s: (0.5 * torch.randn(B, *(extents[d] for d in dims_of(size)), generator=generator)).double().requires_grad_()
        for s, size in module.cell.states.items()
    }
    params = list(module.parameters())

    def outputs(x, *tensors):
        init = dict(zip(starts, tensors[: len(starts)], strict=True))
        values = dict(zip([n for n, _ in module.named_parameters()], tensors[len(starts) :], strict=True))
        result, final = torch.func.functional_call(module, values, (x, init))
        return result, *final

    assert torch.autograd.gradcheck(outputs, (x, *starts.values(), *params))


def test_torch_compile_gives_the_eager_outputs_and_gradients():
    module = _module("xlstm_mlstm")
    x = torch.randn(T, B, SIZES["D"], dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(module, fullgraph=True)
    eager, traced = module(x)[0], compiled(x)[0]
    assert torch.equal(eager, traced)
    tensors = [x, *module.parameters()]
    for a, b in zip(torch.autograd.grad(eager.sum(), tensors), torch.autograd.grad(traced.sum(), tensors), strict=True):
        assert torch.equal(a, b)


def test_a_matrix_state_of_the_wrong_shape_is_refused_by_name():
    module = _module("gla")
    x = torch.zeros(T, B, SIZES["D"], dtype=torch.float64)
    with pytest.raises(sg.ArrayError, match=r"init\['S'\] has shape \(2, 4\), expected \(B, K, V\) = \(2, 4, 2\)"):
        module(x, torch.zeros(B, SIZES["K"], dtype=torch.float64))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("lengths", [None, [9, 4, 0]], ids=["full", "lengths"])
def test_a_recomputing_module_gives_the_taped_values_and_gradients(lengths, compiled):
    steps, batch = 9, 3  # segments of 3 steps: two matrix states kept at segment ends
    taped = sg.torch.CellModule("xlstm_mlstm", SIZES, dtype=torch.float64, seed=0)
    recomputing = sg.torch.CellModule("xlstm_mlstm", SIZES, dtype=torch.float64, seed=0, recompute=True)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(steps, batch, SIZES["D"], dtype=torch.float64, generator=generator, requires_grad=True)
    matrix = (batch, SIZES["K"], SIZES["V"])
    start_c = (0.5 * torch.randn(*matrix, generator=generator, dtype=torch.float64)).requires_grad_()
    weights = [torch.randn(steps, batch, SIZES["V"], generator=generator, dtype=torch.float64)]
    weights.append(torch.randn(*matrix, generator=generator, dtype=torch.float64))

    def loss_and_gradients(module):
        run = torch.compile(module, fullgraph=True) if compiled else module
        h, (c, n, m) = run(x, {"C": start_c}, None if lengths is None else torch.tensor(lengths))
        loss = (h * weights[0]).sum() + (c * weights[1]).sum() + n.sum() + m.sum()
        return (h, c, n, m), torch.autograd.grad(loss, [x, start_c, *module.parameters()])

    want, want_grads = loss_and_gradients(taped)
    got, got_grads = loss_and_gradients(recomputing)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12 * float(b.abs().max()))
    assert "C" not in recomputing.sequences(x, {"C": start_c}).states


def test_a_recomputing_module_refuses_a_matrix_state_as_its_output():
    refused = "output='S' is a matrix state of cell deltanet, which recompute=True keeps"
    with pytest.raises(sg.ArrayError, match=refused):
        sg.torch.CellModule("deltanet", SIZES, output="S", recompute=True)


def test_opcheck_passes_for_a_recomputing_matrix_state():
    """The operators' fake shapes (a matrix state's final value, its checkpoints) are the real ones."""
    forward, backward = torch.ops.symgate.cell_forward.default, torch.ops.symgate.cell_backward.default
    module = _module("deltanet")
    key = kernel_key(module.kernel())
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(10, B, SIZES["D"], dtype=torch.float64, generator=generator, requires_grad=True)
    init = [torch.randn(B, SIZES["K"], SIZES["V"], dtype=torch.float64, generator=generator, requires_grad=True)]
    params = [module.param(p.name) for p in module.cell.params]
    for lengths in (None, torch.tensor([10, 3])):
        torch.library.opcheck(forward, (key, [x], init, params, True, True, lengths))
        given = [[t.detach() for t in group] for group in ([x], init, params)]
        saved = [t.detach() for t in forward(key, *given, True, True, lengths)]
        # the final S, y, and S at 2 segment ends (segments of 4, 4 and 2 steps)
        assert [tuple(t.shape) for t in saved] == [(B, 4, 2), (10, B, 2), (2, B, 4, 2)]
        grads = [torch.randn_like(t) for t in saved[:2]]
        torch.library.opcheck(backward, (key, *given, saved, grads, True, lengths))


def test_a_stacked_bidirectional_layer_carries_matrix_states():
    """sg.torch.RNN of a matrix-state cell: hx and the final states are (num_layers·D, B, K, V);
    layer 0's forward direction ends where its cell module run alone ends; gradients pass
    PyTorch's check."""
    sizes = {"K": SIZES["K"]}
    rnn = sg.torch.RNN(
        "deltanet", SIZES["D"], SIZES["V"], num_layers=2, bidirectional=True, sizes=sizes, dtype=torch.float64, seed=0
    )
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(T, B, SIZES["D"], dtype=torch.float64, generator=generator, requires_grad=True)
    hx = (0.5 * torch.randn(4, B, SIZES["K"], SIZES["V"], dtype=torch.float64, generator=generator)).requires_grad_()
    out, final = rnn(x, hx)
    assert out.shape == (T, B, 2 * SIZES["V"]) and final.shape == (4, B, SIZES["K"], SIZES["V"])
    _, (alone,) = rnn.cell_modules[0](x, hx[0])
    assert torch.equal(final[0], alone)
    assert torch.autograd.gradcheck(lambda x, hx: rnn(x, hx), (x, hx))
    with pytest.raises(sg.ArrayError, match=r"expected \(num_layers·D, B, K, V\) = \(4, 2, 4, 2\)"):
        rnn(x, torch.zeros(4, B, SIZES["K"], dtype=torch.float64))
