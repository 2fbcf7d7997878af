"""Rendering: a planned kernel -> template context (plain data) -> C source and header.

Everything the templates need is decided here and handed over as strings and lists: C names
(through :class:`~symgate.codegen.cnames.CNames`), where each vector lives at step ``t`` (a sequence
row, the initial state, the tape, the backward carry or the workspace), and every statement
already printed. The templates only lay the text out. The same code renders both passes, and
the kernel's calling convention is returned beside the C as an :class:`Interface` (JSON-able),
so a cached kernel can be called without deriving anything again.

complex128 renders the forward pass alone, in ``double _Complex`` and without BLAS
(``templates/complex.c.jinja``): the same plan and statements, printed with complex-analytic
functions, for the complex-step gradient check (:mod:`symgate.verify.complex_step`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import NamedTuple

import jinja2

from .. import __version__
from ..dtypes import dtype as dtype_of
from ..frontend.cell import Cell
from ..frontend.functions import SCALAR
from ..interface import FORWARD_ROLES, GIVEN_ROLES, RESULT_ROLES, ROLE_TEXT, Argument, Interface, PassInterface
from ..symbolic.derive import ADJOINT, Derivation
from .cnames import CNames
from .cprinter import printer_for
from .lower import GradientProduct, KernelPlan, Loop, Plan, Product, Reduce, Stack, StackProduct

INFER_TITLE = "Forward pass over T steps, saving nothing for a backward pass."


@dataclass(frozen=True)
class KernelSource:
    """The rendered C of one cell and dtype: source, header, cffi declarations, interface."""

    stem: str
    c_source: str
    header: str
    declarations: str
    interface: Interface


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
def _environment() -> jinja2.Environment:
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


def render(cell: Cell, derivation: Derivation, plan: KernelPlan, dtype: str) -> KernelSource:
    """The C source, header and interface of ``cell``'s kernels in ``dtype`` (a complex dtype: the
    forward kernel alone)."""
    real = dtype_of(dtype).real
    context = _Context(cell, derivation, plan, dtype).build()
    env = _environment()
    declarations = env.get_template("declarations.h.jinja").render(context)
    context["declarations"] = declarations
    template = "kernel.c.jinja" if real else "complex.c.jinja"
    return KernelSource(
        stem=context["stem"],
        c_source=env.get_template(template).render(context),
        header=env.get_template("kernel.h.jinja").render(context),
        declarations=declarations,
        interface=context["interface"],
    )


class _Context:
    for_python = True  # kernels Python builds use BLAS and vector math; exported C uses neither

    def __init__(self, cell: Cell, derivation: Derivation, plan: KernelPlan, dtype: str) -> None:
        self.cell, self.derivation, self.plan, self.dtype = cell, derivation, plan, dtype
        self.type = dtype_of(dtype)
        self.accelerated = self.for_python and self.type.real  # a complex kernel runs in loops
        self.real = self.type.c_type
        self.names = CNames()
        self.helpers: set[str] = set()
        self.prefix = f"sg_{cell.name}_{dtype}"
        self.dim_c = {d: self.names("dim", d) for d in cell.dims} | {SCALAR: "1"}
        self.state_adjoints = {v.name: s for s, v in derivation.state_adjoints.items()}
        self.input_adjoints = {v.name: x for x, v in derivation.input_adjoints.items()}
        self.output_seeds = {derivation.seeds[y].name: y for y in cell.outputs}
        self.fixed: dict[str, str] = {}  # dimension -> the C of its size, for sizes fixed at export
        self.hidden: frozenset[str] = frozenset()  # argument roles that are file-scope arrays instead

    def build(self) -> dict:
        cell = self.cell
        real = self.type.real  # a complex kernel is the forward pass alone
        forward_args = self.forward_arguments()
        backward_args = self.backward_arguments() if real else []
        forward = self.render_pass("forward", self.plan.forward, forward_args)
        passes = [forward]
        forward_interface = PassInterface(forward["function"], forward["work_function"], tuple(forward_args))
        backward_interface = None
        if real:
            backward = self.render_pass("backward", self.plan.backward, backward_args)
            passes.append(backward)
            backward_interface = PassInterface(backward["function"], backward["work_function"], tuple(backward_args))
        infer_interface = forward_interface
        if self.plan.tape:
            infer_args = self.forward_arguments(tape=False)
            infer = self.render_pass("forward", self.plan.infer, infer_args, name="infer", title=INFER_TITLE)
            passes.append(infer)
            infer_interface = PassInterface(infer["function"], infer["work_function"], tuple(infer_args))
        interface = Interface(
            cell=cell.name,
            dtype=self.dtype,
            dims=cell.dims,
            forward=forward_interface,
            backward=backward_interface,
            infer=infer_interface,
        )
        return self.common() | {
            "helpers": sorted(self.helpers),
            "passes": passes,
            "interface": interface,
        }

    def common(self) -> dict:
        """What every template of the cell shows: names, types and the equations."""
        cell = self.cell
        real = self.type.real
        return {
            "stem": f"{cell.name}_{self.dtype}",
            "version": __version__,
            "real": self.real,
            "runtime_header": RUNTIME_HEADER,
            "runtime_macros": [  # each "NAME" or "NAME value", as symgate_runtime.h reads them
                f"SG_REAL {self.real}",
                f"SG_MATH_SUFFIX {self.type.math_suffix}".rstrip(),
                f"SG_LITERAL_SUFFIX {self.type.literal_suffix}".rstrip(),
                *([] if real else ["SG_COMPLEX"]),
                *([f"SG_BLAS_LETTER {self.type.blas}", "SG_ACCELERATED"] if self.accelerated else []),
            ],
            "headers": ["math.h", "stddef.h", "string.h"] if real else ["complex.h", "math.h", "stddef.h", "string.h"],
            "guard": f"SYMGATE_{cell.name.upper()}_{self.dtype.upper()}_H",
            "cell_lines": [_comment_safe(line) for line in cell.text().splitlines()],
            "backward_lines": [_comment_safe(line) for line in self.derivation.text().splitlines()],
            "tape": [f"{name} ({self.plan.forward.sizes[name]})" for name in self.plan.tape],
            "dims": [self.dim_c[d] for d in cell.dims if d not in self.fixed],
        }

    # -- arguments ------------------------------------------------------------------------
    def arg(self, name: str, role: str, shape: tuple[str, ...], writes: bool, pattern: str) -> Argument:
        return Argument(name, role, self.names(role, name, pattern), shape, writes)

    def forward_arguments(self, tape: bool = True) -> list[Argument]:
        """The forward pass's arrays in :data:`FORWARD_ROLES` order; ``tape=False`` leaves out what
        only the backward pass reads."""
        cell = self.cell
        sizes = self.plan.forward.sizes
        by_role = {
            "input": [self.arg(x, "input", ("T", "B", d), False, "{}_seq") for x, d in cell.inputs.items()],
            "init": [self.arg(s, "init", ("B", d), False, "{}_init") for s, d in cell.states.items()],
            "param": [self.arg(p.name, "param", p.shape, False, "{}") for p in cell.params],
            "states": [self.arg(s, "states", ("T", "B", d), True, "{}_seq") for s, d in cell.states.items()],
            "outputs": [self.arg(y, "outputs", ("T", "B", d), True, "{}_seq") for y, d in cell.outputs.items()],
            "tape": [self.arg(n, "tape", ("T", "B", sizes[n]), True, "{}_tape") for n in self.plan.tape if tape],
        }
        return [a for role in FORWARD_ROLES for a in by_role[role]]

    def backward_arguments(self) -> list[Argument]:
        """The forward pass's arrays (read only), then :data:`GIVEN_ROLES` and :data:`RESULT_ROLES`."""
        cell = self.cell
        reads = [Argument(a.name, a.role, a.c_name, a.shape, False) for a in self.forward_arguments()]
        by_role = {
            "grad_states": [
                self.arg(s, "grad_states", ("T", "B", d), False, "grad_{}_seq") for s, d in cell.states.items()
            ],
            "grad_outputs": [
                self.arg(y, "grad_outputs", ("T", "B", d), False, "grad_{}_seq") for y, d in cell.outputs.items()
            ],
            "grad_inputs": [
                self.arg(x, "grad_inputs", ("T", "B", d), True, "grad_{}_seq") for x, d in cell.inputs.items()
            ],
            "grad_init": [self.arg(s, "grad_init", ("B", d), True, "grad_{}_init") for s, d in cell.states.items()],
            "grad_params": [self.arg(p.name, "grad_params", p.shape, True, "grad_{}") for p in cell.params],
        }
        return reads + [a for role in (*GIVEN_ROLES, *RESULT_ROLES) for a in by_role[role]]

    # -- one pass -------------------------------------------------------------------------
    def render_pass(self, which: str, plan: Plan, args: list[Argument], name: str = "", title: str = "") -> dict:
        """One pass as template data: ``which`` is "forward" or "backward"; ``name`` (default
        ``which``) ends its function's name, ``title`` opens its comment."""
        cell = self.cell
        by_role = {(a.role, a.name): a for a in args}
        layout = self.layout(which, plan, by_role)
        rows = layout.rows
        packing = [
            self.render_packing(op, layout)
            for op in [*plan.before, *plan.step, *plan.after]
            if isinstance(op, StackProduct) and (op.stack in layout.packed or op.stack in layout.stacked)
        ]
        before = [self.render_op(op, layout) for op in plan.before]
        body = [self.render_op(op, layout) for op in plan.step]
        after = [self.render_op(op, layout) for op in plan.after]
        seeds = []
        if which == "backward":
            for state, dim in cell.states.items():
                seed = self.derivation.seeds[state + "'"].name
                if seed in rows:
                    seeds.append(
                        {
                            "comment": f"{seed}: gradient into {state}' from step t+1 and the loss",
                            "out": rows[seed].c,
                            "carry": by_role[("grad_init", state)].c_name,
                            "given": f"{by_role[('grad_states', state)].c_name}[(size_t)t * B * {self.dim_c[dim]} + n]",
                            "count": f"(size_t)B * {self.dim_c[dim]}",
                        }
                    )
        zero = (
            [
                {
                    "c": by_role[("grad_params", p.name)].c_name,
                    "count": " * ".join(f"(size_t){self.dim_c[d]}" for d in p.shape),
                }
                for p in cell.params
            ]
            if which == "backward"
            else []
        )
        step_code = "\n".join(
            [line for o in body for line in o.get("lines", [])]
            + [s for o in body for s in o.get("pointers", []) + o.get("statements", [])]
            + [f"{s['out']} {s['carry']} {s['given']}" for s in seeds]
        )
        step_rows = [r for r in rows.values() if r.init and _mentions(step_code, r.c)]
        step_rows += [m for ms in layout.mirrors.values() for m in ms if _mentions(step_code, m.c)]
        code = "\n".join(
            [step_code]
            + [line for o in [*packing, *before, *after] for line in o["lines"]]
            + [z["c"] for z in zero]
            + [r.init for r in step_rows]
        )  # code only: a name in a comment is not a use
        buffers = [b for b in layout.buffers if _mentions(code, b["c"])]
        for previous, buffer in zip([None, *buffers], buffers, strict=False):
            start = f"{previous['c']} + {previous['extent']}" if previous else "work"
            buffer["init"] = f"{self.real} *const {buffer['c']} = {start};"
        widths = [w for w in layout.widths if _mentions(code + "\n".join(b["init"] for b in buffers), w["c"])]
        code += "\n".join(b["init"] for b in buffers) + "\n".join(w["value"] for w in widths)
        dims = [self.dim_c[d] for d in cell.dims]
        shown = [a for a in args if a.role not in self.hidden]
        candidates = [*dims, *(a.c_name for a in shown), "work"]
        unused = [n for n in candidates if not _mentions(code, n)]
        printer = printer_for(self.dtype, {})
        constants = [
            f"const {self.real} {self.names('const', name)} = {printer.doprint(value)};"
            for name, value in self.cell.constants.items()
            if _mentions(step_code, self.names("const", name))
        ]
        work_size = " + ".join(b["count"] for b in buffers) or "0"
        return {
            "which": which,
            "title": title or f"{which.capitalize()} pass over T steps.",
            "function": f"{self.prefix}_{name or which}",
            "work_function": f"{self.prefix}_{name or which}_work",
            "fixed": [{"c": self.dim_c[d], "value": value} for d, value in self.fixed.items()],
            "parameters": [
                f"const {self.real} *{a.c_name}" if not a.writes else f"{self.real} *{a.c_name}" for a in shown
            ],
            "arg_comments": [
                f"{a.c_name} ({', '.join(a.shape)}): {ROLE_TEXT[a.role].format(a.name, a.name)}" for a in shown
            ],
            "unused": unused,
            "constants": constants,
            "work_size": work_size,
            "work_unused": [d for d in ["T", "B", *dims] if not _mentions(work_size, d)],
            "widths": widths,
            "buffers": buffers,
            "step_rows": [{"c": r.c, "init": r.init, "writes": r.writes} for r in step_rows],
            "seeds": seeds,
            "zero": zero,
            "packing": packing,
            "before": before,
            "body": body,
            "after": after,
            "reverse": which == "backward",
        }

    def layout(self, which: str, plan: Plan, by_role: dict) -> _Layout:
        """Where each vector of the pass lives: at step t (a row) and over all steps (a sequence)."""
        cell = self.cell
        layout = _Layout(backward=which == "backward")

        def row(name: str, init: str, writes: bool, dim: str, width: str | None = None) -> _Row:
            return _Row(self.names("row", name, "{}_row"), init, writes, dim, width or self.dim_c[dim])

        def seq(arg: Argument, dim: str) -> str:
            return f"{arg.c_name} + (size_t)t * B * {self.dim_c[dim]}"

        # panels: vectors side by side, in the order the stacks read or write them
        for stack in plan.panels:
            all_steps = which == "backward" or stack.hoisted
            key = (stack.panel, all_steps)
            if key in layout.panels:
                continue
            kind = "adjoints" if which == "backward" else "products"
            c = self.names(kind, stack.vector, "{}_" + kind)
            width = self.names("width", c, "{}_width")
            layout.widths.append(
                {"c": width, "value": f"const int {width} = {self.int_sum(m.rows for m in stack.members)};"}
            )
            extent = f"(size_t)T * B * {width}" if all_steps else f"(size_t)B * {width}"
            layout.add_buffer(
                c,
                extent,
                f"({self.size_sum(m.rows for m in stack.members)}) * {'(size_t)T * B' if all_steps else '(size_t)B'}",
                f"{', '.join(stack.panel)} side by side{', at every step' if all_steps else ''}",
            )
            panel = layout.panels[key] = _Panel(c, width, all_steps)
            for index, member in enumerate(stack.members):
                offset = self.int_sum(m.rows for m in stack.members[:index])
                at_t = f"(size_t)t * B * {width}" if all_steps else ""
                init = " + ".join(part for part in (c, at_t, offset if offset != "0" else "") if part)
                place = row(member.value, init, True, member.rows, width)
                whole = (f"{c} + {offset}" if offset != "0" else c, width) if all_steps else None
                if member.value not in layout.rows:
                    layout.rows[member.value] = place
                    if whole:
                        layout.sequences[member.value] = whole
                elif place.init != layout.rows[member.value].init:
                    place = _Row(self.names("mirror", f"{member.value}:{c}", "{}_row"), *place[1:])
                    layout.mirrors.setdefault(member.value, []).append(place)
                else:
                    place = layout.rows[member.value]
                if index == 0:
                    panel.start = place
        for op in plan.step:  # a stack product inside the time loop reads its matrices packed side by side
            if isinstance(op, StackProduct):
                layout.packed[op.stack] = self.add_packed(op, layout, "side by side, for every step")
                if self.accelerated:
                    self.add_blas_packed(op, layout)
        for op in [*plan.before, *plan.after]:  # over all steps: one product for several matrices
            if isinstance(op, StackProduct) and len(op.stack.members) > 1:
                layout.stacked[op.stack] = self.add_packed(op, layout, "stacked, for all steps")
            if isinstance(op, GradientProduct) and len(op.stack.members) > 1:
                stack = op.stack
                c = self.names("gradients", stack.vector, "grad_{}_weights")
                layout.add_buffer(
                    c,
                    f"(size_t){self.dim_c[stack.cols]} * {layout.panel(stack).width}",
                    f"(size_t){self.dim_c[stack.cols]} * ({self.size_sum(m.rows for m in stack.members)})",
                    f"gradients of ({stack.matrices}) stacked",
                )
                layout.packed_gradients[stack] = c

        forward_roles: dict[str, tuple[str, str]] = {}
        for x in cell.inputs:
            forward_roles[x] = ("input", x)
        for s in cell.states:
            forward_roles[s] = ("prev", s)
            forward_roles[s + "'"] = ("states", s)
        for y in cell.outputs:
            forward_roles[y] = ("outputs", y)
        for n in self.plan.tape:
            if ("tape", n) in by_role:  # a pass that saves nothing keeps these in registers or the workspace
                forward_roles[n] = ("tape", n)

        for name in plan.arrays:
            dim = plan.sizes[name]
            role = forward_roles.get(name)
            if name in layout.rows:
                if which == "forward" and role and role[0] == "tape":
                    tape = row(f"{name}:tape", seq(by_role[role], dim), True, dim)
                    layout.mirrors.setdefault(name, []).append(tape)
                continue
            writes = which == "forward"
            if role and role[0] == "prev":
                init, prev = by_role[("init", role[1])].c_name, by_role[("states", role[1])].c_name
                layout.rows[name] = row(
                    name, f"t == 0 ? {init} : {prev} + (size_t)(t - 1) * B * {self.dim_c[dim]}", False, dim
                )
                layout.sequences[name] = (f"{prev}", self.dim_c[dim])
            elif role:
                arg = by_role[role]
                layout.rows[name] = row(name, seq(arg, dim), writes and role[0] != "input", dim)
                layout.sequences[name] = (arg.c_name, self.dim_c[dim])
            elif which == "backward" and name in self.state_adjoints:
                arg = by_role[("grad_init", self.state_adjoints[name])]
                layout.rows[name] = row(name, arg.c_name, True, dim)
            elif which == "backward" and name in self.input_adjoints:
                arg = by_role[("grad_inputs", self.input_adjoints[name])]
                layout.rows[name] = row(name, seq(arg, dim), True, dim)
                layout.sequences[name] = (arg.c_name, self.dim_c[dim])
            elif which == "backward" and name in self.output_seeds:
                arg = by_role[("grad_outputs", self.output_seeds[name])]
                layout.rows[name] = row(name, seq(arg, dim), False, dim)
            else:
                c = self.names("row", name, "{}_row")
                count = f"(size_t)B * {self.dim_c[dim]}" if dim != SCALAR else "(size_t)B"
                layout.add_buffer(c, count, count, f"{name} of the current step")
                layout.rows[name] = _Row(c, "", True, dim, self.dim_c[dim])
        return layout

    def add_packed(self, op: StackProduct, layout: _Layout, comment: str) -> str:
        """A workspace buffer for the stack's matrices side by side (transposed for a forward
        product in the time loop, row after row otherwise)."""
        stack = op.stack
        c = self.names("weights", stack.vector, "{}_weights")
        width = layout.panel(stack).width
        cols = self.dim_c[stack.cols]
        mark = "ᵀ" if _transposed_packing(op) else ""
        layout.add_buffer(
            c,
            f"(size_t){cols} * {width}",
            f"(size_t){cols} * ({self.size_sum(m.rows for m in stack.members)})",
            f"({stack.matrices}){mark} {comment}",
        )
        return c

    def add_blas_packed(self, op: StackProduct, layout: _Layout) -> None:
        """Workspace for the step product's matrices in the layout of the BLAS's own kernels,
        so that they are packed once per call, not at every step (empty where they are not)."""
        c = self.names("blas space", op.stack.vector, "{}_weights_blas")
        pointer = self.names("blas packed", op.stack.vector, "{}_weights_packed")
        in_pass, in_size = self.step_product_sizes(op, layout.panel(op.stack).width)
        layout.blas_packed[op.stack] = (c, pointer)
        layout.add_buffer(
            c,
            f"sg_packed_count({in_pass})",
            f"sg_packed_count({in_size})",
            f"({op.stack.matrices}) packed for BLAS, for every step",
        )

    def step_product_sizes(self, op: StackProduct, width: str) -> tuple[str, str]:
        """``m, n, k`` of a step product as C, in the pass (with its ``width``) and in the
        workspace size function (with the sum of the stack's dimensions instead)."""
        cols = self.dim_c[op.stack.cols]
        total = self.int_sum(m.rows for m in op.stack.members)
        if op.transposed:
            return f"B, {cols}, {width}", f"B, {cols}, {total}"
        return f"B, {width}, {cols}", f"B, {total}, {cols}"

    def int_sum(self, dims) -> str:
        """``2 * H + D``: a sum of dimensions as a C int expression."""
        counts: dict[str, int] = {}
        for d in dims:
            counts[d] = counts.get(d, 0) + 1
        return " + ".join(f"{n} * {self.dim_c[d]}" if n > 1 else self.dim_c[d] for d, n in counts.items()) or "0"

    def size_sum(self, dims) -> str:
        """``2 * (size_t)H + (size_t)D``: the same sum in size_t, for buffer sizes."""
        counts: dict[str, int] = {}
        for d in dims:
            counts[d] = counts.get(d, 0) + 1
        return _dims_sum(counts, self.dim_c)

    def render_packing(self, op: StackProduct, layout: _Layout) -> dict:
        """Copies a stack's matrices side by side once per call, so one product serves them all."""
        c = layout.packed.get(op.stack) or layout.stacked[op.stack]
        cols = self.dim_c[op.stack.cols]
        width = layout.panel(op.stack).width
        lines = []
        for index, member in enumerate(op.stack.members):
            offset = self.int_sum(m.rows for m in op.stack.members[:index])
            matrix = self.names("param", member.matrix)
            rows = self.dim_c[member.rows]
            if _transposed_packing(op):
                self.helpers.add("sg_pack_t")
                target = f"{c} + {offset}" if offset != "0" else c
                lines.append(f"sg_pack_t({rows}, {cols}, {matrix}, {target}, {width});")
            else:
                target = _rows_from(c, offset, cols)
                lines.append(f"memcpy({target}, {matrix}, sizeof({self.real}) * (size_t){rows} * {cols});")
        if op.stack in layout.blas_packed:
            self.helpers.add("sg_gemm_packed")
            space, pointer = layout.blas_packed[op.stack]
            sizes, _ = self.step_product_sizes(op, width)
            lines.append(
                f"const {self.real} *const {pointer} = sg_pack_weights({sizes}, {c}, "
                f"{cols if op.transposed else width}, {space});"
            )
        how = "side by side" if _transposed_packing(op) else "stacked"
        mark = "ᵀ" if _transposed_packing(op) else ""
        return {"kind": "call", "comment": _comment_safe(f"({op.stack.matrices}){mark} {how}"), "lines": lines}

    def render_op(self, op, layout: _Layout) -> dict:
        rows = layout.rows
        if isinstance(op, Loop):
            return self.render_loop(op, layout)
        if isinstance(op, Reduce):
            helper = "sg_mean" if op.mean else "sg_sum"
            self.helpers.add(helper)
            vector = rows[op.vector]
            line = f"{helper}(B, {self.dim_c[op.dim]}, {vector.c}, {vector.width}, {rows[op.out].c});"
            return {"kind": "call", "comment": _comment_safe(op.out), "lines": [line]}
        if isinstance(op, Product):
            self.helpers.add("sg_gemm_nn")
            vector, out = rows[op.vector], rows[op.out]
            rows_c, cols_c = self.dim_c[op.rows], self.dim_c[op.cols]
            line = (
                f"sg_gemm_nn(B, {cols_c}, {rows_c}, {vector.c}, {vector.width}, {self.names('param', op.matrix)}, "
                f"{cols_c}, {out.c}, {out.width}, 0);"
            )
            return {"kind": "call", "comment": _comment_safe(f"{op.matrix}ᵀ @ {op.vector}"), "lines": [line]}
        if isinstance(op, GradientProduct):
            return self.render_gradient_product(op, layout)
        return self.render_stack_product(op, layout)

    def render_stack_product(self, op: StackProduct, layout: _Layout) -> dict:
        stack = op.stack
        cols = self.dim_c[stack.cols]
        values = ", ".join(stack.panel)
        if op.transposed:
            comment = f"{op.out} {'+' if op.accumulate else ''}= ({stack.matrices})ᵀ @ ({values})"
        else:
            comment = f"({values}) = ({stack.matrices}) @ {stack.vector}"
        if stack in layout.packed:  # one product per step, with the packed matrices
            self.helpers.add("sg_gemm_nn")
            panel = layout.panel(stack).start
            c = layout.packed[stack]
            if op.transposed:
                out = layout.rows[op.out]
                a, lda, ldw, result, ldc = panel.c, panel.width, cols, out.c, out.width
            else:
                vector = layout.rows[stack.vector]
                a, lda, ldw, result, ldc = vector.c, vector.width, panel.width, panel.c, panel.width
            sizes, _ = self.step_product_sizes(op, panel.width)
            if stack in layout.blas_packed:
                packed = layout.blas_packed[stack][1]
                line = f"sg_gemm_packed({sizes}, {a}, {lda}, {c}, {ldw}, {packed}, {result}, {ldc});"
            else:
                line = f"sg_gemm_nn({sizes}, {a}, {lda}, {c}, {ldw}, {result}, {ldc}, 0);"
            return {"kind": "call", "comment": _comment_safe(comment), "lines": [line]}
        # over all steps at once: one product, with the matrices stacked when there are several
        if stack in layout.stacked:
            panel = layout.panel(stack)
            matrix, values_c, width, rows = layout.stacked[stack], panel.c, panel.width, panel.width
        else:
            member = stack.members[0]
            matrix, rows = self.names("param", member.matrix), self.dim_c[member.rows]
            values_c, width = layout.sequences[member.value]
        if op.transposed:
            self.helpers.add("sg_gemm_nn")
            out, ld = layout.sequences[op.out]
            line = (
                f"sg_gemm_nn(T * B, {cols}, {rows}, {values_c}, {width}, {matrix}, {cols}, {out}, {ld}, "
                f"{int(op.accumulate)});"
            )
        else:
            self.helpers.add("sg_gemm_nt")
            vector, ld = layout.sequences[stack.vector]
            line = f"sg_gemm_nt(T * B, {rows}, {cols}, {vector}, {ld}, {matrix}, {cols}, {values_c}, {width}, 0);"
        return {"kind": "call", "comment": _comment_safe(comment + ", all steps"), "lines": [line]}

    def render_gradient_product(self, op: GradientProduct, layout: _Layout) -> dict:
        """``δW_k += Σ δ_k ⊗ v``: one product over all steps, into the stack's gradients side by
        side when it has several matrices (then added to each), or straight into the one."""
        self.helpers.add("sg_gemm_tn")
        stack = op.stack
        cols = self.dim_c[stack.cols]
        first = stack.members[0]
        matrices, adjoints = (first.matrix, first.value)
        if len(stack.members) > 1:
            matrices, adjoints = f"({stack.matrices})", f"({', '.join(stack.panel)})"
        comment = _comment_safe(f"{ADJOINT}{matrices} += Σ {adjoints} ⊗ {stack.vector}, all steps")
        if stack not in layout.packed_gradients:
            adjoint, width = layout.sequences[first.value]
            grad = self.names("grad_params", first.matrix)
            lines = self.sum_over_steps(layout, self.dim_c[first.rows], cols, adjoint, width, stack.vector, grad)
            return {"kind": "call", "comment": comment, "lines": lines}
        panel = layout.panel(stack)
        c = layout.packed_gradients[stack]
        self.helpers.add("sg_add")
        lines = [f"memset({c}, 0, sizeof({self.real}) * (size_t){panel.width} * {cols});"]
        lines += self.sum_over_steps(layout, panel.width, cols, panel.c, panel.width, stack.vector, c)
        for index, member in enumerate(stack.members):
            source = _rows_from(c, self.int_sum(m.rows for m in stack.members[:index]), cols)
            grad = self.names("grad_params", member.matrix)
            lines.append(f"sg_add((size_t){self.dim_c[member.rows]} * {cols}, {source}, {grad});")
        return {"kind": "call", "comment": comment, "lines": lines}

    def sum_over_steps(
        self, layout: _Layout, rows: str, cols: str, adjoints: str, width: str, vector: str, out: str
    ) -> list[str]:
        """``out (rows, cols) += Σ_t,b adjoints[t, b] ⊗ vector[t, b]``; a state's vector is the
        previous state: the initial one, then the sequence."""
        sequence, ld = layout.sequences[vector]
        if vector in self.cell.states:
            init = self.names("init", vector, "{}_init")
            return [
                "if (T > 0) {",
                f"    sg_gemm_tn({rows}, {cols}, B, {adjoints}, {width}, {init}, {ld}, {out}, {cols});",
                f"    sg_gemm_tn({rows}, {cols}, (T - 1) * B, {adjoints} + (size_t)B * {width}, {width}, "
                f"{sequence}, {ld}, {out}, {cols});",
                "}",
            ]
        return [f"sg_gemm_tn({rows}, {cols}, T * B, {adjoints}, {width}, {sequence}, {ld}, {out}, {cols});"]

    def render_loop(self, loop: Loop, layout: _Layout) -> dict:
        rows = layout.rows
        locals_ = {}
        for name in loop.loads + [e.target.name for e in loop.equations]:
            locals_[name] = self.names("local", name)
        params = {p.name: f"{self.names('param', p.name)}[unit]" for p in self.cell.params if not p.is_matrix}
        constants = {name: self.names("const", name) for name in self.cell.constants}
        extents = {f"|{d}|": f"(({self.real}){c})" for d, c in self.dim_c.items()}
        printer = printer_for(self.dtype, {**params, **constants, **extents, **locals_})

        pointers: dict[str, str] = {}  # row -> its start for the current sample

        def at(place: _Row, writes: bool = False) -> str:
            if place.dim == SCALAR and loop.dim != SCALAR:
                return f"{place.c}[sample]"
            if place.c not in pointers:
                pointers[place.c] = self.names("sample", place.c.removesuffix("_row"), "{}_sample")
                const = "" if writes else "const "
                declarations.append(
                    f"{const}{self.real} *const {pointers[place.c]} = {place.c} + (size_t)sample * {place.width};"
                )
            return f"{pointers[place.c]}[unit]"

        declarations: list[str] = []
        statements = [f"const {self.real} {locals_[n]} = {at(rows[n])};" for n in loop.loads]
        statements += [
            f"const {self.real} {locals_[e.target.name]} = {printer.doprint(e.expr)};" for e in loop.equations
        ]
        written = [n for n in loop.stores] + [n for n in loop.loads if n in layout.mirrors]
        for name in written:
            places = ([rows[name]] if name in loop.stores else []) + layout.mirrors.get(name, [])
            for place in places:
                if (place.c, name) not in layout.written:
                    layout.written.add((place.c, name))
                    statements.append(f"{at(place, writes=True)} = {locals_[name]};")
        statements += [
            f"{self.names('grad_params', g.param)}[unit] += {printer.doprint(g.expr)};" for g in loop.gradients
        ]
        self.helpers |= printer.helpers_used
        targets = [e.target.name for e in loop.equations] + [f"{ADJOINT}{g.param}" for g in loop.gradients]
        return {
            "kind": "loop",
            "comment": _comment_safe(", ".join(targets)),
            "dim": self.dim_c[loop.dim],
            "pointers": declarations,
            "statements": statements,
        }


