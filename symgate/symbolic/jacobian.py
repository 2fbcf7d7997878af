"""Step Jacobians: how a new state depends on a previous one within one step, as symbols.

``∂s'/∂r``, for a new state ``s'`` and a previous state ``r``, is found by differentiating the
step's equations forwards. Because units mix only through products with parameter matrices (and
reductions), every block has the form

    diag(d) + Σ_k diag(a_k) · M_k · J_k

where ``M_k`` is a parameter matrix (or ``𝟏𝟏ᵀ``, a sum over units broadcast back) and ``J_k``,
of the same form, is the Jacobian of the vector ``M_k`` multiplies. Coefficients are written in
forward values, as the derivation writes them: the LSTM's ``∂c'/∂c`` is ``diag(f)``, the GRU's
``∂h'/∂h`` is ``diag(z)`` plus products through ``U_z``, ``U_h`` and ``U_h · U_r``. The diagonal
is the path gradients take through a step untouched by any matrix: the argument, made explicit,
for why gated cells carry gradients further than a simple RNN (see :mod:`symgate.inspect.flow`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from ..errors import ArrayError, CellNameError
from ..frontend.cell import Cell, next_name
from ..frontend.functions import (
    PRIME,
    SCALAR,
    Extent,
    MatVec,
    MatVecT,
    ReduceMean,
    Reduction,
    Var,
    cross_unit_nodes,
)
from ..frontend.notation import latex, latex_name, math_text
from ..verify import reference

ONES = "𝟏𝟏ᵀ"
"""The matrix of a reduction: ``sum(v)`` broadcast back over the units is ``𝟏𝟏ᵀ v``."""
TRANSPOSE = "ᵀ"
"""The mark of a path through a transposed parameter matrix (``W.T @ h``): ``Wᵀ``."""


@dataclass(frozen=True)
class Path:
    """``diag(coefficient) · matrix · inner``: one way through a product with a parameter matrix."""

    coefficient: sympy.Expr
    matrix: str
    inner: LinearMap

    def chains(self) -> list[tuple[str, ...]]:
        """The sequences of matrices this path multiplies by, outermost first."""
        return [(self.matrix, *chain) for chain in self.inner.chains()]


@dataclass(frozen=True)
class LinearMap:
    """``diag(diagonal) + Σ paths``: a Jacobian of a vector of the step with respect to a previous state."""

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
        """The sum, with paths through the same matrix to the same inner map merged."""
        merged: dict[tuple[str, LinearMap], sympy.Expr] = {}
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
        """The sequences of matrices the map multiplies by; ``()`` stands for the diagonal."""
        return ([()] if self.diagonal != 0 else []) + [c for p in self.paths for c in p.chains()]

    def terms(self, style: Style | None = None) -> list[str]:
        """The summands as text, in Unicode (``diag(f) · U_f``) or in another :class:`Style`."""
        style = style or UNICODE
        terms = []
        if self.diagonal != 0:
            terms.append("I" if self.diagonal == 1 else style.diag.format(style.expr(self.diagonal)))
        for p in self.paths:
            matrix = style.matrix(p.matrix)
            text = matrix if p.coefficient == 1 else style.diag.format(style.expr(p.coefficient)) + style.dot + matrix
            if not p.inner.is_identity:
                inner = p.inner.terms(style)
                text += style.dot + (inner[0] if len(inner) == 1 else style.parens.format(" + ".join(inner)))
            terms.append(text)
        return terms

    def evaluate(self, values: Mapping[str, np.ndarray], cols: int) -> np.ndarray:
        """The map's numbers, (..., rows, cols); ``values`` holds every forward value it names."""
        result = 0.0 if self.diagonal == 0 else _column(self.diagonal, values) * np.eye(cols)
        for p in self.paths:
            inner = p.inner.evaluate(values, cols)
            # a reduction sums the rows of the inner block and broadcasts the sum back
            through = np.sum(inner, axis=-2, keepdims=True) if p.matrix == ONES else _matrix(p.matrix, values) @ inner
            result = result + _column(p.coefficient, values) * through
        return result


@dataclass(frozen=True)
class Style:
    """How a Jacobian is written: expressions, matrix names, the product sign, diag(·) and parentheses."""

    expr: Callable[[sympy.Expr], str]
    matrix: Callable[[str], str]
    dot: str
    diag: str
    parens: str


UNICODE = Style(math_text, str, " · ", "diag({})", "({})")
LATEX = Style(
    latex,
    lambda m: r"\mathbf{1}\mathbf{1}^{\top}" if m == ONES else _latex_matrix(m),
    r" \, ",
    r"\operatorname{{diag}}\left({}\right)",
    r"\left({}\right)",
)

IDENTITY = LinearMap(sympy.S.One)
ZERO = LinearMap()


