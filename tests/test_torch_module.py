"""``symgate.torch.CellModule``: a cell's kernels as a trainable PyTorch module.

Gradients through the module pass ``torch.autograd.gradcheck`` in float64 for every tensor that
goes in (inputs, initial states, parameters) and every tensor that comes out (the returned
sequence, the final states, every state and output sequence), for the LSTM and for a cell with two
inputs, two states of different sizes and an output. With weights from ``from_torch`` the module
equals ``nn.LSTM``. Memory is shared with the kernels, and in-place changes before the backward
pass are caught. Optimizers train it; bad arguments are refused with errors naming them.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

import symgate as sg

torch = pytest.importorskip("torch")
from symgate.torch import CellModule, from_cell  # noqa: E402  (it imports torch: after the skip)

F64 = torch.float64

MULTI = """\
cell multi
input x: D, u: E
state h: H, c: C
a = tanh(W @ x + V @ u + U @ h + b)
c' = sigmoid(P @ a)*c + Q @ h
h' = a*sigmoid(R @ c')
output y: O = Y @ h'
"""
MULTI_SIZES = {"D": 3, "E": 2, "H": 4, "C": 3, "O": 2}


def lstm(**options) -> CellModule:
    return from_cell("lstm", {"D": 3, "H": 4}, **{"dtype": F64, "seed": 0, **options})


def randn(*shape: int, dtype: torch.dtype = F64, seed: int = 0, grad: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)


class Everything(torch.nn.Module):
    """Every tensor a module's ``forward`` and ``sequences`` return, flattened, for gradcheck."""

    def __init__(self, module: CellModule) -> None:
        super().__init__()
        self.m = module

    def forward(self, x, init):
        out, final = self.m(x, init)
        seqs = self.m.sequences(x, init)
        return out, *final, *seqs.states.values(), *seqs.outputs.values(), *seqs.final.values()


def check_gradients(module: CellModule, x: dict, init: dict, **options) -> None:
    """gradcheck of everything the module returns with respect to x, init and every parameter."""
    wrapper = Everything(module)
    names = [f"m.{name}" for name, _ in module.named_parameters()]
    leaves = [p.detach().clone().requires_grad_() for p in module.parameters()]
    n_x, n_init = len(x), len(init)

    def f(*tensors):
        xs, inits, params = tensors[:n_x], tensors[n_x : n_x + n_init], tensors[n_x + n_init :]
        args = (dict(zip(x, xs, strict=True)), dict(zip(init, inits, strict=True)))
        return torch.func.functional_call(wrapper, dict(zip(names, params, strict=True)), args)

    assert torch.autograd.gradcheck(f, (*x.values(), *init.values(), *leaves), **options)


# -- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_passes_gradcheck_for_everything_in_and_out(batch_first):
    module = lstm(batch_first=batch_first)
    x = {"x": randn(2, 5, 3) if batch_first else randn(5, 2, 3)}
    init = {"h": randn(2, 4, seed=1), "c": randn(2, 4, seed=2)}
    check_gradients(module, x, init)


def test_cell_with_two_inputs_two_states_and_an_output_passes_gradcheck():
    module = from_cell(sg.parse(MULTI), MULTI_SIZES, dtype=F64, seed=3)
    assert module.output == "y"  # the first output, not a state
    x = {"x": randn(4, 2, 3), "u": randn(4, 2, 2, seed=1)}
    init = {"h": randn(2, 4, seed=2), "c": randn(2, 3, seed=3)}
    check_gradients(module, x, init)


def test_a_per_sample_scalar_output_is_a_t_b_1_sequence_and_passes_gradcheck():
    cell = sg.parse("cell s\ninput x: D\nstate h: H\nh' = tanh(W @ x + U @ h)\noutput e = sum(h'**2)\n")
    module = from_cell(cell, {"D": 3, "H": 4}, dtype=F64, seed=1)
    out, _ = module(randn(5, 2, 3))
    assert module.output == "e" and out.shape == (5, 2, 1)  # as Kernel.forward returns it
    check_gradients(module, {"x": randn(5, 2, 3)}, {"h": randn(2, 4, seed=1)})


def test_a_recomputing_module_passes_gradcheck_and_agrees_with_the_taped_one():
    module = from_cell(sg.parse(MULTI), MULTI_SIZES, dtype=F64, seed=3, recompute=True)
    assert "recompute=True" in repr(module)
    x = {"x": randn(7, 2, 3), "u": randn(7, 2, 2, seed=1)}
    init = {"h": randn(2, 4, seed=2), "c": randn(2, 3, seed=3)}
    check_gradients(module, x, init)
    taped = from_cell(sg.parse(MULTI), MULTI_SIZES, dtype=F64, seed=3)
    for m in (module, taped):
        m.zero_grad()
        out, final = m(x, init)
        (out.square().sum() + final[0].sum()).backward()
    for (name, a), (_, b) in zip(module.named_parameters(), taped.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-13, msg=name)


