"""Cell text -> SymPy equations: the parser of the cell language.

Cells are written as a few lines of equations so that people can read, review and diff them like
the formulas in a paper. This module turns such text into a :class:`CellSource` (declarations and
SymPy equations, each with its line) so that later stages can point at the offending line. It
checks syntax only: roles, sizes and ordering are ``check``'s job.

Cell text is untrusted: SymPy objects are built directly (never through ``eval`` or ``sympify``),
and size guards turn pathological input into a :class:`~symgate.errors.CellSyntaxError` instead of
a hang, a crash or a ``RecursionError``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import sympy

from ..errors import CellError, CellNameError, CellSyntaxError, UnknownFunctionError
from .constants import check_bounded
from .functions import PRIME, SCALAR, MatVec, Transposed, Var, matrix_size
from .limits import working_on
from .vocabulary import FUNCTIONS

__all__ = ["CellSource", "Declaration", "Equation", "ParamDeclaration", "parse_source"]

KEYWORDS = frozenset({"cell", "input", "state", "param", "output", "const"})
MAX_NAME = 64
MAX_LINE = 2000
MAX_DEPTH = 64
MAX_STATEMENTS = 10_000
MAX_TOKENS = 2_000  # per statement; SymPy's cost grows faster than a statement's size
MAX_BYTES = 1_000_000
MAX_DIGITS = 30
MAX_EXPONENT = 64
MAX_CONSTANT_BITS = 1024
LEFT_OF_MATMUL = (
    "the left side of '@' must be a parameter matrix name, its transpose (W.T) "
    "or a parenthesized sum of their multiples ((W - W.T) @ h), or a matrix state's name (S, S', S.T)"
)

_NEWLINE = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(
    r"(?P<space>[ \t]+)|(?P<comment>#.*)"
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.])|(?P<badnumber>\.?\d[\w.]*)"
    r"|(?P<name>[A-Za-z_]\w*'?)|(?P<op>\*\*|[-+*/@()=:,.])|(?P<other>.)",
    re.ASCII,
)


@dataclass(frozen=True)
class Declaration:
    """``name: dim`` from an ``input`` or ``state`` line."""

    name: str
    dim: str
    line: int


@dataclass(frozen=True)
class ParamDeclaration:
    """``name: H x D`` (a matrix), ``name: H`` (a vector) or ``name: 1`` (a scalar) from a ``param`` line."""

    name: str
    shape: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Equation:
    """``target = expr``; the target of a state's next value is primed (``"c'"``)."""

    target: str
    expr: sympy.Expr
    line: int
    is_output: bool = False
    dim: str | None = None  # a declared size: ``output y: O = ...`` or an intermediate's ``m: M = ...``


@dataclass(frozen=True)
class CellSource:
    """A parsed but unchecked cell: what the author wrote, with lines."""

    name: str
    inputs: tuple[Declaration, ...]
    states: tuple[Declaration, ...]
    equations: tuple[Equation, ...]
    doc: str
    source: str
    lines: tuple[str, ...]
    constants: tuple[Equation, ...] = ()  # ``const beta = 1``: named numbers
    params: tuple[ParamDeclaration, ...] = ()  # ``param W: H x D``: once one is declared, all are

    def line_text(self, line: int | None) -> str | None:
        """The raw text of a 1-based line, or None if there is no such line."""
        if line is None or not 1 <= line <= len(self.lines):
            return None
        return self.lines[line - 1]


def parse_source(text: str, source: str = "<string>") -> CellSource:
    """Parses cell text; raises a :class:`~symgate.errors.CellError` subclass if it is malformed."""
    head = text[: MAX_BYTES + 1].encode("utf-8", "surrogatepass")
    if len(head) > MAX_BYTES:
        line = len(_NEWLINE.findall(head[:MAX_BYTES].decode("utf-8", "ignore"))) + 1
        raise CellSyntaxError(f"the text is over {MAX_BYTES} bytes long", line=line, source=source)
    lines = _NEWLINE.split(text)
    if lines[-1] == "":
        lines.pop()
    return _Parser(tuple(lines), source).parse()


