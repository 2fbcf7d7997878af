"""The template context of an exported library: the kernels rendered for a library
:class:`~symgate.codegen.target.Target`, plus ``step``, the size macros, the documentation, the
baked parameters and the example program, all as plain data for ``templates/export*.jinja``."""

from __future__ import annotations

import hashlib
import textwrap
from dataclasses import dataclass

import numpy as np

from ..codegen.ccode import Code, c, join
from ..codegen.lower import KernelPlan
from ..codegen.passes import INFER_TITLE, RenderedPass, backward_arguments, forward_arguments, render_pass
from ..codegen.render import common_context, with_time_loops
from ..codegen.scope import Scope
from ..codegen.target import library_target
from ..dtypes import DTYPES
from ..frontend.cell import Cell
from ..frontend.functions import SCALAR
from ..interface import ROLE_TEXT, Argument
from ..symbolic.derive import Derivation

EXAMPLE_STEPS, EXAMPLE_BATCH = 5, 2
"""The example program's sequence length and batch; its cell sizes are 3, 4, 5, ... in order."""
_ROLES = ROLE_TEXT | {
    "step_input": "input {} of this step",
    "step_state": "state {}: before the step on entry, after it on return",
    "step_output": "output {} of this step",
}
_READ_AND_WRITTEN = ("grad_init", "step_state")


@dataclass(frozen=True)
class CFunction:
    """One function of an exported library: ``name(T, B, dims..., arrays..., work)`` (no ``T``
    when ``steps`` is false). ``work`` is the macro giving its workspace size."""

    name: str
    steps: bool
    arguments: tuple[Argument, ...]
    work: str


def library_context(
    cell: Cell,
    derivation: Derivation,
    plan: KernelPlan,
    dtype: str,
    baked: tuple[dict[str, np.ndarray], dict[str, int]] | None,
) -> dict:
    """Everything the export templates show; ``baked`` (parameter values, the sizes they fix)
    makes the library inference only."""
    values, sizes = baked if baked is not None else ({}, None)
    scope = Scope(cell, derivation, plan, dtype, library_target(cell.name, dtype, sizes))
    target, macro = scope.target, scope.target.macro_prefix
    inference_only = baked is not None
    rendered: list[RenderedPass] = []
    arguments: dict[str, list[Argument]] = {}
    if not inference_only:
        arguments["forward"], arguments["backward"] = forward_arguments(scope), backward_arguments(scope)
        rendered.append(render_pass(scope, "forward", plan.forward, arguments["forward"]))
        rendered.append(render_pass(scope, "backward", plan.backward, arguments["backward"]))
    arguments["infer"] = forward_arguments(scope, tape=False)
    infer = render_pass(scope, "forward", plan.infer, arguments["infer"], name="infer", title=INFER_TITLE)
    rendered.append(infer)
    step, arguments["step"], step_counts = _step(scope, infer, arguments["infer"])
    functions = tuple(
        CFunction(
            f"{scope.prefix}_{which}",
            which != "step",
            tuple(a for a in args if a.role not in target.hidden_roles),
            f"{macro}_WORK_{which}",
        )
        for which, args in arguments.items()
    )
    works = [target.macro_body(p.work_size, scope.dim_c) for p in rendered]
    counts = [target.macro_body(count, scope.dim_c) for count in step_counts]
    works.append("(" + " + ".join([*counts, f"{functions[-2].work}({', '.join(['1', 'B', *scope.runtime])})"]) + ")")
    return common_context(scope) | {
        "cell": cell.name,
        "dtype": dtype,
        "names": {f.name.removeprefix(scope.prefix + "_"): f.name for f in functions},
        "build_command": f"cc -std=c99 -O2 -o example example.c {cell.name}_{dtype}.c -lm && ./example",
        "prefix": macro,
        "passes": with_time_loops(scope, rendered),
        "step": step,
        "functions": functions,
        "size_args": ", ".join(["T", "B", *scope.runtime]),
        "fixed_dims": [
            {"macro": target.fixed_macro(scope.dim_c[d]), "value": target.fixed_sizes[d], "dim": d} for d in scope.fixed
        ],
        "runtime_dims": [d for d in cell.dims if d not in target.fixed_sizes],
        "sizes": _size_macros(scope, functions),
        "works": [{"macro": f.work, "value": w} for f, w in zip(functions, works, strict=True)],
        "docs": [_function_doc(scope, f, inference_only) for f in functions],
        "inference_only": inference_only,
        "baked": _baked_arrays(scope, values),
        "digest": _digest(values) if inference_only else "",
        "example": _example(scope, functions),
        "buffers": _buffer_table(functions),
    }


