"""Long cells: the work of building one grows about linearly in its length (issue 19, point 7).

The guard counts work instead of timing it, so a busy machine cannot fail it: the Python function
calls made anywhere (symgate's and SymPy's) and the lines run in symgate's own code (a loop inside a
comprehension counts once per turn), from the cell text to the rendered C, for a cell of N
equations and one of 2N. Linear work doubles; a loop over the equations inside a loop over the
equations quadruples its share. The cells are those of ``benchmarks/long_cells.py``, which times
the same stages and the C compiler.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import symgate as sg
from symgate.codegen.lower import plan_kernel
from symgate.codegen.render import render

ROOT = Path(__file__).parents[1]
PACKAGE = str(ROOT / "symgate")


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("long_cells", ROOT / "benchmarks" / "long_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


long_cells = _benchmark_module()


def work(fn: Callable[[], object]) -> int:
    """Python calls made anywhere plus lines run in symgate's code while ``fn`` runs."""
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        count += 1
        if frame.f_code.co_filename.startswith(PACKAGE):
            return local
        return None

    def local(frame, event, arg):
        nonlocal count
        count += event == "line"
        return local

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


def stage_work(text: str) -> dict[str, int]:
    """The work of each stage from text to C (the derivation is what SymPy's cache keeps warm least)."""
    found: dict[str, object] = {}
    counts = {
        "parse": work(lambda: found.setdefault("cell", sg.parse(text))),
        "derive": work(lambda: found.setdefault("derivation", sg.derive(found["cell"]))),
    }
    cell, derivation = found["cell"], found["derivation"]
    counts["plan"] = work(lambda: found.setdefault("plan", plan_kernel(cell, derivation)))
    counts["render"] = work(lambda: render(cell, derivation, found["plan"], "float64"))
    return counts


def test_the_work_of_each_stage_doubles_when_the_cell_does():
    family, n = "products", 80  # the family whose products and levels grow with N; chain's work is a subset
    sg.derive(sg.parse(long_cells.cell_text(family, 8)))  # SymPy's one-off work (imports, caches) done
    small = stage_work(long_cells.cell_text(family, n))
    large = stage_work(long_cells.cell_text(family, 2 * n))
    ratios = {stage: large[stage] / small[stage] for stage in small}
    assert all(r < 2.2 for r in ratios.values()), f"work for 2N equations / work for N: {ratios}"


def test_a_cell_of_200_equations_builds_and_its_gradients_check():
    cell = sg.parse(long_cells.cell_text("chain", 200))
    assert len(cell.equations) == 200
    report = sg.gradcheck(cell, {"D": 3, "H": 2}, steps=2, batch=1, taylor_check=False)
    assert report.ok, report
    assert np.isfinite(report.max_rel_error)