class _Row(NamedTuple):
    """Where a vector lives at step t: a pointer (declared with ``init``) and its row stride."""

    c: str
    init: str
    writes: bool
    dim: str
    width: str


@dataclass
class _Panel:
    """Vectors side by side in the workspace: ``start`` is the row of the first one at step t."""

    c: str
    width: str
    all_steps: bool
    start: _Row | None = None


@dataclass
class _Layout:
    """The storage of one pass: rows at step t, extra copies, whole sequences, the workspace."""

    backward: bool
    rows: dict[str, _Row] = field(default_factory=dict)
    mirrors: dict[str, list[_Row]] = field(default_factory=dict)
    sequences: dict[str, tuple[str, str]] = field(default_factory=dict)
    panels: dict[tuple, _Panel] = field(default_factory=dict)
    packed: dict[Stack, str] = field(default_factory=dict)  # matrices of a product in the time loop
    blas_packed: dict[Stack, tuple[str, str]] = field(default_factory=dict)  # their BLAS layout: space, pointer
    stacked: dict[Stack, str] = field(default_factory=dict)  # matrices of a product over all steps
    packed_gradients: dict[Stack, str] = field(default_factory=dict)
    widths: list[dict] = field(default_factory=list)
    buffers: list[dict] = field(default_factory=list)
    written: set[tuple[str, str]] = field(default_factory=set)

    def add_buffer(self, c: str, extent: str, count: str, comment: str) -> None:
        """A slice of the workspace: ``extent`` in the pass (C names), ``count`` in the size function."""
        self.buffers.append({"c": c, "extent": extent, "count": count, "comment": comment})

    def panel(self, stack: Stack) -> _Panel:
        """The panel a stack's products write (forward) or read (backward)."""
        return self.panels[(stack.panel, self.backward or stack.hoisted)]


def _rows_from(c: str, offset: str, cols: str) -> str:
    """``c`` advanced by ``offset`` rows of ``cols`` numbers, as C."""
    if offset == "0":
        return c
    start = f"({offset})" if " " in offset else offset
    return f"{c} + (size_t){start} * {cols}"


def _transposed_packing(op: StackProduct) -> bool:
    """A forward product in the time loop reads its matrices transposed, as columns side by side
    (``h W`` for B rows of h); the others read them row after row."""
    return not op.transposed and not op.stack.hoisted


def _mentions(code: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", code) is not None


def _dims_sum(counts: dict[str, int], dim_c: dict[str, str]) -> str:
    terms = [f"{n} * (size_t){dim_c[d]}" if n > 1 else f"(size_t){dim_c[d]}" for d, n in counts.items() if n]
    return " + ".join(terms) or "0"


def _comment_safe(text: str) -> str:
    return text.replace("*/", "* /").replace("/*", "/ *")