@dataclass(frozen=True)
class _Token:
    kind: str  # name, number, op, end; or badname, badnumber, other (reported when reached)
    text: str
    line: int
    col: int


def _quote(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _found(token: _Token) -> str:
    return token.text if token.kind == "end" else f"{_quote(token.text)} at column {token.col}"


def _shown(line: str) -> str:
    """A line as quoted in messages: cut if over the limit, invisible characters escaped."""
    line = line if len(line) <= MAX_LINE else line[:80] + " ..."
    return line if all(c.isprintable() or c == "\t" for c in line) else repr(line)[1:-1]


def _invisible(char: str) -> bool:
    category = unicodedata.category(char)
    return char != "\t" and (category[0] == "C" or category in ("Zl", "Zp"))


def _malformed(token: _Token) -> str:
    """Why a badname, badnumber or other token is not part of the cell language."""
    text, col, code = token.text, token.col, f"U+{ord(token.text[0]):04X}"
    if token.kind == "badname":
        return f"invalid name {_quote(text)} at column {col}: names start with a letter, at most {MAX_NAME} characters"
    if token.kind == "badnumber":
        return f"invalid number {_quote(text)} at column {col}"
    if not text.isascii():
        return f"non-ASCII character {code} at column {col}; only comments may use Unicode"
    if _invisible(text):
        return f"control character {code} at column {col}"
    if text == "'":
        return f"stray prime at column {col}; a prime follows a state name with no space (h')"
    return f"unexpected character {text!r} at column {col}"


class _Parser:
    """Splits the lines into statements of tokens, then parses each by recursive descent."""

    def __init__(self, lines: tuple[str, ...], source: str) -> None:
        self.lines = lines
        self.source = source
        self.tokens: list[_Token] = []
        self.pos = 0
        self.depth = 0

    def error(self, message: str, at: _Token | int, kind: type[CellError] = CellSyntaxError) -> CellError:
        """An error at a token (its line, its text as the symbol) or at a line number."""
        line, symbol = (at, None) if isinstance(at, int) else (at.line, None if at.kind == "end" else at.text)
        text = _shown(self.lines[line - 1]) if 1 <= line <= len(self.lines) else None
        return kind(message, line=line, symbol=symbol, source=self.source, text=text)

    def parse(self) -> CellSource:
        name, cell_line = "", 0
        inputs: list[Declaration] = []
        states: list[Declaration] = []
        equations: list[Equation] = []
        constants: list[Equation] = []
        params: list[ParamDeclaration] = []
        for tokens in self._statements():
            self.tokens, self.pos = tokens, 1
            first = tokens[0]
            working_on(self.source, first.line, _shown(self.lines[first.line - 1]))
            if first.text in KEYWORDS and tokens[1].text == "=":
                raise self.error(f"{first.text!r} is a keyword and cannot be assigned", first, CellNameError)
            if not name and first.text != "cell":
                self.pos = 0
                raise self._unexpected("'cell NAME' as the first statement")
            if first.text == "cell":
                if name:
                    raise self.error(f"a second 'cell' statement; the cell was named on line {cell_line}", first)
                name, cell_line = self._name("a cell name").text, first.line
                self._end("end of line after the cell name")
            elif first.text in ("input", "state"):
                (inputs if first.text == "input" else states).extend(self._declarations(first.text == "state"))
                self._end("',' or end of line")
            elif first.text == "param":
                params.extend(self._param_declarations())
                self._end("',' or end of line")
            elif first.text == "const":
                target = self._name("a constant name")
                self._expect("=", "'='")
                constants.append(Equation(target.text, self._sum(), first.line))
                self._end("an operator or end of line")
            else:
                equations.append(self._equation())
                self._end("an operator or end of line")
        if not name:
            raise self.error("no 'cell NAME' statement; a cell text starts with one", 1)
        # only comments and blank lines precede `cell`: the doc is their text without '#' and one space
        doc = "\n".join(raw.strip().removeprefix("#").removeprefix(" ") for raw in self.lines[: cell_line - 1])
        doc = doc.strip("\n")
        return CellSource(
            name,
            tuple(inputs),
            tuple(states),
            tuple(equations),
            doc,
            self.source,
            self.lines,
            tuple(constants),
            tuple(params),
        )

    # -- tokens ---------------------------------------------------------------------------------

    def _statements(self) -> Iterator[list[_Token]]:
        """The tokens of each statement, closed by an "end" token; open parentheses join lines."""
        current: list[_Token] = []
        depth = count = 0
        for number, line in enumerate(self.lines, start=1):
            if len(line) > MAX_LINE:
                raise self.error(f"the line is {len(line)} characters long; the limit is {MAX_LINE}", number)
            for match in _TOKEN.finditer(line):
                kind, text, col = match.lastgroup, match.group(), match.start() + 1
                if kind == "comment":
                    for offset, char in enumerate(text):
                        if _invisible(char):
                            message = f"invisible character U+{ord(char):04X} in a comment at column {col + offset}"
                            raise self.error(message, _Token("other", char, number, col + offset))
                elif kind != "space":
                    if kind == "name" and (text.startswith("_") or len(text.rstrip("'")) > MAX_NAME):
                        kind = "badname"
                    depth += 1 if text == "(" else -1 if text == ")" and depth else 0
                    current.append(_Token(kind, text, number, col))
                    if len(current) > MAX_TOKENS:
                        raise self.error(f"a statement (from line {current[0].line}) over {MAX_TOKENS} tokens", number)
            if current and not depth:
                current.append(_Token("end", "end of line", number, len(line) + 1))
                count += 1
                if count > MAX_STATEMENTS:
                    raise self.error(f"more than {MAX_STATEMENTS} statements", number)
                yield current
                current = []
        if current:
            end = "end of line" if current[0].line == len(self.lines) else "end of text"
            current.append(_Token("end", end, len(self.lines), len(self.lines[-1]) + 1))
            yield current

    def _peek(self) -> _Token:
        """The current token; a malformed one is reported when the parser reaches it."""
        token = self.tokens[self.pos]
        if token.kind in ("badname", "badnumber", "other"):
            raise self.error(_malformed(token), token, CellNameError if token.kind == "badname" else CellSyntaxError)
        return token

    def _next(self) -> _Token:
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _unexpected(self, what: str) -> CellError:
        """An error for the current token, which is not ``what``."""
        after = f" after {_quote(self.tokens[self.pos - 1].text)}" if self.pos else ""
        return self.error(f"expected {what}{after}, found {_found(self._peek())}", self._peek())

    def _expect(self, text: str, what: str) -> _Token:
        if self._peek().text != text:
            raise self._unexpected(what)
        return self._next()

    def _end(self, what: str) -> None:
        token = self._peek()
        if token.text == ")":
            raise self.error(f"unmatched ')' at column {token.col}", token)
        if token.kind != "end":
            raise self.error(f"expected {what}, found {_found(token)}", token)

    # -- statements -----------------------------------------------------------------------------

    def _name(self, what: str, primed: bool = False) -> _Token:
        """The next token as a name; ``primed`` allows a state's next value (``h'``)."""
        token = self._peek()
        if token.kind != "name":
            raise self._unexpected(what)
        self._check_keyword(token)
        if token.text.endswith("'") and not primed:
            raise self.error(f"expected {what} without a prime (h' is a next value), found {_found(token)}", token)
        return self._next()

    def _check_keyword(self, token: _Token) -> None:
        word = token.text.rstrip("'")
        if word in KEYWORDS:
            raise self.error(f"{word!r} at column {token.col} is a keyword and cannot be a name", token, CellNameError)

    def _declarations(self, matrices: bool = False) -> list[Declaration]:
        """``NAME: DIM (, NAME: DIM)*``; with ``matrices`` (a ``state`` line) a dimension may be a
        matrix's, ``ROWS x COLS``, one matrix per sample."""
        declarations = []
        while True:
            name = self._name("a name")
            self._expect(":", "':' (declarations read 'NAME: DIM')")
            dim = self._dimension()
            if self._peek().text == "x":
                at = self._next()
                if not matrices:
                    raise self.error(f"an input is a vector: {name.text} cannot be a matrix (column {at.col})", at)
                cols = self._dimension()
                if SCALAR in (dim, cols):
                    raise self.error(
                        f"a matrix state has two named dimensions: {name.text}: {dim} x {cols} has a scalar one; "
                        "declare a vector instead",
                        at,
                    )
                dim = matrix_size(dim, cols)
            declarations.append(Declaration(name.text, dim, name.line))
            if self._peek().text != ",":
                return declarations
            self._next()

    def _param_declarations(self) -> list[ParamDeclaration]:
        """``NAME: DIM [x DIM] (, NAME: DIM [x DIM])*``; a dimension is a name or ``1`` (a scalar)."""
        declarations = []
        while True:
            name = self._name("a parameter name")
            self._expect(":", "':' (parameters are declared as 'NAME: ROWS x COLS' or 'NAME: DIM')")
            shape = [self._dimension()]
            if self._peek().text == "x":
                self._next()
                shape.append(self._dimension())
            declarations.append(ParamDeclaration(name.text, tuple(shape), name.line))
            if self._peek().text != ",":
                return declarations
            self._next()

    def _dimension(self) -> str:
        """A dimension name, or ``1`` for a per-sample scalar (``SCALAR``), which broadcasts over any size."""
        token = self._peek()
        if token.kind == "number" and token.text == SCALAR:
            return self._next().text
        if token.kind == "number":
            unexpected = self._unexpected("a dimension name").reason
            why = f"sizes are named and given when the kernel runs; {SCALAR} declares a per-sample scalar"
            raise self.error(f"{unexpected}: {why}", token)
        return self._name("a dimension name").text

    def _equation(self) -> Equation:
        first = self.tokens[0]
        is_output = first.text == "output"
        self.pos = int(is_output)
        if first.kind != "name":
            raise self._unexpected("a statement (cell, input, state, param, const, output or NAME = ...)")
        target = self._name("an output name" if is_output else "a name", primed=not is_output)
        dim = None
        if self._peek().text == ":":
            if target.text.endswith("'"):
                state = target.text.rstrip("'")
                raise self.error(
                    f"{target.text} is the next value of state {state} and has its size; write {target.text} = ...",
                    target,
                )
            self._next()
            dim = self._dimension()
        self._expect("=", "'=' (or ': DIM =' to give an output's size)" if is_output else "'='")
        return Equation(target.text, self._sum(), first.line, is_output, dim)

    # -- expressions ----------------------------------------------------------------------------

    def _apply(self, at: _Token, function: Callable[..., sympy.Expr], *args: sympy.Expr) -> sympy.Expr:
        """``function(*args)``, reporting SymPy's failure to evaluate constants (``exp(exp(1e300))``)
        and refusing a constant argument too large to evaluate a function of (``sin(exp(1e10))``)."""

        def fail(message: str, symbol: str) -> CellError:
            return self.error(f"cannot evaluate the constants at column {at.col} ({at.text!r}): {message}", at)

        for arg in args:
            if arg.is_number:
                check_bounded(arg, fail)
        try:
            return function(*args)
        except (ArithmeticError, ValueError) as exc:  # the text of one may not print: its type names it
            raise fail(type(exc).__name__, at.text) from None

    def _sum(self) -> sympy.Expr:
        terms = [self._product()]
        while self._peek().text in ("+", "-"):
            sign = self._next().text
            term = self._product()
            terms.append(term if sign == "+" else -term)
        return sympy.Add(*terms)

    def _product(self) -> sympy.Expr:
        factors = [self._unary()]
        while self._peek().text in ("*", "/"):
            operator = self._next().text
            factor = self._unary()
            factors.append(factor if operator == "*" else 1 / factor)
        return sympy.Mul(*factors)

    def _unary(self) -> sympy.Expr:
        negative = False
        while self._peek().text in ("+", "-"):
            negative ^= self._next().text == "-"
        value = self._matmul()
        return -value if negative else value

    def _matmul(self) -> sympy.Expr:
        """``left @ right``: ``left`` is a matrix name, ``W.T``, or a parenthesized sum of their
        multiples (``(W - W.T)``), which the checker expands by linearity."""
        start = self.pos
        value = self._power()
        while self._peek().text == "@":
            at = self._peek()
            written = self._abridged(start)
            if written != "(...)" and not re.fullmatch(r"[A-Za-z]\w*'?(\.T)?", written):
                raise self.error(f"{LEFT_OF_MATMUL}, found {_quote(written)} (column {at.col})", at)
            self._next()
            right_start = self.pos
            right = self._power()
            if written == "(...)" and value.has(MatVec):
                left_text, right_text = self._written(start, right_start - 1), self._written(right_start, self.pos)
                raise self.error(
                    f"the left side of '@' is `{left_text}`, a vector (column {at.col}): it must be a parameter "
                    f"matrix (W), its transpose (W.T) or a sum of their multiples ((W - W.T)); to multiply "
                    f"elementwise, write {left_text}*{right_text}",
                    at,
                )
            value = MatVec(value, right)
        return value

    def _written(self, start: int, stop: int) -> str:
        """The source text of the tokens from ``start`` up to ``stop``, as the author wrote it."""
        first, last = self.tokens[start], self.tokens[stop - 1]
        if first.line != last.line:
            return self._abridged(start, stop)
        return self.lines[first.line - 1][first.col - 1 : last.col - 1 + len(last.text)]

    def _abridged(self, start: int, stop: int | None = None) -> str:
        """The tokens from ``start`` to ``stop`` (the current one) as text, parenthesized parts as ``(...)``."""
        parts, depth = [], 0
        for token in self.tokens[start : self.pos if stop is None else stop]:
            depth -= token.text == ")"
            if not depth:
                spaced = token.text in ("@", "**")
                parts.append("...)" if token.text == ")" else f" {token.text} " if spaced else token.text)
            depth += token.text == "("
        return "".join(parts)

    def _power(self) -> sympy.Expr:
        base = self._atom()
        if self._peek().text != "**":
            return base
        operator = self._next()
        exponent = self._exponent()
        if self._peek().text == "**":
            raise self.error(f"'**' at column {self._peek().col} follows an exponent; use (a ** 2) ** 3", self._peek())
        if base.is_Rational and max(abs(base.p), base.q).bit_length() * abs(exponent.p) > MAX_CONSTANT_BITS:
            raise self.error(f"the constant power at column {operator.col} has over {MAX_CONSTANT_BITS} bits", operator)
        return self._apply(operator, sympy.Pow, base, exponent)

    def _exponent(self) -> sympy.Rational:
        """``['-'] NUMBER`` or ``'(' ['-'] NUMBER ['/' NUMBER] ')'``, as an exact rational."""
        start = self._peek()
        self.pos += start.text == "("
        value = self._exponent_number(signed=True)
        if start.text == "(":
            if self._peek().text == "/":
                slash = self._next()
                denominator = self._exponent_number(signed=False)
                if not denominator:
                    raise self.error(f"zero denominator in the exponent at column {slash.col}", slash)
                value /= denominator
            self._close(start)
        if abs(value) > MAX_EXPONENT:
            raise self.error(
                f"exponent {value} at column {start.col} is out of range [-{MAX_EXPONENT}, {MAX_EXPONENT}]", start
            )
        return sympy.Rational(value.numerator, value.denominator)

    def _exponent_number(self, signed: bool) -> Fraction:
        negative = signed and self._peek().text == "-"
        self.pos += negative
        token = self._peek()
        if token.kind != "number":
            raise self._unexpected("a number as exponent (such as 2, -1, 0.5 or (1/2))")
        _, digits, exponent = Decimal(token.text).as_tuple()
        if len(digits) > MAX_DIGITS or abs(exponent) > MAX_DIGITS:
            raise self.error(f"exponent {_quote(token.text)} at column {token.col} is too large or too precise", token)
        self._next()
        return -Fraction(token.text) if negative else Fraction(token.text)

    def _close(self, opener: _Token) -> None:
        token = self._peek()
        if token.text != ")":
            where = f"line {opener.line}, column {opener.col}" if opener.line != token.line else f"column {opener.col}"
            raise self.error(f"expected ')' to close '(' opened at {where}, found {_found(token)}", token)
        self._next()
        self.depth -= 1

    def _group(self) -> sympy.Expr:
        """``'(' sum ')'``, guarding the nesting depth."""
        opener = self._open()
        value = self._sum()
        self._close(opener)
        return value

    def _open(self) -> _Token:
        """Takes a ``(``, guarding the nesting depth (``_close`` gives the level back)."""
        opener = self._next()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"parentheses nested deeper than {MAX_DEPTH} levels at column {opener.col}", opener)
        return opener

    def _arguments(self, name: _Token, count: int) -> list[sympy.Expr]:
        """``'(' sum (',' sum)* ')'``: the arguments of a call of ``name``, which must be ``count``."""
        opener = self._open()
        values = [self._sum()]
        while self._peek().text == ",":
            self._next()
            values.append(self._sum())
        if len(values) != count:
            takes = f"{count} argument{'s' if count != 1 else ''}"
            raise self.error(
                f"{name.text} takes {takes}, not {len(values)} (column {name.col}): call it as "
                f"{name.text}({', '.join('abcdefgh'[:count])})",
                name,
            )
        self._close(opener)
        return values

    def _atom(self) -> sympy.Expr:
        token = self._peek()
        if token.text == "(":
            return self._group()
        if token.kind == "number":
            return self._number(self._next())
        if token.kind != "name":
            raise self._unexpected("a name, number, function call or '('")
        self._check_keyword(token)
        self._next()
        if self._peek().text == ".":
            return self._transpose(token)
        if self._peek().text != "(" or token.text.endswith("'"):
            return Var(token.text)
        if token.text not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            message = f"unknown function {token.text!r}; known functions: {known} (column {token.col})"
            raise self.error(message, token, UnknownFunctionError)
        function = FUNCTIONS[token.text]
        return self._apply(token, function.build, *self._arguments(token, function.arity))

    def _transpose(self, name: _Token) -> sympy.Expr:
        """``W.T``: a parameter matrix or a matrix state transposed (on the left of ``@``), or a
        vector as a row, broadcast over a matrix (``S * g.T``); the checker tells them apart."""
        dot = self._next()
        mark = self.tokens[self.pos]  # not _peek: 'x.__class__' says what '.' is for, not that the name is bad
        base = name.text.rstrip(PRIME)
        if mark.text != "T":
            raise self.error(
                f"expected T after '.' at column {dot.col} ({base}.T is the transpose of {base}), found {_found(mark)}",
                mark,
            )
        if dot.col != name.col + len(name.text) or mark.col != dot.col + 1:
            raise self.error(f"write {name.text}.T without spaces (column {dot.col})", dot)
        self._next()
        if self._peek().text == "." and self.tokens[self.pos + 1].text == "T":
            raise self.error(
                f"{name.text}.T.T at column {name.col} transposes twice, which gives {name.text} back: "
                f"write {name.text}",
                self._peek(),
            )
        return Transposed(Var(name.text))

    def _number(self, token: _Token) -> sympy.Expr:
        if token.text.isdigit():
            if len(token.text) > MAX_DIGITS:
                raise self.error(
                    f"integer {_quote(token.text)} at column {token.col} has over {MAX_DIGITS} digits", token
                )
            return sympy.Integer(int(token.text))
        value = float(token.text)
        if not math.isfinite(value):
            raise self.error(f"number {_quote(token.text)} at column {token.col} is too large", token)
        if value == 0 and any(digit in "123456789" for digit in token.text.lower().partition("e")[0]):
            raise self.error(
                f"number {_quote(token.text)} at column {token.col} is too small: below float64's smallest "
                "(4.9e-324), it would be 0",
                token,
            )
        return sympy.Float(value)
