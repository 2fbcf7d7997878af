"""The pipeline end to end: a cell -> generated C -> a built, cached :class:`~symgate.runtime.kernel.Kernel`."""

from __future__ import annotations

import os

from .codegen.lower import plan_kernel
from .codegen.render import KernelSource, render, templates_digest
from .dtypes import dtype as dtype_of
from .dtypes import dtype_name
from .frontend.cell import Cell
from .frontend.cells import cell_argument
from .frontend.limits import guarded
from .jit.cache import lookup
from .jit.compiler import cache_key, compile_entry
from .runtime.kernel import Kernel
from .symbolic.derive import derive
from .symbolic.ranges import check_numbers


def generate(cell: Cell | str | os.PathLike, dtype: object = "float64") -> KernelSource:
    """The C source, header and interface of a cell's kernels (derive, plan, render).

    ``cell`` is a :class:`Cell`, a built-in cell's name or a ``.cell`` path, as for :func:`build`.
    """
    cell, dtype = cell_argument(cell), dtype_name(dtype)
    with guarded("derive and plan"):
        derivation = derive(cell)
        check_numbers(cell, dtype, derivation if dtype_of(dtype).real else None)  # complex: forward only
        return render(cell, derivation, plan_kernel(cell, derivation), dtype)


def build(cell: Cell | str | os.PathLike, dtype: object = "float64") -> Kernel:
    """The compiled kernels of ``cell`` in ``dtype`` ("float64" or "float32"), from the cache when built before.

    ``cell`` is a :class:`Cell`, a built-in cell's name (``"lstm"``) or the path of a ``.cell`` file;
    ``dtype`` a name, a NumPy type (``np.float32``, ``np.dtype("float32")``) or a PyTorch one.
    float64 is the default of the whole NumPy and C API (``build``, ``generate``, ``gradcheck``,
    ``export``): symgate's point is gradients you can trust, and float64 kernels are the ones the
    gradient check verifies against finite differences. The PyTorch layers (``symgate.torch``)
    follow ``torch.get_default_dtype()`` instead, as the ``nn`` modules they replace do.

    "complex128" builds the forward kernel alone, in ``double _Complex``, for the complex-step
    check (:mod:`symgate.verify.complex_step`).
    """
    cell, dtype = cell_argument(cell), dtype_name(dtype)
    key = cache_key(cell.fingerprint(), dtype, templates_digest())
    entry = lookup(f"{cell.name}_{dtype}", key) or compile_entry(generate(cell, dtype), key)
    return Kernel(cell, dtype, entry)
