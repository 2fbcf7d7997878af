"""Size inference: every vector and parameter gets one of the cell's named dimensions.

Sizes are unknowns joined by the equations: operands of ``+ - * /`` and function arguments share
a size (numeric constants fit any size); in ``W @ v``, W's columns are v's size and its rows are
the size the product meets. Unknowns are merged with a union-find; the declared sizes of inputs
and states are the only constants, so a conflict is two different declared sizes meeting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy

from .errors import DimensionError
from .functions import SCALAR, MatVec, Reduction, Var
from .notation import cell_text


@dataclass
class SizeUnknowns:
    """Union-find over size unknowns, each unknown resolved to at most one dimension name."""

    parent: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)

    def new(self, key: str, dim: str | None = None) -> str:
        self.parent.setdefault(key, key)
        if dim is not None:
            self.fixed[self.find(key)] = dim
        return key

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def resolved(self, key: str) -> str | None:
        return self.fixed.get(self.find(key))

    def join(self, a: str, b: str) -> bool:
        """Merge two unknowns; False if they were fixed to different dimensions."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        da, db = self.fixed.get(ra), self.fixed.get(rb)
        if da is not None and db is not None and da != db:
            return False
        self.parent[rb] = ra
        if da is None and db is not None:
            self.fixed[ra] = db
        return True


@dataclass
class SizeInference:
    """Infers sizes equation by equation; ``unknown_of`` names the unknown of a vector symbol."""

    unknowns: SizeUnknowns
    unknown_of: Callable[[Var], str | None]
    matrix_unknowns: Callable[[Var], tuple[str, str]]
    raise_at: Callable[[str, str], DimensionError]

    def size_of(self, expr: sympy.Expr) -> str | None:
        """The unknown of ``expr``'s size, or None for a constant that fits any size.

        A reduction's per-sample value has the size ``SCALAR`` and, like a constant, meets any size.
        """
        if isinstance(expr, MatVec):
            rows, cols = self.matrix_unknowns(expr.matrix)
            vector = self.size_of(expr.vector)
            if vector is None:
                raise self.raise_at(
                    f"`{cell_text(expr)}` multiplies {expr.matrix.name} with a constant; "
                    "the right side of '@' must be a vector",
                    expr.matrix.name,
                )
            self._join(cols, vector, expr, expr.matrix, expr.vector, "has columns of size")
            return rows
        if isinstance(expr, Reduction):
            self.size_of(expr.vector)
            return self.unknowns.new(SCALAR, SCALAR)
        if isinstance(expr, Var):
            return self.unknown_of(expr)
        if expr.is_number:
            return None
        if isinstance(expr, sympy.Pow):
            return self.size_of(expr.base)
        sized = [(arg, self.size_of(arg)) for arg in expr.args]
        scalar = any(unknown is not None and self.unknowns.resolved(unknown) == SCALAR for _, unknown in sized)
        sized = [(a, u) for a, u in sized if u is not None and self.unknowns.resolved(u) != SCALAR]
        for (left, left_size), (right, right_size) in itertools.pairwise(sized):
            self._join(left_size, right_size, expr, left, right, "has size")
        if sized:
            return sized[0][1]
        return self.unknowns.new(SCALAR, SCALAR) if scalar else None

    def _join(self, a: str, b: str, whole: sympy.Expr, left: sympy.Expr, right: sympy.Expr, how: str) -> None:
        if self.unknowns.join(a, b):
            return
        da, db = self.unknowns.resolved(a), self.unknowns.resolved(b)
        symbol = right.name if isinstance(right, Var) else cell_text(right)
        raise self.raise_at(
            f"size conflict in `{cell_text(whole)}`: `{cell_text(left)}` {how} {da} "
            f"but `{cell_text(right)}` has size {db}",
            symbol,
        )
