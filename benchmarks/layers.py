"""A stacked, bidirectional LSTM layer against ``nn.LSTM``, on padded and packed batches (issue 20).

``run.py --configs layers`` runs these rows (they are in its default set). What is timed:
``sg.torch.RNN.from_torch(lstm)`` against ``lstm = nn.LSTM(256, 256, num_layers=2,
bidirectional=True)`` itself (the same weights), B = 32, T = 100, float32, forward + backward:
``torch.autograd.grad`` of the loss ``sum(output * G)``, for a fixed random G, with respect to every
parameter and the input, on

* a padded batch: x of shape (T, B, 256), every sample T steps long;
* a packed batch: lengths drawn uniformly from [T/4, T], the same x packed with
  ``pack_padded_sequence(x, lengths, enforce_sorted=False)``. Both layers get this one
  PackedSequence; its ``data`` is a leaf (the input whose gradient is taken) and the loss is
  ``sum(output.data * G)``.

symgate's kernels run each step only for the samples still running, so its packed batch should cost
the padded one's time times the share of steps that are real (sum of lengths / (B·T)); nn.LSTM's
ratio is shown beside it.

The machine is shared and its speed drifts within minutes, so the four measurements (two layers,
two batches) take turns (``run.take_turns``: a round times each once, a warm-up call and a few
timed calls, in the reverse order every other round), and each measurement's time is the median
over the rounds. Outputs and input gradients are compared (max rel. diff) so both layers
are known to compute the same thing.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import run
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import symgate as sg

NAME = "layers"  # the config name in run.py and the section's name in RESULTS.md
SECTION = "run.py layers"
B, D, H, T, LAYERS = 32, 256, 256, 100, 2
SEED = 20
ROUNDS = {False: 7, True: 3}  # quick? -> rounds
CALLS = 3  # timed calls a round, after one warm-up call
BATCHES = ("padded", "packed")
IMPLEMENTATIONS = ("symgate", "nn.LSTM")
TARGETS = {"speedup": 1.2, "packed/padded": 0.75}  # issue 20: nn.LSTM / symgate at least, packed / padded at most


@dataclass
class Batch:
    """One input for both layers, the loss's weights G, and the leaf whose gradient is taken."""

    input: torch.Tensor | PackedSequence
    G: torch.Tensor
    leaf: torch.Tensor


def make_batches() -> tuple[dict[str, Batch], torch.Tensor]:
    """The padded and the packed batch from one x, and the packed batch's lengths."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(T, B, D, generator=gen)
    lengths = torch.randint(T // 4, T + 1, (B,), generator=gen)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    data = packed.data.clone().requires_grad_()
    packed = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    padded = x.clone().requires_grad_()
    batches = {
        "padded": Batch(padded, torch.randn(T, B, 2 * H, generator=gen), padded),
        "packed": Batch(packed, torch.randn(data.shape[0], 2 * H, generator=gen), data),
    }
    return batches, lengths


def make_layers() -> dict[str, torch.nn.Module]:
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        lstm = torch.nn.LSTM(D, H, num_layers=LAYERS, bidirectional=True)
    return {"symgate": sg.torch.RNN.from_torch(lstm), "nn.LSTM": lstm}


def forward_backward(layer: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The output (``data`` for a PackedSequence) and the input's gradient; the parameters'
    gradients are computed too, and dropped."""
    output, _ = layer(batch.input)
    data = output.data if isinstance(output, PackedSequence) else output
    grads = torch.autograd.grad((data * batch.G).sum(), [batch.leaf, *layer.parameters()])
    return data.detach(), grads[0]


def rel_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


