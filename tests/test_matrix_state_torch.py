"""Matrix-valued states through the PyTorch layer: a state ``S: K x V`` is a (B, K, V) tensor.

The module's values are the NumPy kernel's exactly (the same kernels); its gradients are checked
by PyTorch's own finite differences (``torch.autograd.gradcheck``, float64, its default
tolerances: atol 1e-5, rtol 1e-3) with respect to the input, the initial matrix state and every
parameter; ``torch.compile(fullgraph=True)`` gives the eager outputs and gradients exactly; a
matrix state of the wrong shape is refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg
from symgate.frontend.functions import dims_of

torch = pytest.importorskip("torch")

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
