"""Time one cell's forward + backward in two checkouts of symgate, back to back.

This shared machine's speed drifts by up to a third within an hour, so a change's effect on speed
is measured as an A/B pair: each checkout is timed in a fresh process of its own, the two taking
turns for several rounds, and the table shows every round's medians side by side. Only NumPy and
the symgate of each checkout are used.

Usage::

    git worktree add /tmp/before HEAD~1
    python benchmarks/compare_trees.py /tmp/before . --cell lstm_pytorch --sizes 1,16,32,100

Each checkout is a directory holding a ``symgate`` package; it is put first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def time_one(tree: Path, cell: str, sizes: tuple[int, int, int, int], dtype: str, calls: int) -> float:
    """Median seconds of ``calls`` forward + backward passes (after warm-up) of the symgate in ``tree``."""
    sys.path.insert(0, str(tree))
    import numpy as np

    import symgate as sg

    if not sg.__file__ or not Path(sg.__file__).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"{tree} holds no symgate package (imported {sg.__file__})")
    batch, inputs, hidden, steps = sizes
    kernel = sg.build(sg.cells.get(cell), dtype=dtype)
    params = kernel.init_params({"D": inputs, "H": hidden})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    init = {s: np.zeros((batch, hidden), dtype) for s in kernel.cell.states}
    loss_gradient = {"h": rng.standard_normal((steps, batch, hidden)).astype(dtype)}

    def forward_backward() -> None:
        run = kernel.forward(x, params, init)
        run.states["h"]  # read, as a training loop reads it for its loss
        kernel.backward(run, loss_gradient)

    for _ in range(max(calls // 10, 2)):
        forward_backward()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        forward_backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the checkout to compare against")
    parser.add_argument("after", type=Path, help="the checkout with the change")
    parser.add_argument("--cell", default="lstm_pytorch", help="a built-in cell (default: %(default)s)")
    parser.add_argument("--sizes", default="1,16,32,100", help="B,D,H,T (default: %(default)s, the tiny config)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--rounds", type=int, default=3, help="turns each checkout takes (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=1000, help="timed calls a turn (default: %(default)s)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # time ``after`` alone
    args = parser.parse_args(argv)
    given = args.sizes
    try:
        args.sizes = tuple(int(n) for n in given.split(","))
    except ValueError:
        args.sizes = ()
    if len(args.sizes) != 4 or min(args.sizes) < 1:
        parser.error(f"--sizes must be four positive integers B,D,H,T, not {given!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(time_one(args.after, args.cell, args.sizes, args.dtype, args.calls))
        return
    shown = ",".join(map(str, args.sizes))
    print(f"{args.cell} {args.dtype}, (B, D, H, T) = ({shown}), forward + backward, median of {args.calls} calls")
    print(f"| round | {args.before} | {args.after} |\n|---|---:|---:|")
    for turn in range(1, args.rounds + 1):
        medians = []
        for tree in (args.before, args.after):
            child = [sys.executable, __file__, str(tree), str(tree), "--child", "--cell", args.cell]
            child += ["--sizes", shown, "--dtype", args.dtype, "--calls", str(args.calls)]
            done = subprocess.run(child, capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"timing {tree} failed:\n{done.stderr}")
            medians.append(float(done.stdout.split()[-1]))
        print(f"| {turn} | {medians[0] * 1e6:.1f} µs | {medians[1] * 1e6:.1f} µs |")


if __name__ == "__main__":
    main()
