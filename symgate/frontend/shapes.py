"""Size inference: every vector and parameter gets one of the cell's named dimensions.

Sizes are unknowns joined by the equations: operands of ``+ - * /`` and function arguments share
a size (numeric constants fit any size); in ``W @ v``, W's columns are v's size and its rows are
the size the product meets (in ``W.T @ v`` the other way round, so ``W @ h`` and ``W.T @ h`` in one
cell make W square). Unknowns are merged with a union-find; the declared sizes of inputs, states,
outputs and sized intermediates (``m: M = ...``) are its constants, so a conflict is two different
declared sizes meeting. Declared parameter shapes (``param W: H x D``) are checked against what the
equations imply once the equations are read, so that a conflict can name both the declaration and
the equation; they then give the sizes the equations leave open (the rank R of ``P @ (Q @ h)``).
The size ``SCALAR`` (a reduction's value, or a name declared ``: 1``) meets any size, as a constant
does: ``dt*h`` has h's size, and a parameter gets the size ``SCALAR`` only by meeting nothing else
or by its declaration (``param dt: 1``).

A per-sample matrix (``state S: K x V``, its next value, a name assigned a matrix expression) has
two unknowns, its rows and its columns. Beside a matrix, a vector is a column (``f * S``: f has
S's rows) and ``g.T`` a row (g has S's columns); a column beside a row is their outer product
(``k * v.T``). ``S @ v`` joins v with S's columns and has S's rows, ``S.T @ v`` the other way round;
``rowsum(S)`` has S's rows, ``colsum(S)`` its columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sympy

from ..errors import CellError, CellNameError, DimensionError
from .functions import (
    PRIME,
    SCALAR,
    AxisReduction,
    MatVec,
    MatVecT,
    Reduction,
    RowSum,
    RowVector,
    SampleMatVec,
    Transposed,
    Var,
    dims_of,
    matrix_axes,
    matrix_names,
    matrix_size,
    vector_names,
)
from .matrix_terms import as_written
from .notation import cell_text
from .syntax import CellSource, ParamDeclaration
from .syntax import Equation as SourceEquation


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


@dataclass(frozen=True)
class AsWritten:
    """How messages name what the author wrote: the checker gives ``U @ (r*h)``'s right side a name
    of its own (``U_arg``), which the author never wrote, so messages print it as ``r*h`` again.

    ``expressions`` maps such a name to the expression as written, ``places`` to where it was
    written (``the right side of `U @ (r*h)` ``); ``hint`` adds to a parameter's message (a name
    it is probably a slip for); ``products`` maps each expanded matrix expression to the product as
    written (``(W - W.T) @ h``).
    """

    expressions: Mapping[str, sympy.Expr] = field(default_factory=dict)
    places: Mapping[str, str] = field(default_factory=dict)
    hint: Callable[[str], str] = lambda name: ""
    enclosing: Mapping[str, sympy.Expr] = field(default_factory=dict)
    """A lifted name -> the product or reduction it was lifted out of, which reads it (``P @ P_arg``)."""
    products: Mapping[sympy.Expr, sympy.Expr] = field(default_factory=dict)

    def text(self, expr: sympy.Expr) -> str:
        """``expr`` as cell text, every lifted name replaced by what it stands for and every
        expanded product (``products``: ``W @ h - W.T @ h``) by the product as written."""
        expr = expr.xreplace({Var(n): e for n, e in self.expressions.items()})
        return cell_text(as_written(expr, self.products))

    def what(self, name: str) -> str:
        """A vector's name, or for a lifted one its expression and where it was written."""
        if name not in self.places:
            return name
        return f"`{self.text(Var(name))}` ({self.places[name]})"


@dataclass(frozen=True)
class MatrixSize:
    """The size of a per-sample matrix: the unknowns of its rows and of its columns."""

    rows: str
    cols: str


@dataclass(frozen=True)
class RowSize:
    """The size of ``v.T``: v's unknown, laid along a matrix's columns."""

    cols: str


Size = str | MatrixSize | RowSize | None
"""A vector's unknown, a matrix's two, a row's, or None for a constant that fits any size."""


