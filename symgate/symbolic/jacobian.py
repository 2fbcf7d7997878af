"""Step Jacobians: how a new state depends on a previous one within one step, as symbols.

``∂s'/∂r``, for a new state ``s'`` and a previous state ``r``, is found by differentiating the
step's equations forwards. Because units mix only through products with matrices (and
reductions), every block has the form

    diag(d) + Σ_k diag(a_k) · M_k · J_k

where ``M_k`` is a parameter matrix (or ``𝟏𝟏ᵀ``, a sum over units broadcast back) and ``J_k``,
of the same form, is the Jacobian of the vector ``M_k`` multiplies. Coefficients are written in
forward values, as the derivation writes them: the LSTM's ``∂c'/∂c`` is ``diag(f)``, the GRU's
``∂h'/∂h`` is ``diag(z)`` plus products through ``U_z``, ``U_h`` and ``U_h · U_r``. The diagonal
is the path gradients take through a step untouched by any matrix: the argument, made explicit,
for why gated cells carry gradients further than a simple RNN (see :mod:`symgate.inspect.flow`).

A matrix state ``S: K x V`` counts as its K·V units laid out row after row (unit ``(i, j)`` at
``i·V + j``), so its blocks have K·V rows or columns, and two more kinds of ``M_k`` appear
(:mod:`symgate.symbolic.operators` lists them): the sample's own matrix (``S``, ``Sᵀ``: ``S @ v``
with respect to ``v``) and Kronecker maps of a matrix's units, ``(I⊗vᵀ)`` (``S @ v`` with respect
to ``S``: ``δS ↦ δS v``), ``(vᵀ⊗I)`` (``S.T @ v``: ``δS ↦ δSᵀ v``), ``(I⊗𝟏)`` and ``(𝟏⊗I)`` (a
vector beside a matrix, as a column, and a row ``vᵀ``), ``(I⊗𝟏ᵀ)`` and ``(𝟏ᵀ⊗I)`` (``rowsum``,
``colsum``). In a matrix's block a coefficient is a matrix expression read as the cell language
reads it: in ``S' = f*S + ...`` the diagonal is ``diag(f)``, f laid along each row. DeltaNet's
``∂S'/∂S`` is ``I + diag(-beta*k) · (𝟏⊗I) · (kᵀ⊗I)``: ``δS ↦ δS - β k kᵀ δS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from ..errors import ArrayError, CellNameError
from ..frontend.cell import Cell, next_name
from ..frontend.functions import (
    PRIME,
    SCALAR,
    AxisReduction,
    CrossUnit,
    Extent,
    MatVec,
    ReduceMean,
    RowSum,
    RowVector,
    SampleMatVec,
    Var,
    dims_of,
    elementwise,
    matrix_axes,
)
from ..frontend.notation import latex_name
from ..verify import reference
from .operators import (
    LATEX,
    UNICODE,
    MatrixProduct,
    Ones,
    Operator,
    Point,
    Style,
    as_columns,
    as_rows,
    axis_sums,
    times_vector,
)


@dataclass(frozen=True)
class Path:
    """``diag(coefficient) · matrix · inner``: one way through a product with a matrix, a reduction or
    a Kronecker map of a matrix's units (:mod:`symgate.symbolic.operators`)."""

    coefficient: sympy.Expr
    matrix: Operator
    inner: LinearMap

    def chains(self) -> list[tuple[str, ...]]:
        """The sequences of maps this path multiplies by, outermost first, as Unicode text."""
        return [(self.matrix.text(UNICODE), *chain) for chain in self.inner.chains()]


