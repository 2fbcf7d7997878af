"""Rendering: a planned kernel -> template context (plain data) -> C source and header.

Everything the templates need is decided here and handed over as strings and lists: C names
(through :class:`~symgate.cnames.CNames`), where each vector lives at step ``t`` (a sequence
row, the initial state, the tape, the backward carry or the workspace), and every statement
already printed. The templates only lay the text out. The same code renders both passes, and
the kernel's calling convention is returned beside the C as an :class:`Interface` (JSON-able),
so a cached kernel can be called without deriving anything again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import jinja2

from . import __version__
from .cell import Cell
from .cnames import CNames
from .cprinter import KernelPrinter
from .derive import ADJOINT, Derivation
from .functions import SCALAR
from .lower import KernelPlan, Loop, OuterProduct, Plan, Product, Reduce

C_TYPES = {"float64": "double", "float32": "float"}
_ROLE_TEXT = {
    "input": "input {} at every step",
    "init": "initial state {}",
    "param": "parameter {}",
    "states": "state {} after every step",
    "outputs": "output {} at every step",
    "tape": "{} at every step, kept for the backward pass",
    "grad_states": "loss gradient with respect to {} at every step",
    "grad_outputs": "loss gradient with respect to output {} at every step",
    "grad_inputs": "result: gradient with respect to input {}",
    "grad_init": "in: gradient with respect to the final {}; out: with respect to the initial {}",
    "grad_params": "result: gradient with respect to {}",
}


@dataclass(frozen=True)
class Argument:
    """One array argument of a kernel function: which vector it holds and its shape."""

    name: str
    role: str
    c_name: str
    shape: tuple[str, ...]
    writes: bool


@dataclass(frozen=True)
class PassInterface:
    function: str
    work_function: str
    arguments: tuple[Argument, ...]


@dataclass(frozen=True)
class Interface:
    """How to call a built kernel: function names, dimension order and every array argument.

    Argument roles: ``input``, ``init``, ``param``, ``states``, ``outputs``, ``tape`` (forward);
    ``grad_states``, ``grad_outputs`` (given), ``grad_inputs``, ``grad_init`` (carry in, result
    out), ``grad_params`` (results) in the backward pass.
    """

    cell: str
    dtype: str
    dims: tuple[str, ...]
    forward: PassInterface
    backward: PassInterface

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Interface:
        data = json.loads(text)

        def pass_of(d: dict) -> PassInterface:
            args = tuple(Argument(**{**a, "shape": tuple(a["shape"])}) for a in d["arguments"])
            return PassInterface(d["function"], d["work_function"], args)

        return cls(
            data["cell"], data["dtype"], tuple(data["dims"]), pass_of(data["forward"]), pass_of(data["backward"])
        )


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
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


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
    """A hash of every template, part of the build cache key."""
    digest = hashlib.sha256()
    for path in sorted(template_dir().glob("*.jinja")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def render(cell: Cell, derivation: Derivation, plan: KernelPlan, dtype: str) -> KernelSource:
    """The C source, header and interface of ``cell``'s kernels in ``dtype``."""
    if dtype not in C_TYPES:
        raise ValueError(f"dtype must be one of {sorted(C_TYPES)}, not {dtype!r}")
    context = _Context(cell, derivation, plan, dtype).build()
    env = _environment()
    declarations = env.get_template("declarations.h.jinja").render(context)
    context["declarations"] = declarations
    return KernelSource(
        stem=context["stem"],
        c_source=env.get_template("kernel.c.jinja").render(context),
        header=env.get_template("kernel.h.jinja").render(context),
        declarations=declarations,
        interface=context["interface"],
    )


