"""PyTorch parity: with weights copied by ``from_torch``, symgate's kernels compute what PyTorch does.

For nn.RNN (tanh, relu), nn.LSTM (also with proj_size), nn.GRU, with and without biases, one and
two layers, one and two directions, and for nn.RNNCell / LSTMCell / GRUCell applied step by step,
the forward outputs and every gradient of a random loss

    L = sum(out * G) + sum(h_n * G_h) [+ sum(c_n * G_c)]

(all parameters, the input sequence, the initial states) agree with PyTorch's autograd in float64
to rtol 1e-10 (atol 1e-12). The layers are wired in Python exactly as ``symgate.frameworks.interop.pytorch``
documents: the reverse direction runs on the flipped sequence, layer 1 reads the concatenation
[forward output, reverse output], and the backward pass chains each layer's input gradient into
the per-step state gradients of the layer below. Also: ``to_torch`` round trips, and refusals.
"""

from __future__ import annotations

import copy
import warnings
from functools import cache

import numpy as np
import pytest

import symgate as sg
from symgate.frameworks.interop import (
    UnsupportedModuleError,
    WeightLayoutError,
    from_torch,
    to_torch,
)

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-10, 1e-12
STEPS = 4
SIZES = [(3, 4, 3), (5, 2, 1), (1, 7, 3)]  # (D, H, batch)
STRUCTURES = [(1, False), (2, False), (1, True), (2, True)]  # (num_layers, bidirectional)

