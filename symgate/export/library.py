"""Export: a cell -> a standalone C99 library (one ``.c``, one ``.h``, a README and an example).

The library holds the kernels the Python :class:`~symgate.runtime.kernel.Kernel` calls, rendered by the
same code and template (``templates/export.c.jinja`` extends ``kernel.c.jinja``, leaving out the
BLAS and vector-math blocks and cffi's declarations), and two functions for inference:

* ``infer``: the forward pass over T steps, planned without a tape (``KernelPlan.infer``, the
  pass the Python kernel runs with ``backward=False``), so it writes only states and outputs;
* ``step``: one step of ``infer``, the states updated in place, for streaming.

With trained parameters (``params=``, a ``.npz`` file or a dict of arrays) the library is for
inference only: the parameters become ``static const`` arrays, the sizes they fix become
constants, and ``infer`` and ``step`` take no parameter arguments.

    cell (+ parameters) -> derive, plan -> _ExportContext (template data) -> Export (file texts)
    -> Export.write(directory): staged in a private directory, then renamed into place

Example::

    import symgate as sg
    sg.export("lstm", "out/lstm", dtype="float32")          # out/lstm/lstm_float32.{c,h}, ...
    sg.export("lstm", "out/infer", params="weights.npz")    # inference only, weights baked in
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codegen.lower import plan_kernel
from ..codegen.render import INFER_TITLE, _Context, _environment, _mentions
from ..dtypes import DTYPES, REAL_DTYPES
from ..errors import ExportError
from ..frontend import cells
from ..frontend.cell import Cell
from ..frontend.functions import SCALAR
from ..interface import ROLE_TEXT, Argument
from ..symbolic.derive import derive
from ..symbolic.ranges import check_numbers
from .params import load_params

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


@dataclass(frozen=True)
class Export:
    """An exported library: the text of each file, and the functions its header declares.

    ``dims`` are the C names of the size arguments after ``T`` and ``B``; ``fixed`` the sizes
    baked in with the parameters (dimension -> size). :meth:`size_macro` names the macro that
    gives an array's number of elements, for ``(T, B, *dims)``; ``build_command`` builds and
    runs the example program in the library's directory.
    """

    cell: str
    dtype: str
    stem: str
    prefix: str
    dims: tuple[str, ...]
    fixed: dict[str, int]
    functions: tuple[CFunction, ...]
    build_command: str
    files: dict[str, str] = field(repr=False)

    def function(self, suffix: str) -> CFunction:
        """The function whose name ends with ``_suffix`` ("forward", "backward", "infer", "step")."""
        return next(f for f in self.functions if f.name.endswith("_" + suffix))

    def size_macro(self, c_name: str) -> str:
        return f"{self.prefix}_SIZE_{c_name}"

    def write(self, directory: str | os.PathLike) -> Path:
        """Writes the files into ``directory``; on failure it is left as it was (see :func:`export`)."""
        target = Path(directory)
        if target.exists() and not target.is_dir():
            raise ExportError(f"cannot export into {target}: it exists and is not a directory")
        staging = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            for name, text in self.files.items():
                (staging / name).write_bytes(text.encode("utf-8"))
            if target.is_dir():  # each file replaced atomically
                for name in self.files:
                    os.replace(staging / name, target / name)
            else:  # the directory appears whole
                staging.rename(target)
        except OSError as err:
            where = err.filename or target
            raise ExportError(f"cannot export into {target}: {where}: {err.strerror or err}") from err
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def export(
    cell: Cell | str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "float32",
    params: Mapping[str, np.ndarray] | str | os.PathLike | None = None,
) -> Export:
    """Writes ``cell``'s standalone C library into the directory ``out`` and returns it.

    ``cell`` is a :class:`Cell`, a built-in name or a ``.cell`` path. ``params`` (a ``.npz``
    file or a dict of arrays named as the cell's parameters, any float dtype) makes an
    inference-only library with those values baked in. A new directory appears whole or not at
    all; into an existing one, each file is replaced atomically. Bad input raises
    :class:`~symgate.errors.ExportError` (or the cell's own error) naming what is wrong.
    """
    library = render_export(cell, dtype=dtype, params=params)
    library.write(out)
    return library


def render_export(
    cell: Cell | str | os.PathLike,
    *,
    dtype: str = "float32",
    params: Mapping[str, np.ndarray] | str | os.PathLike | None = None,
) -> Export:
    """The exported library's files as text, without writing them (same input, same bytes)."""
    if not isinstance(cell, Cell):
        cell = cells.resolve(cell)
    if dtype not in REAL_DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(REAL_DTYPES)}, not {dtype!r}")
    baked = None if params is None else load_params(cell, params, dtype)
    derivation = derive(cell)
    check_numbers(cell, dtype, None if baked is not None else derivation)  # inference only: no backward pass
    context = _ExportContext(cell, derivation, plan_kernel(cell, derivation), dtype, baked).build()
    env = _environment()
    stem = context["stem"]
    files = {
        f"{stem}.h": env.get_template("export.h.jinja").render(context),
        f"{stem}.c": env.get_template("export.c.jinja").render(context),
        "README.md": env.get_template("export_readme.md.jinja").render(context),
        "example.c": env.get_template("export_example.c.jinja").render(context),
    }
    return Export(
        cell=cell.name,
        dtype=dtype,
        stem=stem,
        prefix=context["prefix"],
        dims=tuple(context["dims"]),
        fixed=dict(baked[1]) if baked is not None else {},
        functions=context["functions"],
        build_command=context["build_command"],
        files=files,
    )


class _ExportContext(_Context):
    """The kernel's template context, plus ``infer``, ``step``, size macros and baked parameters."""

    for_python = False

    def __init__(self, cell: Cell, derivation, plan, dtype: str, baked) -> None:
        super().__init__(cell, derivation, plan, dtype)
        self.macro = f"SG_{cell.name.upper()}_{dtype.upper()}"
        self.inference_only = baked is not None
        self.values, self.sizes = baked if baked is not None else ({}, {})
        self.fixed = {d: f"{self.macro}_DIM_{self.dim_c[d]}" for d in cell.dims if d in self.sizes}
        self.hidden = frozenset({"param"} if baked is not None else ())
        self.runtime = [self.dim_c[d] for d in cell.dims if d not in self.fixed]

    def build(self) -> dict:
        passes, arguments = [], {}
        if not self.inference_only:
            arguments["forward"], arguments["backward"] = self.forward_arguments(), self.backward_arguments()
            passes.append(self.render_pass("forward", self.plan.forward, arguments["forward"]))
            passes.append(self.render_pass("backward", self.plan.backward, arguments["backward"]))
        arguments["infer"] = self.forward_arguments(tape=False)
        infer = self.render_pass("forward", self.plan.infer, arguments["infer"], name="infer", title=INFER_TITLE)
        passes.append(infer)
        step, arguments["step"] = self.render_step(infer, arguments["infer"])
        functions = tuple(
            CFunction(
                f"{self.prefix}_{which}",
                which != "step",
                tuple(a for a in args if a.role not in self.hidden),
                f"{self.macro}_WORK_{which}",
            )
            for which, args in arguments.items()
        )
        works = [self.macro_text(p["work_size"]) for p in passes]
        counts = [self.macro_text(s["count"]) for s in step["states"]]
        works.append("(" + " + ".join([*counts, f"{functions[-2].work}({', '.join(['1', 'B', *self.runtime])})"]) + ")")
        size_args = ", ".join(["T", "B", *self.runtime])
        return self.common() | {
            "accelerated": False,
            "cell": self.cell.name,
            "dtype": self.dtype,
            "names": {f.name.removeprefix(self.prefix + "_"): f.name for f in functions},
            "build_command": f"cc -std=c99 -O2 -o example example.c {self.cell.name}_{self.dtype}.c -lm && ./example",
            "prefix": self.macro,
            "helpers": sorted(self.helpers),
            "passes": passes,
            "step": step,
            "functions": functions,
            "size_args": size_args,
            "fixed_dims": [{"macro": self.fixed[d], "value": self.sizes[d], "dim": d} for d in self.fixed],
            "runtime_dims": [d for d in self.cell.dims if d not in self.fixed],
            "sizes": self.size_macros(functions),
            "works": [{"macro": f.work, "value": w} for f, w in zip(functions, works, strict=True)],
            "docs": [self.function_doc(f) for f in functions],
            "inference_only": self.inference_only,
            "baked": self.baked_arrays(),
            "digest": self.digest(),
            "example": self.example(functions),
            "buffers": self.buffer_table(functions),
        }

    # -- the step -------------------------------------------------------------------------
    def render_step(self, infer: dict, infer_args: list[Argument]) -> tuple[dict, list[Argument]]:
        """One step: ``infer`` with T = 1 into the workspace, then the new states copied back."""
        cell = self.cell

        def arg(role: str, name: str, dim: str, writes: bool, pattern: str) -> Argument:
            return Argument(name, role, self.names(role, name, pattern), ("B", dim), writes)

        args = [arg("step_input", x, d, False, "{}_step") for x, d in cell.inputs.items()]
        args += [arg("step_state", s, d, True, "{}_state") for s, d in cell.states.items()]
        args += [a for a in infer_args if a.role == "param"]
        args += [arg("step_output", y, d, True, "{}_step") for y, d in cell.outputs.items()]
        by_role = {(a.role, a.name): a.c_name for a in args}
        states, start = [], "work"
        for s, d in cell.states.items():
            count = f"(size_t)B * {self.dim_c[d]}"
            new = self.names("step_next", s, "{}_next_state")
            states.append({"c": by_role[("step_state", s)], "next": new, "start": start, "count": count})
            start = f"{new} + {count}"
        new_state = {s: state["next"] for s, state in zip(cell.states, states, strict=True)}
        role_in_step = {"input": "step_input", "init": "step_state", "outputs": "step_output", "param": "param"}
        call_args = [
            new_state[a.name] if a.role == "states" else by_role[(role_in_step[a.role], a.name)]
            for a in infer_args
            if a.role not in self.hidden
        ]
        dims = ", ".join(["1", "B", *self.runtime])
        call = [f"{infer['function']}({dims},", *(f"    {a}," for a in call_args), f"    {start});"]
        work = " + ".join([*(s["count"] for s in states), f"{infer['work_function']}({dims})"])
        shown = [a for a in args if a.role not in self.hidden]

        def fixed_in(code: str) -> list[dict]:
            return [{"c": self.dim_c[d], "value": v} for d, v in self.fixed.items() if _mentions(code, self.dim_c[d])]

        return {
            "function": f"{self.prefix}_step",
            "work_function": f"{self.prefix}_step_work",
            "fixed": fixed_in("\n".join(s["count"] for s in states)),
            "work_fixed": fixed_in(work),
            "parameters": [f"{'' if a.writes else 'const '}{self.real} *{a.c_name}" for a in shown],
            "states": states,
            "call": call,
            "work_size": work,
        }, args

    # -- sizes ----------------------------------------------------------------------------
    def macro_text(self, expression: str) -> str:
        """A size expression of the kernel as a macro body: arguments parenthesized, fixed sizes as numbers."""
        values = {self.dim_c[d]: str(self.sizes[d]) for d in self.fixed}
        names = {"T", "B", *self.runtime}

        def replace(match: re.Match) -> str:
            word = match.group(0)
            return values.get(word) or (f"({word})" if word in names else word)

        return "(" + re.sub(r"\b[A-Za-z_]\w*\b", replace, expression) + ")"

    def size_of(self, shape: tuple[str, ...]) -> str:
        """The number of elements of an array of ``shape``, as a macro body."""
        factors = []
        for d in shape:
            if d in ("T", "B"):
                factors.append(f"(size_t)({d})")
            elif d in self.fixed:
                factors.append(f"(size_t){self.sizes[d]}")
            elif d != SCALAR:
                factors.append(f"(size_t)({self.dim_c[d]})")
        return "(" + (" * ".join(factors) or "(size_t)1") + ")"

    def size_macros(self, functions: tuple[CFunction, ...]) -> list[dict]:
        seen: dict[str, dict] = {}
        for f in functions:
            for a in f.arguments:
                macro = f"{self.macro}_SIZE_{a.c_name}"
                seen.setdefault(a.c_name, {"macro": macro, "value": self.size_of(a.shape), "shape": a.shape})
        return list(seen.values())

    # -- documentation --------------------------------------------------------------------
    def function_doc(self, f: CFunction) -> dict:
        """The header's comment for one function: what it does, then every array it takes."""
        forward, backward = f"{self.prefix}_forward", f"{self.prefix}_backward"
        which = f.name.removeprefix(self.prefix + "_")
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
            f"step{'' if self.inference_only else f' as {forward} does'}, and keeps nothing for a backward pass.",
            "step": f"One step, for streaming: {self.prefix}_infer with T = 1, the states updated in place. "
            "Before the first step, set the states to the initial state (zeros, usually).",
        }[which]
        lines = []
        for a in f.arguments:
            access = "read and written" if a.role in _READ_AND_WRITTEN else "written" if a.writes else "read"
            text = _ROLES[a.role].format(a.name, a.name).removeprefix("result: ")
            lines.append(f"{a.c_name} ({', '.join(a.shape)}), {access}: {text}")
        return {"function": f.name, "summary": textwrap.wrap(summary, 96), "arguments": lines}

    def buffer_table(self, functions: tuple[CFunction, ...]) -> list[dict]:
        """README rows: every array, its shape, its size macro and what each function does with it."""
        rows: dict[str, dict] = {}
        for f in functions:
            for a in f.arguments:
                row = rows.setdefault(a.c_name, {"c": a.c_name, "shape": ", ".join(a.shape), "access": {}})
                access = "in/out" if a.role in _READ_AND_WRITTEN else "out" if a.writes else "in"
                row["access"][f.name] = access
        return [{**row, "access": [row["access"].get(f.name, "") for f in functions]} for row in rows.values()]

    # -- baked parameters -----------------------------------------------------------------
    def baked_arrays(self) -> list[dict]:
        arrays = []
        for p in self.cell.params if self.inference_only else ():
            value = self.values[p.name]
            numbers = [_c_number(v, self.dtype) for v in value.ravel()]
            rows = [", ".join(numbers[i : i + 4]) + "," for i in range(0, len(numbers), 4)]
            shape = f"({', '.join(p.shape)}) = ({', '.join(str(n) for n in value.shape)})"
            arrays.append({"c": self.names("param", p.name), "count": len(numbers), "shape": shape, "rows": rows})
        return arrays

    def digest(self) -> str:
        """A hash of the baked values (names, shapes and bytes), to tell builds apart."""
        digest = hashlib.sha256()
        for name, value in sorted(self.values.items()):
            digest.update(f"{name}{value.shape}".encode() + value.tobytes())
        return digest.hexdigest()[:16] if self.inference_only else ""

    # -- the example program --------------------------------------------------------------
    def example(self, functions: tuple[CFunction, ...]) -> dict:
        """The example's sizes, buffers and the body of ``main``, as C lines."""
        cell = self.cell
        sizes = [("T", EXAMPLE_STEPS), ("B", EXAMPLE_BATCH)]
        sizes += [(self.dim_c[d], 3 + i) for i, d in enumerate(cell.dims) if d not in self.fixed]
        size_args = ", ".join(["T", "B", *self.runtime])
        by_name = {f.name.removeprefix(self.prefix + "_"): f for f in functions}

        def size(c_name: str, steps: str = "T") -> str:
            return f"{self.macro}_SIZE_{c_name}({', '.join([steps, 'B', *self.runtime])})"

        arrays: dict[str, str] = {}
        for f in functions:
            for a in f.arguments:
                if a.role not in ("step_input", "step_output"):
                    arrays.setdefault(a.c_name, size(a.c_name))
        works = {which: self.names("example", f"work_{which}") for which in by_name}
        infer = by_name["infer"].arguments
        seq = {(a.role, a.name): a.c_name for a in infer}
        given = "Inputs and initial states" if self.inference_only else "Inputs, initial states and parameters"
        body: list[str] = [f"/* {given}: built-in numbers. */"]
        scales = {"input": "1.0", "init": "0.5", "param": "0.5"}
        for index, a in enumerate(a for a in by_name["infer"].arguments if a.role in scales):
            body.append(f"example_fill({a.c_name}, {size(a.c_name)}, {scales[a.role]}, {index}.0);")

        def call(f: CFunction, dims: str, args: list[str], work: str) -> list[str]:
            return [f"{f.name}({dims},", *(f"    {x}," for x in args), f"    {work});"]

        def show(label: str, c: str, count: str) -> str:
            return f'example_print("{label}", {c}, {count});'

        def last(role: str, name: str) -> str:
            return f"{seq[(role, name)]} + {size(seq[(role, name)], 'T - 1')}"

        kept = [(r, n) for r, n in seq if r in ("states", "outputs")]
        if "forward" in by_name:
            forward, backward = by_name["forward"], by_name["backward"]
            body += ["", "/* 1. Forward over the sequence, keeping the tape for the backward pass. */"]
            body += call(forward, size_args, [a.c_name for a in forward.arguments], works["forward"])
            body += [show(f"forward: {n} after the last step", last(r, n), size(seq[(r, n)], "1")) for r, n in kept]
            state = next(iter(cell.states))
            grad = next(a.c_name for a in backward.arguments if (a.role, a.name) == ("grad_states", state))
            body += [
                "",
                f"/* 2. Backward through time, for the loss sum({state}) after the last step: its gradient is 1",
                " * there and 0 elsewhere (static arrays start at zero, so are the gradients with respect",
                " * to the final states). */",
                f"for (size_t n = 0; n < {size(grad, '1')}; ++n) {{",
                f"    {grad}[{size(grad, 'T - 1')} + n] = {_c_number(1.0, self.dtype)};",
                "}",
            ]
            body += call(backward, size_args, [a.c_name for a in backward.arguments], works["backward"])
            results = [a for a in backward.arguments if a.role in ("grad_params", "grad_init", "grad_inputs")]
            body += [
                show(f"d loss / d {a.name}" + (" (initial)" if a.role == "grad_init" else ""), a.c_name, size(a.c_name))
                for a in results
            ]
        number = 3 if "forward" in by_name else 1
        body += ["", f"/* {number}. Inference over the sequence: the same states, nothing kept. */"]
        body += call(by_name["infer"], size_args, [a.c_name for a in infer], works["infer"])
        body += [show(f"infer: {n} after the last step", last(r, n), size(seq[(r, n)], "1")) for r, n in kept]
        step = by_name["step"]
        states = [a for a in step.arguments if a.role == "step_state"]
        body += ["", f"/* {number + 1}. The same, one step at a time: the states are updated in place. */"]
        body += [f"memcpy({a.c_name}, {seq[('init', a.name)]}, sizeof {a.c_name});" for a in states]
        step_args = []
        for a in step.arguments:
            if a.role == "step_input":
                step_args.append(f"{seq[('input', a.name)]} + {size(seq[('input', a.name)], 't')}")
            elif a.role == "step_output":
                step_args.append(f"{seq[('outputs', a.name)]} + {size(seq[('outputs', a.name)], 't')}")
            else:
                step_args.append(a.c_name)
        body += ["for (int t = 0; t < T; ++t) {"]
        body += [f"    {line}" for line in call(step, ", ".join(["B", *self.runtime]), step_args, works["step"])]
        body += ["}", "double largest = 0.0;"]
        for a in states:
            body.append(
                f"largest = example_largest_difference({a.c_name}, {last('states', a.name)}, "
                f"{size(a.c_name)}, largest);"
            )
        body += ['printf("step by step, the states differ from infer\'s by at most %g\\n", largest);', "return 0;"]
        return {
            "enum": ", ".join(f"{c} = {n}" for c, n in sizes),
            "arrays": [{"c": c, "size": s} for c, s in arrays.items()],
            "works": [{"c": works[w], "size": f"{by_name[w].work}({size_args})"} for w in by_name],
            "body": body,
            "format": "%.6g" if self.dtype == "float32" else "%.15g",
        }


def _c_number(value, dtype: str) -> str:
    """The shortest decimal that reads back as exactly ``value`` in ``dtype``, as a C constant."""
    text = repr(float(value)) if dtype == "float64" else str(np.float32(value))
    if "." not in text and "e" not in text:
        text += ".0"
    return DTYPES[dtype].literal(text)