def test_zero_initial_states_and_no_steps():
    module = lstm()
    x = randn(4, 2, 3)
    assert torch.autograd.gradcheck(lambda x: module(x)[0], (x,))  # init left out: zeros
    h0 = randn(2, 4, seed=1)
    out, (h, c) = module(randn(0, 2, 3), {"h": h0})
    assert out.shape == (0, 2, 4) and h is h0 and torch.equal(c, torch.zeros(2, 4, dtype=F64))


def test_frozen_parameter_gets_no_gradient():
    module = lstm()
    module.W_f.requires_grad_(False)
    out, (_h, c) = module(randn(4, 2, 3, grad=False))
    (out.sum() + c.sum()).backward()
    assert module.W_f.grad is None and module.U_f.grad is not None


def test_double_backward_is_refused_by_pytorch():
    module = lstm()
    out, _ = module(randn(3, 2, 3))
    (grad,) = torch.autograd.grad(out.pow(2).sum(), module.W_f, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|differentiate"):
        grad.sum().backward()


# -- what it computes ---------------------------------------------------------------------------


def test_equals_nn_lstm_with_its_weights():
    torch.manual_seed(0)
    reference = torch.nn.LSTM(3, 5, batch_first=True).double()
    ((cell, params),) = sg.from_torch(reference)
    module = from_cell(cell, params=params, batch_first=True)
    assert module.sizes == {"D": 3, "H": 5} and module.W_ii.dtype == F64
    x, h0, c0 = randn(2, 6, 3), randn(2, 5, seed=1), randn(2, 5, seed=2)
    theirs = reference(x, (h0[None], c0[None]))
    ours = module(x, (h0, c0))
    g = randn(2, 6, 5, seed=3, grad=False)
    loss_theirs = (theirs[0] * g).sum() + theirs[1][0].sum() + 2 * theirs[1][1].sum()
    loss_ours = (ours[0] * g).sum() + ours[1][0].sum() + 2 * ours[1][1].sum()
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-12, atol=1e-12)
    d_theirs = torch.autograd.grad(loss_theirs, [x, h0, c0, reference.weight_hh_l0])
    d_ours = torch.autograd.grad(loss_ours, [x, h0, c0, *(module.param(f"W_h{g}") for g in "ifgo")])
    for a, b in zip(d_ours[:3], d_theirs[:3], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.cat(d_ours[3:]), d_theirs[3], rtol=1e-10, atol=1e-12)


def test_a_cell_params_pair_unpacks_into_a_module_equal_to_the_lstm_cell_loop():
    torch.manual_seed(0)
    reference = torch.nn.LSTMCell(3, 5)
    module = from_cell(*sg.from_torch(reference))  # float32 parameters: a float32 module
    assert module.cell.name == "lstm_pytorch" and module.W_ii.dtype == torch.float32
    x = randn(4, 2, 3, dtype=torch.float32, grad=False)
    h = c = torch.zeros(2, 5)
    steps = []
    for x_t in x:
        h, c = reference(x_t, (h, c))
        steps.append(h)
    torch.testing.assert_close(module(x)[0], torch.stack(steps), rtol=1e-5, atol=1e-6)


def test_float32_agrees_with_float64_and_dtype_follows_the_parameters():
    module = lstm()
    x = randn(6, 3, 3, grad=False)
    out64, _ = module(x)
    module.float()
    out32, _ = module(x.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-6)
    assert module.kernel().dtype == "float32" and module.kernel(F64).dtype == "float64"


def test_parameters_follow_init_params():
    module = lstm(seed=7)
    expected = module.kernel().init_params({"D": 3, "H": 4}, seed=7)
    for name, array in expected.items():
        np.testing.assert_array_equal(module.param(name).detach().numpy(), array)
    torch.manual_seed(1)
    a = from_cell("lstm", {"D": 3, "H": 4})
    torch.manual_seed(1)
    b = from_cell("lstm", {"D": 3, "H": 4})
    assert a.W_f.dtype == torch.get_default_dtype()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    bound = 1 / np.sqrt(4)
    assert all(p.abs().max() <= bound for p in a.parameters())


# -- memory -------------------------------------------------------------------------------------


