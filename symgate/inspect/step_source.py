"""The C of one step: the time loops of a cell's generated kernels, cut out for reading.

The generated file (``symgate show CELL --c --full``) holds both kernels in full: declarations,
helpers, the work-space layout and, in each pass, a loop over the time steps whose body is one
step. The renderer renders each time loop as a piece of its own and reports where it placed it
(:class:`~symgate.codegen.render.TimeLoop`); this module shows those loops with their place in
the file and the pass's operation count. The C is shown as rendered, never read back.
"""

from __future__ import annotations

import os
import shlex
import textwrap
from dataclasses import dataclass

from ..dtypes import dtype_name
from ..errors import SymgateError
from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..pipeline import generate
from ..symbolic.derive import derive


@dataclass(frozen=True)
class StepSource:
    """The time loop of one pass: its function, its 1-based lines in the generated file, its code."""

    pass_name: str
    function: str
    first_line: int
    last_line: int
    code: str


def full_file_command(cell: str) -> str:
    """The command that prints a cell's whole generated C, with the cell as the user named it (a
    built-in name or a ``.cell`` path, quoted for the shell), so that it runs as printed."""
    return f"symgate show {shlex.quote(cell)} --c --full"


def step_sources(
    cell: Cell | str | os.PathLike, dtype: object = "float64", given_as: str | None = None
) -> list[StepSource]:
    """The forward and the backward time loop of ``cell``'s generated C (``cell`` and ``dtype`` as for
    :func:`symgate.build`); ``given_as``, the name or path the user gave for it (default: its name),
    goes into the command an error suggests."""
    cell, dtype = cell_argument(cell), dtype_name(dtype, real_only=True)
    source = generate(cell, dtype)
    loops = {loop.function: loop for loop in source.time_loops}
    steps = []
    for pass_name, interface in (("forward", source.interface.forward), ("backward", source.interface.backward)):
        loop = loops.get(interface.function)
        if loop is None:
            raise SymgateError(
                f"cannot find the time loop of {interface.function} in the generated C of {cell.name}; "
                f"`{full_file_command(given_as or cell.name)}` prints the whole file"
            )
        steps.append(StepSource(pass_name, loop.function, loop.first_line, loop.last_line, textwrap.dedent(loop.text)))
    return steps


def step_listing(cell: Cell | str | os.PathLike, dtype: object = "float64", given_as: str | None = None) -> str:
    """Both passes' time loops, each headed by where it sits and followed by what one step costs
    (``cell`` and ``dtype`` as for :func:`symgate.build`); the heading names the command for the
    whole file, with the cell as the user gave it (``given_as``, a name or a path; default: its name)."""
    cell, dtype = cell_argument(cell), dtype_name(dtype, real_only=True)
    stem = generate(cell, dtype).stem
    counts = {"forward": cell.operations(), "backward": derive(cell).operations()}
    out = [
        f"/* The C of one step of {cell.name} ({dtype}): each kernel's time loop, cut from {stem}.c.",
        " * Work a kernel does for all steps at once, before or after its loop, is in the whole file:",
        f" * `{full_file_command(given_as or cell.name)}`. */",
    ]
    for step in step_sources(cell, dtype, given_as):
        out += [
            "",
            f"/* {step.pass_name} step: lines {step.first_line}-{step.last_line} of {stem}.c, in {step.function} */",
            step.code,
            f"/* {step.pass_name}, per step and sample: {counts[step.pass_name]} */",
        ]
    return "\n".join(out) + "\n"
