"""Rendering: a planned kernel -> template context (plain data) -> C source and header.

Everything the templates need is decided before them and handed over as strings and lists: C
names (:class:`~symgate.codegen.scope.Scope`), where each vector lives at step ``t``
(:mod:`~symgate.codegen.layout`), every statement with the names it uses
(:mod:`~symgate.codegen.emit`) and each pass's declarations (:mod:`~symgate.codegen.passes`).
The templates only lay the text out. The same code renders both passes, for any
:class:`~symgate.codegen.target.Target` (a kernel for Python, an exported library), and the
kernel's calling convention is returned beside the C as an :class:`Interface` (JSON-able), so a
cached kernel can be called without deriving anything again.

Each pass's time loop is rendered as a piece of its own and then placed in the file, so the
rendered source knows where every time loop sits (:class:`TimeLoop`, for ``symgate show --c``).

complex128 renders the forward pass alone, in ``double _Complex`` and without BLAS
(``templates/complex.c.jinja``): the same plan and statements, printed with complex-analytic
functions, for the complex-step gradient check (:mod:`symgate.verify.complex_step`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from .._version import __version__
from ..frontend.cell import Cell
from ..interface import Interface, PassInterface
from ..symbolic.derive import Derivation
from .ccode import comment_safe
from .lower import KernelPlan
from .passes import INFER_TITLE, RenderedPass, backward_arguments, forward_arguments, render_pass
from .scope import Scope
from .target import PYTHON, Target

__all__ = ["INFER_TITLE", "KernelSource", "TimeLoop", "environment", "render", "template_dir", "templates_digest"]


@dataclass(frozen=True)
class TimeLoop:
    """The time loop of one pass's function: its text and its first and last line (1-based) in the file."""

    function: str
    first_line: int
    last_line: int
    text: str


@dataclass(frozen=True)
class KernelSource:
    """The rendered C of one cell and dtype: source, header, cffi declarations, interface, and
    where each pass's time loop sits in the source."""

    stem: str
    c_source: str
    header: str
    declarations: str
    interface: Interface
    time_loops: tuple[TimeLoop, ...] = ()


def template_dir() -> Path:
    """The Jinja templates: inside the installed package, or ``templates/`` of a checkout."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


RUNTIME_HEADER = "symgate_runtime.h"
"""The plain C header of the helpers every generated file shares, beside the templates: each file
defines its number type's macros and includes it, the build puts its directory on the include
path, an export copies it beside the library's ``.c``."""


def runtime_header() -> Path:
    """The path of :data:`RUNTIME_HEADER`."""
    return template_dir() / RUNTIME_HEADER


