"""The linear maps a step Jacobian's paths multiply by, how they are written and how they act on numbers.

A path of a Jacobian (:mod:`symgate.symbolic.jacobian`) goes through one of three kinds of map:

- :class:`MatrixProduct`: a parameter matrix (``U_f``, ``Wᵀ`` for ``W.T @ v``) or a matrix of the
  sample's own (``S``, ``Sᵀ``: the Jacobian of ``S @ v`` and ``S.T @ v`` with respect to ``v``);
- :class:`Ones`: ``𝟏𝟏ᵀ``, a sum over all units broadcast back (``sum``, ``mean``, of a vector or
  of a matrix);
- :class:`Kronecker`: ``A⊗B``, a map onto or out of a matrix's units. A matrix ``K x V`` is
  flattened row after row (unit ``(i, j)`` at ``i·V + j``), so that ``(A⊗B) vec(X) = vec(A X Bᵀ)``.
  With ``I`` an identity and ``𝟏`` a column of ones:

  ``(I⊗𝟏)`` a vector beside a matrix, a column: ``δv ↦ δv 𝟏ᵀ``, laid along every row;
  ``(𝟏⊗I)`` a row, ``vᵀ``: ``δv ↦ 𝟏 δvᵀ``, laid down every column;
  ``(I⊗𝟏ᵀ)`` ``rowsum``: ``δS ↦ δS 𝟏``; ``(𝟏ᵀ⊗I)`` ``colsum``: ``δS ↦ δSᵀ 𝟏``;
  ``(I⊗vᵀ)`` ``S @ v`` with respect to ``S``: ``δS ↦ δS v``;
  ``(vᵀ⊗I)`` ``S.T @ v`` with respect to ``S``: ``δS ↦ δSᵀ v``.

A :class:`Style` says how the maps (and the coefficients around them) are written: Unicode or LaTeX.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import sympy

from ..frontend.functions import SCALAR, dims_of, matrix_axes
from ..frontend.notation import latex, latex_name, math_text
from ..verify import reference


@dataclass(frozen=True)
class Style:
    """How a Jacobian is written: expressions, names, the product sign, diag(·), parentheses and the
    marks of the maps (identity, a column of ones, the transpose, the Kronecker product)."""

    expr: Callable[[sympy.Expr], str]
    name: Callable[[str], str]
    dot: str
    diag: str
    parens: str
    identity: str
    ones: str
    transpose: str
    kron: str


UNICODE = Style(math_text, str, " · ", "diag({})", "({})", "I", "𝟏", "ᵀ", "⊗")
LATEX = Style(
    latex,
    latex_name,
    r" \, ",
    r"\operatorname{{diag}}\left({}\right)",
    r"\left({}\right)",
    "I",
    r"\mathbf{1}",
    r"^{\top}",
    r" \otimes ",
)


@dataclass(frozen=True)
class Point:
    """The forward values of one step, where a Jacobian is evaluated.

    ``values`` holds every name's array (vectors ``(..., size)``, per-sample matrices
    ``(..., rows, cols)``), ``matrices`` the names of the per-sample matrices, ``extents`` the
    number of each dimension.
    """

    values: Mapping[str, np.ndarray]
    matrices: frozenset[str]
    extents: Mapping[str, int]

    def units(self, size: str) -> int:
        """How many units a quantity of this size has (``K·V`` for a matrix ``K x V``)."""
        return math.prod(self.extent(dim) for dim in dims_of(size))

    def extent(self, dim: str) -> int:
        return 1 if dim == SCALAR else self.extents[dim]

    def vector(self, expr: sympy.Expr) -> np.ndarray:
        """A vector's values, ``(..., size)``."""
        return np.asarray(reference.evaluate(expr, self.values, self.matrices))

    def column(self, expr: sympy.Expr, size: str) -> np.ndarray:
        """A coefficient's values as a column, ``(..., units, 1)``, to scale the rows of a block.

        In a matrix's block the coefficient is a matrix expression (a vector in it is a column, as
        the cell language reads it) and is flattened row after row.
        """
        axes = matrix_axes(size)
        value = np.asarray(reference.evaluate(expr, self.values, self.matrices, column=axes is not None))
        if axes is None:
            return value[..., None]
        value = value.reshape((1,) * max(0, 2 - value.ndim) + value.shape)
        rows, cols = (self.extent(dim) for dim in axes)
        lead = value.shape[:-2]
        return np.broadcast_to(value, (*lead, rows, cols)).reshape(*lead, rows * cols, 1)


@dataclass(frozen=True)
class MatrixProduct:
    """A product with a matrix: a parameter's, or the sample's own (a matrix state, its next value),
    transposed for ``W.T @ v``; ``source`` is the size of the vector it multiplies."""

    matrix: str
    transposed: bool
    source: str

    def text(self, style: Style) -> str:
        return style.name(self.matrix) + (style.transpose if self.transposed else "")

    def apply(self, inner: np.ndarray, point: Point) -> np.ndarray:
        matrix = point.values[self.matrix]
        return (np.swapaxes(matrix, -1, -2) if self.transposed else matrix) @ inner