@dataclass
class SizeInference:
    """Infers sizes equation by equation; ``unknown_of`` names the unknown of a vector symbol,
    ``matrices`` holds the two unknowns of each per-sample matrix."""

    unknowns: SizeUnknowns
    unknown_of: Callable[[Var], str | None]
    matrix_unknowns: Callable[[Var], tuple[str, str]]
    raise_at: Callable[[str, str], DimensionError]
    written: AsWritten = field(default_factory=AsWritten)
    matrices: dict[str, MatrixSize] = field(default_factory=dict)

    def matrix(self, name: str) -> MatrixSize:
        """The unknowns of a per-sample matrix named ``name`` (``S'`` shares ``S``'s), made on first use."""
        key = name.removesuffix(PRIME)
        if key not in self.matrices:
            self.matrices[key] = MatrixSize(self.unknowns.new(key + "[rows]"), self.unknowns.new(key + "[cols]"))
        return self.matrices[key]

    def size_of(self, expr: sympy.Expr) -> Size:
        """The unknown(s) of ``expr``'s size, or None for a constant that fits any size.

        A reduction's per-sample value has the size ``SCALAR`` and, like a constant, meets any size.
        """
        if isinstance(expr, SampleMatVec):
            return self._sample_product(expr)
        if isinstance(expr, AxisReduction):
            matrix = self._matrix_operand(
                expr.vector, expr, f"{expr.word} sums a matrix along one axis (sum(v) sums a vector)"
            )
            return matrix.rows if isinstance(expr, RowSum) else matrix.cols
        if isinstance(expr, RowVector):
            inner = self.size_of(expr.vector)
            if isinstance(inner, (MatrixSize, RowSize)):
                raise self.raise_at(
                    f"`{self.written.text(expr)}`: only a vector can be laid as a row, and "
                    f"`{self.written.text(expr.vector)}` is a {'matrix' if isinstance(inner, MatrixSize) else 'row'}",
                    self.written.text(expr.vector),
                )
            if inner is None or self.unknowns.resolved(inner) == SCALAR:
                return inner
            return RowSize(inner)
        if isinstance(expr, MatVec):
            rows, cols = self.matrix_unknowns(expr.matrix)
            left: sympy.Expr = expr.matrix
            if isinstance(expr, MatVecT):  # W.T @ v: v has W's rows, the result W's columns
                rows, cols, left = cols, rows, Transposed(expr.matrix)
            vector = self._vector_operand(expr, left)
            self._join(cols, vector, expr, left, expr.vector, "has columns of size")
            return rows
        if isinstance(expr, Reduction):
            self.size_of(expr.vector)
            return self.unknowns.new(SCALAR, SCALAR)
        if isinstance(expr, Var):
            if expr.name.removesuffix(PRIME) in self.matrices:
                return self.matrices[expr.name.removesuffix(PRIME)]
            return self.unknown_of(expr)
        if expr.is_number:
            return None
        if isinstance(expr, sympy.Pow):
            return self.size_of(expr.base)
        return self._elementwise(expr, [(arg, self.size_of(arg)) for arg in expr.args])

    def _elementwise(self, expr: sympy.Expr, sized: list[tuple[sympy.Expr, Size]]) -> Size:
        """The size of an elementwise operation of operands of these sizes: all vectors join; beside
        a matrix, vectors are its columns and rows its rows; a column beside a row makes a matrix."""
        scalar = any(isinstance(u, str) and self.unknowns.resolved(u) == SCALAR for _, u in sized)
        vectors = [(a, u) for a, u in sized if isinstance(u, str) and self.unknowns.resolved(u) != SCALAR]
        matrices = [(a, u) for a, u in sized if isinstance(u, MatrixSize)]
        rows = [(a, u) for a, u in sized if isinstance(u, RowSize)]
        for (left, left_size), (right, right_size) in itertools.pairwise(vectors):
            self._join(left_size, right_size, expr, left, right, "has size")
        for (left, left_size), (right, right_size) in itertools.pairwise(rows):
            self._join(left_size.cols, right_size.cols, expr, left, right, "has size")
        if matrices:
            first, size = matrices[0]
            for other, other_size in matrices[1:]:
                self._join(size.rows, other_size.rows, expr, first, other, "has rows of size")
                self._join(size.cols, other_size.cols, expr, first, other, "has columns of size")
            hint = "; a vector beside a matrix scales its rows, and v.T its columns"
            for vector, unknown in vectors[:1]:
                self._join(size.rows, unknown, expr, first, vector, "has rows of size", hint)
            for row, row_size in rows[:1]:
                self._join(size.cols, row_size.cols, expr, first, row, "has columns of size", hint)
            return size
        if rows and vectors:  # a column times a row: their outer product
            return MatrixSize(vectors[0][1], rows[0][1].cols)
        if rows:
            return rows[0][1]
        if vectors:
            return vectors[0][1]
        return self.unknowns.new(SCALAR, SCALAR) if scalar else None

    def _sample_product(self, expr: SampleMatVec) -> str:
        """``S @ v``: v joins S's columns, the result has S's rows (``S.T @ v`` the other way round)."""
        matrix = self._matrix_operand(expr.matrix, expr, "the left side of '@' must be a parameter matrix or a matrix")
        rows, cols = (matrix.cols, matrix.rows) if expr.transposed else (matrix.rows, matrix.cols)
        left = Transposed(expr.matrix) if expr.transposed else expr.matrix
        vector = self._vector_operand(expr, left)
        self._join(cols, vector, expr, left, expr.vector, "has columns of size")
        return rows

    def _matrix_operand(self, operand: sympy.Expr, expr: sympy.Expr, why: str) -> MatrixSize:
        """The size of an operand that must be a per-sample matrix (a name: the checker lifts others)."""
        size = self.size_of(operand)
        if isinstance(size, MatrixSize):
            return size
        text = self.written.text(operand)
        raise self.raise_at(
            f"`{self.written.text(expr)}`: {why}, and `{text}` is a vector; make it a matrix "
            "(`outer(a, b)`, or an expression of a matrix state)",
            text,
        )

    def _vector_operand(self, expr: MatVec | SampleMatVec, left: sympy.Expr) -> str:
        """The unknown of the right side of a product, which must be a vector."""
        vector = self.size_of(expr.vector)
        if vector is None:
            raise self.raise_at(
                f"`{self.written.text(expr)}` multiplies {cell_text(left)} with a constant; "
                "the right side of '@' must be a vector",
                cell_text(left),
            )
        if not isinstance(vector, str):
            raise self.raise_at(
                f"`{self.written.text(expr)}`: the right side of '@' must be a vector, and "
                f"`{self.written.text(expr.vector)}` is a {'matrix' if isinstance(vector, MatrixSize) else 'row'}",
                self.written.text(expr.vector),
            )
        return vector

    def _join(
        self, a: str, b: str, whole: sympy.Expr, left: sympy.Expr, right: sympy.Expr, how: str, hint: str = ""
    ) -> None:
        if self.unknowns.join(a, b):
            return
        da, db = self.unknowns.resolved(a), self.unknowns.resolved(b)
        text = self.written.text
        raise self.raise_at(
            f"size conflict in `{text(whole)}`: `{text(left)}` {how} {da} but `{text(right)}` has size {db}{hint}",
            text(right),
        )