@dataclass(frozen=True)
class LinearMap:
    """``diag(diagonal) + Σ paths``: a Jacobian of a quantity of the step with respect to a previous state."""

    diagonal: sympy.Expr = sympy.S.Zero
    paths: tuple[Path, ...] = ()

    @property
    def is_zero(self) -> bool:
        return self.diagonal == 0 and not self.paths

    @property
    def is_identity(self) -> bool:
        return self.diagonal == 1 and not self.paths

    def scaled(self, factor: sympy.Expr) -> LinearMap:
        """``diag(factor) · self``."""
        paths = tuple(Path(p.coefficient * factor, p.matrix, p.inner) for p in self.paths)
        return LinearMap(self.diagonal * factor, paths)

    def __add__(self, other: LinearMap) -> LinearMap:
        """The sum, with paths through the same map to the same inner map merged."""
        merged: dict[tuple[Operator, LinearMap], sympy.Expr] = {}
        for p in (*self.paths, *other.paths):
            key = (p.matrix, p.inner)
            merged[key] = merged.get(key, sympy.S.Zero) + p.coefficient
        paths = tuple(Path(c, m, inner) for (m, inner), c in merged.items() if c != 0)
        return LinearMap(self.diagonal + other.diagonal, paths)

    def simplified(self) -> LinearMap:
        """Every coefficient factored, so a sum of paths reads as one product where it can."""
        paths = tuple(Path(_simplify(p.coefficient), p.matrix, p.inner.simplified()) for p in self.paths)
        return LinearMap(_simplify(self.diagonal), paths)

    def chains(self) -> list[tuple[str, ...]]:
        """The sequences of maps the map multiplies by; ``()`` stands for the diagonal."""
        return ([()] if self.diagonal != 0 else []) + [c for p in self.paths for c in p.chains()]

    def terms(self, style: Style | None = None) -> list[str]:
        """The summands as text, in Unicode (``diag(f) · U_f``) or in another :class:`Style`."""
        style = style or UNICODE
        terms = []
        if self.diagonal != 0:
            terms.append("I" if self.diagonal == 1 else style.diag.format(style.expr(self.diagonal)))
        for p in self.paths:
            matrix = p.matrix.text(style)
            text = matrix if p.coefficient == 1 else style.diag.format(style.expr(p.coefficient)) + style.dot + matrix
            if not p.inner.is_identity:
                inner = p.inner.terms(style)
                text += style.dot + (inner[0] if len(inner) == 1 else style.parens.format(" + ".join(inner)))
            terms.append(text)
        return terms

    def evaluate(self, point: Point, size: str, cols: int) -> np.ndarray:
        """The map's numbers, ``(..., units, cols)``, for a quantity of ``size`` (``units`` of them)."""
        units = point.units(size)
        result = np.zeros((units, cols)) if self.diagonal == 0 else point.column(self.diagonal, size) * np.eye(cols)
        for p in self.paths:
            through = p.matrix.apply(p.inner.evaluate(point, p.matrix.source, cols), point)
            result = result + point.column(p.coefficient, size) * through
        return np.broadcast_to(result, (*result.shape[:-2], units, cols))


IDENTITY = LinearMap(sympy.S.One)
ZERO = LinearMap()


@dataclass(frozen=True)
class StepJacobian:
    """``∂new/∂old`` over one step of ``cell``, a ``rows × cols`` block (sizes as dimension names).

    ``map`` holds it as ``diag(d) + Σ diag(a_k) · M_k · J_k``; ``structure`` says which of
    zero, identity, diagonal, diagonal plus products or products only it is, naming the matrices.
    A matrix state's block has its K·V units (``title`` says ``K·V``; ``rows`` and ``cols`` are the
    states' sizes, ``K x V``).
    """

    cell: Cell
    new: str
    old: str
    map: LinearMap

    @property
    def rows(self) -> str:
        return self.cell.states[self.new.removesuffix(PRIME)]

    @property
    def cols(self) -> str:
        return self.cell.states[self.old]

    @property
    def diagonal(self) -> sympy.Expr:
        """The coefficient of the diagonal part (0 when there is none)."""
        return self.map.diagonal

    @property
    def structure(self) -> str:
        """``diagonal``, ``diagonal plus products through U_z, U_h·U_r``, ``products through ...``.

        The diagonal of a block from a per-sample scalar to a vector or matrix is a ``column``.
        """
        if self.map.is_zero:
            return "zero"
        if self.map.is_identity:
            return "identity"
        through = ", ".join("·".join(chain) for chain in self.map.chains() if chain)
        if self.map.diagonal == 0:
            return f"products through {through}"
        diagonal = "column" if self.cols == SCALAR != self.rows else "diagonal"
        return diagonal if not through else f"{diagonal} plus products through {through}"

    def title(self) -> str:
        return f"∂{self.new}/∂{self.old} ({_units_text(self.rows)} × {_units_text(self.cols)}): {self.structure}"

    def text(self) -> str:
        """The block as Unicode math, one summand a line."""
        terms = self.map.terms() or ["0"]
        return "\n".join([self.title(), *(("    " if i == 0 else "  + ") + t for i, t in enumerate(terms))])

    def latex(self) -> str:
        """The block as one LaTeX equation."""
        body = " + ".join(self.map.terms(LATEX)) or "0"
        return rf"\frac{{\partial {latex_name(self.new)}}}{{\partial {latex_name(self.old)}}} = {body}"

    def evaluate(
        self,
        params: Mapping[str, np.ndarray],
        state: Mapping[str, np.ndarray],
        inputs: Mapping[str, np.ndarray],
    ) -> np.ndarray:
        """The block's numbers at a point: (B, rows, cols) for states and inputs of shape (B, size),
        a matrix state (B, K, V) and its K·V units row after row.

        The forward values the coefficients name are computed from the cell's equations by the
        NumPy reference, independently of the generated C.
        """
        cell = self.cell
        for kind, given, needed in (
            ("params", params, [p.name for p in cell.params]),
            ("state", state, list(cell.states)),
            ("inputs", inputs, list(cell.inputs)),
        ):
            missing = [name for name in needed if name not in given]
            if missing:
                raise ArrayError(f"evaluating ∂{self.new}/∂{self.old} of cell {cell.name}: {kind} lacks {missing}")
        point = _point(cell, {**params, **state, **inputs})
        batch = np.shape(next(iter(state.values())))[0]
        rows, cols = point.units(self.rows), point.units(self.cols)
        block = self.map.evaluate(point, self.rows, cols)
        return np.broadcast_to(block, (batch, rows, cols)).copy()

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __str__(self) -> str:
        return self.text()


