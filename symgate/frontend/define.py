"""Cells from SymPy objects: the Python twin of cell text, checked by the same rules.

``define`` turns ``(target, expression)`` pairs and declarations into the same
:class:`~symgate.frontend.syntax.CellSource` that parsing text gives, then checks it with
:func:`~symgate.frontend.check.check`; errors name the 1-based equation number as the line.

Products are where SymPy and the cell language part ways: ``W @ x`` needs symgate's symbols
(``sg.symbols``, ``sg.Var``), since SymPy's own ``Symbol`` has no ``@``, and ``W*x`` is elementwise.
A user who met that ``TypeError`` and wrote ``*`` instead, or who passed SymPy matrices, is told
here how to write the product.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sympy

from ..errors import CellError, CellNameError, DimensionError
from .cell import Cell
from .check import SYMPY_SOURCE, check
from .functions import Extent, MatVec, Var
from .syntax import CellSource, Declaration, ParamDeclaration
from .syntax import Equation as SourceEquation


def define(
    name: str,
    *,
    inputs: Mapping[str, str],
    states: Mapping[str, str],
    equations: Sequence[tuple[sympy.Symbol | str, sympy.Expr]] | Mapping[sympy.Symbol | str, sympy.Expr],
    outputs: Iterable[str] | Mapping[str, str] = (),
    constants: Mapping[str, float | sympy.Number] | None = None,
    params: Mapping[str, Sequence[str]] | None = None,
    doc: str = "",
    strict: bool = False,
) -> Cell:
    """A checked cell from SymPy objects (the Python twin of cell text).

    ``equations`` are ``(target, expression)`` pairs in evaluation order; a target is a name, a
    :class:`~symgate.frontend.functions.Var`, or ``next_state("h")`` for a state's next value. Errors name
    the 1-based equation number as the line. ``params`` declares the parameters' shapes, as ``param``
    lines do (``{"W": ("H", "D"), "b": ("H",)}``): then every parameter must be declared.
    ``strict`` makes warnings errors, as for :func:`parse`.

    Write products with ``@`` between symgate's symbols, which know it (``W, x = sg.symbols("W x")``,
    then ``W @ x``; SymPy's ``Symbol`` does not), and reductions with ``sg.mean``, ``sg.var`` and
    ``sg.sum``, the functions cell text calls ``mean``, ``var`` and ``sum``::

        W, x, h, b = sg.symbols("W x h b")
        z = sg.Var("z")
        normed = (z - sg.mean(z)) / sympy.sqrt(sg.var(z) + 1e-5)
        sg.define("ln_rnn", inputs={"x": "D"}, states={"h": "H"},
                  equations=[(z, W @ x + h), (sg.next_state("h"), sympy.tanh(normed + b))])
    """
    _check_arguments(name, equations, outputs, constants, doc, strict)
    pairs = list(equations.items()) if isinstance(equations, Mapping) else list(equations)
    output_dims = dict(outputs) if isinstance(outputs, Mapping) else dict.fromkeys(outputs)
    output_names = set(output_dims)
    source_equations = []
    for number, pair in enumerate(pairs, start=1):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise CellError("each equation must be a (target, expression) pair", line=number, source=SYMPY_SOURCE)
        target, expr = pair
        if not isinstance(target, (str, sympy.Symbol)):
            raise CellNameError(f"the target {target!r} must be a name or a symbol", line=number, source=SYMPY_SOURCE)
        target_name = target if isinstance(target, str) else target.name
        expr = _sympy_expression(expr, f"the expression of {target_name}", number)
        _refuse_matrices(expr, target_name, number)
        plain = {s: Var(s.name) for s in expr.free_symbols if not isinstance(s, Var)}
        source_equations.append(
            SourceEquation(
                target_name, expr.xreplace(plain), number, target_name in output_names, output_dims.get(target_name)
            )
        )
    unknown_outputs = output_names - {e.target for e in source_equations}
    if unknown_outputs:
        raise CellNameError(f"outputs {sorted(unknown_outputs)} have no equation", source=SYMPY_SOURCE)
    declared = {"inputs": inputs, "states": states}
    for label, names in declared.items():
        if not isinstance(names, Mapping) or not all(isinstance(v, str) for v in [*names, *names.values()]):
            raise CellNameError(f"{label} must map names to dimension names (strings)", source=SYMPY_SOURCE)
    params = {} if params is None else params
    shapes_given = isinstance(params, Mapping) and all(
        isinstance(n, str) and isinstance(s, (tuple, list)) and len(s) in (1, 2) and all(isinstance(d, str) for d in s)
        for n, s in params.items()
    )
    if not shapes_given:
        raise CellNameError(
            'params must map names to shapes of one or two dimension names: {"W": ("H", "D"), "b": ("H",)}',
            source=SYMPY_SOURCE,
        )
    matrices = {n: tuple(shape) for n, shape in params.items() if len(shape) == 2}
    for equation in source_equations:
        _refuse_elementwise_matrices(equation, matrices)
    vectors = {*inputs, *states, *(e.target for e in source_equations), *(constants or {})}
    source = CellSource(
        name=name,
        inputs=tuple(Declaration(n, d, 0) for n, d in inputs.items()),
        states=tuple(Declaration(n, d, 0) for n, d in states.items()),
        equations=tuple(source_equations),
        doc=doc,
        source=SYMPY_SOURCE,
        lines=(),
        constants=tuple(
            SourceEquation(n, _sympy_expression(v, f"constant {n}", 0), 0) for n, v in (constants or {}).items()
        ),
        params=tuple(ParamDeclaration(n, tuple(shape), 0) for n, shape in params.items()),
    )
    try:
        return check(source, strict=strict)
    except DimensionError as err:
        hint = _product_hint(source_equations, err.line, vectors)
        if hint is None:
            raise
        raise DimensionError(f"{err.reason}; {hint}", line=err.line, symbol=err.symbol, source=err.source) from None


def _check_arguments(
    name: object, equations: object, outputs: object, constants: object, doc: object, strict: object
) -> None:
    """Refuses arguments of the wrong kind by name, before anything iterates over them."""
    problems = []
    if not isinstance(name, str):
        problems.append(f"the cell name must be a string, not {type(name).__name__}")
    if isinstance(equations, (str, bytes)) or not isinstance(equations, (Mapping, Iterable)):
        problems.append(f"equations must be (target, expression) pairs or a mapping, not {type(equations).__name__}")
    if isinstance(outputs, (str, bytes)) or not isinstance(outputs, (Mapping, Iterable)):
        problems.append(f"outputs must be names or a mapping of names to sizes, not {type(outputs).__name__}")
    elif not all(isinstance(n, str) for n in outputs):
        problems.append("outputs must be names (strings)")
    if constants is not None and not (isinstance(constants, Mapping) and all(isinstance(n, str) for n in constants)):
        problems.append("constants must map names (strings) to numbers")
    if not isinstance(doc, str):
        problems.append(f"doc must be a string, not {type(doc).__name__}")
    if not isinstance(strict, bool):
        problems.append(f"strict must be True or False, not {strict!r}")
    if problems:
        raise CellError("; ".join(problems), source=SYMPY_SOURCE)


def _sympy_expression(value: object, what: str, number: int) -> sympy.Expr:
    """A SymPy expression given to ``define`` (strings are refused: text goes through ``parse``)."""
    try:
        return sympy.sympify(value, strict=True)
    except (sympy.SympifyError, TypeError) as err:
        raise CellError(
            f"{what} must be a SymPy expression, not {type(value).__name__}; use sg.parse for cell text",
            line=number or None,
            source=SYMPY_SOURCE,
        ) from err


_AT_HINT = (
    'write the product with @, not *: {m}, {v} = sg.symbols("{m} {v}"), then {m} @ {v} '
    "(SymPy's own symbols have no @), or {m} @ {v} in cell text (sg.parse)"
)
"""How a matrix-vector product is written, for the errors about one written otherwise."""


def _refuse_matrices(expr: sympy.Expr, target: str, number: int) -> None:
    """SymPy's matrices (``MatrixSymbol``) are refused: a cell's names are vectors read elementwise."""
    matrices = sorted(m.name for m in expr.atoms(sympy.MatrixSymbol))
    if matrices or isinstance(expr, (sympy.MatrixBase, sympy.MatrixExpr)):
        named = ", ".join(matrices) or "a matrix"
        raise CellError(
            f"the expression of {target} holds SymPy matrices ({named}), but a cell's names are vectors read "
            "elementwise; for a matrix-vector product, " + _AT_HINT.format(m="W", v="x"),
            line=number,
            symbol=matrices[0] if matrices else None,
            source=SYMPY_SOURCE,
        )


def _refuse_elementwise_matrices(equation: SourceEquation, matrices: Mapping[str, tuple[str, ...]]) -> None:
    """A parameter declared a matrix in ``params`` may not be a factor of ``*``: that is elementwise."""
    for product in _products(equation.expr):
        for factor in product.args:
            if isinstance(factor, sympy.Symbol) and factor.name in matrices:
                vector = _other_factors(product, factor) or "x"
                raise CellError(
                    f"{factor.name} is a matrix (params gives it shape ({', '.join(matrices[factor.name])})), "
                    f"but `{product}` multiplies it elementwise; " + _AT_HINT.format(m=factor.name, v=vector),
                    line=equation.line,
                    symbol=factor.name,
                    source=SYMPY_SOURCE,
                )


def _product_hint(equations: Sequence[SourceEquation], line: int | None, vectors: set[str]) -> str | None:
    """For a size conflict in equation ``line``: how to write a product, if the equation multiplies a
    parameter (a name no declaration or equation gives) by a vector with ``*``, as ``W*x``; else None."""
    if line is None or not 1 <= line <= len(equations):
        return None
    for product in _products(equations[line - 1].expr):
        for factor in product.args:
            if isinstance(factor, sympy.Symbol) and not isinstance(factor, Extent) and factor.name not in vectors:
                vector = _other_factors(product, factor)
                if vector is not None:
                    return f"if {factor.name} is a matrix, " + _AT_HINT.format(m=factor.name, v=vector)
    return None


def _products(expr: sympy.Expr) -> list[sympy.Mul]:
    """The ``*`` products in ``expr``, outermost first, but for those in the matrix of an ``@``
    (``MatVec(2*W, h)`` is a matrix scaled, then applied)."""
    if isinstance(expr, MatVec):
        return _products(expr.vector)
    found = [expr] if isinstance(expr, sympy.Mul) else []
    for arg in expr.args:
        found += _products(arg)
    return found


def _other_factors(product: sympy.Mul, factor: sympy.Symbol) -> str | None:
    """The text of ``product`` without ``factor``, when what is left holds a name (``W*x`` -> ``x``)."""
    rest = product.func(*(f for f in product.args if f != factor))
    return str(rest) if rest.free_symbols else None