class _Context:
    def __init__(self, cell: Cell, derivation: Derivation, plan: KernelPlan, dtype: str) -> None:
        self.cell, self.derivation, self.plan, self.dtype = cell, derivation, plan, dtype
        self.real = C_TYPES[dtype]
        self.names = CNames()
        self.helpers: set[str] = set()
        self.prefix = f"sg_{cell.name}_{dtype}"
        self.dim_c = {d: self.names("dim", d) for d in cell.dims} | {SCALAR: "1"}
        self.state_adjoints = {v.name: s for s, v in derivation.state_adjoints.items()}
        self.input_adjoints = {v.name: x for x, v in derivation.input_adjoints.items()}
        self.output_seeds = {derivation.seeds[y].name: y for y in cell.outputs}

    def build(self) -> dict:
        cell = self.cell
        forward_args = self.forward_arguments()
        backward_args = self.backward_arguments()
        forward = self.render_pass("forward", self.plan.forward, forward_args)
        backward = self.render_pass("backward", self.plan.backward, backward_args)
        interface = Interface(
            cell=cell.name,
            dtype=self.dtype,
            dims=cell.dims,
            forward=PassInterface(forward["function"], forward["work_function"], tuple(forward_args)),
            backward=PassInterface(backward["function"], backward["work_function"], tuple(backward_args)),
        )
        return {
            "stem": f"{cell.name}_{self.dtype}",
            "version": __version__,
            "real": self.real,
            "zero": "0.0" if self.dtype == "float64" else "0.0F",
            "one": "1.0" if self.dtype == "float64" else "1.0F",
            "suffix": "" if self.dtype == "float64" else "f",
            "blas": "d" if self.dtype == "float64" else "s",
            "guard": f"SYMGATE_{cell.name.upper()}_{self.dtype.upper()}_H",
            "cell_lines": [_comment_safe(line) for line in cell.text().splitlines()],
            "backward_lines": [_comment_safe(line) for line in self.derivation.text().splitlines()],
            "tape": [f"{name} ({self.plan.forward.sizes[name]})" for name in self.plan.tape],
            "dims": [self.dim_c[d] for d in cell.dims],
            "helpers": sorted(self.helpers),
            "passes": [forward, backward],
            "interface": interface,
        }

    # -- arguments ------------------------------------------------------------------------
    def arg(self, name: str, role: str, shape: tuple[str, ...], writes: bool, pattern: str) -> Argument:
        return Argument(name, role, self.names(role, name, pattern), shape, writes)

    def forward_arguments(self) -> list[Argument]:
        cell = self.cell
        args = [self.arg(x, "input", ("T", "B", d), False, "{}_seq") for x, d in cell.inputs.items()]
        args += [self.arg(s, "init", ("B", d), False, "{}_init") for s, d in cell.states.items()]
        args += [self.arg(p.name, "param", p.shape, False, "{}") for p in cell.params]
        args += [self.arg(s, "states", ("T", "B", d), True, "{}_seq") for s, d in cell.states.items()]
        args += [self.arg(y, "outputs", ("T", "B", d), True, "{}_seq") for y, d in cell.outputs.items()]
        sizes = self.plan.forward.sizes
        args += [self.arg(n, "tape", ("T", "B", sizes[n]), True, "{}_tape") for n in self.plan.tape]
        return args

    def backward_arguments(self) -> list[Argument]:
        cell = self.cell
        reads = [Argument(a.name, a.role, a.c_name, a.shape, False) for a in self.forward_arguments()]
        given = [self.arg(s, "grad_states", ("T", "B", d), False, "grad_{}_seq") for s, d in cell.states.items()]
        given += [self.arg(y, "grad_outputs", ("T", "B", d), False, "grad_{}_seq") for y, d in cell.outputs.items()]
        results = [self.arg(x, "grad_inputs", ("T", "B", d), True, "grad_{}_seq") for x, d in cell.inputs.items()]
        results += [self.arg(s, "grad_init", ("B", d), True, "grad_{}_init") for s, d in cell.states.items()]
        results += [self.arg(p.name, "grad_params", p.shape, True, "grad_{}") for p in cell.params]
        return reads + given + results

    # -- one pass -------------------------------------------------------------------------
    def render_pass(self, which: str, plan: Plan, args: list[Argument]) -> dict:
        cell = self.cell
        by_role = {(a.role, a.name): a for a in args}
        rows, scratch = self.storage(which, plan, by_role)
        body = [self.render_op(op, rows) for op in plan.ops]
        seeds = []
        if which == "backward":
            for state, dim in cell.states.items():
                seed = self.derivation.seeds[state + "'"].name
                if seed in rows:
                    seeds.append(
                        {
                            "comment": f"{seed}: gradient into {state}' from step t+1 and the loss",
                            "out": rows[seed]["c"],
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
        code = [o.get("call", "") for o in body] + [s for o in body for s in o.get("statements", [])]
        code += [f"{s['carry']} {s['given']}" for s in seeds] + [z["c"] for z in zero]
        code += [r["init"] for r in rows.values()]
        text = "\n".join(code)  # code only: a name in a comment is not a use
        dims = [self.dim_c[d] for d in cell.dims]
        candidates = [*dims, *(a.c_name for a in args), "work"]
        unused = [n for n in candidates if not re.search(rf"\b{n}\b", text)]
        printer = KernelPrinter(self.dtype, {})
        constants = [
            f"const {self.real} {self.names('const', name)} = {printer.doprint(value)};"
            for name, value in self.cell.constants.items()
            if re.search(rf"\b{self.names('const', name)}\b", str(body))
        ]
        work_size = f"(size_t)B * ({_dims_sum(scratch, self.dim_c)})" if scratch else "0"
        return {
            "which": which,
            "function": f"{self.prefix}_{which}",
            "work_function": f"{self.prefix}_{which}_work",
            "parameters": [
                f"const {self.real} *{a.c_name}" if not a.writes else f"{self.real} *{a.c_name}" for a in args
            ],
            "arg_comments": [
                f"{a.c_name} ({', '.join(a.shape)}): {_ROLE_TEXT[a.role].format(a.name, a.name)}" for a in args
            ],
            "unused": unused,
            "constants": constants,
            "work_size": work_size,
            "work_unused": [d for d in ["B", *dims] if not re.search(rf"\b{d}\b", work_size)],
            "scratch": [r for r in rows.values() if r["scratch"]],
            "step_rows": [r for r in rows.values() if not r["scratch"] and r["init"]],
            "seeds": seeds,
            "zero": zero,
            "body": body,
            "reverse": which == "backward",
        }

    def storage(self, which: str, plan: Plan, by_role: dict) -> tuple[dict[str, dict], dict[str, int]]:
        """Where each vector of the pass lives at step t, as a row pointer."""
        cell = self.cell
        rows: dict[str, dict] = {}
        scratch_counts: dict[str, int] = {}

        def row(name: str, init: str, writes: bool, dim: str, scratch: bool = False) -> None:
            c = self.names("row", name, "{}_row")
            rows[name] = {"c": c, "init": init, "writes": writes, "scratch": scratch, "dim": dim}

        def seq(arg: Argument, dim: str) -> str:
            return f"{arg.c_name} + (size_t)t * B * {self.dim_c[dim]}"

        forward_roles: dict[str, tuple[str, str]] = {}
        for x in cell.inputs:
            forward_roles[x] = ("input", x)
        for s in cell.states:
            forward_roles[s] = ("prev", s)
            forward_roles[s + "'"] = ("states", s)
        for y in cell.outputs:
            forward_roles[y] = ("outputs", y)
        for n in self.plan.tape:
            forward_roles[n] = ("tape", n)

        for name in plan.arrays:
            dim = plan.sizes[name]
            role = forward_roles.get(name)
            writes = which == "forward"
            if role and role[0] == "prev":
                init, prev = by_role[("init", role[1])].c_name, by_role[("states", role[1])].c_name
                row(name, f"t == 0 ? {init} : {prev} + (size_t)(t - 1) * B * {self.dim_c[dim]}", False, dim)
            elif role and role[0] == "input":
                row(name, seq(by_role[("input", role[1])], dim), False, dim)
            elif role:
                row(name, seq(by_role[role], dim), writes, dim)
            elif which == "backward" and name in self.state_adjoints:
                row(name, by_role[("grad_init", self.state_adjoints[name])].c_name, True, dim)
            elif which == "backward" and name in self.input_adjoints:
                row(name, seq(by_role[("grad_inputs", self.input_adjoints[name])], dim), True, dim)
            elif which == "backward" and name in self.output_seeds:
                row(name, seq(by_role[("grad_outputs", self.output_seeds[name])], dim), False, dim)
            else:
                offset = _dims_sum(scratch_counts, self.dim_c)
                row(name, f"work + (size_t)B * ({offset})" if offset != "0" else "work", True, dim, True)
                scratch_counts[dim] = scratch_counts.get(dim, 0) + 1
        return rows, scratch_counts

    def render_op(self, op: Product | Reduce | Loop | OuterProduct, rows: dict[str, dict]) -> dict:
        if isinstance(op, Reduce):
            helper = "sg_mean" if op.mean else "sg_sum"
            self.helpers.add(helper)
            return {
                "kind": "reduce",
                "comment": _comment_safe(op.out),
                "call": f"{helper}(B, {self.dim_c[op.dim]}, {rows[op.vector]['c']}, {rows[op.out]['c']});",
            }
        if isinstance(op, Product):
            mark = "ᵀ" if op.transposed else ""
            self.helpers.add("sg_matvec_t" if op.transposed else "sg_matvec")
            return {
                "kind": "product",
                "comment": _comment_safe(f"{op.matrix}{mark} @ {op.vector}"),
                "call": f"sg_matvec{'_t' if op.transposed else ''}(B, {self.dim_c[op.rows]}, {self.dim_c[op.cols]}, "
                f"{self.names('param', op.matrix)}, {rows[op.vector]['c']}, {rows[op.out]['c']});",
            }
        if isinstance(op, OuterProduct):
            self.helpers.add("sg_outer_acc")
            return {
                "kind": "outer",
                "comment": _comment_safe(f"{ADJOINT}{op.param} += {op.adjoint} ⊗ {op.vector}"),
                "call": f"sg_outer_acc(B, {self.dim_c[op.rows]}, {self.dim_c[op.cols]}, {rows[op.adjoint]['c']}, "
                f"{rows[op.vector]['c']}, {self.names('grad_params', op.param)});",
            }
        return self.render_loop(op, rows)

    def render_loop(self, loop: Loop, rows: dict[str, dict]) -> dict:
        locals_ = {}
        for name in loop.loads + [e.target.name for e in loop.equations]:
            locals_[name] = self.names("local", name)
        params = {p.name: f"{self.names('param', p.name)}[unit]" for p in self.cell.params if not p.is_matrix}
        constants = {name: self.names("const", name) for name in self.cell.constants}
        extents = {f"|{d}|": f"(({self.real}){c})" for d, c in self.dim_c.items()}
        printer = KernelPrinter(self.dtype, {**params, **constants, **extents, **locals_})
        statements = [
            f"const {self.real} {locals_[n]} = {rows[n]['c']}"
            f"[{'sample' if rows[n]['dim'] == SCALAR and loop.dim != SCALAR else 'at'}];"
            for n in loop.loads
        ]
        statements += [
            f"const {self.real} {locals_[e.target.name]} = {printer.doprint(e.expr)};" for e in loop.equations
        ]
        statements += [f"{rows[n]['c']}[at] = {locals_[n]};" for n in loop.stores]
        statements += [
            f"{self.names('grad_params', g.param)}[unit] += {printer.doprint(g.expr)};" for g in loop.gradients
        ]
        self.helpers |= printer.helpers_used
        targets = [e.target.name for e in loop.equations] + [f"{ADJOINT}{g.param}" for g in loop.gradients]
        return {
            "kind": "loop",
            "comment": _comment_safe(", ".join(targets)),
            "dim": self.dim_c[loop.dim],
            "statements": statements,
        }


def _dims_sum(counts: dict[str, int], dim_c: dict[str, str]) -> str:
    terms = [f"{n} * (size_t){dim_c[d]}" if n > 1 else f"(size_t){dim_c[d]}" for d, n in counts.items() if n]
    return " + ".join(terms) or "0"


def _comment_safe(text: str) -> str:
    return text.replace("*/", "* /").replace("/*", "/ *")
