"""``symgate.torch.RNN``: layers and directions of a cell, called as ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` are.

With weights from ``RNN.from_torch``, the layer equals PyTorch's modules in float64 (output,
every final state, and the gradients of the input, the initial states and every parameter,
mapped back onto the torch module's fused tensors with ``symgate.to_torch``) for 1 and 3 layers,
both directions, ``batch_first``, with and without ``hx``, ``bias=False`` and ``proj_size``.
Dropout acts between layers in training mode only; a custom cell stacked two layers deep and
bidirectional trains; bad arguments are refused with errors naming them.
"""

from __future__ import annotations

import threading

import pytest

import symgate as sg
from symgate.runtime import together

torch = pytest.importorskip("torch")
from symgate.torch import RNN  # noqa: E402  (it imports torch: after the skip)

F64 = torch.float64
T, B, IN, H = 5, 3, 3, 4
TOL = 1e-10


def randn(*shape: int, seed: int, grad: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64).requires_grad_(grad)


def torch_module(kind: str, layers: int, bidirectional: bool, batch_first: bool, **options) -> torch.nn.Module:
    torch.manual_seed(layers + 2 * bidirectional)
    if kind.startswith("RNN_"):
        options["nonlinearity"] = kind[4:]
        kind = "RNN"
    module = getattr(torch.nn, kind)(
        IN, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, **options
    )
    return module.double()


def states_of(final) -> tuple:
    return final if isinstance(final, tuple) else (final,)


def run(module: torch.nn.Module, x: torch.Tensor, hx, seed: int) -> list[torch.Tensor]:
    """Output and final states, and the gradients of a random linear function of them."""
    out, final = module(x, hx)
    results = [out, *states_of(final)]
    loss = sum((r * randn(*r.shape, seed=seed + k, grad=False)).sum() for k, r in enumerate(results))
    leaves = [x, *([] if hx is None else states_of(hx))]
    grads = torch.autograd.grad(loss, leaves + [p for p in module.parameters()])
    return [r.detach() for r in results] + list(grads[: len(leaves)])


