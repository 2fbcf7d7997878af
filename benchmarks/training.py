"""Training, end to end: one epoch of the adding problem's LSTM against ``nn.LSTM`` (issue 22, point 4).

``run.py --configs training`` runs these rows (they are in its default set). What is timed is
``examples/long_range.py --timing``'s epoch, imported from the example, not copied:
``long_range.time_epoch`` at H = 32 (float32 and float64) and H = 256 (float32: in float64 it
took ten times float32's time, which would be most of the run). One epoch is 100 (``--quick``:
20) batches of ``long_range.adding_batch`` (B = 64, T = 100, D = 2: a value and a marker a step),
drawn once before anything is timed; each batch is one training step of ``long_range.Model``
(the recurrent layer, then ``nn.Linear(H, 1)`` of its output after the last step): the forward
pass, ``mse_loss``, ``optimizer.zero_grad()``, ``loss.backward()``,
``clip_grad_norm_(parameters, 1.0)`` and ``Adam(lr=0.01).step()``. The recurrent layer is
``sg.torch.CellModule("lstm", {"D": 2, "H": H})`` (symgate's kernels behind PyTorch's autograd,
with the Python around each kernel call) or ``torch.nn.LSTM(2, H)``.

``time_epoch`` runs one warm-up epoch of each model, then rounds that take turns: each round one
epoch of symgate's model, then one of nn.LSTM's, on the same batches (a new Adam each epoch; the
weights keep training). Each time here is the median over the rounds; per step is that over the
batches. The full run has the example's own 100 batches and 3 rounds.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import run
import torch

# examples/long_range.py is a script, not part of the package: its directory goes on the path so
# that its epoch (time_epoch, Model, adding_batch) is imported and timed as the example runs it.
sys.path.insert(0, str(run.HERE.parent / "examples"))
import long_range

NAME = "training"  # the config name in run.py
SECTION = "run.py training"  # its section of RESULTS.md
B, T, D = 64, 100, 2  # D is long_range's: a value and a marker a step
CASES = ((32, "float32"), (32, "float64"), (256, "float32"))  # (H, dtype)
EPOCH = {False: (100, 3), True: (20, 3)}  # quick? -> (batches an epoch, rounds); the full run is --timing's
# own (time_epoch's defaults), 4 epochs of each model with the warm-up
MODELS = {"symgate": "symgate lstm", "nn.LSTM": "torch.nn.LSTM"}  # name here -> time_epoch's name
SEED = 22


@dataclass
class TrainingResult:
    """Seconds per epoch of each (H, dtype, model), one entry a round, and the epoch's settings."""

    rounds: dict[tuple[int, str, str], list[float]]
    batches: int
    args: Mapping[str, Any]  # long_range's command-line settings the epoch ran with

    def timing(self, hidden: int, dtype: str, model: str) -> run.Timing:
        return run.Timing(self.rounds[(hidden, dtype, model)])

    def median(self, hidden: int, dtype: str, model: str) -> float:
        return statistics.median(self.rounds[(hidden, dtype, model)])

    def summary(self) -> dict[str, Any]:
        key = "H={} {} {}".format
        return {
            "sizes": {"B": B, "T": T, "D": D, "H": sorted({h for h, _ in CASES}), "batches": self.batches},
            "settings": dict(self.args),
            "times": {key(*k): run.Timing(t).summary() for k, t in self.rounds.items()},
            "round_medians": {key(*k): t for k, t in self.rounds.items()},
        }


def measure_training(quick: bool, progress: Callable[[str], None]) -> TrainingResult:
    batches, rounds = EPOCH[quick]
    args = long_range.parse(["--batch", str(B), "--length", str(T), "--seed", str(SEED)])
    found: dict[tuple[int, str, str], list[float]] = {}
    for hidden, dtype in CASES:
        with torch.random.fork_rng():  # the models' initial weights come from torch's generator
            torch.manual_seed(SEED)
            (row,) = long_range.time_epoch(args, rounds, batches, hidden=hidden, dtypes=(dtype,))
        for model, key in MODELS.items():
            found[(hidden, dtype, model)] = row["rounds"][key]
        progress(f"  {NAME} H = {hidden} {dtype}: {rounds} rounds of {batches} batches done")
    settings = {k: getattr(args, k) for k in ("batch", "length", "lr", "clip", "seed")}
    return TrainingResult(found, batches, settings)


def report(result: TrainingResult, info: Mapping[str, Any]) -> str:
    """The section of RESULTS.md: the machine, what one epoch is, a row per (H, dtype)."""
    rounds = len(next(iter(result.rounds.values())))
    rows = []
    for hidden, dtype in CASES:
        ours, theirs = (result.timing(hidden, dtype, m) for m in MODELS)
        rows.append(
            [
                str(hidden),
                dtype,
                run.timing_cell(ours),
                run.fmt_time(ours.median / result.batches),
                run.timing_cell(theirs, ours),
                run.fmt_time(theirs.median / result.batches),
            ]
        )
    header = [
        "H",
        "dtype",
        "symgate epoch",
        "symgate per step",
        "nn.LSTM epoch (**nn.LSTM / symgate**)",
        "nn.LSTM per step",
    ]
    a = result.args
    return "\n".join(
        [
            "## Training, end to end: the adding problem's LSTM against nn.LSTM (`run.py --configs training`)",
            "",
            run.machine_section(info),
            "",
            f"One epoch of `examples/long_range.py --timing` (its `time_epoch`, imported): {result.batches} batches "
            f"of the adding problem (`adding_batch`, B = {B}, T = {T}, D = {D}), drawn before anything is timed, "
            "each one training step of the example's `Model` (the recurrent layer, then `nn.Linear(H, 1)` of its "
            "output after the last step): forward, `mse_loss`, `optimizer.zero_grad()`, `loss.backward()`, "
            f"`clip_grad_norm_(parameters, {a['clip']:g})`, `Adam(lr={a['lr']:g}).step()`. The recurrent layer is "
            f'`sg.torch.CellModule("lstm", {{"D": {D}, "H": H}})` (symgate\'s kernels behind PyTorch\'s autograd, '
            f"the Python around each kernel call included) or `torch.nn.LSTM({D}, H)`, on "
            f"`torch.set_num_threads({info['torch_threads']})` (`--torch-threads`). One warm-up epoch each, then "
            f"{rounds} rounds taking turns, each one epoch of symgate's model and one of nn.LSTM's on the same "
            "batches (a new Adam each epoch; the weights keep training). Epoch times are medians over the rounds, "
            f"per step that / {result.batches}; in bold nn.LSTM's time / symgate's (> 1: symgate is faster). "
            f"{run.NOISY} marks times whose slowest round took more than {run.SPREAD}× the fastest.",
            "",
            run.table(header, rows),
        ]
    )