@dataclass(frozen=True)
class Ones:
    """``𝟏𝟏ᵀ``: the sum over the units of a vector or matrix of size ``source``, broadcast back."""

    source: str

    def text(self, style: Style) -> str:
        return style.ones + style.ones + style.transpose

    def apply(self, inner: np.ndarray, point: Point) -> np.ndarray:
        return np.sum(inner, axis=-2, keepdims=True)


@dataclass(frozen=True)
class Factor:
    """One side of a :class:`Kronecker` product, along dimension ``dim``: ``I`` (the axis kept),
    ``𝟏`` (laid along it), ``𝟏ᵀ`` (summed along it) or ``vᵀ`` (contracted with ``vector``)."""

    dim: str
    kind: Literal["identity", "ones", "sum", "row"]
    vector: sympy.Expr = sympy.S.Zero

    def text(self, style: Style) -> str:
        if self.kind == "row":
            written = style.expr(self.vector)
            return (written if self.vector.is_Symbol else style.parens.format(written)) + style.transpose
        return {"identity": style.identity, "ones": style.ones, "sum": style.ones + style.transpose}[self.kind]

    def width(self, point: Point) -> int:
        """The length it takes: one for ``𝟏``, the dimension's for the others."""
        return 1 if self.kind == "ones" else point.extent(self.dim)

    def matrix(self, point: Point) -> np.ndarray:
        """Its numbers, ``(..., out, in)``."""
        n = point.extent(self.dim)
        if self.kind == "row":
            return point.vector(self.vector)[..., None, :]
        return {"identity": np.eye(n), "ones": np.ones((n, 1)), "sum": np.ones((1, n))}[self.kind]


@dataclass(frozen=True)
class Kronecker:
    """``left ⊗ right`` on units laid out row after row: ``vec(X) ↦ vec(left · X · rightᵀ)``, where X
    (``source``, the size of what it maps) has as many rows as ``left`` takes and columns as ``right``."""

    left: Factor
    right: Factor
    source: str

    def text(self, style: Style) -> str:
        return style.parens.format(self.left.text(style) + style.kron + self.right.text(style))

    def apply(self, inner: np.ndarray, point: Point) -> np.ndarray:
        rows, cols = self.left.width(point), self.right.width(point)
        x = inner.reshape(*inner.shape[:-2], rows, cols, inner.shape[-1])
        out = np.einsum("...ia,...jb,...abc->...ijc", self.left.matrix(point), self.right.matrix(point), x)
        return out.reshape(*out.shape[:-3], -1, out.shape[-1])


Operator = MatrixProduct | Ones | Kronecker


def as_columns(size: str) -> Kronecker:
    """``(I⊗𝟏)``: a vector beside a matrix of ``size``, laid along its rows (its value as a column)."""
    rows, cols = matrix_axes(size)
    return Kronecker(Factor(rows, "identity"), Factor(cols, "ones"), rows)


def as_rows(size: str) -> Kronecker:
    """``(𝟏⊗I)``: a row ``vᵀ`` beside a matrix of ``size``, laid down its columns."""
    rows, cols = matrix_axes(size)
    return Kronecker(Factor(rows, "ones"), Factor(cols, "identity"), cols)


def axis_sums(size: str, along_rows: bool) -> Kronecker:
    """``(I⊗𝟏ᵀ)`` for ``rowsum`` of a matrix of ``size``, ``(𝟏ᵀ⊗I)`` for ``colsum``."""
    rows, cols = matrix_axes(size)
    if along_rows:
        return Kronecker(Factor(rows, "identity"), Factor(cols, "sum"), size)
    return Kronecker(Factor(rows, "sum"), Factor(cols, "identity"), size)


def times_vector(size: str, vector: sympy.Expr, transposed: bool) -> Kronecker:
    """``(I⊗vᵀ)``: ``δS ↦ δS v`` for a matrix ``S`` of ``size``; ``(vᵀ⊗I)``, ``δS ↦ δSᵀ v``, when transposed."""
    rows, cols = matrix_axes(size)
    if transposed:
        return Kronecker(Factor(rows, "row", vector), Factor(cols, "identity"), size)
    return Kronecker(Factor(rows, "identity"), Factor(cols, "row", vector), size)


MATRIX_LEGEND = (
    "A matrix state's K·V units are laid out row after row, and (A⊗B) maps X to A X Bᵀ: (I⊗𝟏) lays a",
    "vector along a matrix's rows (a column), (𝟏⊗I) a row vᵀ down its columns, (I⊗𝟏ᵀ) and (𝟏ᵀ⊗I) are",
    "rowsum and colsum, (I⊗vᵀ) is δS ↦ δS v and (vᵀ⊗I) δS ↦ δSᵀ v; M may also be a matrix of the",
    "sample's own (S @ v with respect to v is S).",
)
"""The notation of the Kronecker maps, as ``symgate show --jacobian`` explains it for a cell with a matrix."""