@dataclass
class LayerResult:
    """Each (implementation, batch)'s per-round median times, and the agreement per batch."""

    rounds: dict[tuple[str, str], list[float]]
    max_rel_diff: dict[str, float]
    real_share: float  # sum of lengths / (B·T)

    def timing(self, impl: str, batch: str) -> run.Timing:
        return run.Timing(self.rounds[(impl, batch)])

    def median(self, impl: str, batch: str) -> float:
        return statistics.median(self.rounds[(impl, batch)])

    def summary(self) -> dict[str, Any]:
        return {
            "sizes": {"B": B, "D": D, "H": H, "T": T, "layers": LAYERS, "bidirectional": True, "dtype": "float32"},
            "times": {f"{impl} {batch}": self.timing(impl, batch).summary() for impl, batch in self.rounds},
            "round_medians": {f"{impl} {batch}": times for (impl, batch), times in self.rounds.items()},
            "max_rel_diff": self.max_rel_diff,
            "real_share": self.real_share,
        }


def measure_layers(quick: bool, progress: Callable[[str], None]) -> LayerResult:
    batches, lengths = make_batches()
    layers = make_layers()
    diffs = {}
    for name in BATCHES:
        (ours, ours_dx), (theirs, theirs_dx) = (forward_backward(layers[i], batches[name]) for i in IMPLEMENTATIONS)
        diffs[name] = max(rel_diff(ours, theirs), rel_diff(ours_dx, theirs_dx))
    calls = {
        (impl, batch): lambda i=impl, b=batch: forward_backward(layers[i], batches[b])
        for batch in BATCHES
        for impl in IMPLEMENTATIONS
    }
    rounds = run.take_turns(calls, ROUNDS[quick], CALLS, progress, NAME)
    return LayerResult(rounds, diffs, float(lengths.sum()) / (B * T))


def report(result: LayerResult, info: Mapping[str, Any]) -> str:
    """The section of RESULTS.md: the machine, what the rows mean, the table."""
    rows = []
    for batch in BATCHES:
        ours = result.timing("symgate", batch)
        rows.append(
            [
                batch,
                run.timing_cell(ours),
                run.timing_cell(result.timing("nn.LSTM", batch), ours),
                f"{result.max_rel_diff[batch]:.1e}",
            ]
        )
    ratio = {impl: result.median(impl, "packed") / result.median(impl, "padded") for impl in IMPLEMENTATIONS}
    rows.append(["packed / padded", f"{ratio['symgate']:.2f}", f"{ratio['nn.LSTM']:.2f}", ""])
    header = ["batch", "symgate", "nn.LSTM (**nn.LSTM / symgate**)", "max rel. diff"]
    return "\n".join(
        [
            "## Stacked bidirectional LSTM layer against nn.LSTM (`run.py --configs layers`)",
            "",
            run.machine_section(info),
            "",
            f"`sg.torch.RNN.from_torch(lstm)` against `lstm = nn.LSTM({D}, {H}, num_layers={LAYERS}, "
            f"bidirectional=True)` itself, B = {B}, T = {T}, float32, forward + backward: `torch.autograd.grad` of "
            f"`sum(output * G)` (fixed random G) with respect to every parameter and the input. *padded*: every "
            f"sample {T} steps; *packed*: lengths drawn uniformly from [{T // 4}, {T}] (real steps "
            f"{100 * result.real_share:.1f} % of B·T), one `pack_padded_sequence(..., enforce_sorted=False)` given "
            f"to both layers, loss on `output.data`. Times are medians over {len(next(iter(result.rounds.values())))} "
            f"rounds taking turns (each round's median of {CALLS} calls after a warm-up); in bold nn.LSTM's time / "
            f"symgate's (target ≥ {TARGETS['speedup']}). The last row divides each layer's packed time by its padded "
            f"time: symgate's kernels run each step only for the samples still running, so its work follows the "
            f"sum of lengths (target ≤ {TARGETS['packed/padded']}). {run.NOISY} marks times whose slowest round took "
            f"more than {run.SPREAD}× the fastest. *max rel. diff*: of the output and of the input's gradient.",
            "",
            run.table(header, rows),
        ]
    )