def torch_grads(rnn: RNN, reference: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The RNN's parameter gradients as the reference module's fused tensors (zero where it has none)."""

    def grad(tensor: torch.Tensor) -> torch.Tensor:  # a bias=False bias is a buffer: no gradient
        return torch.zeros_like(tensor) if tensor.grad is None else tensor.grad

    pairs = [(m.cell, {p.name: grad(m.param(p.name)).numpy() for p in m.cell.params}) for m in rnn.cell_modules]
    fused = sg.to_torch(pairs, module=True, bidirectional=rnn.bidirectional, bias=rnn.bias)
    return dict(fused.named_parameters())


PARITY = [
    (kind, layers, bidirectional, batch_first, with_hx)
    for kind in ("LSTM", "GRU", "RNN_tanh")
    for layers in (1, 3)
    for bidirectional in (False, True)
    for batch_first, with_hx in ((False, False), (True, True))
] + [
    ("RNN_relu", 3, True, False, True),
    ("RNN_relu", 1, False, True, False),
]


@pytest.mark.parametrize(("kind", "layers", "bidirectional", "batch_first", "with_hx"), PARITY)
def test_parity_with_torch(kind: str, layers: int, bidirectional: bool, batch_first: bool, with_hx: bool) -> None:
    check_parity(torch_module(kind, layers, bidirectional, batch_first), with_hx)


@pytest.mark.parametrize(
    ("kind", "options"),
    [("LSTM", {"bias": False}), ("GRU", {"bias": False}), ("LSTM", {"proj_size": 2}), ("RNN_tanh", {"bias": False})],
)
def test_parity_with_torch_options(kind: str, options: dict) -> None:
    check_parity(torch_module(kind, 2, True, False, **options), with_hx=True)


def check_parity(reference: torch.nn.Module, with_hx: bool) -> None:
    rnn = RNN.from_torch(reference)
    directions = 2 if reference.bidirectional else 1
    x_shape = (B, T, IN) if reference.batch_first else (T, B, IN)
    hx = None
    if with_hx:
        out_size = reference.proj_size or H
        sizes = [out_size, H] if isinstance(reference, torch.nn.LSTM) else [out_size]
        hx = tuple(randn(reference.num_layers * directions, B, n, seed=10 + k) for k, n in enumerate(sizes))
        hx = hx if len(hx) > 1 else hx[0]
    expected = run(reference, randn(*x_shape, seed=1), hx, seed=100)
    got = run(rnn, randn(*x_shape, seed=1), hx, seed=100)
    assert len(got) == len(expected)
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape, k
        assert torch.allclose(a, b, rtol=0, atol=TOL), (k, (a - b).abs().max())
    # the parameters' gradients, from a backward pass through both modules
    for module in (reference, rnn):
        out, final = module(randn(*x_shape, seed=1, grad=False), hx)
        (out.sum() + sum(s.square().sum() for s in states_of(final))).backward()
    mapped = torch_grads(rnn, reference)
    for name, p in reference.named_parameters():
        assert torch.allclose(mapped[name], p.grad, rtol=0, atol=TOL), (name, (mapped[name] - p.grad).abs().max())


def test_unbatched_input_and_layout() -> None:
    reference = torch_module("LSTM", 2, True, True)
    rnn = RNN.from_torch(reference)
    x, hx = randn(T, IN, seed=1), (randn(4, H, seed=2), randn(4, H, seed=3))
    out, (h_n, c_n) = rnn(x, hx)
    expected, (h_e, c_e) = reference(x, hx)
    assert out.shape == (T, 2 * H) and h_n.shape == (4, H)
    for a, b in ((out, expected), (h_n, h_e), (c_n, c_e)):
        assert torch.allclose(a, b, rtol=0, atol=TOL)
    gru = RNN.from_torch(torch_module("GRU", 1, False, False))
    assert isinstance(gru(randn(T, B, IN, seed=1))[1], torch.Tensor)  # one state: a tensor, as nn.GRU's
    assert set(rnn.state_dict()) == {f"cell_modules.{k}.{p.name}" for k in range(4) for p in rnn.cell.params}


def test_dropout_between_layers_in_training_only() -> None:
    reference = torch_module("LSTM", 3, True, False, dropout=0.5)
    rnn = RNN.from_torch(reference)
    assert rnn.training and rnn.dropout == 0.5
    x = randn(T, B, IN, seed=1)
    first, second = rnn(x)[0], rnn(x)[0]
    assert not torch.equal(first, second)
    (first.sum() + second.square().sum()).backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in rnn.parameters())
    rnn.eval(), reference.eval()
    assert torch.equal(rnn(x)[0], rnn(x)[0])
    assert torch.allclose(rnn(x)[0], reference(x)[0], rtol=0, atol=TOL)
    assert not RNN.from_torch(reference).training  # the mode carries over


def test_custom_cell_two_layers_bidirectional_trains() -> None:
    torch.manual_seed(0)  # the dropout masks
    rnn = RNN("gru_cho", 2, 5, num_layers=2, bidirectional=True, dtype=F64, seed=0, dropout=0.1)
    head = torch.nn.Linear(10, 1, dtype=F64)
    x = randn(6, 3, 2, seed=1, grad=False)
    y = x.sum(dim=(0, 2)).unsqueeze(1) / 4  # each sequence's sum: needs both directions' memory
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.05)
    losses = []
    for _ in range(40):
        out, h_n = rnn(x)
        loss = torch.nn.functional.mse_loss(head(out[-1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert h_n.shape == (4, 3, 5) and out.shape == (6, 3, 10)
    assert losses[-1] < 0.2 * losses[0], losses
    again = RNN("gru_cho", 2, 5, num_layers=2, bidirectional=True, dtype=F64, seed=0)
    fresh = RNN("gru_cho", 2, 5, num_layers=2, bidirectional=True, dtype=F64, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), fresh.parameters(), strict=True))
    assert not torch.equal(fresh.cell_module(0).W_r, fresh.cell_module(0, reverse=True).W_r)


@pytest.mark.skipif(together.cores() < 2, reason="needs two cores")
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]])
def test_a_bidirectional_layer_runs_its_directions_side_by_side(monkeypatch, lengths) -> None:
    """Both directions' forward passes, then both backward passes, run at once on two threads
    (each waits at a barrier for the other), and give what the directions give one at a time."""
    reference = torch_module("LSTM", 2, True, False)
    rnn = RNN.from_torch(reference)
    x = randn(T, B, IN, seed=3)
    expected = run(reference, x, None, seed=4) if lengths is None else None
    kernel = rnn.cell_module(0).kernel()
    threads = {"forward": set(), "backward": set()}
    barriers = {name: threading.Barrier(2) for name in threads}

    def meeting(name):
        method = getattr(kernel, name)

        def wrapped(*args, **kwargs):
            threads[name].add(threading.get_ident())
            barriers[name].wait(30)
            return method(*args, **kwargs)

        return wrapped

    for name in threads:
        monkeypatch.setattr(kernel, name, meeting(name))
    if lengths is None:
        results = run(rnn, x, None, seed=4)
        assert all(torch.allclose(a, b, rtol=0, atol=TOL) for a, b in zip(results, expected, strict=True))
    else:
        out, _ = rnn(x, lengths=lengths)
        out.sum().backward()
    assert len(threads["forward"]) == 2 and len(threads["backward"]) == 2


@pytest.mark.parametrize("frozen_reverse", [False, True])
def test_one_direction_frozen_trains_the_other(frozen_reverse) -> None:
    """With one direction frozen and an input that needs no gradient, that direction keeps
    nothing for a backward pass (the directions share one autograd node); the other's gradients
    are nn.LSTM's with the same direction frozen."""
    reference = torch_module("LSTM", 1, True, False)
    rnn = RNN.from_torch(reference)
    for tensor in rnn.cell_module(0, reverse=frozen_reverse).parameters():
        tensor.requires_grad_(False)
    for name, tensor in reference.named_parameters():
        tensor.requires_grad_(name.endswith("_reverse") != frozen_reverse)
    x = randn(T, B, IN, seed=5, grad=False)
    G = randn(T, B, 2 * H, seed=6, grad=False)
    (rnn(x)[0] * G).sum().backward()
    (reference(x)[0] * G).sum().backward()
    assert all(t.grad is None for t in rnn.cell_module(0, reverse=frozen_reverse).parameters())
    got = torch_grads(rnn, reference)
    for name, tensor in reference.named_parameters():
        expected = torch.zeros_like(tensor) if tensor.grad is None else tensor.grad
        assert torch.allclose(got[name], expected, rtol=0, atol=TOL), name


def test_bias_false_on_a_generic_cell() -> None:
    text = "cell tiny\ninput x: D\nstate h: H\nh' = tanh(W @ x + U @ h + b + u*h)\n"
    rnn = RNN(sg.parse(text), 2, 3, bias=False, dtype=F64, seed=0)
    assert {n for n, _ in rnn.named_parameters()} == {"cell_modules.0.W", "cell_modules.0.U", "cell_modules.0.u"}
    assert "cell_modules.0.b" not in rnn.state_dict()
    out, _ = rnn(randn(T, B, 2, seed=1))
    out.sum().backward()
    assert torch.equal(rnn.cell_module(0).param("b"), torch.zeros(3, dtype=F64))
    with pytest.raises(sg.ArgumentError, match=r"bias=False .* cell gru_cho has none"):
        RNN("gru_cho", 2, 3, bias=False)


def test_bad_arguments_are_named() -> None:
    rnn = RNN.from_torch(torch_module("LSTM", 2, True, False))
    with pytest.raises(sg.ArrayError, match=r"input has shape \(5, 3, 4\), expected \(T, B, input_size\)"):
        rnn(randn(T, B, 4, seed=1))
    with pytest.raises(sg.ArrayError, match=r"hx\[1\] \(c_0\) has shape \(2, 3, 4\), expected .* \(4, 3, 4\)"):
        rnn(randn(T, B, IN, seed=1), (randn(4, B, H, seed=2), randn(2, B, H, seed=3)))
    with pytest.raises(sg.ArrayError, match=r"states \['h', 'c'\]: pass hx as a tuple of 2"):
        rnn(randn(T, B, IN, seed=1), randn(4, B, H, seed=2))
    with pytest.raises(sg.ArrayError, match=r"input has dtype torch.float32"):
        rnn(torch.zeros(T, B, IN))
    two_inputs = sg.parse("cell two\ninput x: D, u: D\nstate h: H\nh' = tanh(W @ x + V @ u + U @ h)\n")
    with pytest.raises(sg.ArgumentError, match=r"exactly one input, but cell two has inputs \['x', 'u'\]"):
        RNN(two_inputs, 3, 4)
    with pytest.raises(sg.ArrayError, match=r"dimensions \['H'\] besides .* pass sizes=\{'H': ...\}"):
        RNN("lstmp_pytorch", 3, 2)
    with pytest.raises(sg.ArrayError, match=r"sizes gives H, which hidden_size sets"):
        RNN("lstm", 3, 2, sizes={"H": 2})
    with pytest.raises(sg.ArrayError, match=r"state xp .* 3 in layer 0 but 4 in layer 1"):
        RNN("qrnn_f", 3, 4, num_layers=2)
    with pytest.raises(sg.ArgumentError, match=r"dropout must be a probability"):
        RNN("lstm", 3, 4, dropout=1.5)
    with pytest.raises(sg.InteropError, match=r"LSTMCell is one step"):
        RNN.from_torch(torch.nn.LSTMCell(3, 4))
