"""Long-range memory: train symgate cells in PyTorch on the adding problem, T = 100.

The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le, Jaitly & Hinton 2015):
each step of a sequence carries two numbers, a value drawn from U(0, 1) and a marker; exactly two
steps are marked, one in each half of the sequence, and the target, read after the last step, is
the sum of the two marked values. Predicting the mean sum, 1, gives a mean squared error of
1/6 ≈ 0.167 (the variance of the sum); doing better means carrying the first marked value across
at least T/2 steps. The documents' story is that a simple RNN cannot learn this and that the
LSTM's additive cell update and the GRU's interpolation can; xLSTM's mLSTM, whose memory is a
K x V matrix per sample (``state C: K x V``), is trained beside them.

Each cell runs as a ``symgate.torch.CellModule`` (its compiled kernels behind PyTorch's autograd)
followed by a linear read-out of the module's output after the last step; Adam trains both.
Every cell sees the same batches and is judged on the same 1,000 held-out sequences: test MSE,
and accuracy, the share of test sequences predicted to within 0.04 of the target. A cell has
*solved* the task when its test MSE is below 0.01 (6% of the baseline).

    python examples/long_range.py                     # the four cells: long_range_out/long_range.md, .png
    python examples/long_range.py --cell my.cell      # a cell defined only in a .cell file
    python examples/long_range.py --timing            # also: one epoch of the LSTM against nn.LSTM
    python examples/long_range.py --out results/run1  # results/run1.md and results/run1.png

The table and the plot go to ``--out`` (a path without its suffix: OUT.md, OUT.png), by default
``long_range_out/long_range`` under the working directory, which git ignores; nothing else is
written. The copies in the repository were made from its root with
``python examples/long_range.py --timing --threads 1 --out docs/long_range`` (``docs/long_range.md``
and ``docs/long_range.png``) and
``python examples/long_range.py --threads 1 --cell examples/cells/lstm_cifg_nog.cell --out docs/long_range_cell``.

The cell's input dimension gets size 2 (value, marker) and every other dimension ``--hidden``;
when the cell's output has the input's size (a cell with D = H, such as ``sru``), a linear layer
first embeds the two numbers into ``--hidden``. Nothing depends on which cell it is.

The plot needs matplotlib (``pip install "symgate[plot]"``); without it the table is still written.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import symgate as sg
from symgate.torch import RNN, CellModule, default_output

DEFAULT_CELLS = ("elman_rnn", "lstm", "gru_cho", "xlstm_mlstm")
BASELINE = 1 / 6  # MSE of always predicting 1
SOLVED = 0.01  # test MSE below which a cell has solved the task
TOLERANCE = 0.04  # a prediction within this of the target counts as correct
TEST_SIZE = 1000
DEFAULT_OUT = Path("long_range_out", "long_range")  # relative: under the working directory, ignored by git


# -- the task -------------------------------------------------------------------------------------


def adding_batch(generator: torch.Generator, batch: int, length: int, dtype: torch.dtype) -> tuple:
    """x (T, B, 2): value and marker per step; y (B,): the sum of the two marked values."""
    values = torch.rand(batch, length, generator=generator, dtype=dtype)
    first = torch.randint(0, length // 2, (batch,), generator=generator)
    second = torch.randint(length // 2, length, (batch,), generator=generator)
    markers = torch.zeros(batch, length, dtype=dtype)
    rows = torch.arange(batch)
    markers[rows, first] = 1
    markers[rows, second] = 1
    x = torch.stack([values, markers], dim=-1).transpose(0, 1).contiguous()
    return x, (values * markers).sum(dim=1)


class Model(torch.nn.Module):
    """[embedding ->] recurrent cell -> linear read-out of its output after the last step."""

    def __init__(self, recurrent: torch.nn.Module, features: int, embed: int | None, width: int, dtype) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(features, embed, dtype=dtype) if embed else None
        self.recurrent = recurrent
        self.head = torch.nn.Linear(width, 1, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(x)
        out, _ = self.recurrent(x)
        return self.head(out[-1]).squeeze(-1)


def cell_model(cell: sg.Cell, hidden: int, dtype: torch.dtype, layers: int = 1) -> Model:
    """The model around any one-input cell, ``layers`` deep; the sizes follow from the cell's declarations."""
    if len(cell.inputs) != 1:
        raise SystemExit(f"cell {cell.name} has inputs {list(cell.inputs)}: the adding problem feeds one sequence")
    (input_dim,) = cell.inputs.values()
    output_dim = {**cell.states, **cell.outputs}[default_output(cell)]  # the size the read-out sees
    embed = output_dim == input_dim
    sizes = {d: hidden for d in cell.dims} | ({} if embed else {input_dim: 2})
    if layers == 1:
        recurrent = CellModule(cell, sizes, dtype=dtype)  # parameters drawn from torch's generator
    else:  # stacked: layer l > 0 reads layer l - 1's output
        others = {d: n for d, n in sizes.items() if d not in (input_dim, output_dim)}
        recurrent = RNN(cell, sizes[input_dim], sizes[output_dim], num_layers=layers, sizes=others, dtype=dtype)
    return Model(recurrent, 2, hidden if embed else None, sizes[output_dim], dtype)


