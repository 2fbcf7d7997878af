"""Sequences of different lengths through ``symgate.torch``: PackedSequence and padded input with lengths.

With weights from ``RNN.from_torch``, the layer equals ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` on
the same PackedSequence in float64 to 1e-10: the packed output (data, batch sizes, sorted and
unsorted indices), every final state (each sample's at its own length; the reverse direction's
after reading each sample's first step) and the gradients of the input, ``hx`` and every
parameter, for 1 and 3 layers, both directions, ``batch_first``, with and without ``hx``, and
lengths unsorted with ties. Padded input with ``lengths=`` gives what the packed call gives,
padded with zeros.
"""

from __future__ import annotations

import pytest

import symgate as sg

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence  # noqa: E402

from symgate.torch import RNN  # noqa: E402

F64 = torch.float64
T, B, IN, H = 6, 4, 3, 4
LENGTHS = [4, 6, 1, 4]  # unsorted, with a tie, one of length 1 and one of length T
TOL = 1e-10


def randn(*shape: int, seed: int, grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64).requires_grad_(grad)


def reference_module(kind: str, layers: int, bidirectional: bool, batch_first: bool) -> torch.nn.Module:
    torch.manual_seed(7 * layers + bidirectional)
    return getattr(torch.nn, kind)(
        IN, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first
    ).double()


def states_of(final) -> tuple:
    return final if isinstance(final, tuple) else (final,)


def check(kind: str, layers: int, bidirectional: bool, batch_first: bool, with_hx: bool) -> None:
    reference = reference_module(kind, layers, bidirectional, batch_first)
    rnn = RNN.from_torch(reference)
    states = len(rnn.cell.states)
    count = layers * (2 if bidirectional else 1)
    results = []
    for module in (reference, rnn):
        x = randn(B, T, IN, seed=1, grad=True) if batch_first else randn(T, B, IN, seed=1, grad=True)
        packed = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False)
        hx = tuple(randn(count, B, H, seed=20 + k, grad=True) for k in range(states)) if with_hx else None
        out, final = module(packed, None if hx is None else (hx if states > 1 else hx[0]))
        assert isinstance(out, PackedSequence)
        finals = states_of(final)
        loss = (out.data * randn(*out.data.shape, seed=3)).sum()
        loss = loss + sum((f * randn(*f.shape, seed=4 + k)).sum() for k, f in enumerate(finals))
        module.zero_grad()
        loss.backward()
        grads = [x.grad, *(h.grad for h in (hx or ()))]
        results.append((out, finals, grads, module))
    (out_e, finals_e, grads_e, _), (out_g, finals_g, grads_g, _) = results
    assert torch.equal(out_g.batch_sizes, out_e.batch_sizes)
    assert torch.equal(out_g.sorted_indices, out_e.sorted_indices)
    assert torch.equal(out_g.unsorted_indices, out_e.unsorted_indices)
    pairs = [(out_g.data, out_e.data), *zip(finals_g, finals_e, strict=True), *zip(grads_g, grads_e, strict=True)]
    for k, (a, b) in enumerate(pairs):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=TOL), (k, (a - b).abs().max())
    mapped = mapped_grads(rnn)
    for name, p in reference.named_parameters():
        assert torch.allclose(mapped[name], p.grad, rtol=0, atol=TOL), (name, (mapped[name] - p.grad).abs().max())


def mapped_grads(rnn: RNN) -> dict[str, torch.Tensor]:
    pairs = [(m.cell, {p.name: m.param(p.name).grad.numpy() for p in m.cell.params}) for m in rnn.cell_modules]
    return dict(sg.to_torch(pairs, module=True, bidirectional=rnn.bidirectional).named_parameters())


@pytest.mark.parametrize(
    ("kind", "layers", "bidirectional", "batch_first", "with_hx"),
    [
        ("LSTM", 1, False, False, False),
        ("LSTM", 3, True, False, True),
        ("LSTM", 1, True, True, True),
        ("GRU", 3, True, True, False),
        ("GRU", 1, False, False, True),
        ("RNN", 3, True, False, True),
        ("RNN", 1, True, True, False),
    ],
)
def test_packed_parity_with_torch(kind, layers, bidirectional, batch_first, with_hx):
    check(kind, layers, bidirectional, batch_first, with_hx)


def test_padded_with_lengths_is_the_packed_call_padded_with_zeros():
    reference = reference_module("LSTM", 2, True, False)
    rnn = RNN.from_torch(reference)
    x = randn(T, B, IN, seed=1)
    out, (h_n, c_n) = rnn(x, lengths=LENGTHS)
    packed_out, (h_p, c_p) = rnn(pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False))
    padded, lengths = pad_packed_sequence(packed_out, total_length=T)
    assert lengths.tolist() == LENGTHS
    assert torch.equal(out, padded) and torch.equal(h_n, h_p) and torch.equal(c_n, c_p)
    assert torch.all(out[torch.arange(T)[:, None] >= torch.tensor(LENGTHS)[None, :]] == 0)


def test_the_kernel_gets_lengths_through_the_cell_module():
    module = sg.torch.from_cell("gru_cho", {"D": IN, "H": H}, dtype=F64, seed=0)
    x = randn(T, B, IN, seed=1)
    out, (h_n,) = module(x, lengths=torch.tensor(LENGTHS))
    for b, n in enumerate(LENGTHS):
        alone, (h_alone,) = module(x[:n, b : b + 1])
        assert torch.allclose(out[:n, b], alone[:, 0], rtol=0, atol=1e-14)
        assert torch.allclose(out[n:, b], alone[-1, 0].expand(T - n, H), rtol=0, atol=1e-14)  # a state holds
        assert torch.allclose(h_n[b], h_alone[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([4, 6], r"lengths has shape \(2,\)"),
        ([4, 7, 1, 1], r"lengths\[1\] = 7"),
        ([0, 1, 1, 1], r"lengths\[0\] = 0"),
        ([1.5, 2, 2, 2], "integers"),
    ],
)
def test_bad_lengths_are_named(lengths, message):
    rnn = RNN("elman_rnn", IN, H, dtype=F64, seed=0)
    with pytest.raises(sg.ArrayError, match=message):
        rnn(randn(T, B, IN, seed=1), lengths=lengths)
