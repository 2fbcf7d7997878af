"""Checking: cell source (text or SymPy) -> :class:`~symgate.frontend.cell.Cell`, every size inferred.

Every rule of the cell language that is not syntax is enforced here, once, for cells written as
text and for cells built from SymPy objects alike: each state gets exactly one update, an
intermediate is assigned once and before it is used, only parameters multiply with ``@``, and
sizes agree. Errors name the line (or equation number) and the symbol.
"""

from __future__ import annotations

import re
import sys
import warnings
from functools import cached_property
from pathlib import Path

import sympy

from ..arguments import flag_argument, path_argument, text_argument
from ..errors import (
    CellError,
    CellNameError,
    CellSyntaxError,
    DimensionError,
    EquationOrderError,
    StateUpdateError,
    SymgateWarning,
    UnknownFunctionError,
)
from .cell import Cell, Equation, Param, next_name
from .constants import Fail, constant_values, described, shown, unfit
from .functions import (
    PRIME,
    SCALAR,
    AxisReduction,
    MatVec,
    MatVecT,
    Reduction,
    RowVector,
    SampleMatVec,
    SampleMatVecT,
    Transposed,
    Var,
    dims_of,
    matrix_axes,
    matrix_names,
    vector_names,
)
from .limits import guarded
from .matrix_terms import expand_matrix_products
from .notation import cell_text
from .shapes import AsWritten, infer_sizes, shape_text
from .source_file import read_cell_file
from .syntax import KEYWORDS, CellSource, Declaration, ParamDeclaration, parse_source
from .syntax import Equation as SourceEquation
from .typos import NUMBER_NAMES, how_close
from .vocabulary import BY_NODE, FUNCTIONS, ReduceMean, variance

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
SYMPY_SOURCE = "<sympy>"
AXES = frozenset({"T", "B"})  # the number of steps and the batch size
_FUNCTION_NODES = tuple(BY_NODE)


def parse(text: str, source: str = "<string>", strict: bool = False) -> Cell:
    """A checked cell from cell-language text.

    A name that is probably a slip (see :mod:`symgate.frontend.typos`) issues a
    :class:`~symgate.errors.SymgateWarning`; ``strict=True`` raises it as a ``CellNameError``.
    """
    text, source = text_argument(text, "text"), text_argument(source, "source")
    strict = flag_argument(strict, "strict")
    with guarded("parse"):
        return check(parse_source(text, source), strict=strict)


def load(path: str | Path, strict: bool = False) -> Cell:
    """A checked cell from a ``.cell`` file (``strict`` as for :func:`parse`)."""
    path, strict = path_argument(path, "path"), flag_argument(strict, "strict")
    data = read_cell_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        message = f"the file is not UTF-8: byte 0x{data[err.start]:02X} at column {column} ({err.reason})"
        raise CellSyntaxError(message, line=line, source=str(path)) from None
    return parse(text, str(path), strict=strict)


def check(source: CellSource, strict: bool = False) -> Cell:
    """Checks a parsed cell and infers every size; raises a :class:`CellError` subclass if wrong.

    Warnings (:class:`~symgate.errors.SymgateWarning`) are issued once the cell is valid, or raised
    as :class:`~symgate.errors.CellNameError` if ``strict``.
    """
    with guarded("check"):
        return _Checker(source, strict).run()