def _step(scope: Scope, infer: RenderedPass, infer_args: list[Argument]) -> tuple[dict, list[Argument], list[Code]]:
    """One step: ``infer`` with T = 1 into the workspace, then the new states copied back; its
    template data, its arguments and the sizes of its new states."""
    cell, names, hidden = scope.cell, scope.names, scope.target.hidden_roles

    def arg(role: str, name: str, dim: str, writes: bool, pattern: str) -> Argument:
        return Argument(name, role, names(role, name, pattern), ("B", dim), writes)

    args = [arg("step_input", x, d, False, "{}_step") for x, d in cell.inputs.items()]
    args += [arg("step_state", s, d, True, "{}_state") for s, d in cell.states.items()]
    args += [a for a in infer_args if a.role == "param"]
    args += [arg("step_output", y, d, True, "{}_step") for y, d in cell.outputs.items()]
    by_role = {(a.role, a.name): a.c_name for a in args}
    states, counts, start = [], [], "work"
    for s, d in cell.states.items():
        count = c("(size_t){B} * {d}", B="B", d=scope.dim_c[d])
        new = names("step_next", s, "{}_next_state")
        states.append({"c": by_role[("step_state", s)], "next": new, "start": start, "count": count.text})
        counts.append(count)
        start = f"{new} + {count.text}"
    new_state = {s: state["next"] for s, state in zip(cell.states, states, strict=True)}
    role_in_step = {"input": "step_input", "init": "step_state", "outputs": "step_output", "param": "param"}
    call_args = [
        new_state[a.name] if a.role == "states" else by_role[(role_in_step[a.role], a.name)]
        for a in infer_args
        if a.role not in hidden
    ]
    dims = join([c("1"), c("{B}", B="B"), *(c("{d}", d=d) for d in scope.runtime)], ", ")
    work = join([*counts, c(infer.work_function + "({dims})", dims=dims)], " + ")
    shown = [a for a in args if a.role not in hidden]

    def fixed_in(code: Code) -> list[dict]:
        return [
            {"c": scope.dim_c[d], "value": scope.target.fixed_macro(scope.dim_c[d])}
            for d in scope.fixed
            if scope.dim_c[d] in code.names
        ]

    data = {
        "function": f"{scope.prefix}_step",
        "work_function": f"{scope.prefix}_step_work",
        "fixed": fixed_in(join(counts, "\n")),
        "work_fixed": fixed_in(work),
        "parameters": [f"{'' if a.writes else 'const '}{scope.real} *{a.c_name}" for a in shown],
        "states": states,
        "call": [f"{infer.function}({dims.text}, NULL,", *(f"    {a}," for a in call_args), f"    {start});"],
        "work_size": work.text,
    }
    return data, args, counts


def _size_of(scope: Scope, shape: tuple[str, ...]) -> str:
    """The number of elements of an array of ``shape``, as a macro body."""
    fixed = scope.target.fixed_sizes
    factors = []
    for d in shape:
        if d in ("T", "B"):
            factors.append(f"(size_t)({d})")
        elif d in fixed:
            factors.append(f"(size_t){fixed[d]}")
        elif d != SCALAR:
            factors.append(f"(size_t)({scope.dim_c[d]})")
    return "(" + (" * ".join(factors) or "(size_t)1") + ")"


def _size_macros(scope: Scope, functions: tuple[CFunction, ...]) -> list[dict]:
    seen: dict[str, dict] = {}
    for f in functions:
        for a in f.arguments:
            macro = f"{scope.target.macro_prefix}_SIZE_{a.c_name}"
            seen.setdefault(a.c_name, {"macro": macro, "value": _size_of(scope, a.shape), "shape": a.shape})
    return list(seen.values())


def _function_doc(scope: Scope, f: CFunction, inference_only: bool) -> dict:
    """The header's comment for one function: what it does, then every array it takes."""
    prefix = scope.prefix
    forward, backward = f"{prefix}_forward", f"{prefix}_backward"
    which = f.name.removeprefix(prefix + "_")
    grads = ", ".join(a.c_name for a in f.arguments if a.role == "grad_init")
    summary = {
        "forward": "Forward pass over T steps, for training: writes the states and outputs after every step "
        f"and the tape (`*_tape`, what the backward pass reads). Keep every array it reads or writes "
        f"unchanged until {backward} has run.",
        "backward": f"Backpropagation through time, after {forward} on the same arrays. Give the loss "
        "gradients with respect to every step's states (and outputs), and in "
        f"{grads} the gradients with respect to the final states (zeros if the loss does not read them). "
        "Parameter gradients are overwritten (summed over steps and samples), not accumulated.",
        "infer": "Forward pass over T steps, for inference: writes the states and outputs after every "
        f"step{'' if inference_only else f' as {forward} does'}, and keeps nothing for a backward pass.",
        "step": f"One step, for streaming: {prefix}_infer with T = 1, the states updated in place. "
        "Before the first step, set the states to the initial state (zeros, usually).",
    }[which]
    lines = []
    for a in f.arguments:
        access = "read and written" if a.role in _READ_AND_WRITTEN else "written" if a.writes else "read"
        text = _ROLES[a.role].format(a.name, a.name).removeprefix("result: ")
        lines.append(f"{a.c_name} ({', '.join(a.shape)}), {access}: {text}")
    return {"function": f.name, "summary": textwrap.wrap(summary, 96), "arguments": lines}