def step_jacobian(cell: Cell, new: str, old: str) -> StepJacobian:
    """``∂new/∂old`` over one step: ``new`` a new state (``"c'"``, or ``"c"``), ``old`` a previous one."""
    new_state = _state(cell, new.removesuffix(PRIME), "new_state")
    old_state = _state(cell, old, "old_state")
    differentiation = _Differentiation(cell, {old_state: IDENTITY})
    for eq in cell.equations:
        differentiation.maps[eq.target.name] = differentiation.of(eq.expr, cell.sizes[eq.target.name])
    return StepJacobian(cell, next_name(new_state), old_state, differentiation.maps[next_name(new_state)].simplified())


def step_jacobians(cell: Cell) -> list[StepJacobian]:
    """Every block ``∂s'/∂r`` of the step, new states in the outer loop."""
    return [step_jacobian(cell, s, r) for s in cell.states for r in cell.states]


def _state(cell: Cell, name: str, role: str) -> str:
    if name in cell.states:
        return name
    states = ", ".join(cell.states)
    raise CellNameError(
        f"{role} {name!r} is not a state of cell {cell.name}; its states are {states}", symbol=name, source=cell.source
    )


class _Differentiation:
    """The Jacobians of a step's quantities with respect to one previous state, equation by equation.

    ``maps`` holds those found so far, by name; coefficients are written in the step's own values
    (a derivative such as ``sigmoid(a)*(1 - sigmoid(a))`` reads ``f*(1 - f)``).
    """

    def __init__(self, cell: Cell, maps: dict[str, LinearMap]) -> None:
        self.cell = cell
        self.maps = maps
        self.values = {e.expr: e.target for e in cell.equations if not e.expr.is_Atom}
        self.values = {expr: name for expr, name in self.values.items() if not isinstance(expr, CrossUnit)}

    def of(self, expr: sympy.Expr, size: str) -> LinearMap:
        """The Jacobian of ``expr``, a quantity of ``size``, from the Jacobians of what it reads."""
        flat, back = elementwise(expr)
        total = ZERO
        for atom in sorted(flat.free_symbols, key=sympy.default_sort_key):
            inner = self._placed(back.get(atom, atom), size)
            if not inner.is_zero:
                total = total + inner.scaled(flat.diff(atom).xreplace(back).xreplace(self.values))
        return total

    def _placed(self, node: sympy.Expr, size: str) -> LinearMap:
        """The Jacobian of ``node`` (a name or a node that mixes units) as it stands in an expression
        of ``size``: beside a matrix, a vector is laid along the rows and a row ``vᵀ`` down the columns."""
        if isinstance(node, CrossUnit):
            inner = self._through(node)
        else:
            inner = self.maps.get(node.name, ZERO) if isinstance(node, Var) else ZERO
        if inner.is_zero or matrix_axes(size) is None:
            return inner
        node_size = self._size(node)
        if node_size == SCALAR or matrix_axes(node_size):
            return inner
        return self._path(as_rows(size) if isinstance(node, RowVector) else as_columns(size), inner)

    def _through(self, node: CrossUnit) -> LinearMap:
        """The Jacobian of a node that mixes units: a product, a reduction or a row."""
        if isinstance(node, RowVector):
            return self.of(node.vector, self._size(node.vector))
        if isinstance(node, MatVec):
            vector = self.of(node.vector, self._size(node.vector))
            return self._path(MatrixProduct(node.matrix.name, node.transposed, self._size(node.vector)), vector)
        if isinstance(node, SampleMatVec):
            matrix_size = self.cell.sizes[node.matrix.name]
            vector = self.of(node.vector, self._size(node.vector))
            matrix = self.maps.get(node.matrix.name, ZERO)
            via_vector = self._path(MatrixProduct(node.matrix.name, node.transposed, self._size(node.vector)), vector)
            return via_vector + self._path(times_vector(matrix_size, node.vector, node.transposed), matrix)
        size = self._size(node.vector)
        inner = self.of(node.vector, size)
        if isinstance(node, AxisReduction):
            return self._path(axis_sums(size, isinstance(node, RowSum)), inner)
        mean = isinstance(node, ReduceMean) and size != SCALAR
        scale = 1 / sympy.Mul(*(Extent(d) for d in dims_of(size))) if mean else sympy.S.One
        return self._path(Ones(size), inner).scaled(scale)

    def _path(self, operator: Operator, inner: LinearMap) -> LinearMap:
        """``operator · inner`` as one path, zero when ``inner`` is; a factor of ``inner`` that is the
        same for every unit (a number, a constant, a per-sample scalar) is moved in front of the
        operator, which it commutes with (``diag(-1) · (kᵀ⊗I)`` inside a path reads ``(kᵀ⊗I)``, the
        ``-1`` outside)."""
        if inner.is_zero:
            return ZERO
        if not inner.paths and self._is_scalar(inner.diagonal):
            return LinearMap(paths=(Path(inner.diagonal, operator, IDENTITY),))
        if inner.diagonal == 0 and len(inner.paths) == 1 and self._is_scalar(inner.paths[0].coefficient):
            (first,) = inner.paths
            bare = LinearMap(paths=(Path(sympy.S.One, first.matrix, first.inner),))
            return LinearMap(paths=(Path(first.coefficient, operator, bare),))
        return LinearMap(paths=(Path(sympy.S.One, operator, inner),))

    def _is_scalar(self, expr: sympy.Expr) -> bool:
        """Whether ``expr`` has one value per sample, the same for every unit."""
        return all(isinstance(s, Extent) or self._size(s) == SCALAR for s in expr.free_symbols)

    def _size(self, node: sympy.Expr) -> str:
        """The size of a name or of the value of a node that mixes units (a row's: its vector's)."""
        cell = self.cell
        if isinstance(node, RowVector):
            return self._size(node.vector)
        if isinstance(node, MatVec):
            return cell.param(node.matrix.name).shape[1 if node.transposed else 0]
        if isinstance(node, SampleMatVec | AxisReduction):
            rows, cols = matrix_axes(cell.sizes[(node.matrix if isinstance(node, SampleMatVec) else node.vector).name])
            first = node.transposed if isinstance(node, SampleMatVec) else not isinstance(node, RowSum)
            return cols if first else rows
        if isinstance(node, Var) and node.name in cell.sizes:
            return cell.sizes[node.name]
        if isinstance(node, Var) and any(p.name == node.name for p in cell.params):
            return cell.param(node.name).shape[0]
        return SCALAR  # a reduction, a constant


