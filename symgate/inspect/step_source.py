"""The C of one step: the time loops of a cell's generated kernels, cut out for reading.

The generated file (``symgate show CELL --c --full``) holds both kernels in full: declarations,
the work-space layout and, in each pass, a loop over the time steps whose body is one step. This
module finds that loop in the rendered source (the function is named by the kernel's interface,
the loop's end by matching braces outside comments), and shows it with its place in the file and
the pass's operation count. The C is cut, never changed.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from ..errors import SymgateError
from ..frontend.cell import Cell
from ..pipeline import generate
from ..symbolic.derive import derive

TIME_LOOP = re.compile(r"\s*for \(int t\b")
COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


@dataclass(frozen=True)
class StepSource:
    """The time loop of one pass: its function, its 1-based lines in the generated file, its code."""

    pass_name: str
    function: str
    first_line: int
    last_line: int
    code: str


def step_sources(cell: Cell, dtype: str = "float64") -> list[StepSource]:
    """The forward and the backward time loop of ``cell``'s generated C."""
    source = generate(cell, dtype)
    # braces are counted in a copy without comments, lines kept, so that line numbers still agree
    code_lines = COMMENT.sub(lambda m: "\n" * m.group().count("\n"), source.c_source).splitlines()
    lines = source.c_source.splitlines()
    steps = []
    for pass_name, interface in (("forward", source.interface.forward), ("backward", source.interface.backward)):
        first, last = _time_loop(code_lines, interface.function)
        if first is None:
            raise SymgateError(
                f"cannot find the time loop of {interface.function} in the generated C of {cell.name}; "
                f"`symgate show {cell.name} --c --full` prints the whole file"
            )
        code = textwrap.dedent("\n".join(lines[first : last + 1]))
        steps.append(StepSource(pass_name, interface.function, first + 1, last + 1, code))
    return steps


def step_listing(cell: Cell, dtype: str = "float64") -> str:
    """Both passes' time loops, each headed by where it sits and followed by what one step costs."""
    stem = generate(cell, dtype).stem
    counts = {"forward": cell.operations(), "backward": derive(cell).operations()}
    out = [
        f"/* The C of one step of {cell.name} ({dtype}): each kernel's time loop, cut from {stem}.c.",
        " * Work a kernel does for all steps at once, before or after its loop, is in the whole file:",
        f" * `symgate show {cell.name} --c --full`. */",
    ]
    for step in step_sources(cell, dtype):
        out += [
            "",
            f"/* {step.pass_name} step: lines {step.first_line}-{step.last_line} of {stem}.c, in {step.function} */",
            step.code,
            f"/* {step.pass_name}, per step and sample: {counts[step.pass_name]} */",
        ]
    return "\n".join(out) + "\n"


def _time_loop(lines: list[str], function: str) -> tuple[int | None, int]:
    """The first and last line index of the first time loop in the definition of ``function``."""
    for index, line in enumerate(lines):
        if not line.startswith(f"void {function}("):
            continue
        opening = next(j for j in range(index, len(lines)) if lines[j].rstrip().endswith((");", "{")))
        if lines[opening].rstrip().endswith(");"):
            continue  # the declaration
        body = range(opening, _block_end(lines, opening) + 1)
        first = next((j for j in body if TIME_LOOP.match(lines[j])), None)
        return (first, _block_end(lines, first)) if first is not None else (None, 0)
    return None, 0


def _block_end(lines: list[str], start: int) -> int:
    """The index of the line closing the brace opened on line ``start``."""
    depth = 0
    for index in range(start, len(lines)):
        depth += lines[index].count("{") - lines[index].count("}")
        if depth == 0 and "}" in lines[index]:
            return index
    raise SymgateError(f"unbalanced braces in the generated C after line {start + 1}")
