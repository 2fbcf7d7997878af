"""Derivation: a checked cell -> the backward pass of one step, as SymPy equations.

Reverse-mode differentiation over the step's equations: walking them backwards, each
equation's adjoint (``δf``) is the sum of what its users pass back; products pass back through
the transpose (``δh += Uᵀ @ δ(U@h)``) and give matrix gradients as outer products summed over
batch and time. Derivatives are written in terms of forward values (``f*(1 - f)``, not
``sigmoid(a)*(1 - sigmoid(a))``), and common subexpressions become named temporaries (``τ1``)
by a deterministic CSE. The result is data of the same kind as the forward pass (a list of
elementwise equations with ``@`` nodes), so the same code lowers, renders and builds both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import sympy

from ..errors import InternalError
from ..frontend.cell import Cell, Equation
from ..frontend.cells import cell_argument
from ..frontend.functions import (
    PRIME,
    SCALAR,
    AxisReduction,
    ColSum,
    CrossUnit,
    Extent,
    MatVec,
    MatVecT,
    ReduceMean,
    ReduceSum,
    Reduction,
    RowSum,
    RowVector,
    SampleMatVec,
    SampleMatVecT,
    Var,
    cross_unit_nodes,
    dims_of,
    elementwise,
    matrix_axes,
    matrix_size,
)
from ..frontend.limits import guarded, working_on
from ..frontend.notation import PRE, TOTAL, latex, latex_name, latex_rows, math_text
from .jacobian import StepJacobian, step_jacobian, step_jacobians
from .opcount import OpCount, count_pass

ADJOINT = "δ"
TEMPORARY = "τ"


def adjoint_name(name: str) -> str:
    """The adjoint of a vector: ``h`` -> ``δh``, ``c'`` -> ``δc'``."""
    return ADJOINT + name


def product_adjoint_name(product: MatVec | SampleMatVec) -> str:
    """The adjoint of a product's result: ``δ(W@x)``, ``δ(Wᵀ@h)``, ``δ(S'ᵀ@q)``."""
    mark = "ᵀ" if product.transposed else ""
    return f"{ADJOINT}({product.matrix.name}{mark}@{product.vector.name})"


@dataclass(frozen=True)
class MatrixGradient:
    """``δW += δm ⊗ v``, summed over batch and time: the gradient of ``W`` from ``m = W @ v``;
    ``transposed``: from ``m = W.T @ v``, whose gradient is ``v ⊗ δm``."""

    param: str
    adjoint: Var
    vector: Var
    transposed: bool = False

    @property
    def outer(self) -> str:
        """The outer product as text: ``δm ⊗ v`` (``v ⊗ δm`` when transposed)."""
        pair = (self.vector, self.adjoint) if self.transposed else (self.adjoint, self.vector)
        return " ⊗ ".join(v.name for v in pair)


@dataclass(frozen=True)
class VectorGradient:
    """``δp += expr``, summed over batch and time: the gradient of a vector parameter."""

    param: str
    expr: sympy.Expr


@dataclass(frozen=True)
class Derivation:
    """The backward pass of one step of ``cell``.

    Given ``seeds`` (the gradients flowing into each new state and output from later steps and
    the loss: ``δh'``, ``δc'``, ``δy``), ``equations`` compute, in order, every adjoint the step
    needs, ending with ``state_adjoints`` (``δh``: the gradient to pass to the previous step)
    and ``input_adjoints`` (``δx``). ``gradients`` accumulate every parameter's gradient.
    ``sizes`` gives the dimension of every symbol the equations assign.
    """

    cell: Cell
    seeds: dict[str, Var]
    equations: tuple[Equation, ...]
    state_adjoints: dict[str, Var]
    input_adjoints: dict[str, Var]
    gradients: tuple[MatrixGradient | VectorGradient, ...]
    sizes: dict[str, str]

    def gradient(self, param: str) -> MatrixGradient | VectorGradient:
        return next(g for g in self.gradients if g.param == param)

    def jacobian(self, new_state: str, old_state: str) -> StepJacobian:
        """``∂new_state/∂old_state`` over one step (``jacobian("c'", "c")`` is the LSTM's ``diag(f)``).

        The block the backward pass multiplies ``δc'`` by, transposed, to reach ``δc``; see
        :mod:`symgate.symbolic.jacobian` for its form and ``structure``.
        """
        return step_jacobian(self.cell, new_state, old_state)

    def jacobians(self) -> list[StepJacobian]:
        """Every block ``∂s'/∂r`` of the step's state-to-state Jacobian."""
        return step_jacobians(self.cell)

    def text(self) -> str:
        """The backward equations as Unicode math (also the comment heading the generated C)."""
        seeds = ", ".join(s.name for s in self.seeds.values())
        lines = [f"backward step of {self.cell.name}, given {seeds} (from later steps and the loss):"]
        lines += [f"  {e.target.name} = {math_text(e.expr)}" for e in self.equations]
        lines.append("parameter gradients (summed over batch and time):")
        for g in self.gradients:
            if isinstance(g, MatrixGradient):
                lines.append(f"  {ADJOINT}{g.param} += {g.outer}")
            else:
                lines.append(f"  {ADJOINT}{g.param} += {math_text(g.expr)}")
        return "\n".join(lines)

    def describe(self) -> str:
        """The backward step for people: the equations, what the names mean and what one step costs."""
        return "\n".join([self.text(), *self._legend(), f"backward, per step and sample: {self.operations()}"])

    def _legend(self) -> list[str]:
        """What the names mean, for a reader who meets ``δh'`` and ``δh`` for the first time."""
        states = list(self.state_adjoints)
        new, previous = ", ".join(s + PRIME for s in states), ", ".join(states)
        plural = len(states) > 1
        are = "are the new states" if plural else "is the new state"
        notes = [
            f"δv is the gradient of the loss with respect to v; {new} {are}, "
            f"{previous} the previous {'ones' if plural else 'one'}",
        ]
        names = {e.target.name for e in self.equations}
        if any(n.endswith(PRE) for n in names):
            notes.append(
                f"{ADJOINT}v{PRE} is the gradient with respect to v's pre-activation, the sum holding its products"
            )
        if any(e.kind == "temporary" for e in self.equations):
            notes.append(f"{TEMPORARY}1, {TEMPORARY}2, … are shared subexpressions, computed once")
        return [f"  ({note})" for note in notes]

    def operations(self) -> OpCount:
        """What one backward step costs (see :mod:`symgate.symbolic.opcount`)."""
        vector_gradients = [g.expr for g in self.gradients if isinstance(g, VectorGradient)]
        return count_pass(
            [*(e.expr for e in self.equations), *vector_gradients],
            accumulations=len(vector_gradients),
            outer_products=len(self.gradients) - len(vector_gradients),
        )

    def latex_equations(self) -> list[str]:
        """The backward equations in LaTeX, one a row, ``&`` at the sign; a parameter's gradient
        accumulates over steps and samples: ``\\delta W &\\;{+}{=}\\; \\delta m \\otimes v`` (``+=``
        spelled so that matplotlib's mathtext, which has no ``\\mathrel``, renders it too)."""
        rows = [rf"{latex_name(e.target.name)} &= {latex(e.expr)}" for e in self.equations]
        for g in self.gradients:
            name = latex_name(ADJOINT + g.param)
            if isinstance(g, MatrixGradient):
                pair = (g.vector, g.adjoint) if g.transposed else (g.adjoint, g.vector)
                rhs = r" \otimes ".join(latex_name(v.name) for v in pair)
            else:
                rhs = latex(g.expr)
            rows.append(rf"{name} &\;{{+}}{{=}}\; {rhs}")
        return rows

    def latex(self) -> str:
        """The backward equations as a LaTeX ``aligned`` block, ending with the operation count."""
        return latex_rows(self.latex_equations(), f"backward, per step and sample: {self.operations()}")

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __str__(self) -> str:
        return self.describe()


def derive(cell: Cell | str | os.PathLike) -> Derivation:
    """The backward pass of one step of ``cell`` (adjoints of states, inputs and parameters).

    ``cell`` is a :class:`Cell`, a built-in cell's name or a ``.cell`` path.
    """
    cell = cell_argument(cell)
    with guarded("derive"):
        return _Deriver(cell).run()


class _Deriver:
    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.params = {p.name for p in cell.params}
        self.forward_values = {
            e.expr: e.target
            for e in cell.equations
            if not (e.expr.is_Atom or isinstance(e.expr, (MatVec, SampleMatVec, Reduction, AxisReduction)))
        }
        # terms passed back so far, each with the size of the equation it came from
        self.terms: dict[str, list[tuple[sympy.Expr, str]]] = {}
        self.node_terms: dict[CrossUnit, list[tuple[sympy.Expr, str]]] = {}
        self.equations: list[Equation] = []
        self.sizes: dict[str, str] = {}
        self.product_adjoints: dict[sympy.Expr, Var] = {}
        self.row_operands: dict[sympy.Expr, Var] = {}
        self.gradients: list[MatrixGradient | VectorGradient] = []
        self.product_users: dict[MatVec | SampleMatVec, list[str]] = {}  # a product -> the equations using it
        names = [*cell.inputs, *cell.states, *cell.sizes, *(p.name for p in cell.params), *cell.constants]
        self.taken = {adjoint_name(n) for n in names}

    def fresh(self, name: str) -> str:
        """``name``, or ``name_``, ``name__`` ... if the cell's own adjoints already use it."""
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def run(self) -> Derivation:
        cell = self.cell
        closed_at: dict[int, list[CrossUnit]] = {}  # equation index -> the nodes last read there
        for node, index in self._last_use().items():
            closed_at.setdefault(index, []).append(node)
        seeds = {
            e.target.name: Var(adjoint_name(e.target.name)) for e in cell.equations if e.kind in ("next", "output")
        }
        for name, seed in seeds.items():
            self.sizes[seed.name] = cell.sizes[name]
        for index in reversed(range(len(cell.equations))):
            eq = cell.equations[index]
            working_on(cell.source, eq.line, cell.line_text(eq.line) or f"{eq.target.name} = ...")
            adjoint = self.adjoint_of(eq, seeds.get(eq.target.name))
            if adjoint is not None:
                self.pass_back(eq.expr, adjoint, cell.sizes[eq.target.name])
            for node in sorted(closed_at.get(index, ()), key=sympy.default_sort_key):
                self.close_node(node)
        state_adjoints = {s: self.collect(s, cell.states[s]) for s in cell.states}
        input_adjoints = {x: self.collect(x, cell.inputs[x]) for x in cell.inputs}
        vector_gradients = [
            VectorGradient(p.name, self.total(p.name, p.shape[0], self.terms.pop(p.name, [])))
            for p in cell.params
            if not p.is_matrix
        ]
        gradients = self.order_gradients(vector_gradients)
        self.drop_unread(state_adjoints, input_adjoints, gradients)
        equations, gradients = self.eliminate_common_subexpressions(gradients)
        return Derivation(
            cell=cell,
            seeds=seeds,
            equations=tuple(equations),
            state_adjoints=state_adjoints,
            input_adjoints=input_adjoints,
            gradients=tuple(gradients),
            sizes=self.sizes,
        )

    def _last_use(self) -> dict[CrossUnit, int]:
        """Each product and reduction -> the index of the equation that reads it last in the
        backward walk (the first in the cell); also records the equations each product is in."""
        last_use: dict[CrossUnit, int] = {}
        for index, eq in enumerate(self.cell.equations):
            for node in cross_unit_nodes(eq.expr):
                last_use.setdefault(node, index)
                if isinstance(node, (MatVec, SampleMatVec)):
                    self.product_users.setdefault(node, []).append(eq.target.name)
        return last_use

    def emit(self, name: str, expr: sympy.Expr, size: str, kind: str = "adjoint") -> Var:
        target = Var(name)
        self.equations.append(Equation(target, expr, kind))
        self.sizes[name] = size
        return target

    def row_operand(self, vector: sympy.Expr, size: str) -> Var:
        """A vector expression laid as a row (``v**2`` of ``vᵀ**2``), named once: a temporary."""
        if vector not in self.row_operands:
            name = self.fresh(f"{TEMPORARY}row{len(self.row_operands) + 1}")
            self.row_operands[vector] = self.emit(name, vector, size, "temporary")
        return self.row_operands[vector]

    def adjoint_of(self, eq: Equation, seed: Var | None) -> Var | None:
        """The symbol holding the total adjoint of ``eq.target``, emitting its equation."""
        name = eq.target.name
        terms = self.terms.pop(name, [])
        size = self.cell.sizes[name]
        if seed is not None:
            if not terms:
                return seed
            return self.emit(self.fresh(adjoint_name(name) + TOTAL), seed + self.total(name, size, terms), size)
        if not terms:
            return None
        return self.emit(adjoint_name(name), self.total(name, size, terms), size)

    def total(self, name: str, size: str, terms: list[tuple[sympy.Expr, str]]) -> sympy.Expr:
        """The sum of the terms passed back to ``name``.

        A per-sample scalar (a reduction's value, size ``SCALAR``) was broadcast over the units of
        its users, so its adjoint sums their terms over those units: ``sum(δu_parts)`` (a matrix's
        summed along its rows first, where a product does it). A vector
        broadcast along a matrix's rows (``f * S``) sums each of its terms from a matrix equation
        along the rows (:meth:`row_sum`: ``δS' @ v`` for ``δS' * vᵀ``).
        """
        if size != SCALAR:
            return sympy.Add(
                *(
                    self.row_sum(name, expr) if matrix_axes(term_size) and not matrix_axes(size) else expr
                    for expr, term_size in terms
                )
            )
        by_size: dict[str, list[sympy.Expr]] = {}
        for expr, term_size in terms:
            axes = matrix_axes(term_size)
            if axes:  # a matrix's units summed: its rows first, sum(c * M * vᵀ) = sum(c * (M @ v))
                expr, term_size = self.row_sum(name, expr), axes[0]
            by_size.setdefault(term_size, []).append(expr)
        parts = by_size.pop(SCALAR, [])
        for term_size, exprs in by_size.items():
            suffix = "" if len(by_size) == 1 else f"_{term_size}"
            vector = self.emit(self.fresh(f"{adjoint_name(name)}_parts{suffix}"), sympy.Add(*exprs), term_size)
            parts.append(ReduceSum(vector))
        return sympy.Add(*parts)

    def pass_back(self, expr: sympy.Expr, adjoint: Var, size: str) -> None:
        """Adds ``adjoint * ∂expr/∂v`` to the terms of every vector ``v``, product and reduction in ``expr``."""
        flat, back = elementwise(expr)
        for atom in sorted(flat.free_symbols, key=sympy.default_sort_key):
            if atom.name in self.cell.constants:
                continue
            partial = flat.diff(atom)
            if partial == 0:
                continue
            term = adjoint * partial.xreplace(back).xreplace(self.forward_values)
            if atom in back:
                self.node_terms.setdefault(back[atom], []).append((term, size))
            else:
                self.terms.setdefault(atom.name, []).append((term, size))

    def close_node(self, node: CrossUnit) -> None:
        """All users of a product, reduction or row broadcast are done: pass its adjoint on."""
        if isinstance(node, Reduction):
            self.close_reduction(node)
        elif isinstance(node, SampleMatVec):
            self.close_sample_product(node)
        elif isinstance(node, AxisReduction):
            self.close_axis_reduction(node)
        elif isinstance(node, RowVector):
            self.close_row(node)
        else:
            self.close_product(node)

    def split_factors(self, term: sympy.Expr) -> tuple[list[sympy.Expr], list[sympy.Expr], list[Var]]:
        """A matrix-sized product's factors: those constant along a row (numbers, scalars, vectors:
        columns), matrices, and rows, each as the vector laid as the row (``v`` for ``vᵀ``,
        a named ``v**2`` for ``vᵀ**2``)."""
        sizes = self.cell.sizes | self.sizes
        columns, matrices, rows = [], [], []
        for factor in sympy.Mul.make_args(term):
            size = _size_of(factor, sizes, self.cell)
            if isinstance(factor, RowVector):
                rows.append(factor.vector)
            elif size is None and factor.has(RowVector):  # a function of rows only: a row itself
                vector = factor.xreplace({r: r.vector for r in factor.atoms(RowVector)})
                rows.append(self.row_operand(vector, _size_of(vector, sizes, self.cell)))
            elif matrix_axes(size or SCALAR):
                matrices.append(factor)
            else:
                columns.append(factor)
        return columns, matrices, rows

    def named(self, expr: sympy.Expr, name: str, size: str) -> Var:
        """``expr`` as a named vector (itself when it is one already): the operand of a product."""
        if isinstance(expr, Var):
            return expr
        return self.emit(self.fresh(name), expr, size)

    def row_sum(self, name: str, term: sympy.Expr) -> sympy.Expr:
        """``rowsum(term)`` for a matrix-sized term passed back to a column ``name``: the factors
        constant along a row come out, and a matrix times a row is a product,
        ``rowsum(c * M * vᵀ) = c * (M @ v)``; anything else is summed as it is."""
        sizes = self.cell.sizes | self.sizes
        columns, matrices, rows = self.split_factors(term)
        if len(matrices) == 1 and len(rows) <= 1:  # every term holds its equation's adjoint, a matrix
            matrix = self.named(matrices[0], f"{adjoint_name(name)}_matrix", _size_of(matrices[0], sizes, self.cell))
            if rows:
                return sympy.Mul(*columns) * SampleMatVec(matrix, rows[0])
            return sympy.Mul(*columns) * RowSum(matrix)
        size = _size_of(term, sizes, self.cell)
        return RowSum(self.named(term, f"{adjoint_name(name)}_units", size))

    def close_row(self, row: RowVector) -> None:
        """``vᵀ`` passes back, to v, each of its matrix-sized terms summed down the columns:
        ``colsum(c * M * vᵀ...)``, the product ``Mᵀ @ c`` where the term allows."""
        vector = row.vector  # a name of the cell's: the checker lifts what is laid as a row
        size = self.cell.sizes[vector.name]
        sizes = self.cell.sizes | self.sizes
        for term, _ in self.node_terms.pop(row, []):
            columns, matrices, rows = self.split_factors(term)
            # what is constant down a column comes out too: numbers, per-sample scalars, other rows
            constant = [f for f in columns if (_size_of(f, sizes, self.cell) or SCALAR) == SCALAR]
            others = sympy.Mul(*rows, *constant)
            column = sympy.Mul(*(f for f in columns if f not in constant))
            name = adjoint_name(f"{vector.name}ᵀ")
            if len(matrices) == 1:
                matrix = self.named(matrices[0], f"{name}_matrix", _size_of(matrices[0], sizes, self.cell))
                rows_size = matrix_axes(sizes[matrix.name])[0]
                if column == 1:
                    passed = others * ColSum(matrix)
                else:
                    passed = others * SampleMatVecT(matrix, self.named(column, f"{name}_column", rows_size))
            else:  # every term holds its equation's adjoint, a matrix: here with others
                parts = self.named(column * sympy.Mul(*matrices), f"{name}_parts", _size_of(term, sizes, self.cell))
                passed = others * ColSum(parts)
            self.terms.setdefault(vector.name, []).append((passed, size))

    def close_axis_reduction(self, reduction: AxisReduction) -> None:
        """``rowsum(M)`` passes its adjoint to M as a column, ``colsum(M)`` as a row."""
        terms = self.node_terms.pop(reduction, [])
        if not terms:
            return
        matrix = reduction.vector.name
        rows, cols = matrix_axes(self.cell.sizes[matrix])
        size = rows if isinstance(reduction, RowSum) else cols
        name = f"{reduction.word}({matrix})"
        adjoint = self.emit(self.fresh(adjoint_name(name)), self.total(name, size, terms), size)
        broadcast = adjoint if isinstance(reduction, RowSum) else RowVector(adjoint)
        self.terms.setdefault(matrix, []).append((broadcast, self.cell.sizes[matrix]))

    def close_sample_product(self, product: SampleMatVec) -> None:
        """All users of ``S @ v`` are done: pass ``δm vᵀ`` to S and ``Sᵀ @ δm`` to v (for
        ``S.T @ v``: ``v δmᵀ`` to S and ``S @ δm`` to v)."""
        terms = self.node_terms.pop(product, [])
        if not terms:
            return
        matrix = product.matrix.name
        rows, cols = matrix_axes(self.cell.sizes[matrix])
        if product.transposed:
            rows, cols = cols, rows
        name = product_adjoint_name(product)
        adjoint = self.emit(self.fresh(name), self.total(name, rows, terms), rows)
        if product.transposed:
            to_matrix, back = product.vector * RowVector(adjoint), SampleMatVec(product.matrix, adjoint)
        else:
            to_matrix, back = adjoint * RowVector(product.vector), SampleMatVecT(product.matrix, adjoint)
        self.terms.setdefault(matrix, []).append((to_matrix, self.cell.sizes[matrix]))
        self.terms.setdefault(product.vector.name, []).append((back, cols))

    def close_reduction(self, reduction: Reduction) -> None:
        """``sum(v)`` passes its adjoint to every unit of v; ``mean(v)`` passes it divided by v's size."""
        terms = self.node_terms.pop(reduction, [])
        if not terms:
            return
        name = f"{reduction.word}({reduction.vector.name})"
        adjoint = self.emit(self.fresh(adjoint_name(name)), self.total(name, SCALAR, terms), SCALAR)
        vector = reduction.vector.name
        size = self.cell.sizes.get(vector) or self.cell.param(vector).shape[0]
        scale = 1 / sympy.Mul(*(Extent(d) for d in dims_of(size))) if isinstance(reduction, ReduceMean) else 1
        self.terms.setdefault(vector, []).append((adjoint * scale, SCALAR))

    def close_product(self, product: MatVec) -> None:
        """All users of ``W @ v`` are done: pass ``Wᵀ @ δ(W@v)`` to v and ``δ(W@v) ⊗ v`` to W
        (for ``W.T @ v``: ``W @ δ(Wᵀ@v)`` to v and ``v ⊗ δ(Wᵀ@v)`` to W)."""
        transposed = isinstance(product, MatVecT)
        rows, cols = self.cell.param(product.matrix.name).shape[:: -1 if transposed else 1]
        written = f"({product.matrix.name}{'ᵀ' if transposed else ''}@{product.vector.name})"
        expr = self.total(written, rows, self.node_terms.pop(product, []))
        if expr == 0:
            return
        adjoint = self.product_adjoints.get(expr)
        if adjoint is None:
            adjoint = self.emit(self.product_adjoint_name(product), expr, rows)
            self.product_adjoints[expr] = adjoint
        back = (MatVec if transposed else MatVecT)(product.matrix, adjoint)
        self.terms.setdefault(product.vector.name, []).append((back, cols))
        self.gradients.append(MatrixGradient(product.matrix.name, adjoint, product.vector, transposed))

    def product_adjoint_name(self, product: MatVec) -> str:
        """``δf_pre`` for the products inside one equation ``f = ...``, else ``δ(W@v)``."""
        users = self.product_users.get(product, [])
        if len(users) == 1 and adjoint_name(users[0]) + PRE not in self.taken:
            return self.fresh(adjoint_name(users[0]) + PRE)
        return self.fresh(product_adjoint_name(product))

    def collect(self, name: str, size: str) -> Var:
        """The final adjoint of a previous state or an input (zero when it is never read)."""
        return self.emit(adjoint_name(name), self.total(name, size, self.terms.pop(name, [])), size)

    def drop_unread(
        self,
        state_adjoints: dict[str, Var],
        input_adjoints: dict[str, Var],
        gradients: list[MatrixGradient | VectorGradient],
    ) -> None:
        """Drops adjoints nothing reads (that of an intermediate that depends on nothing, say)."""
        read = {v.name for v in (*state_adjoints.values(), *input_adjoints.values())}
        for g in gradients:
            if isinstance(g, MatrixGradient):
                read.add(g.adjoint.name)
            else:
                read |= {s.name for s in g.expr.free_symbols}
        kept = []
        for eq in reversed(self.equations):
            if eq.target.name in read:
                kept.append(eq)
                read |= {s.name for s in eq.expr.free_symbols}
        self.equations = kept[::-1]

    def order_gradients(self, vector_gradients: list[VectorGradient]) -> list[MatrixGradient | VectorGradient]:
        """Gradients in the order of the cell's parameters (a matrix may have several products)."""
        by_param: dict[str, list[MatrixGradient | VectorGradient]] = {}
        for g in [*reversed(self.gradients), *vector_gradients]:
            by_param.setdefault(g.param, []).append(g)
        return [g for p in self.cell.params for g in by_param.get(p.name, [])]

    def eliminate_common_subexpressions(
        self, gradients: list[MatrixGradient | VectorGradient]
    ) -> tuple[list[Equation], list[MatrixGradient | VectorGradient]]:
        """Shared subexpressions become temporaries ``τ1, τ2, ...``, each placed before first use."""
        vector_gradients = [g for g in gradients if isinstance(g, VectorGradient)]
        exprs = [e.expr for e in self.equations] + [g.expr for g in vector_gradients]
        names = (Var(f"{TEMPORARY}{i}") for i in range(1, 1_000_000))
        temporaries, reduced = sympy.cse(exprs, symbols=names, order="canonical")
        # A subexpression that reads no vector (`sigmoid(0)`, `1/|H|`, `2*c - 1` from `c*(A@h) -
        # (1 - c)*(A@h)`) is a constant: it stays inline, where it reads as the cell wrote it
        # (`δa*(2*c - 1)`) and the C compiler folds it, every `const` being a C constant.
        sizes = self.cell.sizes | self.sizes
        constants: dict[sympy.Symbol, sympy.Expr] = {}
        kept: list[tuple[sympy.Symbol, sympy.Expr]] = []
        for temp, expr in temporaries:
            expr = expr.xreplace(constants)
            size = _size_of(expr, sizes, self.cell)
            if size is None:
                constants[temp] = expr
            else:
                sizes[temp.name] = size
                kept.append((temp, expr))
        temporaries = kept
        reduced = [e.xreplace(constants) for e in reduced]
        # `δf_pre = τ5` is an alias: the temporary takes the adjoint's name instead.
        alias: dict[sympy.Symbol, Var] = {}
        temporary_names = {t for t, _ in temporaries}
        for eq, expr in zip(self.equations, reduced, strict=False):
            if expr in temporary_names and expr not in alias:
                alias[expr] = eq.target
        for temp, _ in temporaries:
            self.sizes[alias.get(temp, temp).name] = sizes[temp.name]
        temporaries = [(alias.get(t, t), e.xreplace(alias)) for t, e in temporaries]
        reduced = [e.xreplace(alias) for e in reduced]
        kinds = {eq.target: eq.kind for eq in self.equations}
        pending = dict(temporaries)
        equations: list[Equation] = []

        def place(expr: sympy.Expr) -> None:
            for symbol in sorted(expr.free_symbols, key=sympy.default_sort_key):
                if symbol in pending:
                    value = pending.pop(symbol)
                    place(value)
                    equations.append(Equation(symbol, value, kinds.get(symbol, "temporary")))

        for eq, expr in zip(self.equations, reduced, strict=False):
            place(expr)
            if expr != eq.target:
                equations.append(Equation(eq.target, expr, eq.kind))
        replaced = iter(reduced[len(self.equations) :])
        new_gradients: list[MatrixGradient | VectorGradient] = []
        for g in gradients:
            if isinstance(g, VectorGradient):
                expr = next(replaced)
                place(expr)
                g = VectorGradient(g.param, expr)
            new_gradients.append(g)
        return self.renumber(equations, new_gradients)

    def renumber(
        self, equations: list[Equation], gradients: list[MatrixGradient | VectorGradient]
    ) -> tuple[list[Equation], list[MatrixGradient | VectorGradient]]:
        """Temporaries numbered 1, 2, ... in the order they are computed."""
        temporaries = [e.target for e in equations if e.kind == "temporary"]
        new = {t: Var(f"{TEMPORARY}{i}") for i, t in enumerate(temporaries, start=1)}
        before = dict(self.sizes)  # the renaming may be a permutation of the same names
        for old, fresh in new.items():
            self.sizes[fresh.name] = before[old.name]
        equations = [Equation(new.get(e.target, e.target), e.expr.xreplace(new), e.kind) for e in equations]
        gradients = [
            VectorGradient(g.param, g.expr.xreplace(new)) if isinstance(g, VectorGradient) else g for g in gradients
        ]
        return equations, gradients


def _size_of(expr: sympy.Expr, sizes: dict[str, str], cell: Cell) -> str | None:
    """The size of an elementwise expression: that of any vector in it, ``SCALAR`` when it reads
    only per-sample scalars, ``None`` when it reads nothing with a size (a constant) or only rows
    (``vᵀ``, which only has a size beside a column or a matrix); a matrix's when it holds one, or a
    column and a row (``k*vᵀ``).

    A product or reduction counts by its result, never by the vector inside it.
    """
    found: set[str] = set()
    rows: set[str] = set()

    def size_of_name(name: str) -> str:
        return sizes[name] if name in sizes else cell.param(name).shape[0]

    def visit(node: sympy.Expr) -> None:
        if isinstance(node, MatVec):
            found.add(cell.param(node.matrix.name).shape[1 if node.transposed else 0])
        elif isinstance(node, SampleMatVec):
            found.add(matrix_axes(sizes[node.matrix.name])[1 if node.transposed else 0])
        elif isinstance(node, AxisReduction):
            found.add(matrix_axes(sizes[node.vector.name])[0 if isinstance(node, RowSum) else 1])
        elif isinstance(node, Reduction):
            found.add(SCALAR)
        elif isinstance(node, RowVector):
            rows.add(size_of_name(node.vector.name))
        elif isinstance(node, Var) and (node.name in sizes or node.name in {p.name for p in cell.params}):
            found.add(size_of_name(node.name))
        else:
            for arg in node.args:
                visit(arg)

    visit(expr)
    matrices = {f for f in found if matrix_axes(f)}
    vectors = found - {SCALAR} - matrices
    rows -= {SCALAR}
    if len(matrices) > 1 or (not matrices and len(vectors) > 1):
        raise InternalError(f"the shared subexpression {expr} of the backward pass mixes sizes {sorted(found)}")
    if matrices:
        return matrices.pop()
    if vectors and rows:
        return matrix_size(vectors.pop(), rows.pop())
    if vectors:
        return vectors.pop()
    return SCALAR if found and not rows else None