MODULES = {
    "rnn_tanh": lambda d, h, **kw: torch.nn.RNN(d, h, **kw),
    "rnn_relu": lambda d, h, **kw: torch.nn.RNN(d, h, nonlinearity="relu", **kw),
    "rnn_no_bias": lambda d, h, **kw: torch.nn.RNN(d, h, bias=False, **kw),
    "lstm": lambda d, h, **kw: torch.nn.LSTM(d, h, **kw),
    "lstm_no_bias": lambda d, h, **kw: torch.nn.LSTM(d, h, bias=False, **kw),
    "lstm_proj": lambda d, h, **kw: torch.nn.LSTM(d, h, proj_size=max(1, h // 2), **kw),
    "gru": lambda d, h, **kw: torch.nn.GRU(d, h, **kw),
    "gru_no_bias": lambda d, h, **kw: torch.nn.GRU(d, h, bias=False, **kw),
}
CELLS = {
    "rnn_tanh": lambda d, h: torch.nn.RNNCell(d, h),
    "rnn_relu": lambda d, h: torch.nn.RNNCell(d, h, nonlinearity="relu"),
    "rnn_no_bias": lambda d, h: torch.nn.RNNCell(d, h, bias=False),
    "lstm": lambda d, h: torch.nn.LSTMCell(d, h),
    "lstm_no_bias": lambda d, h: torch.nn.LSTMCell(d, h, bias=False),
    "gru": lambda d, h: torch.nn.GRUCell(d, h),
    "gru_no_bias": lambda d, h: torch.nn.GRUCell(d, h, bias=False),
}


@cache
def kernel(cell_name: str) -> sg.Kernel:
    return sg.build(sg.cells.get(cell_name), dtype="float64")


def close(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)


# -- the problem: random data and loss weights -------------------------------------------------


def problem(module: torch.nn.Module, d: int, batch: int, steps: int, slots: int, seed: int) -> dict:
    """x, non-zero initial states and the loss weights G, G_h, G_c, shaped as PyTorch's module wants."""
    rng = np.random.default_rng(seed)
    h = module.hidden_size
    out = getattr(module, "proj_size", 0) or h
    directions = 2 if getattr(module, "bidirectional", False) else 1
    lstm = isinstance(module, (torch.nn.LSTM, torch.nn.LSTMCell))
    return {
        "x": rng.standard_normal((steps, batch, d)),
        "h0": 0.5 * rng.standard_normal((slots, batch, out)),
        "c0": 0.5 * rng.standard_normal((slots, batch, h)) if lstm else None,
        "G": rng.standard_normal((steps, batch, directions * out)),
        "Gh": rng.standard_normal((slots, batch, out)),
        "Gc": rng.standard_normal((slots, batch, h)) if lstm else None,
    }


# -- PyTorch's side ----------------------------------------------------------------------------


def torch_side(module: torch.nn.Module, p: dict) -> dict:
    """PyTorch's outputs and autograd gradients of L. ``...Cell`` modules are looped over the steps."""
    x = torch.tensor(p["x"], requires_grad=True)
    h0 = torch.tensor(p["h0"], requires_grad=True)
    c0 = None if p["c0"] is None else torch.tensor(p["c0"], requires_grad=True)
    if isinstance(module, torch.nn.RNNCellBase):
        h, c, outs = h0[0], None if c0 is None else c0[0], []
        for t in range(x.shape[0]):
            if c is None:
                h = module(x[t], h)
            else:
                h, c = module(x[t], (h, c))
            outs.append(h)
        out, h_n, c_n = torch.stack(outs), h[None], None if c is None else c[None]
    elif c0 is None:
        out, h_n = module(x, h0)
        c_n = None
    else:
        out, (h_n, c_n) = module(x, (h0, c0))
    loss = (out * torch.tensor(p["G"])).sum() + (h_n * torch.tensor(p["Gh"])).sum()
    if c_n is not None:
        loss = loss + (c_n * torch.tensor(p["Gc"])).sum()
    loss.backward()
    # The parameter gradients, cut into symgate's per-gate names: a copy of the module holding
    # the gradients as its weights, read by from_torch (whose cutting the forward checks).
    holder = copy.deepcopy(module)
    with torch.no_grad():
        for (_, grad_of), (_, param) in zip(holder.named_parameters(), module.named_parameters(), strict=True):
            grad_of.copy_(param.grad)
    grads = from_torch(holder)
    return {
        "out": out.detach().numpy(),
        "h_n": h_n.detach().numpy(),
        "c_n": None if c_n is None else c_n.detach().numpy(),
        "params": [g for _, g in (grads if isinstance(grads, list) else [grads])],
        "x": x.grad.numpy(),
        "h0": h0.grad.numpy(),
        "c0": None if c0 is None else c0.grad.numpy(),
    }


# -- symgate's side: the layers wired by hand ------------------------------------------------------


def symgate_side(pairs: list, directions: int, p: dict) -> dict:
    """The stacked layers run with symgate kernels, and L backpropagated through them."""
    layers = len(pairs) // directions
    lstm = p["c0"] is not None
    runs = []
    layer_input = p["x"]
    for layer in range(layers):
        outputs = []
        for d in range(directions):
            k = layer * directions + d
            cell, params = pairs[k]
            init = {"h": p["h0"][k]} | ({"c": p["c0"][k]} if lstm else {})
            seq = layer_input if d == 0 else layer_input[::-1]
            run = kernel(cell.name).forward(np.ascontiguousarray(seq), params, init)
            runs.append(run)
            outputs.append(run.states["h"] if d == 0 else run.states["h"][::-1])
        layer_input = np.concatenate(outputs, axis=-1)
    ours = {
        "out": layer_input,
        "h_n": np.stack([r.final["h"] for r in runs]),
        "c_n": np.stack([r.final["c"] for r in runs]) if lstm else None,
        "params": [None] * len(pairs),
        "h0": [None] * len(pairs),
        "c0": [None] * len(pairs),
    }
    grad_output = p["G"]  # dL/d(output of the top layer) at every step
    for layer in reversed(range(layers)):
        grad_input = 0.0
        for d in range(directions):
            k = layer * directions + d
            run, size = runs[k], runs[k].states["h"].shape[-1]
            per_step = grad_output[..., d * size : (d + 1) * size]
            final = {"h": p["Gh"][k]} | ({"c": p["Gc"][k]} if lstm else {})
            g = kernel(pairs[k][0].name).backward(
                run, {"h": np.ascontiguousarray(per_step if d == 0 else per_step[::-1]), "final": final}
            )
            ours["params"][k], ours["h0"][k], ours["c0"][k] = g.params, g.init["h"], g.init.get("c")
            grad_input = grad_input + (g.inputs["x"] if d == 0 else g.inputs["x"][::-1])
        grad_output = grad_input
    ours["x"] = grad_output
    ours["h0"] = np.stack(ours["h0"])
    ours["c0"] = np.stack(ours["c0"]) if lstm else None
    return ours


def compare(module: torch.nn.Module, pairs: list, directions: int, p: dict) -> dict:
    """Asserts parity of every output and gradient; returns both sides."""
    theirs = torch_side(module, p)
    ours = symgate_side(pairs, directions, p)
    for key in ("out", "h_n", "c_n", "x", "h0", "c0"):
        if theirs[key] is not None:
            close(ours[key], theirs[key], key)
    has_bias = module.bias
    for k, (mine, torchs) in enumerate(zip(ours["params"], theirs["params"], strict=True)):
        for name in mine:
            if has_bias or not name.startswith("b_"):  # a bias=False module has no bias to differentiate
                close(mine[name], torchs[name], f"pair {k} d{name}")
    return {"ours": ours, "theirs": theirs}


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("layers", "bidirectional"), STRUCTURES)
@pytest.mark.parametrize(("d", "h", "batch"), SIZES)
@pytest.mark.parametrize("kind", list(MODULES))
def test_module_forward_and_every_gradient_match_pytorch(kind, d, h, batch, layers, bidirectional):
    torch.manual_seed(d * 100 + h * 10 + batch)
    module = MODULES[kind](d, h, num_layers=layers, bidirectional=bidirectional).double()
    directions = 2 if bidirectional else 1
    p = problem(module, d, batch, STEPS, layers * directions, seed=layers * 10 + directions)
    pairs = from_torch(module)
    assert len(pairs) == layers * directions
    result = compare(module, pairs, directions, p)
    if kind == "rnn_relu" and batch > 1:  # the kink is exercised: some units are off
        assert (result["ours"]["out"] == 0).any()


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize(("d", "h", "batch"), SIZES)
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_classes_one_step_and_in_a_loop_match_pytorch(kind, d, h, batch, steps):
    torch.manual_seed(d + h + batch)
    module = CELLS[kind](d, h).double()
    p = problem(module, d, batch, steps, 1, seed=steps)
    cell, params = from_torch(module)  # a single pair
    compare(module, [(cell, params)], 1, p)


def test_relu_at_exactly_zero_has_zero_gradient_in_both():
    """The development reference (../shared/reference/cells.md) leaves PyTorch's relu derivative at 0
    unverified: both take it as 0."""
    module = torch.nn.RNN(2, 3, nonlinearity="relu").double()
    with torch.no_grad():
        for param in module.parameters():
            param.zero_()
        module.weight_ih_l0[0] = torch.tensor([1.0, -1.0])  # unit 0's pre-activation is x0 - x1 = 0
        module.weight_ih_l0[1] = torch.tensor([1.0, 1.0])  # unit 1's is positive
    p = problem(module, 2, 1, 1, 1, seed=0)
    p["x"][...] = 0.5
    p["h0"][...] = 0.0
    result = compare(module, from_torch(module), 1, p)
    assert result["ours"]["out"][0, 0, 0] == 0.0 and result["theirs"]["params"][0]["W_ih"][0].tolist() == [0.0, 0.0]
    assert np.any(result["theirs"]["params"][0]["W_ih"][1])


def test_batch_first_is_only_a_calling_convention():
    torch.manual_seed(0)
    module = torch.nn.GRU(3, 4, batch_first=True).double()
    ((cell, params),) = from_torch(module)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))  # (T, B, D)
    out, _ = module(torch.tensor(x.swapaxes(0, 1)))
    run = kernel(cell.name).forward(x, params)
    close(run.states["h"], out.detach().numpy().swapaxes(0, 1), "h")


