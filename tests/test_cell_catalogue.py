"""docs/cells.md, the catalogue of the built-in cells, says what the cell files say.

The page is made from the ``.cell`` files (their header comments, declarations and equations),
so it can never disagree with what ``sg.cells.get(name)`` builds. A change to a cell file fails
this test until the page is made again:

    SYMGATE_REGENERATE=1 python -m pytest tests/test_cell_catalogue.py
"""

from __future__ import annotations

import os
from pathlib import Path

import symgate as sg
from symgate.frontend.provenance import TAGS

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cells.md"

INTRODUCTION = """\
# The built-in cells

Every built-in cell is a `.cell` file in `symgate/frontend/cells/`, read by the same pipeline as a
cell of your own: `symgate show NAME` prints one with its derived backward pass, `sg.cells.get(NAME)`
loads it, and `sg.cells.path(NAME)` is its file, a good start for a variant of your own. This page
is made from those files (`tests/test_cell_catalogue.py` keeps it in step with them).

Each cell's header names its source and its conventions (the order and shapes of its parameters,
and where it differs from the cells it resembles), and a tag saying how far its equations were
confirmed:
"""


def summary(cell: sg.Cell) -> str:
    return cell.doc.splitlines()[0] if cell.doc else ""


def body(name: str) -> str:
    """The cell file's text after its header comment: the cell as it is written."""
    lines = sg.cells.path(name).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "\n".join(lines[start:]).strip()


def section(name: str) -> list[str]:
    cell = sg.cells.get(name)
    doc = cell.doc.splitlines()
    params = ", ".join(f"`{p.name}` ({', '.join(p.shape)})" for p in cell.params)
    return [
        f"## `{name}`",
        "",
        f"**{doc[0]}**" if doc else "",
        "",
        " ".join(doc[1:]),
        "",
        "```text",
        body(name),
        "```",
        "",
        f"Parameters ({len(cell.params)}): {params}.",
        "",
    ]


def render() -> str:
    names = sg.cells.names()
    out = [INTRODUCTION]
    out += [f"* **{tag}**: {meaning}." for tag, meaning in TAGS.items()]
    out += ["", "| cell | what it is | states | parameters |", "|---|---|---|---|"]
    for name in names:
        cell = sg.cells.get(name)
        states = ", ".join(f"{s} ({d})" for s, d in cell.states.items())
        out.append(f"| [`{name}`](#{name}) | {summary(cell).replace('|', '/')} | {states} | {len(cell.params)} |")
    out.append("")
    for name in names:
        out += section(name)
    return "\n".join(out).rstrip() + "\n"


def test_the_catalogue_is_made_from_the_cell_files():
    expected = render()
    if os.environ.get("SYMGATE_REGENERATE") == "1":
        PAGE.write_text(expected)
    assert PAGE.read_text() == expected, (
        "docs/cells.md differs from the cell files: SYMGATE_REGENERATE=1 python -m pytest tests/test_cell_catalogue.py"
    )


def test_every_built_in_cell_has_a_section_with_its_equations():
    text = PAGE.read_text()
    for name in sg.cells.names():
        assert f"## `{name}`" in text
        assert body(name) in text
