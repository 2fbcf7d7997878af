"""The pipeline end to end: a cell -> generated C -> a built, cached :class:`~symgate.kernel.Kernel`."""

from __future__ import annotations

from .cell import Cell
from .compiler import cache_key, compile_entry, lookup
from .derive import derive
from .kernel import Kernel
from .limits import guarded
from .lower import plan_kernel
from .ranges import check_numbers
from .render import KernelSource, render, templates_digest


def generate(cell: Cell, dtype: str = "float64") -> KernelSource:
    """The C source, header and interface of a cell's kernels (derive, plan, render)."""
    with guarded("derive and plan"):
        derivation = derive(cell)
        check_numbers(cell, dtype, derivation if dtype != "complex128" else None)  # complex: forward only
        return render(cell, derivation, plan_kernel(cell, derivation), dtype)


def build(cell: Cell, dtype: str = "float64") -> Kernel:
    """The compiled kernels of ``cell`` in ``dtype`` ("float64" or "float32"), from the cache when built before.

    "complex128" builds the forward kernel alone, in ``double _Complex``, for the complex-step
    check (:mod:`symgate.complex_step`).
    """
    if dtype not in ("float64", "float32", "complex128"):
        raise ValueError(f"dtype must be 'float64', 'float32' or 'complex128', not {dtype!r}")
    key = cache_key(cell.fingerprint(), dtype, templates_digest())
    entry = lookup(f"{cell.name}_{dtype}", key) or compile_entry(generate(cell, dtype), key)
    return Kernel(cell, dtype, entry)