def test_parameters_follow_the_module_dtype_and_are_copies():
    module = torch.nn.LSTM(3, 4, proj_size=2)
    ((cell, params),) = from_torch(module)
    assert cell.name == "lstmp_pytorch" and params["W_hr"].shape == (2, 4)
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in params.values())
    ((_, doubles),) = from_torch(module.double())
    assert all(a.dtype == np.float64 for a in doubles.values())
    with torch.no_grad():
        module.weight_ih_l0.zero_()
    assert np.any(doubles["W_ii"])  # not a view of the module's memory


def test_bias_false_gives_zero_biases_and_separate_biases_are_kept_apart():
    gru_cell, gru = from_torch(torch.nn.GRUCell(2, 3, bias=False))
    assert gru_cell.name == "gru_pytorch"
    assert all(not gru[n].any() for n in ("b_ir", "b_hr", "b_iz", "b_hz", "b_in", "b_hn"))
    module = torch.nn.LSTM(2, 3).double()
    ((_, lstm),) = from_torch(module)
    np.testing.assert_array_equal(lstm["b_if"], module.bias_ih_l0.detach().numpy()[3:6])
    np.testing.assert_array_equal(lstm["b_hf"], module.bias_hh_l0.detach().numpy()[3:6])


# -- to_torch round trips -----------------------------------------------------------------------