def _point(cell: Cell, given: dict[str, np.ndarray]) -> Point:
    """The forward values of the step from its states, inputs and parameters, by the NumPy reference
    (independently of the generated C), with every dimension's extent."""
    values: dict[str, np.ndarray] = {**given, **{n: float(v) for n, v in cell.constants.items()}}
    extents: dict[str, int] = {}
    per_sample = [(name, dims_of(cell.sizes[name]), ("B",)) for name in (*cell.states, *cell.inputs)]
    for name, dims, lead in [*per_sample, *((p.name, p.shape, ()) for p in cell.params)]:
        shape = np.shape(values[name])
        if len(shape) < len(lead) + len(dims):
            raise ArrayError(f"cell {cell.name}: {name} has shape {shape}, not ({', '.join((*lead, *dims))})")
        for dim, extent in zip(dims, shape[len(shape) - len(dims) :], strict=True):
            extents.setdefault(dim, extent)
    values |= {Extent(dim).name: float(extent) for dim, extent in extents.items()}
    matrices = frozenset(name for name, size in cell.sizes.items() if matrix_axes(size))
    for eq in cell.equations:
        target = eq.target.name
        values[target] = reference.evaluate(eq.expr, values, matrices, column=target in matrices)
    return Point(values, matrices, extents)


def _units_text(size: str) -> str:
    """A size as a count of units: ``H``, or ``K·V`` for a matrix ``K x V``."""
    return "·".join(dims_of(size))


def _simplify(expr: sympy.Expr) -> sympy.Expr:
    return sympy.factor_terms(expr)
