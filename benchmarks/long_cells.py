"""How symgate's build time grows with the length of a cell: each stage timed for N one-line equations.

Two families of cells, N equations each (intermediates ``a1 ... a(N-1)`` and the state update):

* ``chain``: many small elementwise intermediates, each used once or twice, the kind of long cell
  a generator or a hand-unrolled recurrence writes. ``a1 = tanh(W @ x + U @ h)``, then in turn
  ``a(i) = sigmoid(a(i-1)) * h``, ``a(i) = tanh(a(i-1)) + a(i-2)``,
  ``a(i) = 0.5*a(i-1) - 0.25*a(i-2)``, ``a(i) = exp(-a(i-1)*a(i-1))``, and
  ``h' = tanh(a(N-1) + h)``: one matrix product per pair of matrices, everything else elementwise.
* ``products``: every other intermediate multiplies the previous one by the same matrix,
  ``a(i) = tanh(V @ a(i-1)) * h``, and the others are ``a(i) = sigmoid(a(i-1)) + a(i-2)``: about
  N/2 products, so N/2 matrix gradients, the shape of a deep stack of layers inside one step.

Stages, each timed alone (in CPU seconds, the compiler's included, which other work on a shared
machine disturbs far less than wall time) in a fresh process per (family, N) so SymPy's caches start cold as in a
user's first build: *parse* (``sg.parse``: syntax and checks), *derive* (``sg.derive``: the
backward pass and its CSE), *plan* (``symbolic.ranges.check_numbers`` and ``codegen.lower.plan_kernel``),
*render* (``codegen.render.render``: the C text) and *compile* (``jit.compiler.compile_entry``:
cffi and the C compiler, into an empty cache directory). The exponent of each stage is the
least-squares slope of log(time) against log(N): 1 is linear, 2 quadratic.

Why: a cell's build time should grow about linearly in its size (issue 19); this measures it, one
stage at a time, so a regression shows where it is. Stages are reached through the modules that
``sg.generate`` strings together, so the script follows those internals.

Usage: ``python benchmarks/long_cells.py`` (N = 300, 600, 1200; ``--sizes 300 600 1200 2400`` for more,
``--families chain``, ``--no-compile`` to skip the C compiler, ``--compile-max`` to compile only the
shorter cells, ``--compile-families chain products`` to compile the ``products`` cells too: by
default they are not, gcc's time on them growing fast). It prints the table and writes it to
its own section of ``benchmarks/RESULTS.md`` (``--output`` for another file), replacing that section
if present, leaving the rest of the file as it was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILIES = ("chain", "products")
STAGES = ("parse", "derive", "plan", "render", "compile")
SIZES = (300, 600, 1200)
SECTION = "long_cells.py"  # its section of RESULTS.md (benchmarks/sections.py)


def chain_line(i: int) -> str:
    """Equation ``i`` (from 2) of the ``chain`` family."""
    a, b = f"a{i - 1}", f"a{i - 2}" if i > 2 else "h"
    return (
        f"a{i} = sigmoid({a}) * h",
        f"a{i} = tanh({a}) + {b}",
        f"a{i} = 0.5*{a} - 0.25*{b}",
        f"a{i} = exp(-{a}*{a})",
    )[i % 4]


def products_line(i: int) -> str:
    """Equation ``i`` (from 2) of the ``products`` family."""
    a, b = f"a{i - 1}", f"a{i - 2}" if i > 2 else "h"
    return f"a{i} = tanh(V @ {a}) * h" if i % 2 else f"a{i} = sigmoid({a}) + {b}"


LINES: dict[str, Callable[[int], str]] = {"chain": chain_line, "products": products_line}


def cell_text(family: str, n: int) -> str:
    """A cell of ``family`` with ``n`` equations (``n - 1`` intermediates and the state update)."""
    lines = ["cell long", "input x: D", "state h: H", "a1 = tanh(W @ x + U @ h)"]
    lines += [LINES[family](i) for i in range(2, n)]
    lines.append(f"h' = tanh(a{n - 1} + h)")
    return "\n".join(lines) + "\n"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the C compiler), user and system."""
    return sum(os.times()[:4])


