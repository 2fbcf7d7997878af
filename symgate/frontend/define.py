"""Cells from SymPy objects: the Python twin of cell text, checked by the same rules.

``define`` turns ``(target, expression)`` pairs and declarations into the same
:class:`~symgate.frontend.syntax.CellSource` that parsing text gives, then checks it with
:func:`~symgate.frontend.check.check`; errors name the 1-based equation number as the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sympy

from ..errors import CellError, CellNameError
from .cell import Cell
from .check import SYMPY_SOURCE, check
from .functions import Var
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
    return check(
        CellSource(
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
        ),
        strict=strict,
    )


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
