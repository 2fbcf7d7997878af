"""What every stage of rendering one cell shares: the cell, its plan, the target and the C names
handed out so far."""

from __future__ import annotations

from collections.abc import Iterable

from ..dtypes import dtype as dtype_of
from ..frontend.cell import Cell
from ..frontend.functions import SCALAR, matrix_axes
from ..symbolic.derive import Derivation
from .ccode import Code, c, join
from .cnames import CNames
from .lower import KernelPlan
from .target import PYTHON, Target


class Scope:
    """One cell in one dtype for one target, while it is rendered.

    ``names`` hands out every C identifier (one per kind and name, in order of first use, so the
    order of rendering fixes the text); ``dim_c`` is the C name of each dimension (``1`` for a per-sample scalar,
    ``K * V`` for the K·V units of a per-sample matrix, whose sizes ``matrix_extents`` names).
    """

    def __init__(
        self, cell: Cell, derivation: Derivation, plan: KernelPlan, dtype: str, target: Target = PYTHON
    ) -> None:
        self.cell, self.derivation, self.plan, self.dtype, self.target = cell, derivation, plan, dtype, target
        self.type = dtype_of(dtype)
        self.accelerated = target.accelerated(dtype)
        self.real = self.type.c_type
        self.names = CNames()
        self.prefix = f"sg_{cell.name}_{dtype}"
        self.dim_c = {d: self.names("dim", d) for d in cell.dims} | {SCALAR: "1"}
        matrices = {size for size in [*cell.sizes.values(), *derivation.sizes.values()] if matrix_axes(size)}
        self.matrix_extents = {
            size: (self.dim_c[rows], self.dim_c[cols])
            for size in sorted(matrices)
            for rows, cols in [matrix_axes(size)]
        }
        self.dim_c |= {size: f"{rows} * {cols}" for size, (rows, cols) in self.matrix_extents.items()}
        self.state_adjoints = {v.name: s for s, v in derivation.state_adjoints.items()}
        self.input_adjoints = {v.name: x for x, v in derivation.input_adjoints.items()}
        self.output_seeds = {derivation.seeds[y].name: y for y in cell.outputs}

    def with_extents(self, names: Iterable[str]) -> set[str]:
        """``names`` and, for each matrix extent among them (``K * V``, a matrix's row width and
        units), the two sizes it multiplies: what a pass must declare for a use of them."""
        parts = {self.dim_c[size]: pair for size, pair in self.matrix_extents.items()}
        return set(names).union(*(parts.get(name, ()) for name in names))

    @property
    def fixed(self) -> list[str]:
        """The dimensions whose sizes the target fixes, in the cell's order."""
        return [d for d in self.cell.dims if d in self.target.fixed_sizes]

    @property
    def runtime(self) -> list[str]:
        """The C names of the sizes passed as arguments (after ``T`` and ``B``)."""
        return [self.dim_c[d] for d in self.cell.dims if d not in self.target.fixed_sizes]

    def int_sum(self, dims: Iterable[str]) -> Code:
        """``2 * H + D``: a sum of dimensions as a C int expression."""
        return join(
            (c(f"{n} * {{d}}" if n > 1 else "{d}", d=self.dim_c[d]) for d, n in _counts(dims).items()), " + "
        ) or c("0")

    def size_sum(self, dims: Iterable[str]) -> Code:
        """``2 * (size_t)H + (size_t)D``: the same sum in size_t, for buffer sizes."""
        terms = (
            c(f"{n} * (size_t){{d}}" if n > 1 else "(size_t){d}", d=self.dim_c[d])
            for d, n in _counts(dims).items()
            if n
        )
        return join(terms, " + ") or c("0")


def _counts(dims: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in dims:
        counts[d] = counts.get(d, 0) + 1
    return counts