class _Checker:
    def __init__(self, source: CellSource, strict: bool = False) -> None:
        self.src = source
        self.strict = strict
        self.lifted_from: dict[str, str] = {}  # a lifted vector's name -> the target of the equation it came from
        self.lifted_vectors: dict[str, sympy.Expr] = {}  # a lifted vector's name -> the expression as written
        self.lifted_places: dict[str, str] = {}  # a lifted vector's name -> where it was written
        self.lifted_enclosing: dict[str, sympy.Expr] = {}  # a lifted vector's name -> the node that reads it
        self.param_lines: dict[str, int] = {}
        self.written_products: dict[sympy.Expr, sympy.Expr] = {}  # an expanded product -> as written

    @cached_property
    def declared_vectors(self) -> frozenset[str]:
        """The inputs, states and targets of the equations as written (made once: every equation reads them)."""
        declared = (*self.src.inputs, *self.src.states)
        return frozenset({d.name for d in declared} | {e.target for e in self.src.equations})

    def error(self, kind: type[CellError], message: str, line: int | None, symbol: str | None) -> CellError:
        return kind(message, line=line, symbol=symbol, source=self.src.source, text=self.src.line_text(line))

    def failure(self, line: int | None) -> Fail:
        """Makes :class:`CellError` s at ``line`` from a message and a symbol (for :mod:`.constants`)."""
        return lambda message, symbol: self.error(CellError, message, line, symbol)

    def warn(self, message: str, line: int | None, symbol: str) -> None:
        """A :class:`SymgateWarning` at the line of the user's code that asked for this cell (an error if strict)."""
        if self.strict:
            raise self.error(CellNameError, message, line, symbol)
        warning = SymgateWarning(
            message, line=line, symbol=symbol, source=self.src.source, text=self.src.line_text(line)
        )
        level, frame = 1, sys._getframe(0)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("symgate."):
            level, frame = level + 1, frame.f_back
        warnings.warn(warning, stacklevel=level)

    def run(self) -> Cell:
        self.check_names()
        self.check_targets()
        equations = [self.per_sample_matrices(self.fold_constants(eq)) for eq in self.src.equations]
        equations = [self.expand_matrices(eq) for eq in equations]
        for eq in equations:
            self.check_symbol_names(eq)
            self.check_constant_arguments(eq)
        self.taken = self._all_names()
        self.lifted: dict[sympy.Expr, str] = {}
        equations = [self.lift_products(eq) for eq in equations]
        equations = [eq for group in equations for eq in group]
        for eq in equations:
            self.check_nodes(eq)
        constants = self.check_constants()
        params, matrices = self.check_order(equations)
        if self.src.params:  # declared parameters come in the order of their declarations
            order = {d.name: index for index, d in enumerate(self.src.params)}
            params.sort(key=lambda name: order.get(name, len(order)))
        self.check_all_used(equations)
        for eq in equations:
            if eq.dim not in (None, SCALAR) and (not IDENTIFIER.match(eq.dim) or eq.dim in KEYWORDS | AXES):
                raise self.error(CellNameError, f"invalid dimension {eq.dim!r}", eq.line, eq.dim)
        vectors = [p for p in params if p not in matrices]
        self.param_lines = {p: next(eq.line for eq in equations if p in vector_names(eq.expr)) for p in vectors}
        written = AsWritten(
            self.lifted_vectors, self.lifted_places, self.typo_hint, self.lifted_enclosing, self.written_products
        )
        sizes, shapes = infer_sizes(self.src, equations, params, matrices, self.error, written)
        self.check_declarations_read(equations)
        self.check_params_used(params)
        if not self.src.params:
            self.warn_about_parameters()
        kinds = {
            e.target: ("output" if e.is_output else "next" if e.target.endswith(PRIME) else "intermediate")
            for e in equations
        }
        return Cell(
            name=self.src.name,
            inputs={d.name: d.dim for d in self.src.inputs},
            states={d.name: d.dim for d in self.src.states},
            outputs={e.target: sizes[e.target] for e in equations if e.is_output},
            constants=constants,
            params=tuple(Param(p, shapes[p]) for p in params),
            equations=tuple(
                Equation(Var(e.target), e.expr, kinds[e.target], e.line, sized=e.dim is not None) for e in equations
            ),
            sizes=sizes,
            doc=self.src.doc,
            source=self.src.source,
            params_declared=bool(self.src.params),
            lines=self.src.lines,
            constant_lines={c.target: c.line for c in self.src.constants if c.line},
        )

    # -- names and roles ------------------------------------------------------------------
    def check_names(self) -> None:
        if not IDENTIFIER.match(self.src.name) or self.src.name in KEYWORDS:
            raise self.error(CellNameError, f"invalid cell name {self.src.name!r}", None, self.src.name)
        declared: dict[str, Declaration] = {}
        for decl in (*self.src.inputs, *self.src.states):
            dims = [d for d in dims_of(decl.dim) if d != SCALAR]
            labelled = (("name", decl.name), *(("dimension", d) for d in dims))
            for label, value in labelled:
                if value in KEYWORDS:
                    raise self.error(
                        CellNameError,
                        f"invalid {label} {value!r}: it is a keyword of the cell language",
                        decl.line,
                        value,
                    )
                if not IDENTIFIER.match(value):
                    raise self.error(CellNameError, f"invalid {label} {value!r}", decl.line, value)
            for dim in set(dims) & AXES:
                raise self.error(
                    CellNameError,
                    f"dimension {dim} is taken: T is the number of steps and B the batch size",
                    decl.line,
                    dim,
                )
            if decl.name in declared:
                first = declared[decl.name].line
                raise self.error(
                    CellNameError, f"{decl.name} is declared twice (first on line {first})", decl.line, decl.name
                )
            declared[decl.name] = decl
        for param in self.src.params:
            self.check_param_declaration(param, declared)
        if not self.src.states:
            raise self.error(CellNameError, "a cell needs at least one state (`state h: H`)", None, None)

    def check_param_declaration(self, param: ParamDeclaration, declared: dict[str, Declaration]) -> None:
        """``param W: H x D``: a new name, one or two dimension names or ``1``."""
        line = param.line or None
        if param.name in KEYWORDS or not IDENTIFIER.match(param.name):
            raise self.error(CellNameError, f"invalid parameter name {param.name!r}", line, param.name)
        for dim in param.shape:
            if dim != SCALAR and (dim in KEYWORDS or not IDENTIFIER.match(dim)):
                raise self.error(CellNameError, f"invalid dimension {dim!r} of parameter {param.name}", line, dim)
            if dim in AXES:
                raise self.error(
                    CellNameError,
                    f"dimension {dim} is taken: T is the number of steps and B the batch size",
                    line,
                    dim,
                )
        if param.name in declared:
            first = declared[param.name].line
            where = f" (first on line {first})" if first else ""
            raise self.error(CellNameError, f"{param.name} is declared twice{where}", line, param.name)
        declared[param.name] = Declaration(param.name, shape_text(param.shape), param.line)

    def check_constants(self) -> dict[str, sympy.Expr]:
        """``const beta = 1``: a named finite real number, distinct from every other name."""
        taken = {d.name for d in (*self.src.inputs, *self.src.states, *self.src.params)}
        taken |= {e.target for e in self.src.equations}
        constants: dict[str, sympy.Expr] = {}
        for const in self.src.constants:
            name, value, line = const.target, const.expr, const.line or None
            if not IDENTIFIER.match(name) or name in KEYWORDS:
                raise self.error(CellNameError, f"invalid constant name {name!r}", line, name)
            if name in taken or name in constants:
                raise self.error(CellNameError, f"{name} is defined twice", line, name)
            if value.free_symbols or not (value.is_real and value.is_finite):
                raise self.error(
                    CellError,
                    f"constant {name} must be a finite real number, not `{cell_text(value)}`",
                    line,
                    name,
                )
            constants[name] = _folded(value, self.failure(line), name)
        return constants

    def check_targets(self) -> None:
        inputs = {d.name for d in self.src.inputs}
        states = {d.name: d for d in self.src.states}
        params = {d.name: d.line or None for d in self.src.params}
        assigned: dict[str, SourceEquation] = {}
        for eq in self.src.equations:
            name, line = eq.target, eq.line
            base = name[: -len(PRIME)] if name.endswith(PRIME) else None
            if not IDENTIFIER.match(base or name) or (base or name) in KEYWORDS:
                raise self.error(CellNameError, f"invalid name {name!r}", line, name)
            if base is not None and base not in states:
                raise self.error(
                    CellNameError, f"{name} assigns the next value of {base}, which is not a declared state", line, name
                )
            if base is not None and eq.is_output:
                raise self.error(CellNameError, f"output {name} cannot be a primed state name", line, name)
            if base is not None and name in assigned:
                raise self.error(
                    StateUpdateError,
                    f"state {base} is updated twice (first on line {assigned[name].line})",
                    line,
                    name,
                )
            if name in inputs:
                raise self.error(CellNameError, f"{name} is an input: inputs are read, never assigned", line, name)
            if name in params:
                raise self.error(
                    CellNameError,
                    f"{name} is a parameter{_on_line(params[name])}: parameters are learned, never assigned",
                    line,
                    name,
                )
            if name in states:
                raise self.error(
                    CellNameError, f"{name} is a state: write its next value as {name}{PRIME} = ...", line, name
                )
            if name in assigned:
                raise self.error(
                    EquationOrderError, f"{name} is assigned twice (first on line {assigned[name].line})", line, name
                )
            assigned[name] = eq
        for state in states.values():
            if next_name(state.name) not in assigned:
                raise self.error(
                    StateUpdateError,
                    f"state {state.name} has no update: add `{state.name}{PRIME} = ...`",
                    state.line or None,
                    state.name,
                )

    def fold_constants(self, eq: SourceEquation) -> SourceEquation:
        """Every constant part (``pi``, ``exp(710)``, ``2**64``) becomes one number, refused here if no
        kernel type can hold it (see :mod:`symgate.frontend.constants`)."""
        return SourceEquation(eq.target, _folded(eq.expr, self.failure(eq.line)), eq.line, eq.is_output, eq.dim)

    def per_sample_matrices(self, eq: SourceEquation) -> SourceEquation:
        """``S @ v`` and ``S.T @ v`` with a name of the cell's own (a matrix state, its next value, a
        computed matrix) are per-sample products (``SampleMatVec``); ``v.T`` of such a name anywhere
        else is a row broadcast over a matrix (``RowVector``). Sizes decide later whether the name
        is a matrix; what is left (``W @ v``, ``W.T``) names parameters."""
        own = self.declared_vectors
        vectors = {d.name: ("an input", d.dim) for d in self.src.inputs}
        vectors |= {d.name: ("a state", d.dim) for d in self.src.states if not matrix_axes(d.dim)}

        def sample_matrix(name: str) -> Var:
            """A name of the cell's own on the left of '@', unless it is declared a vector."""
            base = name.removesuffix(PRIME)
            if base in vectors:
                role, dim = vectors[base]
                what = f"the next value of {role[2:]} {base}" if name != base else role
                kind = "a per-sample scalar" if dim == SCALAR else f"a vector of size {dim}"
                fix = "" if role == "an input" else f": declare `state {base}: {dim} x COLS` to make {base} one"
                raise self.error(
                    CellNameError,
                    f"{name} is {what} ({kind}); the left side of '@' must be a parameter matrix or a matrix state "
                    f"(`state S: K x V`, S' or a matrix computed from them){fix}",
                    eq.line,
                    name,
                )
            return Var(name)

        def rebuild(expr: sympy.Expr) -> sympy.Expr:
            if isinstance(expr, MatVec) and not isinstance(expr, MatVecT):
                left = expr.matrix
                if isinstance(left, Var) and left.name in own:
                    return SampleMatVec(sample_matrix(left.name), rebuild(expr.vector))
                if isinstance(left, Transposed) and isinstance(left.matrix, Var) and left.matrix.name in own:
                    return SampleMatVecT(sample_matrix(left.matrix.name), rebuild(expr.vector))
            if isinstance(expr, Transposed) and isinstance(expr.matrix, Var) and expr.matrix.name in own:
                return RowVector(expr.matrix)
            if expr.args and not isinstance(expr, Var):
                return expr.func(*(rebuild(a) for a in expr.args))
            return expr

        return SourceEquation(eq.target, rebuild(eq.expr), eq.line, eq.is_output, eq.dim)

    def expand_matrices(self, eq: SourceEquation) -> SourceEquation:
        """``(W - W.T) @ h`` becomes ``W @ h - W.T @ h`` (see :mod:`symgate.frontend.matrix_terms`)."""
        constants = {c.target for c in self.src.constants}

        def fail(message: str, symbol: str) -> CellError:
            return self.error(CellError, message, eq.line, symbol)

        expr = expand_matrix_products(eq.expr, constants, fail, self.written_products)
        return SourceEquation(eq.target, expr, eq.line, eq.is_output, eq.dim)

    def check_symbol_names(self, eq: SourceEquation) -> None:
        """Every name is an identifier (the SymPy route can make any symbol)."""
        for node in eq.expr.atoms(sympy.Symbol):
            base = node.name.removesuffix(PRIME)
            if not IDENTIFIER.match(base) or base in KEYWORDS:
                raise self.error(CellNameError, f"invalid name {node.name!r} in {eq.target}", eq.line, node.name)
        for product in eq.expr.atoms(MatVec):
            if not isinstance(product.matrix, Var):
                raise self.error(
                    CellNameError,
                    f"the left side of '@' must be a parameter matrix name, not `{cell_text(product.matrix)}`",
                    eq.line,
                    eq.target,
                )

    def check_constant_arguments(self, eq: SourceEquation) -> None:
        """Arguments a function takes as constants (``clip``'s bounds) are numbers or ``const`` names."""
        constants = {c.target for c in self.src.constants}
        declared = self.declared_vectors
        for node in sympy.preorder_traversal(eq.expr):
            record = BY_NODE.get(type(node))
            for position in record.constant_arguments if record else ():
                argument = node.args[position]
                varying = sorted(s.name for s in argument.free_symbols if s.name not in constants)
                if not varying:
                    continue
                what = f"`{cell_text(argument)}`"
                if not isinstance(argument, Var):
                    what += f", which reads {', '.join(varying)},"
                undeclared = [n for n in varying if n not in declared]
                fix = f"declare `const {undeclared[0]} = ...`" if undeclared else "use a `const` name"
                raise self.error(
                    CellError,
                    f"argument {position + 1} of `{cell_text(node)}`, {what} is not constant: {record.name} takes a "
                    f"number or a `const` name there; write a number, or {fix}",
                    eq.line,
                    varying[0],
                )

    def check_nodes(self, eq: SourceEquation) -> None:
        """Only the operations of the cell language may appear (guards the SymPy route)."""
        for node in sympy.preorder_traversal(eq.expr):
            if isinstance(node, (Var, sympy.Add, sympy.Mul, MatVec, SampleMatVec, Reduction, AxisReduction, RowVector)):
                continue
            if isinstance(node, sympy.Function) and not isinstance(node, _FUNCTION_NODES):
                raise self.error(
                    UnknownFunctionError,
                    f"unknown function {type(node).__name__}; known: {', '.join(sorted(FUNCTIONS))}",
                    eq.line,
                    type(node).__name__,
                )
            if node.is_number:
                invalid = node.has(sympy.nan, sympy.zoo, sympy.oo, sympy.I) or False in (node.is_real, node.is_finite)
                if invalid:
                    raise self.error(CellError, f"constant {node} is not a finite real number", eq.line, str(node))
                continue
            if isinstance(node, sympy.Pow) and node.exp.is_number:
                continue
            if isinstance(node, _FUNCTION_NODES):
                continue
            raise self.error(
                CellError, f"`{node}` is not part of the cell language (in {eq.target})", eq.line, eq.target
            )

    def lift_products(self, eq: SourceEquation) -> list[SourceEquation]:
        """``U @ (r*h)`` becomes ``U_arg = r*h`` and ``U @ U_arg``: products and reductions act on named
        per-sample vectors (so ``W @ p`` with a parameter p reads ``W_arg = p``)."""
        lifted: list[SourceEquation] = []
        vectors = self.declared_vectors

        means = eq.expr.atoms(ReduceMean)  # var(v) is mean((v - mean(v))**2): its inner mean was written var
        variances = {m.vector for node in means for m in node.vector.atoms(ReduceMean) if variance(m.vector) == node}

        def named(vector: sympy.Expr, name: str, written: sympy.Expr, place: str) -> sympy.Expr:
            if (isinstance(vector, Var) and vector.name in vectors) or vector.is_number:
                return vector
            if vector not in self.lifted:  # the same vector lifted twice is computed once
                self.lifted[vector] = _fresh(name, self.taken)
                self.taken.add(self.lifted[vector])
                lifted.append(SourceEquation(self.lifted[vector], vector, eq.line))
                self.lifted_from[self.lifted[vector]] = eq.target
                self.lifted_vectors[self.lifted[vector]] = written
                self.lifted_places[self.lifted[vector]] = place
            return Var(self.lifted[vector])

        def lift(expr: sympy.Expr) -> sympy.Expr:
            if isinstance(expr, MatVec):
                place = f"the right side of `{cell_text(expr)}`"
                vector = named(lift(expr.vector), f"{expr.matrix.name}_arg", expr.vector, place)
                self.lifted_enclosing.setdefault(vector.name, expr.func(expr.matrix, vector))
                return expr.func(expr.matrix, vector)
            if isinstance(expr, SampleMatVec):
                place = f"the right side of `{cell_text(expr)}`"
                vector = named(lift(expr.vector), f"{expr.matrix.name.removesuffix(PRIME)}_arg", expr.vector, place)
                self.lifted_enclosing.setdefault(vector.name, expr.func(expr.matrix, vector))
                return expr.func(expr.matrix, vector)
            if isinstance(expr, (RowVector, AxisReduction)):
                word = expr.word if isinstance(expr, AxisReduction) else "outer"
                place = f"the argument of `{cell_text(expr)}`"
                operand = lift(expr.vector)
                if operand.is_number:
                    what = "reduces a constant, which has no units to reduce over"
                    if isinstance(expr, RowVector):
                        what = "lays a constant as a row, which has no size: write a vector there"
                    raise self.error(DimensionError, f"`{cell_text(expr)}` {what}", eq.line, word)
                vector = named(operand, f"{word}_arg", expr.vector, place)
                self.lifted_enclosing.setdefault(vector.name, expr.func(vector))
                return expr.func(vector)
            if isinstance(expr, Reduction):
                vector = lift(expr.vector)
                if vector.is_number:
                    raise self.error(
                        DimensionError,
                        f"`{cell_text(expr)}` reduces a constant, which has no units to reduce over",
                        eq.line,
                        expr.word,
                    )
                word = "var" if isinstance(expr, ReduceMean) and expr.vector in variances else expr.word
                place = f"the argument of `{word}({cell_text(expr.vector)})`"
                reduced = named(vector, f"{expr.word}_arg", expr.vector, place)
                self.lifted_enclosing.setdefault(reduced.name, expr.func(reduced))
                return expr.func(reduced)
            if expr.args and not isinstance(expr, Var):
                return expr.func(*(lift(a) for a in expr.args))
            return expr

        expr = lift(eq.expr)
        return [*lifted, SourceEquation(eq.target, expr, eq.line, eq.is_output, eq.dim)]

    def _all_names(self) -> set[str]:
        names = {d.name for d in (*self.src.inputs, *self.src.states)} | {c.target for c in self.src.constants}
        for eq in self.src.equations:
            names.add(eq.target)
            names.update(s.name for s in eq.expr.free_symbols)
        return names

    # -- evaluation order -----------------------------------------------------------------
    def check_order(self, equations: list[SourceEquation]) -> tuple[list[str], set[str]]:
        """Every name is read after it is written; everything never written is a parameter."""
        defined = {d.name for d in (*self.src.inputs, *self.src.states)}
        roles = {d.name: "input" for d in self.src.inputs} | {d.name: "state" for d in self.src.states}
        roles |= {c.target: "constant" for c in self.src.constants}
        defined |= {c.target for c in self.src.constants}
        assigned_at = {eq.target: index for index, eq in enumerate(equations)}
        uses = {eq.target: vector_names(eq.expr) | matrix_names(eq.expr) for eq in equations}
        params: dict[str, tuple[int, float, str]] = {}
        matrices: set[str] = set()
        for index, eq in enumerate(equations):
            line_text = self.src.line_text(eq.line) or cell_text(eq.expr)
            for name in sorted(matrix_names(eq.expr)):
                if name in defined or name in assigned_at:
                    role = roles.get(name, "computed vector")
                    raise self.error(
                        CellNameError,
                        f"{name} is {'an' if role[0] in 'aeiou' else 'a'} {role}; the left side of '@' must be a "
                        "parameter matrix",
                        eq.line,
                        name,
                    )
                matrices.add(name)
            for name in sorted(uses[eq.target]):
                if name in defined:
                    continue
                if name in assigned_at:
                    raise self.order_error(equations, eq, name, assigned_at, uses)
                if name.endswith(PRIME):
                    raise self.error(
                        CellNameError,
                        f"{name} refers to the next value of {name[:-1]}, which is not a state",
                        eq.line,
                        name,
                    )
                if name not in params:
                    found = re.search(rf"(?<![\w']){re.escape(name)}(?![\w'])", line_text)
                    params[name] = (index, found.start() if found else float("inf"), name)
            defined.add(eq.target)
            roles[eq.target] = "computed vector"
        return sorted(params, key=params.__getitem__), matrices

    def order_error(
        self,
        equations: list[SourceEquation],
        eq: SourceEquation,
        name: str,
        assigned_at: dict[str, int],
        uses: dict[str, set[str]],
    ) -> CellError:
        target = self.lifted_from.get(eq.target, eq.target)  # a lifted vector is part of the user's equation
        if name == target:
            return self.error(EquationOrderError, f"{name} is used in its own definition (a cycle)", eq.line, name)
        later = equations[assigned_at[name]]
        path = _dependency_path(name, eq.target, uses)
        if path:
            written = [self.lifted_from.get(n, n) for n in [eq.target, *path]]
            chain = " -> ".join(n for i, n in enumerate(written) if i == 0 or n != written[i - 1])
            return self.error(
                EquationOrderError,
                f"cycle: {chain} (each uses the next; {name} is assigned on line {later.line})",
                eq.line,
                name,
            )
        return self.error(
            EquationOrderError,
            f"{name} is used before it is assigned (on line {later.line}); move its equation up",
            eq.line,
            name,
        )

    def check_all_used(self, equations: list[SourceEquation]) -> None:
        used = set().union(*(vector_names(eq.expr) for eq in equations))
        for eq in equations:
            if not eq.is_output and not eq.target.endswith(PRIME) and eq.target not in used:
                raise self.error(
                    CellNameError,
                    f"intermediate {eq.target} is never used: it reaches no state and no output",
                    eq.line,
                    eq.target,
                )

    # -- names that are probably slips -----------------------------------------------------
    def declared_names(self) -> dict[str, tuple[str, int | None]]:
        """Every name the author declared or assigned: its role and line (None when unknown)."""
        names: dict[str, tuple[str, int | None]] = {}
        for eq in self.src.equations:
            if not eq.target.endswith(PRIME):
                names[eq.target] = ("output" if eq.is_output else "intermediate", eq.line or None)
        names |= {c.target: ("constant", c.line or None) for c in self.src.constants}
        names |= {d.name: ("state", d.line or None) for d in self.src.states}
        names |= {d.name: ("input", d.line or None) for d in self.src.inputs}
        return names

    def close_parameters(self, name: str) -> list[tuple[str, str]]:
        """The vector parameters that look like a slip for ``name``, with how close each is."""
        found = [(p, how_close(p, name)) for p in self.param_lines]
        return [(p, how) for p, how in found if how is not None]

    def typo_hint(self, parameter: str) -> str:
        """``; did you mean state h (line 3)?`` for a parameter spelled like a declared name, else ``""``."""
        close = [(n, role, line) for n, (role, line) in self.declared_names().items() if how_close(parameter, n)]
        if parameter not in self.param_lines or not close:
            return ""
        name, role, line = close[0]
        return f"; {parameter} is not declared, so it is a parameter: did you mean {role} {name}{_on_line(line)}?"

    def check_declarations_read(self, equations: list[SourceEquation]) -> None:
        """Every input and state is read by some equation: one nobody reads is usually a misspelling."""
        read = set().union(*(vector_names(eq.expr) for eq in equations))
        for role, declarations in (("input", self.src.inputs), ("state", self.src.states)):
            for decl in declarations:
                if decl.name in read:
                    continue
                close = self.close_parameters(decl.name)
                if close:
                    parameter, how = close[0]
                    message = (
                        f"{role} {decl.name} is never read; the parameter {parameter} in line "
                        f"{self.param_lines[parameter]} differs from it {how}: write {decl.name} there if it is meant"
                    )
                elif role == "input":
                    message = f"input {decl.name} is never read: no equation uses it; use it or remove it"
                else:
                    message = (
                        f"state {decl.name} is never read: no equation uses its previous value, so it carries nothing "
                        f"from step to step; use it, or compute the value as an output (`output {decl.name} = ...`)"
                    )
                raise self.error(CellNameError, message, decl.line or None, decl.name)

    def check_params_used(self, params: list[str]) -> None:
        """Every declared parameter is used: a declaration no equation reads is an error, as an unread input is."""
        for param in self.src.params:
            if param.name not in params:
                raise self.error(
                    CellNameError,
                    f"parameter {param.name} is never used: no equation reads it; use it or remove its declaration",
                    param.line or None,
                    param.name,
                )

    def warn_about_parameters(self) -> None:
        """Warns of vector parameters spelled like a declared name, or like a number or the time."""
        declared = self.declared_names()
        for parameter, line in self.param_lines.items():
            if parameter in NUMBER_NAMES:
                meaning, fix = NUMBER_NAMES[parameter]
                message = f"parameter {parameter} (line {line}) is a learned vector, not {meaning}: {fix}"
                self.warn(message, line, parameter)
            for name, (role, declared_line) in declared.items():
                how = how_close(parameter, name)
                if how is not None:
                    message = (
                        f"parameter {parameter} (line {line}) differs from {role} {name}{_on_line(declared_line)} "
                        f"{how}: write {name} if it is meant, or rename the parameter"
                    )
                    self.warn(message, line, parameter)

    # -- sizes ----------------------------------------------------------------------------


def _dependency_path(start: str, goal: str, uses: dict[str, set[str]]) -> list[str] | None:
    """The chain of names from ``start`` that leads (through uses) to ``goal``, if any."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen = {start}
    while stack:
        name, path = stack.pop()
        for used in sorted(uses.get(name, ())):
            if used == goal:
                return [*path, goal]
            if used not in seen and used in uses:
                seen.add(used)
                stack.append((used, [*path, used]))
    return None


def _folded(expr: sympy.Expr, fail: Fail, name: str | None = None) -> sympy.Expr:
    """``expr`` (the value of the ``const`` ``name``, if given) with every constant part replaced by
    its value (:func:`~symgate.frontend.constants.constant_values`); ``fail`` makes the error for a
    part that float64, the widest kernel type, cannot hold (a narrower one is asked at build)."""
    values = {}
    for part, value in constant_values(expr, fail):
        why = unfit(value, "float64")
        if why:
            named = f"{name} = " if name else ""
            raise fail(f"constant {named}{described(part, value)} is {why}; rescale the equation", name or shown(part))
        values[part] = value
    return expr.xreplace(values)


def _on_line(line: int | None) -> str:
    return f" (line {line})" if line else ""


def _fresh(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}{number}", number + 1
    return candidate
