"""``symgate.torch`` under ``torch.compile`` and ``torch.export``: the kernels as custom operators.

A model of a ``CellModule`` and an ``nn.Linear`` head compiled with ``fullgraph=True`` gives the
eager outputs and gradients (for every parameter, the input and a given initial state), for the
LSTM in float64 over two sequence lengths (the second compiles with a symbolic T) and the GRU in
float32 with recomputation and ``batch_first``, and under ``no_grad``. ``torch.library.opcheck`` passes for both
operators; ``torch.export`` gives a program that runs the kernels. Sizes are small: compiling is
what costs here.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg

torch = pytest.importorskip("torch")
from symgate.frameworks.torch_ops import kernel_key  # noqa: E402
from symgate.torch import from_cell  # noqa: E402

F64, F32 = torch.float64, torch.float32


class Model(torch.nn.Module):
    """A symgate layer and a linear head: a loss of its output sequence and its last final state."""

    def __init__(self, cell: str, **options) -> None:
        super().__init__()
        self.rnn = from_cell(cell, {"D": 3, "H": 4}, dtype=F64, seed=0, **options)
        self.head = torch.nn.Linear(4, 2, dtype=F64)

    def forward(self, x, h0):
        out, final = self.rnn(x, {"h": h0})
        return self.head(out), final[-1]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # each test's compiles, not earlier tests' cached ones
    yield
    torch._dynamo.reset()


def randn(*shape: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()


def outputs_and_gradients(model: torch.nn.Module, x: torch.Tensor, h0: torch.Tensor) -> list[torch.Tensor]:
    out, last = model(x, h0)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum() + last.square().sum()
    return [out, last, *torch.autograd.grad(loss, [x, h0, *model.parameters()])]


@pytest.mark.parametrize(
    ("cell", "dtype", "options", "tolerance", "lengths"),
    [
        ("lstm", F64, {}, 1e-12, (5, 7)),  # the second length compiles again, with a symbolic T
        ("gru_cho", F32, {"recompute": True, "batch_first": True}, 1e-5, (5,)),
    ],
)
def test_compiled_model_gives_the_eager_outputs_and_gradients(cell, dtype, options, tolerance, lengths):
    model = Model(cell, **options).to(dtype)  # a float32 kernel is built while the model compiles
    compiled = torch.compile(model, fullgraph=True)
    for steps in lengths:
        x, h0 = randn(steps, 2, 3, dtype=dtype, seed=steps), randn(2, 4, dtype=dtype, seed=1)
        if options.get("batch_first"):
            x = x.detach().transpose(0, 1).contiguous().requires_grad_()
        traced, eager = outputs_and_gradients(compiled, x, h0), outputs_and_gradients(model, x, h0)
        for a, b in zip(eager, traced, strict=True):
            torch.testing.assert_close(b, a, rtol=tolerance, atol=tolerance)
    with torch.no_grad():  # no gradient wanted: the kernels keep no saved values
        torch.testing.assert_close(compiled(x, h0)[0], model(x, h0)[0], rtol=tolerance, atol=tolerance)


def test_opcheck_passes_for_both_operators():
    forward, backward = torch.ops.symgate.cell_forward.default, torch.ops.symgate.cell_backward.default
    model = from_cell("lstm", {"D": 3, "H": 4}, dtype=F64, seed=0)
    key = kernel_key(model.kernel())
    params = [model.param(p.name) for p in model.cell.params]
    x, init = randn(4, 2, 3, dtype=F64, seed=0), [randn(2, 4, dtype=F64, seed=s) for s in (1, 2)]
    for recompute in (False, True):
        torch.library.opcheck(forward, (key, [x], init, params, recompute, True, None))
    given = [[t.detach() for t in group] for group in ([x], init, params)]
    torch.library.opcheck(forward, (key, *given, False, False, None))  # no saved values: for no_grad
    saved = [t.detach() for t in forward(key, [x], init, params, False, True, None)]
    grads = [torch.randn_like(t) for t in saved[:2]]
    torch.library.opcheck(backward, (key, *given, saved, grads, False, None))
    lengths = torch.tensor([3, 1])  # sequences of different lengths: both operators take them
    torch.library.opcheck(forward, (key, [x], init, params, False, True, lengths))
    saved = [t.detach() for t in forward(key, [x], init, params, False, True, lengths)]
    torch.library.opcheck(backward, (key, *given, saved, grads, False, lengths))


def test_a_compiled_stacked_layer_with_lengths_gives_the_eager_results():
    """sg.torch.RNN (2 layers, both directions) over a padded batch with lengths, fullgraph=True.
    (A PackedSequence cannot be made inside a compiled graph: dynamo skips pack_padded_sequence.)"""
    torch.manual_seed(0)
    rnn = sg.torch.RNN.from_torch(torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).double())

    def loss(x, lengths):
        out, (h_n, c_n) = rnn(x, lengths=lengths)
        weights = torch.linspace(-1, 1, out.numel(), dtype=F64).view_as(out)
        return (out * weights).sum() + h_n.square().sum() + c_n.sum()

    x, lengths = randn(6, 3, 3, dtype=F64, seed=0), torch.tensor([6, 2, 4])
    results = []
    for function in (loss, torch.compile(loss, fullgraph=True)):
        value = function(x, lengths)
        results.append([value, *torch.autograd.grad(value, [x, *rnn.parameters()])])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_export_gives_a_program_running_the_kernels():
    model = Model("lstm")
    x, h0 = randn(5, 2, 3, dtype=F64, seed=0), randn(2, 4, dtype=F64, seed=1)
    steps = torch.export.Dim("T")
    program = torch.export.export(model, (x, h0), dynamic_shapes={"x": {0: steps}, "h0": None})
    assert "torch.ops.symgate.cell_forward" in program.graph_module.code
    longer = randn(9, 2, 3, dtype=F64, seed=2)
    for a, b in zip(program.module()(longer, h0), model(longer, h0), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_lengths_and_unknown_kernels_are_refused():
    model = from_cell("gru_cho", {"D": 3, "H": 4}, dtype=F64, seed=0)
    key = kernel_key(model.kernel())
    params = [model.param(p.name).detach() for p in model.cell.params]
    x, h0 = torch.zeros(3, 2, 3, dtype=F64), torch.zeros(2, 4, dtype=F64)
    with pytest.raises(sg.ArrayError, match=r"lengths\[0\] = 4 is not within 0 \.\. T = 3"):
        torch.ops.symgate.cell_forward(key, [x], [h0], params, False, True, torch.tensor([4, 1]))
    with pytest.raises(sg.ArrayError, match="no symgate kernel 'nonesuch' is loaded"):
        torch.ops.symgate.cell_forward("nonesuch", [x], [h0], params, False, True, None)


def test_a_run_rebuilt_from_its_arrays_gives_the_same_gradients():
    kernel = sg.build("lstm", "float64")
    params = kernel.init_params({"D": 3, "H": 4}, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    dh = np.random.default_rng(1).standard_normal((5, 2, 4))
    run = kernel.forward(x, params, copy=False)
    rebuilt = kernel.run_of(x, params, None, run.states, run.outputs, run.tape)
    for name, expected in kernel.backward(run, {"h": dh}).params.items():
        np.testing.assert_array_equal(kernel.backward(rebuilt, {"h": dh}).params[name], expected)
    with pytest.raises(sg.ArrayError, match="the run's states 'c' is missing"):
        kernel.run_of(x, params, None, {"h": run.states["h"]}, run.outputs, run.tape)
    with pytest.raises(sg.ArrayError, match="the run's tape"):
        kernel.run_of(x, params, None, run.states, run.outputs, {})
