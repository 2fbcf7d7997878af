"""The one exception family symgate raises.

Every error a user can cause derives from :class:`SymgateError`, so ``except sg.SymgateError``
catches them all. Messages say what was wrong, where (file, line, equation, symbol, array) and,
where it is not obvious, how to fix it.
"""

from __future__ import annotations


class SymgateError(Exception):
    """Base class of every error symgate raises on bad input or a failed build."""


class _Located:
    """Mixin of messages about a cell: they start with ``source:line:`` and quote the line when it is known.

    ``line`` is the 1-based line of the cell text (or the 1-based equation number for a cell
    built from SymPy objects), ``symbol`` the offending name, ``source`` the file or ``<string>``.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        symbol: str | None = None,
        source: str = "<string>",
        text: str | None = None,
    ) -> None:
        self.reason = message
        self.line = line
        self.symbol = symbol
        self.source = source
        self.text = text
        where = f"{source}:{line}: " if line is not None else f"{source}: "
        quoted = f"\n    {text.strip()}" if text else ""
        super().__init__(f"{where}{message}{quoted}")


class CellError(_Located, SymgateError):
    """A cell's text or equations are wrong (``line``, ``symbol``, ``source`` say where)."""


class CellSyntaxError(CellError):
    """The text does not follow the cell grammar (bad token, unbalanced parenthesis, ...)."""


class CellNameError(CellError):
    """A name is invalid, declared twice, used in the wrong role, or never defined."""


class StateUpdateError(CellError):
    """A state has no update (``h' = ...``) or more than one."""


class EquationOrderError(CellError):
    """An intermediate is used before it is assigned, assigned twice, or part of a cycle."""


class DimensionError(CellError):
    """Sizes do not agree (``h + c`` with H != C), or a size cannot be inferred."""


class UnknownFunctionError(CellError):
    """A function that symgate does not know was called."""


class SymgateWarning(_Located, UserWarning):
    """A cell that is valid but probably not what its author meant (a parameter spelled like a
    declared name, a parameter named ``pi``).

    Issued while a cell is checked; ``strict=True`` (``sg.parse``, ``sg.load``, ``sg.define``) or
    ``--strict`` (``symgate show``, ``symgate check``) raise it as a :class:`CellNameError` instead.
    It carries ``line``, ``symbol`` and ``source`` and reads as a :class:`CellError` does.
    """


class ArgumentError(SymgateError, TypeError, ValueError):
    """An argument of a public function has the wrong type or value; the message names it.

    It is also a ``TypeError`` and a ``ValueError``, as Python's own functions raise for such
    arguments, so ``except TypeError`` keeps working.
    """


class ArrayError(SymgateError):
    """An array passed to a kernel has the wrong name, shape, dtype or memory layout."""


class BuildError(SymgateError):
    """Compiling generated C failed; carries the compiler command and its output."""

    def __init__(self, message: str, *, command: str = "", output: str = "") -> None:
        self.command = command
        self.output = output
        detail = f"\ncommand: {command}" if command else ""
        detail += f"\n{output.strip()}" if output.strip() else ""
        super().__init__(message + detail)


class UnknownCellError(SymgateError):
    """A built-in cell name that does not exist (and is not a path to a .cell file)."""


class MissingExtraError(SymgateError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class ExportError(SymgateError):
    """A cell cannot be exported as asked: bad parameters (file, names, shapes, dtype) or output directory."""


class InternalError(SymgateError):
    """symgate contradicted itself: a bug in symgate, never in the input.

    Raised where an invariant on symgate's own data fails, in place of an ``assert`` (which
    ``python -O`` would skip); the message asks for a report with the cell's text.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"internal error: {detail}. This is a bug in symgate, not in your input; "
            "please report it with the text of the cell that caused it"
        )