def test_tensors_are_shared_with_the_kernels(monkeypatch):
    runs = []
    forward = sg.Kernel.forward

    def spy(self, *args, **kwargs):
        runs.append(forward(self, *args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(sg.Kernel, "forward", spy)
    module = lstm()
    x, h0 = randn(5, 2, 3), randn(2, 4, seed=1)
    out, (_h, c) = module(x, {"h": h0})
    (run,) = runs
    assert run.inputs["x"].ctypes.data == x.data_ptr()
    assert run.init["h"].ctypes.data == h0.data_ptr()
    assert run.params["U_o"].ctypes.data == module.U_o.data_ptr()
    assert out.data_ptr() == run.states["h"].ctypes.data
    assert c.data_ptr() == run.states["c"].ctypes.data + 4 * 2 * 4 * 8  # the last step, a view


def test_in_place_changes_before_backward_are_caught():
    module = lstm()
    x = randn(5, 2, 3)
    out, _ = module(x)
    with torch.no_grad():
        x.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    out, _ = module(randn(5, 2, 3))
    with torch.no_grad():
        out.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    out, _ = module(randn(5, 2, 3))
    with torch.no_grad():
        module.W_f.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_kernel_forward_without_copies_shares_and_leaves_arrays_writable():
    kernel = lstm().kernel()
    params = kernel.init_params({"D": 3, "H": 4})
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    shared = kernel.forward(x, params, copy=False)
    assert shared.inputs["x"] is x and shared.params["W_f"] is params["W_f"]
    assert shared.states["h"].flags.writeable and x.flags.writeable
    copied = kernel.forward(x, params)
    assert not np.shares_memory(copied.inputs["x"], x) and not copied.states["h"].flags.writeable
    np.testing.assert_array_equal(shared.states["h"], copied.states["h"])
    grads = {"h": np.ones((4, 2, 4))}
    np.testing.assert_array_equal(
        kernel.backward(shared, grads).params["U_f"], kernel.backward(copied, grads).params["U_f"]
    )


# -- training -----------------------------------------------------------------------------------


def test_sgd_step_moves_every_parameter_against_its_gradient():
    module = lstm()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    out, (_h, c) = module(randn(5, 2, 3, grad=False))
    (out.pow(2).mean() + c.sum()).backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    optimizer.step()
    for name, p in module.named_parameters():
        assert grads[name].abs().sum() > 0, name
        torch.testing.assert_close(p.detach(), before[name] - 0.1 * grads[name])


@pytest.mark.parametrize("optimizer", ["Adam", "LBFGS"])
def test_optimizers_fit_a_small_target(optimizer):
    torch.manual_seed(0)
    module = from_cell("gru_cho", {"D": 2, "H": 8}, dtype=F64)
    head = torch.nn.Linear(8, 1, dtype=F64)
    params = [*module.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=0.05) if optimizer == "Adam" else torch.optim.LBFGS(params, max_iter=5)
    x = randn(6, 16, 2, grad=False)
    y = x[..., 0].sum(0, keepdim=True).T / 3  # the mean of the first channel over time

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(head(module(x)[1][0]), y)
        loss.backward()
        return loss

    first = closure().item()
    for _ in range(30 if optimizer == "Adam" else 4):
        opt.step(closure)
    assert closure().item() < first / 4


DDP_SCRIPT = """
import copy, os, sys
import torch
import torch.distributed as dist
from symgate.torch import from_cell

dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
module = from_cell("lstm", {"D": 3, "H": 4}, dtype=torch.float64, seed=0)
reference = copy.deepcopy(module)
ddp = torch.nn.parallel.DistributedDataParallel(module)
x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
ddp(x)[0].sum().backward()
reference(x)[0].sum().backward()
for p, q in zip(module.parameters(), reference.parameters(), strict=True):
    torch.testing.assert_close(p.grad, q.grad)
print("gradients agree", flush=True)
os._exit(0)  # no teardown: torch's gloo process group can deadlock freeing its reducer (a torch bug)
"""


def test_distributed_data_parallel_wraps_it(tmp_path):
    """In a process of its own, ended without teardown: destroying DDP's reducer can deadlock in torch
    (the main thread joins a gloo worker while holding the GIL the worker waits for)."""
    done = subprocess.run(
        [sys.executable, "-c", DDP_SCRIPT, str(tmp_path / "store")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "gradients agree" in done.stdout, done.stderr


def test_state_dict_and_copies():
    module = lstm()
    other = from_cell("lstm", {"D": 3, "H": 4}, dtype=F64, seed=1)
    other.load_state_dict(module.state_dict())
    x = randn(3, 2, 3, grad=False)
    assert torch.equal(other(x)[0], module(x)[0])
    assert torch.equal(copy.deepcopy(module)(x)[0], module(x)[0])
    assert sorted(module.state_dict()) == sorted(p.name for p in module.cell.params)


def test_parameter_names_that_nn_module_uses_get_an_underscore():
    cell = sg.parse("cell clash\ninput x: D\nstate h: H\nh' = tanh(train @ x + float @ h + sizes)\n")
    module = from_cell(cell, {"D": 2, "H": 3}, dtype=F64, seed=0)
    assert sorted(dict(module.named_parameters())) == ["float_", "sizes_", "train_"]
    assert module.param("train") is module.train_ and callable(module.train) and module.output == "h"
    assert torch.autograd.gradcheck(lambda x: module(x)[0], (randn(3, 2, 2),))


# -- arguments ----------------------------------------------------------------------------------


def mixed(module: CellModule) -> CellModule:
    module.W_f = torch.nn.Parameter(module.W_f.detach().float())
    return module


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: m(np.zeros((5, 2, 3))),
            r"x must be a torch\.Tensor, not ndarray \(convert it with torch\.from_numpy",
        ),
        (lambda m: m(torch.zeros(5, 2, 4, dtype=F64)), r"x has shape \(5, 2, 4\), expected \(T, B, D\) with D=3"),
        (lambda m: m(torch.zeros(5, 3, dtype=F64)), r"x has shape \(5, 3\).*unbatched"),
        (
            lambda m: m(torch.zeros(5, 2, 3)),
            r"x has dtype torch\.float32 but the module's parameters are torch\.float64",
        ),
        (
            lambda m: m(torch.zeros(5, 2, 3, dtype=F64, device="meta")),
            r"x is on meta, but symgate's kernels run on the CPU",
        ),
        (lambda m: m(torch.zeros(5, 2, 3, dtype=F64).to_sparse()), r"x is a torch\.sparse_coo tensor"),
        (
            lambda m: m(torch.zeros(5, 2, 3, dtype=F64), torch.zeros(2, 4)),
            r"has states \['h', 'c'\]: pass init as a tuple",
        ),
        (lambda m: m(torch.zeros(5, 2, 3, dtype=F64), {"z": None}), r"init has unknown states \['z'\]"),
        (lambda m: m(torch.zeros(5, 2, 3, dtype=F64), (None,)), r"init has 1 entries but cell lstm has states"),
        (
            lambda m: m(torch.zeros(5, 2, 3, dtype=F64), {"c": torch.zeros(3, 4, dtype=F64)}),
            r"init\['c'\] has shape \(3, 4\), expected \(B, H\) = \(2, 4\)",
        ),
        (lambda m: m.half()(torch.zeros(5, 2, 3, dtype=torch.half)), r"parameters are torch\.float16.*\.float\(\)"),
        (lambda m: m.to("meta")(torch.zeros(5, 2, 3, dtype=F64)), r"parameter [A-Za-z_]+ is on meta.*module\.cpu\(\)"),
        (lambda m: mixed(m)(torch.zeros(5, 2, 3, dtype=F64)), r"the parameters mix dtypes .*'W_f': torch\.float32"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(sg.ArrayError, match=message):
        call(lstm())


def test_bad_construction_is_named():
    with pytest.raises(sg.ArrayError, match=r"missing: \['H'\]"):
        from_cell("lstm", {"D": 3})
    with pytest.raises(sg.ArrayError, match=r"sizes\['H'\] must be a positive integer"):
        from_cell("lstm", {"D": 3, "H": 0})
    with pytest.raises(sg.ArrayError, match=r"output='q' is not a state or output of cell lstm"):
        from_cell("lstm", {"D": 3, "H": 4}, output="q")
    with pytest.raises(sg.ArrayError, match=r"dtype must be torch\.float32 or torch\.float64"):
        from_cell("lstm", {"D": 3, "H": 4}, dtype=torch.float16)
    with pytest.raises(sg.ArrayError, match=r"params\['W_f'\] has shape \(4, 4\), expected \(H, D\)"):
        from_cell(
            "lstm", {"D": 3, "H": 4}, params={**lstm().kernel().init_params({"D": 3, "H": 4}), "W_f": np.zeros((4, 4))}
        )
    with pytest.raises(sg.ArrayError, match=r"x must give exactly the inputs \['x', 'u'\]"):
        from_cell(sg.parse(MULTI), MULTI_SIZES)({"x": torch.zeros(1, 1, 3)})
    with pytest.raises(sg.UnknownCellError, match="lstn"):
        from_cell("lstn", {"D": 3, "H": 4})


def test_sg_torch_is_lazy_and_says_how_to_install_torch():
    assert sg.torch.CellModule is CellModule
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import symgate as sg\n"
        "try:\n    sg.torch\nexcept sg.interop.FrameworkNotInstalledError as err:\n    print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert 'pip install "symgate[torch]"' in result.stdout