def time_stages(family: str, n: int, compile_too: bool) -> dict[str, float]:
    """CPU seconds per stage for one cell, in this process."""
    sys.path.insert(0, str(HERE.parent))  # this checkout's symgate, installed or not
    import symgate as sg
    from symgate.codegen.lower import plan_kernel
    from symgate.codegen.render import render, templates_digest
    from symgate.jit.compiler import cache_key, compile_entry
    from symgate.symbolic.ranges import check_numbers

    times, clock = {}, cpu_seconds()

    def lap(stage: str) -> None:
        nonlocal clock
        now = cpu_seconds()
        times[stage], clock = now - clock, now

    cell = sg.parse(cell_text(family, n))
    lap("parse")
    derivation = sg.derive(cell)
    lap("derive")
    check_numbers(cell, "float64", derivation)
    plan = plan_kernel(cell, derivation)
    lap("plan")
    source = render(cell, derivation, plan, "float64")
    lap("render")
    if compile_too:
        compile_entry(source, cache_key(cell.fingerprint(), "float64", templates_digest()))
        lap("compile")
    return times


def measure(family: str, n: int, compile_too: bool) -> dict[str, float]:
    """:func:`time_stages` in a fresh interpreter with an empty kernel cache."""
    with tempfile.TemporaryDirectory(prefix="symgate-long-cells-") as cache:
        command = [sys.executable, __file__, "--one", family, str(n)] + ([] if compile_too else ["--no-compile"])
        env = {**os.environ, "SYMGATE_CACHE_DIR": cache}
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{family} N={n} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def exponent(sizes: Sequence[int], times: Sequence[float]) -> float:
    """The least-squares slope of log(time) against log(size)."""
    xs, ys = [math.log(s) for s in sizes], [math.log(max(t, 1e-9)) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def report(results: dict[str, dict[int, dict[str, float]]], stages: Sequence[str], machine: str) -> str:
    sizes = sorted({n for by_size in results.values() for n in by_size})
    header = ["family", "stage", *(f"N = {n}" for n in sizes), "exponent"]
    rows = []
    for family, by_size in results.items():
        everywhere = [s for s in stages if all(s in by_size.get(n, {}) for n in sizes)]
        for stage in (*stages, "total"):
            picked = everywhere if stage == "total" else [stage]
            times = {
                n: sum(by_size[n][s] for s in picked) for n in sizes if all(s in by_size.get(n, {}) for s in picked)
            }
            if times:
                slope = f"{exponent(list(times), list(times.values())):.2f}" if len(times) > 1 else "—"
                rows.append([family, stage, *(f"{times[n]:.2f} s" if n in times else "—" for n in sizes), slope])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(
        [
            "## Build time against cell length (`benchmarks/long_cells.py`)",
            "",
            machine,
            "",
            "CPU seconds per stage for cells of N one-line equations (float64, each cell in a fresh process, "
            "cold kernel cache); *exponent* is the slope of log(time) against log(N): 1 is linear. "
            "The families and stages are described in the script's docstring; — where a stage was not run; "
            "*total* sums the stages run at every N.",
            "",
            *lines,
        ]
    )


def machine_description(began: float, meter: object) -> str:
    """The machine, software and load, as ``benchmarks/run.py`` reports them."""
    import run
    import torch

    info = run.machine_info(run.jax_version(), torch.get_num_threads())
    info |= {"load_after": run.load_average(), "cpu_others": meter.others(), "wall": time.perf_counter() - began}
    return run.machine_section(info)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of equations")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--no-compile", action="store_true", help="stop after rendering the C")
    parser.add_argument(
        "--compile-max", type=int, default=600, help="compile only cells of at most this many equations (%(default)s)"
    )
    parser.add_argument(
        "--compile-families",
        nargs="+",
        choices=FAMILIES,
        default=["chain"],
        help="the families whose cells are compiled (default: chain; gcc takes minutes on long products cells)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="report (default: %(default)s)")
    parser.add_argument("--one", nargs=2, metavar=("FAMILY", "N"), help=argparse.SUPPRESS)  # one measurement
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(time_stages(args.one[0], int(args.one[1]), not args.no_compile)))
        return 0
    sys.path.insert(0, str(HERE))
    import run
    import sections

    began, meter = time.perf_counter(), run.CpuMeter()
    stages = STAGES[:-1] if args.no_compile else STAGES
    results: dict[str, dict[int, dict[str, float]]] = {}
    for family in args.families:
        for n in args.sizes:
            compile_too = not args.no_compile and family in args.compile_families and n <= args.compile_max
            times = measure(family, n, compile_too)
            results.setdefault(family, {})[n] = times
            print(f"{family} N={n}: " + ", ".join(f"{s} {t:.2f} s" for s, t in times.items()), file=sys.stderr)
    section = report(results, stages, machine_description(began, meter))
    print(section)
    sections.write_section(args.output, SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