@cache
def environment() -> jinja2.Environment:
    """The strict Jinja environment of every template (undefined names raise)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def templates_digest() -> str:
    """A hash of every template and of the runtime header, part of the build cache key."""
    digest = hashlib.sha256()
    for path in sorted([*template_dir().glob("*.jinja"), runtime_header()]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def render(cell: Cell, derivation: Derivation, plan: KernelPlan, dtype: str, target: Target = PYTHON) -> KernelSource:
    """The C source, header and interface of ``cell``'s kernels in ``dtype`` (a complex dtype: the
    forward kernel alone), for ``target``."""
    scope = Scope(cell, derivation, plan, dtype, target)
    context = kernel_context(scope)
    env = environment()
    declarations = env.get_template("declarations.h.jinja").render(context)
    context["declarations"] = declarations
    c_source, time_loops = render_placed("kernel.c.jinja" if scope.type.real else "complex.c.jinja", context)
    return KernelSource(
        stem=context["stem"],
        c_source=c_source,
        header=env.get_template("kernel.h.jinja").render(context),
        declarations=declarations,
        interface=context["interface"],
        time_loops=time_loops,
    )


def kernel_context(scope: Scope) -> dict:
    """The template context of the kernels Python builds: forward, backward (real dtypes) and,
    when the forward pass keeps a tape, the pass for inference."""
    real = scope.type.real  # a complex kernel is the forward pass alone
    forward_args = forward_arguments(scope)
    backward_args = backward_arguments(scope) if real else []
    forward = render_pass(scope, "forward", scope.plan.forward, forward_args)
    passes = [forward]
    forward_interface = PassInterface(forward.function, forward.work_function, tuple(forward_args))
    backward_interface = None
    if real:
        backward = render_pass(scope, "backward", scope.plan.backward, backward_args)
        passes.append(backward)
        backward_interface = PassInterface(backward.function, backward.work_function, tuple(backward_args))
    infer_interface = forward_interface
    if scope.plan.tape:
        infer_args = forward_arguments(scope, tape=False)
        infer = render_pass(scope, "forward", scope.plan.infer, infer_args, name="infer", title=INFER_TITLE)
        passes.append(infer)
        infer_interface = PassInterface(infer.function, infer.work_function, tuple(infer_args))
    interface = Interface(
        cell=scope.cell.name,
        dtype=scope.dtype,
        dims=scope.cell.dims,
        forward=forward_interface,
        backward=backward_interface,
        infer=infer_interface,
        threads_function=f"{scope.prefix}_one_blas_thread" if scope.accelerated else None,
    )
    return common_context(scope) | {
        "passes": with_time_loops(scope, passes),
        "interface": interface,
    }


def common_context(scope: Scope) -> dict:
    """What every template of the cell shows: names, types and the equations."""
    cell, kind = scope.cell, scope.type
    return {
        "stem": f"{cell.name}_{scope.dtype}",
        "version": __version__,
        "real": scope.real,
        "runtime_header": RUNTIME_HEADER,
        "runtime_macros": [  # each "NAME" or "NAME value", as symgate_runtime.h reads them
            f"SG_REAL {scope.real}",
            f"SG_MATH_SUFFIX {kind.math_suffix}".rstrip(),
            f"SG_LITERAL_SUFFIX {kind.literal_suffix}".rstrip(),
            *([] if kind.real else ["SG_COMPLEX"]),
            *([f"SG_BLAS_LETTER {kind.blas}", "SG_ACCELERATED"] if scope.accelerated else []),
        ],
        "headers": ["math.h", "stddef.h", "string.h"] if kind.real else ["complex.h", "math.h", "stddef.h", "string.h"],
        "guard": f"SYMGATE_{cell.name.upper()}_{scope.dtype.upper()}_H",
        "cell_lines": [comment_safe(line) for line in cell.text().splitlines()],
        "backward_lines": [comment_safe(line) for line in scope.derivation.text().splitlines()],
        "tape": [f"{name} ({scope.plan.forward.sizes[name]})" for name in scope.plan.tape],
        "dims": scope.runtime,
    }


def with_time_loops(scope: Scope, passes: list[RenderedPass]) -> list[dict]:
    """The passes' template data, each with its time loop rendered as a piece of its own
    (``time_loop``), which the file's template places whole."""
    macros = environment().get_template("macros.jinja").make_module({"real": scope.real})
    return [p.data | {"time_loop": str(macros.time_loop(p.data)).removesuffix("\n")} for p in passes]


def render_placed(template: str, context: dict) -> tuple[str, tuple[TimeLoop, ...]]:
    """``template`` rendered with ``context``, and where it placed each pass's time loop: the
    template writes each loop as one piece, so its place is the number of lines before it."""
    passes = context["passes"]
    pieces, loops, line = [], [], 1
    for piece in environment().get_template(template).generate(context):
        placed = next((p for p in passes if piece is p["time_loop"]), None)
        if placed is not None:
            loops.append(TimeLoop(placed["function"], line, line + piece.count("\n"), piece))
        pieces.append(piece)
        line += piece.count("\n")
    return "".join(pieces), tuple(loops)