FAMILIES = ["rnn_tanh_pytorch", "rnn_relu_pytorch", "lstm_pytorch", "lstmp_pytorch", "gru_pytorch"]


def symgate_pairs(name: str, layers: int, directions: int, dtype=np.float64, d: int = 3) -> list:
    """Random symgate parameters for a stack, the layer inputs sized as PyTorch wires them."""
    sizes = {"H": 4, "P": 2}
    out = sizes["P"] if name == "lstmp_pytorch" else sizes["H"]
    pairs = []
    for layer in range(layers):
        for direction in range(directions):
            params = kernel(name).init_params(
                {**sizes, "D": d if layer == 0 else directions * out}, seed=layer + 7 * direction
            )
            pairs.append((sg.cells.get(name), {n: a.astype(dtype) for n, a in params.items()}))
    return pairs


def assert_same_pairs(got, expected) -> None:
    got, expected = (list(v) if isinstance(v, list) else [v] for v in (got, expected))
    assert len(got) == len(expected)
    for (cell, params), (cell_expected, params_expected) in zip(got, expected, strict=True):
        assert cell.name == cell_expected.name and list(params) == list(params_expected)
        for name, array in params.items():
            assert array.dtype == params_expected[name].dtype, name
            np.testing.assert_array_equal(array, params_expected[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", FAMILIES)
def test_to_torch_round_trips_exactly(name, dtype):
    for layers, directions in [(1, 1), (2, 1), (1, 2), (3, 2)]:
        pairs = symgate_pairs(name, layers, directions, dtype)
        module = to_torch(pairs)
        assert module.num_layers == layers and module.bidirectional == (directions == 2)
        assert module.weight_ih_l0.dtype == (torch.float64 if dtype == np.float64 else torch.float32)
        assert_same_pairs(from_torch(module), pairs)
    (pair,) = symgate_pairs(name, 1, 1, dtype)
    if name != "lstmp_pytorch":  # torch has no LSTMCell with a projection
        cell_module = to_torch(pair)
        assert isinstance(cell_module, torch.nn.RNNCellBase)
        assert_same_pairs(from_torch(cell_module), pair)
    assert_same_pairs(from_torch(to_torch(pair, module=True)), [pair])


@pytest.mark.parametrize(("layers", "bidirectional"), STRUCTURES)
@pytest.mark.parametrize("kind", list(MODULES))
def test_torch_modules_survive_the_round_trip(kind, layers, bidirectional):
    module = MODULES[kind](4, 4, num_layers=layers, bidirectional=bidirectional, batch_first=True).double()
    again = to_torch(from_torch(module), bidirectional=bidirectional, bias=module.bias, batch_first=True)
    assert type(again) is type(module) and again.batch_first
    for attribute in ("mode", "input_size", "hidden_size", "num_layers", "bias", "bidirectional", "proj_size"):
        assert getattr(again, attribute) == getattr(module, attribute), attribute
    expected = module.state_dict()
    assert list(again.state_dict()) == list(expected)
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_to_torch_reads_the_directions_off_the_input_sizes():
    pairs = symgate_pairs("gru_pytorch", 2, 2)  # D=3, H=4: layer 1 reads 8
    assert to_torch(pairs).bidirectional
    assert not to_torch(symgate_pairs("gru_pytorch", 2, 1)).bidirectional
    with pytest.raises(WeightLayoutError, match="bidirectional=True or False"):
        to_torch(symgate_pairs("gru_pytorch", 2, 1, d=4))  # D = H: 2 layers or 1 bidirectional layer


# -- refusals -------------------------------------------------------------------------------------


def test_unsupported_modules_and_options_are_refused_by_name():
    with pytest.raises(UnsupportedModuleError, match=r"LSTM with dropout=0.25"):
        from_torch(torch.nn.LSTM(3, 4, num_layers=2, dropout=0.25))
    with pytest.raises(UnsupportedModuleError, match=r"GRU with dropout"):
        from_torch(torch.nn.GRU(3, 4, num_layers=3, dropout=0.5))
    with pytest.raises(UnsupportedModuleError, match="Linear"):
        from_torch(torch.nn.Linear(3, 4))

    class PeepholeLSTM(torch.nn.LSTM):
        pass

    with pytest.raises(UnsupportedModuleError, match="PeepholeLSTM is a subclass"):
        from_torch(PeepholeLSTM(3, 4))
    with warnings.catch_warnings():  # torch warns that dropout does nothing with one layer: accepted
        warnings.simplefilter("ignore", UserWarning)
        assert len(from_torch(torch.nn.LSTM(3, 4, dropout=0.5))) == 1


def test_to_torch_refuses_inconsistent_pairs():
    lstm = symgate_pairs("lstm_pytorch", 1, 1)[0]
    gru = symgate_pairs("gru_pytorch", 1, 1)[0]
    with pytest.raises(WeightLayoutError, match="pair 1 is gru_pytorch"):
        to_torch([lstm, gru])
    with pytest.raises(UnsupportedModuleError, match="elman_rnn has no PyTorch module"):
        to_torch((sg.cells.get("elman_rnn"), kernel("elman_rnn").init_params({"D": 3, "H": 4})))
    impostor = sg.parse(
        "cell rnn_tanh_pytorch\ninput x: D\nstate h: H\nh' = tanh(W_ih @ x + W_hh @ h + b_ih + b_hh)*2\n"
    )
    with pytest.raises(UnsupportedModuleError, match="unmodified"):
        to_torch((impostor, symgate_pairs("rnn_tanh_pytorch", 1, 1)[0][1]))
    with pytest.raises(UnsupportedModuleError, match="module=True"):
        to_torch(symgate_pairs("lstmp_pytorch", 1, 1)[0])
    with pytest.raises(WeightLayoutError, match="non-zero biases"):
        to_torch(lstm, bias=False)
    with pytest.raises(WeightLayoutError, match="missing \\['W_hr'\\]"):
        to_torch((sg.cells.get("lstmp_pytorch"), {n: a for n, a in lstm[1].items()}))
    bad = dict(lstm[1], W_hf=np.zeros((4, 5)))
    with pytest.raises(WeightLayoutError, match="W_hf has shape"):
        to_torch((lstm[0], bad))
    mixed = dict(lstm[1], b_io=lstm[1]["b_io"].astype(np.float32))
    with pytest.raises(WeightLayoutError, match="all be float64 or all float32"):
        to_torch((lstm[0], mixed))
    with pytest.raises(WeightLayoutError, match="3 pairs cannot be bidirectional"):
        to_torch(symgate_pairs("gru_pytorch", 3, 1), bidirectional=True)