def infer_sizes(
    source: CellSource,
    equations: list[SourceEquation],
    params: list[str],
    matrices: set[str],
    error: Callable[[type[CellError], str, int | None, str | None], CellError],
    written: AsWritten | None = None,
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """The size of every vector and the shape of every parameter of a cell whose names are checked.

    ``matrices`` are the parameters used with ``@``; ``error`` builds an error naming a line;
    ``written`` says how to name the vectors the checker lifted out of products and reductions.
    """
    written = written or AsWritten()
    unknowns = SizeUnknowns()
    for decl in source.inputs:
        unknowns.new(decl.name, decl.dim)
    declared_matrices = {}
    for decl in source.states:
        axes = matrix_axes(decl.dim)
        if axes is None:
            unknowns.new(decl.name, decl.dim)
        else:
            rows, cols = axes
            declared_matrices[decl.name] = MatrixSize(
                unknowns.new(f"{decl.name}[rows]", rows), unknowns.new(f"{decl.name}[cols]", cols)
            )
    unknowns.new(SCALAR, SCALAR)
    for param in source.params:  # a declared scalar meets any size: fixed before the equations
        if param.shape == (SCALAR,) and param.name not in matrices:
            unknowns.new(param.name, SCALAR)
    current: list[SourceEquation] = []

    constant_names = {c.target for c in source.constants}

    def unknown_of(var: Var) -> str | None:
        name = var.name
        if name in constant_names:
            return None
        if name in matrices:
            used = next(eq.line for eq in equations if name in matrix_names(eq.expr))
            raise error(
                DimensionError,
                f"{name} is used as a matrix (on the left of '@', line {used}) and as a vector: a parameter is one "
                f"or the other; to add the vector {name} to a product, write it beside the product "
                f"(W @ h + {name}), else rename one of them",
                current[0].line,
                name,
            )
        key = name[: -len(PRIME)] if name.endswith(PRIME) else name
        return unknowns.new(key)

    def matrix_unknowns(var: Var) -> tuple[str, str]:
        return unknowns.new(var.name + "[rows]"), unknowns.new(var.name + "[cols]")

    def raise_at(message: str, symbol: str) -> DimensionError:
        return error(DimensionError, message, current[0].line, symbol)

    inference = SizeInference(unknowns, unknown_of, matrix_unknowns, raise_at, written, declared_matrices)
    declared = _Declared(source.params, matrices, unknowns)
    vector_states = {d.name: d.dim for d in source.states if d.name not in declared_matrices}
    for eq in equations:
        current[:] = [eq]
        if eq.dim is not None:
            unknowns.new(eq.target, eq.dim)
        size = inference.size_of(eq.expr)
        if isinstance(size, RowSize):
            raise error(
                DimensionError,
                f"`{written.text(eq.expr)}` is a row (a vector laid along a matrix's columns: v.T, or outer's "
                f"second argument beside a constant), which only broadcasts over a matrix: {eq.target} must be a "
                "vector or a matrix (outer(a, b) is a * b.T, with a a vector)",
                eq.line,
                eq.target,
            )
        if _assigns_matrix(eq, size, inference, vector_states, written, error):
            declared.note_resolved(eq.line)
            continue
        target = unknown_of(Var(eq.target))
        if target is None:
            raise error(CellNameError, f"{eq.target} is a constant and cannot be assigned", eq.line, eq.target)
        broadcast = unknowns.resolved(size or SCALAR) == SCALAR and unknowns.resolved(target) is not None
        if size is not None and not broadcast and not unknowns.join(target, size):
            scalar = unknowns.resolved(target) == SCALAR
            raise error(
                DimensionError,
                f"{eq.target} has size {unknowns.resolved(target)} but `{written.text(eq.expr)}` "
                f"has size {unknowns.resolved(size)}"
                + ("; a per-sample scalar takes one value per sample: reduce the vector (sum, mean)" if scalar else ""),
                eq.line,
                eq.target,
            )
        declared.note_resolved(eq.line)

    first_line: dict[str, int | None] = {}
    for eq in reversed(equations):
        for name in vector_names(eq.expr) | matrix_names(eq.expr):
            first_line[name] = eq.line
    declared.apply(params, first_line, error)

    # what the author assigned, not a state's next value nor a vector lifted out of a product
    targets = {eq.target: eq for eq in equations if not eq.target.endswith(PRIME) and eq.target not in written.places}

    def resolve(key: str, what: str, name: str, line: int | None) -> str:
        dim = unknowns.resolved(key)
        if dim is None and isinstance(written.expressions.get(key), MatVec):
            raise error(DimensionError, _unsized_product(key, what, written, taken, dims), line, name)
        if dim is None:
            sized = f"output {name}" if name in targets and targets[name].is_output else name
            raise error(
                DimensionError,
                f"cannot infer the size of {what}: it meets no input, state or vector of known size "
                "(only constants, and reductions, which fit any size)"
                + (f"; declare it: `{sized}: DIM = ...`" if name in targets else "")
                + written.hint(name),
                line,
                name,
            )
        return dim

    taken = {*targets, *first_line, *(d.name for d in (*source.inputs, *source.states))}
    dims = set(unknowns.fixed.values())

    sizes: dict[str, str] = {d.name: d.dim for d in (*source.inputs, *source.states)}
    for eq in equations:
        symbol = written.text(Var(eq.target))
        what = written.what(eq.target)
        matrix = inference.matrices.get(eq.target.removesuffix(PRIME))
        if matrix is None:
            sizes[eq.target] = resolve(unknown_of(Var(eq.target)), what, symbol, eq.line)
        else:
            rows = resolve(matrix.rows, f"the rows of {what}", symbol, eq.line)
            sizes[eq.target] = matrix_size(rows, resolve(matrix.cols, f"the columns of {what}", symbol, eq.line))
    shapes: dict[str, tuple[str, ...]] = {}
    known = {dim for d in (*source.inputs, *source.states) for dim in dims_of(d.dim)}
    for name in params:
        line = first_line.get(name)
        if name in matrices:
            shapes[name] = (
                resolve(name + "[rows]", f"the rows of {name}", name, line),
                resolve(name + "[cols]", f"the columns of {name}", name, line),
            )
        else:
            shapes[name] = (resolve(name, f"parameter {name}", name, line),)
        known.update(shapes[name])
    for eq in equations:
        unknown_dims = [d for d in dims_of(sizes[eq.target]) if d not in known and d != SCALAR]
        if unknown_dims:
            raise error(
                DimensionError,
                f"dimension {unknown_dims[0]} of {eq.target} meets no input, state or parameter, "
                "so its size cannot be known when the kernel runs",
                eq.line,
                eq.target,
            )
    return sizes, shapes


def _assigns_matrix(
    eq: SourceEquation,
    size: Size,
    inference: SizeInference,
    vector_states: Mapping[str, str],
    written: AsWritten,
    error: Callable[[type[CellError], str, int | None, str | None], CellError],
) -> bool:
    """Sizes an equation whose target is a per-sample matrix (a matrix state's next value, or a name
    given a matrix expression), joining its rows and columns with the expression's; False for a
    vector's equation, which the caller sizes."""
    base = eq.target.removesuffix(PRIME)
    target = inference.matrices.get(base)
    text = written.text(eq.expr)
    if target is None and not isinstance(size, MatrixSize):
        return False
    if target is None and (base in vector_states or eq.dim is not None):
        declared = vector_states.get(base, eq.dim)
        whose = f"state {base}" if base in vector_states else eq.target
        rows = sorted(eq.expr.atoms(RowVector), key=sympy.default_sort_key)
        why = ""
        if rows:
            row, vector = written.text(rows[0]), written.text(rows[0].vector)
            why = f" (`{row}` lays {vector} as a row, and a column beside a row makes a matrix, their outer product)"
        fix = f"declare `state {base}: ROWS x COLS`" if base in vector_states else "reduce it (S @ v, rowsum, sum)"
        raise error(
            DimensionError,
            f"{eq.target} = `{text}` is a matrix{why}, but {whose} is declared a vector of size {declared}; {fix}",
            eq.line,
            eq.target,
        )
    target = target or inference.matrix(eq.target)
    unknowns = inference.unknowns
    if isinstance(size, MatrixSize):
        for axis, mine, theirs in (("rows", target.rows, size.rows), ("columns", target.cols, size.cols)):
            if not unknowns.join(mine, theirs):
                raise error(
                    DimensionError,
                    f"{eq.target} has {axis} of size {unknowns.resolved(mine)} but `{text}` has {axis} of size "
                    f"{unknowns.resolved(theirs)}",
                    eq.line,
                    eq.target,
                )
    elif size is not None and unknowns.resolved(size) != SCALAR:
        raise error(
            DimensionError,
            f"{eq.target} is a matrix ({unknowns.resolved(target.rows)} x {unknowns.resolved(target.cols)}) but "
            f"`{text}` is a vector; make it a matrix (outer(a, b), f * {base})",
            eq.line,
            eq.target,
        )
    return True


def shape_text(shape: tuple[str, ...]) -> str:
    """A parameter's shape as a ``param`` line writes it: ``H x D``, ``H`` or ``1``."""
    return " x ".join(shape)


class _Declared:
    """The ``param`` declarations of a cell, met with the sizes the equations imply.

    Equations are read first, as for a cell without declarations; ``note_resolved`` records, after
    each equation, which declared axes it resolved, so that a conflict names the equation's line.
    """

    def __init__(self, declarations: tuple[ParamDeclaration, ...], matrices: set[str], unknowns: SizeUnknowns):
        self.by_name = {d.name: d for d in declarations}
        self.matrices = matrices
        self.unknowns = unknowns
        self.resolved_on: dict[str, int] = {}

    def keys(self, name: str) -> tuple[str, ...]:
        """The size unknowns of a parameter: rows and columns of a matrix, or its one size."""
        return (f"{name}[rows]", f"{name}[cols]") if name in self.matrices else (name,)

    def note_resolved(self, line: int) -> None:
        for name in self.by_name:
            for key in self.keys(name):
                if key not in self.resolved_on and key in self.unknowns.parent and self.unknowns.resolved(key):
                    self.resolved_on[key] = line

    def implied(self, name: str, placeholders: tuple[str, ...]) -> tuple[str, ...]:
        """The shape the equations give ``name``, a placeholder for each size they leave open."""
        keys = self.keys(name)
        return tuple(self.unknowns.resolved(self.unknowns.new(k)) or p for k, p in zip(keys, placeholders, strict=True))

    def apply(
        self,
        params: list[str],
        first_line: Mapping[str, int | None],
        error: Callable[[type[CellError], str, int | None, str | None], CellError],
    ) -> None:
        """Every parameter is declared (if any is), as a matrix or a vector as it is used, with the
        shape the equations imply; the declared sizes then fix the sizes the equations leave open."""
        if not self.by_name:
            return
        for name in params:
            if name not in self.by_name:
                placeholders = ("ROWS", "COLS") if name in self.matrices else ("DIM",)
                shape = shape_text(self.implied(name, placeholders))
                raise error(
                    CellNameError,
                    f"{name} is not declared: this cell declares its parameters (`param` lines) and {name} is not "
                    "one of them, nor an input, state, constant or assigned name; declare it "
                    f"(`param {name}: {shape}`) or, if it is a slip, write the name it stands for",
                    first_line[name],
                    name,
                )
        for name in params:
            declaration, keys = self.by_name[name], self.keys(name)
            where = _line_note(declaration.line)
            declared = f"`param {name}: {shape_text(declaration.shape)}`{where}"
            if len(keys) != len(declaration.shape):
                used = "a matrix (on the left of '@')" if name in self.matrices else "a vector"
                raise error(
                    DimensionError,
                    f"{name} is declared {declared} but used as {used} in line {first_line[name]}",
                    first_line[name],
                    name,
                )
            implied = self.implied(name, ("?",) * len(keys))
            for key, dim, implied_dim in zip(keys, declaration.shape, implied, strict=True):
                if implied_dim not in ("?", dim):
                    line = self.resolved_on.get(key, first_line[name])
                    raise error(
                        DimensionError,
                        f"{name} is declared {declared} but the equations make it {shape_text(implied)} "
                        f"(line {line}): change the declaration or the equations",
                        line,
                        name,
                    )
                self.unknowns.new(key, dim)


def _line_note(line: int) -> str:
    return f" (line {line})" if line else ""


def _unsized_product(name: str, what: str, written: AsWritten, taken: set[str], dims: set[str]) -> str:
    """Why a product written inside another (``P @ (Q @ h)``) has no size, and how to give it one."""
    fresh, dim = _unused("r", taken), _unused("R", dims)
    outer = written.text(written.enclosing[name].xreplace({Var(name): Var(fresh)}))
    return (
        f"the size of {what} cannot be inferred: name it with its size, e.g. "
        f"`{fresh}: {dim} = {written.text(Var(name))}`, then write `{outer}`"
    )


def _unused(name: str, taken: set[str]) -> str:
    """``name``, or the first of ``name2``, ``name3`` ... not in ``taken``."""
    return next(n for n in itertools.chain([name], (f"{name}{i}" for i in itertools.count(2))) if n not in taken)