def _buffer_table(functions: tuple[CFunction, ...]) -> list[dict]:
    """README rows: every array, its shape, its size macro and what each function does with it."""
    rows: dict[str, dict] = {}
    for f in functions:
        for a in f.arguments:
            row = rows.setdefault(a.c_name, {"c": a.c_name, "shape": ", ".join(a.shape), "access": {}})
            access = "in/out" if a.role in _READ_AND_WRITTEN else "out" if a.writes else "in"
            row["access"][f.name] = access
    return [{**row, "access": [row["access"].get(f.name, "") for f in functions]} for row in rows.values()]


def _baked_arrays(scope: Scope, values: dict[str, np.ndarray]) -> list[dict]:
    arrays = []
    for p in scope.cell.params if values else ():
        value = values[p.name]
        numbers = [c_number(v, scope.dtype) for v in value.ravel()]
        rows = [", ".join(numbers[i : i + 4]) + "," for i in range(0, len(numbers), 4)]
        shape = f"({', '.join(p.shape)}) = ({', '.join(str(n) for n in value.shape)})"
        arrays.append({"c": scope.names("param", p.name), "count": len(numbers), "shape": shape, "rows": rows})
    return arrays


def _digest(values: dict[str, np.ndarray]) -> str:
    """A hash of the baked values (names, shapes and bytes), to tell builds apart."""
    digest = hashlib.sha256()
    for name, value in sorted(values.items()):
        digest.update(f"{name}{value.shape}".encode() + value.tobytes())
    return digest.hexdigest()[:16]


def _example(scope: Scope, functions: tuple[CFunction, ...]) -> dict:
    """The example program as data: its sizes, buffers, the numbers it fills in, and each call
    with its arguments; ``templates/export_example.c.jinja`` lays out ``main`` from it."""
    cell = scope.cell
    sizes = [{"c": "T", "value": EXAMPLE_STEPS}, {"c": "B", "value": EXAMPLE_BATCH}]
    sizes += [
        {"c": scope.dim_c[d], "value": 3 + i} for i, d in enumerate(cell.dims) if d not in scope.target.fixed_sizes
    ]
    by_name = {f.name.removeprefix(scope.prefix + "_"): f for f in functions}
    arrays: dict[str, None] = {}
    for f in functions:
        for a in f.arguments:
            if a.role not in ("step_input", "step_output"):
                arrays.setdefault(a.c_name)
    works = {which: scope.names("example", f"work_{which}") for which in by_name}

    def call(which: str, args: list[dict]) -> dict:
        return {"name": by_name[which].name, "work": works[which], "args": args}

    def whole(f: CFunction) -> list[dict]:
        return [{"c": a.c_name, "seq": ""} for a in f.arguments]

    infer = by_name["infer"].arguments
    seq = {(a.role, a.name): a.c_name for a in infer}
    scales = {"input": "1.0", "init": "0.5", "param": "0.5"}
    training = None
    if "forward" in by_name:
        forward, backward = by_name["forward"], by_name["backward"]
        state = next(iter(cell.states))
        results = [a for a in backward.arguments if a.role in ("grad_params", "grad_init", "grad_inputs")]
        training = {
            "forward": call("forward", whole(forward)),
            "backward": call("backward", whole(backward)),
            "state": state,
            "grad": next(a.c_name for a in backward.arguments if (a.role, a.name) == ("grad_states", state)),
            "one": c_number(1.0, scope.dtype),
            "results": [
                {"label": f"d loss / d {a.name}" + (" (initial)" if a.role == "grad_init" else ""), "c": a.c_name}
                for a in results
            ],
        }
    step = by_name["step"]
    step_seq = {"step_input": "input", "step_output": "outputs"}
    return {
        "sizes": sizes,
        "runtime": scope.runtime,
        "arrays": list(arrays),
        "functions": [{"which": which, "work": works[which]} for which in by_name],
        "given": [{"c": a.c_name, "scale": scales[a.role]} for a in infer if a.role in scales],
        "training": training,
        "first": 3 if training else 1,
        "kept": [{"name": n, "c": seq[(r, n)]} for r, n in seq if r in ("states", "outputs")],
        "infer": call("infer", whole(by_name["infer"])),
        "step": call(
            "step",
            [
                {"c": a.c_name, "seq": seq[(step_seq[a.role], a.name)] if a.role in step_seq else ""}
                for a in step.arguments
            ],
        ),
        "states": [
            {"c": a.c_name, "init": seq[("init", a.name)], "seq": seq[("states", a.name)]}
            for a in step.arguments
            if a.role == "step_state"
        ],
        "format": "%.6g" if scope.dtype == "float32" else "%.15g",
    }


def c_number(value: float, dtype: str) -> str:
    """The shortest decimal that reads back as exactly ``value`` in ``dtype``, as a C constant."""
    text = repr(float(value)) if dtype == "float64" else str(np.float32(value))
    if "." not in text and "e" not in text:
        text += ".0"
    return DTYPES[dtype].literal(text)