# -- training -------------------------------------------------------------------------------------


@dataclass
class Result:
    cell: str
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the steps since the last evaluation
    test_mse: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    parameters: int = 0

    @property
    def solved(self) -> bool:
        return self.test_mse[-1] < SOLVED

    @property
    def first_solved(self) -> int | None:
        return next((s for s, m in zip(self.steps, self.test_mse, strict=True) if m < SOLVED), None)


def train(cell: sg.Cell, args: argparse.Namespace, log=print) -> Result:
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    model = cell_model(cell, args.hidden, dtype, args.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    data = torch.Generator().manual_seed(args.seed + 1)  # the same batches for every cell
    x_test, y_test = adding_batch(torch.Generator().manual_seed(args.seed + 2), TEST_SIZE, args.length, dtype)
    label = cell.name if args.layers == 1 else f"{cell.name} ({args.layers} layers)"
    result = Result(label, parameters=sum(p.numel() for p in model.parameters()))
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = adding_batch(data, args.batch, args.length, dtype)
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            with torch.no_grad():
                error = model(x_test) - y_test
            result.steps.append(step)
            result.train_loss.append(sum(losses) / len(losses))
            result.test_mse.append(error.pow(2).mean().item())
            result.test_accuracy.append((error.abs() < TOLERANCE).to(dtype).mean().item())
            losses = []
            log(
                f"  {label:<16} step {step:>5}  train {result.train_loss[-1]:.4f}  "
                f"test MSE {result.test_mse[-1]:.4f}  accuracy {result.test_accuracy[-1]:6.1%}  "
                f"{time.perf_counter() - start:6.1f} s"
            )
    result.seconds = time.perf_counter() - start
    return result


# -- one epoch against nn.LSTM ----------------------------------------------------------------------


def time_epoch(
    args: argparse.Namespace,
    repeats: int = 3,
    batches: int = 100,
    *,
    hidden: int | None = None,
    dtypes: Sequence[str] = ("float32", "float64"),
) -> list[dict]:
    """Seconds per training epoch (``batches`` batches) of the symgate ``lstm`` and ``nn.LSTM``.

    The same sizes, data, read-out, optimizer and clipping; one warm-up epoch each, then
    ``repeats`` epochs alternating between the two, medians reported. ``hidden`` (default
    ``args.hidden``) and ``dtypes`` let ``benchmarks/training.py`` time other sizes; each row also
    keeps every timed epoch (``rounds``, by model).
    """
    hidden = args.hidden if hidden is None else hidden
    rows = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        data = torch.Generator().manual_seed(args.seed)
        epoch = [adding_batch(data, args.batch, args.length, dtype) for _ in range(batches)]
        models = {
            "symgate lstm": Model(CellModule("lstm", {"D": 2, "H": hidden}, dtype=dtype), 2, None, hidden, dtype),
            "torch.nn.LSTM": Model(torch.nn.LSTM(2, hidden, dtype=dtype), 2, None, hidden, dtype),
        }
        times: dict[str, list[float]] = {name: [] for name in models}
        for round_ in range(repeats + 1):
            for name, model in models.items():
                optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
                start = time.perf_counter()
                for x, y in epoch:
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                    optimizer.step()
                if round_:  # round 0 warms up
                    times[name].append(time.perf_counter() - start)
        ours, theirs = (statistics.median(times[n]) for n in models)
        rows.append({"dtype": dtype_name, "symgate": ours, "torch": theirs, "batches": batches, "rounds": times})
    return rows


# -- reporting ------------------------------------------------------------------------------------


def table(results: Sequence[Result], args: argparse.Namespace, timing: list[dict] | None) -> str:
    lines = [
        f"Adding problem, T = {args.length}: {args.steps} steps of batch {args.batch}, hidden size {args.hidden}, "
        f"Adam lr {args.lr}, clip {args.clip}, {args.dtype}, seed {args.seed}. Test set: {TEST_SIZE} sequences. "
        f"Baseline (always predict 1): MSE {BASELINE:.3f}. Accuracy: share of test sequences within "
        f"{TOLERANCE} of the target. Solved: test MSE < {SOLVED}.",
        "",
        "| cell | parameters | final test MSE | accuracy | solved (first at step) | train time |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in results:
        solved = f"yes ({r.first_solved})" if r.solved else "no"
        lines.append(
            f"| {r.cell} | {r.parameters} | {r.test_mse[-1]:.4f} | {r.test_accuracy[-1]:.1%} | {solved} | "
            f"{r.seconds:.0f} s |"
        )
    if timing:
        lines += [
            "",
            f"One training epoch ({timing[0]['batches']} batches of {args.batch}, T = {args.length}, "
            f"H = {args.hidden}; forward, backward, clipping, Adam), median of 3:",
            "",
            "| dtype | symgate `lstm` module | `torch.nn.LSTM` | time symgate / PyTorch |",
            "|---|---:|---:|---:|",
        ]
        for row in timing:
            ours, theirs = (
                f"{row[k]:.2f} s ({1e3 * row[k] / row['batches']:.1f} ms a step)" for k in ("symgate", "torch")
            )
            lines.append(f"| {row['dtype']} | {ours} | {theirs} | {row['symgate'] / row['torch']:.2f} |")
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread(s); OPENBLAS_NUM_THREADS={blas}.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: Sequence[Result], args: argparse.Namespace, path: Path) -> bool:
    """Writes the training curves; returns False (and says why) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f'matplotlib is not installed, so no plot was written: pip install "symgate[plot]" for {path}')
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=100, layout="constrained")
    for r in results:
        left.plot(r.steps, r.test_mse, label=r.cell)
        right.plot(r.steps, [100 * a for a in r.test_accuracy], label=r.cell)
    left.axhline(BASELINE, color="gray", linestyle="--", linewidth=1, label="predict 1")
    left.set(yscale="log", xlabel="training step", ylabel="test MSE", title=f"adding problem, T = {args.length}")
    right.set(xlabel="training step", ylabel=f"% within {TOLERANCE} of target", ylim=(0, 100), title="accuracy")
    left.legend(fontsize="small")
    fig.savefig(path)
    plt.close(fig)
    return True


# -- command line ---------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cell",
        action="append",
        metavar="FILE",
        help="train the cell of this .cell file (or a built-in name) instead of " + ", ".join(DEFAULT_CELLS),
    )
    parser.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per cell (default 2000)")
    parser.add_argument("--batch", type=int, default=64, help="sequences per step (default 64)")
    parser.add_argument("--hidden", type=int, default=32, help="size of every dimension but the input's (default 32)")
    parser.add_argument(
        "--layers", type=int, default=1, help="stacked layers of each cell (sg.torch.RNN when above 1; default 1)"
    )
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (default 0.01)")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping (default 1)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=50, help="steps between test evaluations (default 50)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"write the table to OUT.md and the plot to OUT.png (default {DEFAULT_OUT}, under the working directory)",
    )
    parser.add_argument("--timing", action="store_true", help="also time one epoch of the lstm against nn.LSTM")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for PyTorch and for OpenBLAS in symgate's kernels (default: their defaults)",
    )
    args = parser.parse_args(argv)
    if args.length < 2 or min(args.steps, args.batch, args.hidden, args.layers, args.eval_every, args.threads or 1) < 1:
        parser.error(
            "--length must be at least 2 and --steps, --batch, --hidden, --layers, --eval-every, --threads positive"
        )
    return args


def main(argv: Sequence[str] | None = None) -> list[Result]:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        # Read when OpenBLAS is loaded, with the first kernel; a value already set is kept.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    try:
        cells = [sg.cells.resolve(c) for c in (args.cell or DEFAULT_CELLS)]
    except (sg.SymgateError, OSError) as err:
        raise SystemExit(f"long_range.py: {err}") from err
    print(f"adding problem, T = {args.length}: baseline MSE {BASELINE:.3f} (always predict 1)")
    results = [train(cell, args) for cell in cells]
    timing = time_epoch(args) if args.timing else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = table(results, args, timing)
    args.out.with_suffix(".md").write_text(text)
    print("\n" + text)
    print(f"table: {args.out.with_suffix('.md')}")
    if plot(results, args, args.out.with_suffix(".png")):
        print(f"plot: {args.out.with_suffix('.png')}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
