"""C text that knows the names it uses.

The renderer builds every statement, pointer and size of a kernel as :class:`Code`: literal text
with the identifiers it reads or writes kept apart as :class:`Name` slots. A pass decides from
those names, never by searching the finished C, which workspace buffers, widths and rows it
declares and which arguments it leaves unused; and a target spells the same names its own way
(an exported library's size macros parenthesize ``T``, ``B`` and the sizes, and write the sizes
fixed by baked parameters as numbers).

    c("{row} + (size_t)sample * {width}", row="h_row", width="H")   # names: h_row, H
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from string import Formatter


@dataclass(frozen=True)
class Name:
    """An identifier in C text: a size, an array, a workspace buffer, a width, ``T`` or ``B``."""

    c: str


@dataclass(frozen=True)
class Code:
    """A piece of C: literal text and names, in order."""

    parts: tuple[str | Name, ...] = ()

    @property
    def text(self) -> str:
        return self.spell({})

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.c for p in self.parts if isinstance(p, Name))

    def spell(self, spelling: Mapping[str, str]) -> str:
        """The text, each name written as ``spelling`` gives it (as itself when not there)."""
        return "".join(spelling.get(p.c, p.c) if isinstance(p, Name) else p for p in self.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __str__(self) -> str:
        return self.text


def c(template: str, **fields: str | Code) -> Code:
    """``template`` with its ``{fields}`` filled: a ``str`` field is one name, a :class:`Code` field
    brings its own text and names. Text outside the fields names nothing."""
    parts: list[str | Name] = []
    for literal, field, _, _ in Formatter().parse(template):
        if literal:
            parts.append(literal)
        if field is not None:
            value = fields[field]
            parts.extend(value.parts if isinstance(value, Code) else [Name(value)])
    return Code(tuple(parts))


def join(pieces: Iterable[Code], separator: str) -> Code:
    """The pieces one after another, ``separator`` between them."""
    parts: list[str | Name] = []
    for index, piece in enumerate(pieces):
        if index:
            parts.append(separator)
        parts.extend(piece.parts)
    return Code(tuple(parts))


def names_of(pieces: Iterable[Code]) -> frozenset[str]:
    """Every name the pieces use."""
    return frozenset().union(*(p.names for p in pieces))


def comment_safe(text: str) -> str:
    """``text`` made safe inside a C comment."""
    return text.replace("*/", "* /").replace("/*", "/ *")