@dataclass(frozen=True)
class StepJacobian:
    """``∂new/∂old`` over one step of ``cell``, a ``rows × cols`` block (sizes as dimension names).

    ``map`` holds it as ``diag(d) + Σ diag(a_k) · M_k · J_k``; ``structure`` says which of
    zero, identity, diagonal, diagonal plus products or products only it is, naming the matrices.
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
        """``diagonal``, ``diagonal plus products through U_z, U_h·U_r``, ``products through ...``."""
        if self.map.is_zero:
            return "zero"
        if self.map.is_identity:
            return "identity"
        through = ", ".join("·".join(chain) for chain in self.map.chains() if chain)
        if self.map.diagonal == 0:
            return f"products through {through}"
        return "diagonal" if not through else f"diagonal plus products through {through}"

    def title(self) -> str:
        return f"∂{self.new}/∂{self.old} ({self.rows} × {self.cols}): {self.structure}"

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
        """The block's numbers at a point: (B, rows, cols) for states and inputs of shape (B, size).

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
        values: dict[str, np.ndarray] = {**params, **state, **inputs}
        values |= {n: float(v) for n, v in cell.constants.items()}
        sizes = {dim: np.shape(values[name])[-1] for name, dim in (*cell.states.items(), *cell.inputs.items())}
        values |= {Extent(dim).name: float(size) for dim, size in sizes.items()}
        for eq in cell.equations:
            values[eq.target.name] = reference.evaluate(eq.expr, values)
        batch = np.shape(next(iter(state.values())))[0]
        block = self.map.evaluate(values, sizes[self.cols])
        return np.broadcast_to(block, (batch, sizes[self.rows], sizes[self.cols])).copy()

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __str__(self) -> str:
        return self.text()


def step_jacobian(cell: Cell, new: str, old: str) -> StepJacobian:
    """``∂new/∂old`` over one step: ``new`` a new state (``"c'"``, or ``"c"``), ``old`` a previous one."""
    new_state = _state(cell, new.removesuffix(PRIME), "new_state")
    old_state = _state(cell, old, "old_state")
    maps = {old_state: IDENTITY}
    # a derivative such as sigmoid(a)*(1 - sigmoid(a)) reads f*(1 - f), in the step's own values
    values = {
        e.expr: e.target for e in cell.equations if not (e.expr.is_Atom or isinstance(e.expr, MatVec | Reduction))
    }
    for eq in cell.equations:
        maps[eq.target.name] = _differentiate(cell, eq.expr, maps, values)
    return StepJacobian(cell, next_name(new_state), old_state, maps[next_name(new_state)].simplified())


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


def _differentiate(
    cell: Cell, expr: sympy.Expr, maps: dict[str, LinearMap], values: dict[sympy.Expr, Var]
) -> LinearMap:
    """The Jacobian of ``expr`` from the Jacobians of the vectors it reads (``maps``)."""
    nodes = cross_unit_nodes(expr)
    stand_ins = {node: sympy.Dummy(f"m{i}", real=True) for i, node in enumerate(nodes)}
    flat = expr.xreplace(stand_ins)
    back = {d: node for node, d in stand_ins.items()}
    total = ZERO
    for atom in sorted(flat.free_symbols, key=sympy.default_sort_key):
        if atom in back:
            inner = _through(cell, back[atom], maps, values)
        else:
            inner = maps.get(atom.name, ZERO) if isinstance(atom, Var) else ZERO
        if not inner.is_zero:
            total = total + inner.scaled(flat.diff(atom).xreplace(back).xreplace(values))
    return total


def _through(cell: Cell, node: sympy.Expr, maps: dict[str, LinearMap], values: dict[sympy.Expr, Var]) -> LinearMap:
    """The Jacobian of a product ``W @ v`` (a path through W) or a reduction (a path through 𝟏𝟏ᵀ)."""
    inner = _differentiate(cell, node.args[-1], maps, values)
    if inner.is_zero:
        return ZERO
    if isinstance(node, MatVec):
        mark = TRANSPOSE if isinstance(node, MatVecT) else ""
        return LinearMap(paths=(Path(sympy.S.One, node.matrix.name + mark, inner),))
    vector = node.args[0]
    size = cell.sizes.get(vector.name, SCALAR) if isinstance(vector, Var) else SCALAR
    scale = 1 / Extent(size) if isinstance(node, ReduceMean) and size != SCALAR else sympy.S.One
    return LinearMap(paths=(Path(scale, ONES, inner),))


def _matrix(name: str, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The numbers of a path's matrix: a parameter, or ``Wᵀ`` a parameter transposed."""
    if name.endswith(TRANSPOSE):
        return np.swapaxes(values[name.removesuffix(TRANSPOSE)], -1, -2)
    return values[name]


def _latex_matrix(name: str) -> str:
    if name.endswith(TRANSPOSE):
        return latex_name(name.removesuffix(TRANSPOSE)) + r"^{\top}"
    return latex_name(name)


def _column(expr: sympy.Expr, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """A coefficient's values as a column, (..., rows, 1), to scale the rows of a block."""
    return np.asarray(reference.evaluate(expr, values))[..., None]


def _simplify(expr: sympy.Expr) -> sympy.Expr:
    return sympy.factor_terms(expr)
