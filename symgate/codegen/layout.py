"""Where each vector of a pass lives: its row at step ``t`` (a sequence row, the initial state,
the tape, the backward carry or the workspace), extra copies (mirrors), whole sequences for the
products over all steps, panels of vectors side by side, packed matrices and the workspace
buffers. Every place is :class:`~symgate.codegen.ccode.Code`, so what uses it knows its names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..frontend.functions import SCALAR
from ..interface import Argument
from .ccode import Code, c
from .lower import GradientProduct, Plan, Stack, StackProduct
from .scope import Scope


class Row(NamedTuple):
    """Where a vector lives at step t: a pointer (declared as ``init`` unless empty) and its row stride."""

    c: str
    init: Code
    writes: bool
    dim: str
    width: str


@dataclass
class Panel:
    """Vectors side by side in the workspace: ``start`` is the row of the first one at step t."""

    c: str
    width: str
    all_steps: bool
    start: Row | None = None


@dataclass(frozen=True)
class Buffer:
    """A slice of the workspace: ``extent`` in the pass (C names), ``count`` in the size function."""

    c: str
    extent: Code
    count: Code
    comment: str


@dataclass(frozen=True)
class Width:
    """The row stride of a panel, declared in the pass as ``const int c = value;``."""

    c: str
    value: Code


@dataclass
class Layout:
    """The storage of one pass: rows at step t, extra copies, whole sequences, the workspace."""

    backward: bool
    rows: dict[str, Row] = field(default_factory=dict)
    mirrors: dict[str, list[Row]] = field(default_factory=dict)
    sequences: dict[str, tuple[Code, str]] = field(default_factory=dict)
    panels: dict[tuple, Panel] = field(default_factory=dict)
    packed: dict[Stack, str] = field(default_factory=dict)  # matrices of a product in the time loop
    blas_packed: dict[Stack, tuple[str, str]] = field(default_factory=dict)  # their BLAS layout: space, pointer
    stacked: dict[Stack, str] = field(default_factory=dict)  # matrices of a product over all steps
    fillers: dict[str, StackProduct] = field(default_factory=dict)  # a packed buffer -> the product that packs it
    packed_gradients: dict[Stack, str] = field(default_factory=dict)
    widths: list[Width] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=list)
    written: set[tuple[str, str]] = field(default_factory=set)

    def panel(self, stack: Stack) -> Panel:
        """The panel a stack's products write (forward) or read (backward)."""
        return self.panels[(stack.panel, self.backward or stack.hoisted)]

    def packings(self, ops: list) -> list[StackProduct]:
        """The stack products among ``ops`` that pack a buffer of matrices, in the order of ``ops``:
        one per buffer, however many products read it."""
        return [op for op in ops if isinstance(op, StackProduct) and self.fillers.get(self.weights(op.stack)) is op]

    def weights(self, stack: Stack) -> str | None:
        """The buffer a stack's product reads its matrices from, if not the parameter itself."""
        return self.packed.get(stack) or self.stacked.get(stack)


def packing_key(op: StackProduct) -> tuple:
    """What fixes a packed copy of a stack's matrices: the matrices (each as itself or transposed,
    in order), the columns, and whether the product reads them as columns or rows. Products with
    the same key (``V @ a2`` and ``V @ a4``) read one copy, packed once per call."""
    members = tuple((m.matrix, m.rows, m.transposed) for m in op.stack.members)
    return members, op.stack.cols, op.stack.hoisted, op.transposed


def transposed_packing(op: StackProduct) -> bool:
    """A forward product in the time loop reads its matrices transposed, as columns side by side
    (``h W`` for B rows of h); the others read them row after row."""
    return not op.transposed and not op.stack.hoisted


def step_product_sizes(scope: Scope, op: StackProduct, width: str, batch: str = "B") -> tuple[Code, Code]:
    """``m, n, k`` of a step product for ``batch`` rows (``B`` to pack its matrices, the step's
    ``step_batch`` in the time loop), in the pass (with its ``width``) and in the workspace size
    function (with the sum of the stack's dimensions instead)."""
    cols = scope.dim_c[op.stack.cols]
    total = scope.int_sum(m.rows for m in op.stack.members)
    if op.transposed:
        return c("{B}, {cols}, {width}", B=batch, cols=cols, width=width), c(
            "{B}, {cols}, {n}", B=batch, cols=cols, n=total
        )
    return c("{B}, {width}, {cols}", B=batch, cols=cols, width=width), c(
        "{B}, {n}, {cols}", B=batch, cols=cols, n=total
    )


def plan_layout(scope: Scope, which: str, plan: Plan, by_role: dict[tuple[str, str], Argument]) -> Layout:
    """Where each vector of the pass lives: at step t (a row) and over all steps (a sequence)."""
    names, dim_c = scope.names, scope.dim_c
    layout = Layout(backward=which == "backward")

    def row(name: str, init: Code, writes: bool, dim: str, width: str | None = None) -> Row:
        return Row(names("row", name, "{}_row"), init, writes, dim, width or dim_c[dim])

    def seq(arg: Argument, dim: str) -> Code:
        return c("{a} + {r} * {d}", a=arg.c_name, r="step_row", d=dim_c[dim])

    # panels: vectors side by side, in the order the stacks read or write them
    mirrored: set[str] = set()
    for stack in plan.panels:
        all_steps = which == "backward" or stack.hoisted
        key = (stack.panel, all_steps)
        if key in layout.panels:
            continue
        kind = "adjoints" if which == "backward" else "products"
        buffer = names(kind, stack.vector, "{}_" + kind)
        width = names("width", buffer, "{}_width")
        layout.widths.append(Width(width, scope.int_sum(m.rows for m in stack.members)))
        steps = c("(size_t){T} * {B}", T="T", B="B") if all_steps else c("(size_t){B}", B="B")
        layout.buffers.append(
            Buffer(
                buffer,
                c("{steps} * {w}", steps=steps, w=width),
                c("({n}) * {steps}", n=scope.size_sum(m.rows for m in stack.members), steps=steps),
                f"{', '.join(stack.panel)} side by side{', at every step' if all_steps else ''}",
            )
        )
        panel = layout.panels[key] = Panel(buffer, width, all_steps)
        for index, member in enumerate(stack.members):
            offset = scope.int_sum(m.rows for m in stack.members[:index])
            init = c("{p}", p=buffer)
            if all_steps:
                init = c("{p} + {r} * {w}", p=init, r="step_row", w=width)
            if offset.text != "0":
                init = c("{p} + {o}", p=init, o=offset)
            place = row(member.value, init, True, member.rows, width)
            whole = c("{p} + {o}", p=buffer, o=offset) if offset.text != "0" else c("{p}", p=buffer)
            if member.value not in layout.rows:
                layout.rows[member.value] = place
                if all_steps:
                    layout.sequences[member.value] = (whole, width)
            elif place.init != layout.rows[member.value].init:
                key = f"{member.value}:{buffer}"
                if key in mirrored:  # twice in one panel: W @ h and W.T @ h with one adjoint
                    key += f":{index}"
                mirrored.add(key)
                place = Row(names("mirror", key, "{}_row"), *place[1:])
                layout.mirrors.setdefault(member.value, []).append(place)
            else:
                place = layout.rows[member.value]
            if index == 0:
                panel.start = place
    shared: dict[tuple, StackProduct] = {}  # a packing key -> the first product with it
    for op in plan.step:  # a stack product inside the time loop reads its matrices packed side by side
        if isinstance(op, StackProduct):
            _pack(scope, op, layout, shared, layout.packed, "side by side, for every step")
    for op in [*plan.before, *plan.after]:  # over all steps: one product for several matrices
        # a transposed member is always packed: the products read every member as rows x cols
        if isinstance(op, StackProduct) and (len(op.stack.members) > 1 or op.stack.has_transposed):
            _pack(scope, op, layout, shared, layout.stacked, "stacked, for all steps")
        if isinstance(op, GradientProduct) and (len(op.stack.members) > 1 or op.stack.has_transposed):
            stack = op.stack
            buffer = names("gradients", stack.vector, "grad_{}_weights")
            cols = dim_c[stack.cols]
            layout.buffers.append(
                Buffer(
                    buffer,
                    c("(size_t){cols} * {w}", cols=cols, w=layout.panel(stack).width),
                    c("(size_t){cols} * ({n})", cols=cols, n=scope.size_sum(m.rows for m in stack.members)),
                    f"gradients of ({stack.matrices}) stacked",
                )
            )
            layout.packed_gradients[stack] = buffer
    _place_arrays(scope, which, plan, by_role, layout, row, seq)
    return layout


def _place_arrays(scope: Scope, which: str, plan: Plan, by_role, layout: Layout, row, seq) -> None:
    """The rows (and sequences) of the vectors that live in arrays: arguments, or the workspace."""
    cell, dim_c = scope.cell, scope.dim_c
    forward_roles: dict[str, tuple[str, str]] = {}
    for x in cell.inputs:
        forward_roles[x] = ("input", x)
    for s in cell.states:
        forward_roles[s] = ("prev", s)
        forward_roles[s + "'"] = ("states", s)
    for y in cell.outputs:
        forward_roles[y] = ("outputs", y)
    for n in scope.plan.tape:
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
                name,
                c("t == 0 ? {i} : {p} + {r} * {d}", i=init, p=prev, r="previous_row", d=dim_c[dim]),
                False,
                dim,
            )
            layout.sequences[name] = (c("{p}", p=prev), dim_c[dim])
        elif role:
            arg = by_role[role]
            layout.rows[name] = row(name, seq(arg, dim), writes and role[0] != "input", dim)
            layout.sequences[name] = (c("{a}", a=arg.c_name), dim_c[dim])
        elif which == "backward" and name in scope.state_adjoints:
            arg = by_role[("grad_init", scope.state_adjoints[name])]
            layout.rows[name] = row(name, c("{a}", a=arg.c_name), True, dim)
        elif which == "backward" and name in scope.input_adjoints:
            arg = by_role[("grad_inputs", scope.input_adjoints[name])]
            layout.rows[name] = row(name, seq(arg, dim), True, dim)
            layout.sequences[name] = (c("{a}", a=arg.c_name), dim_c[dim])
        elif which == "backward" and name in scope.output_seeds:
            arg = by_role[("grad_outputs", scope.output_seeds[name])]
            layout.rows[name] = row(name, seq(arg, dim), False, dim)
        else:
            buffer = scope.names("row", name, "{}_row")
            count = c("(size_t){B} * {d}", B="B", d=dim_c[dim]) if dim != SCALAR else c("(size_t){B}", B="B")
            layout.buffers.append(Buffer(buffer, count, count, f"{name} of the current step"))
            layout.rows[name] = Row(buffer, Code(), True, dim, dim_c[dim])


def _pack(
    scope: Scope, op: StackProduct, layout: Layout, shared: dict[tuple, StackProduct], into: dict, comment: str
) -> None:
    """The buffer ``op`` reads its matrices from, in ``into``: the first product's with the same
    :func:`packing_key`, else a new one (and its BLAS layout, for a step product when accelerated)."""
    first = shared.setdefault(packing_key(op), op)
    if first is not op:
        into[op.stack] = into[first.stack]
        if first.stack in layout.blas_packed:
            layout.blas_packed[op.stack] = layout.blas_packed[first.stack]
        return
    into[op.stack] = _add_packed(scope, op, layout, comment)
    if scope.accelerated and into is layout.packed:
        _add_blas_packed(scope, op, layout)


def _add_packed(scope: Scope, op: StackProduct, layout: Layout, comment: str) -> str:
    """A workspace buffer for the stack's matrices side by side (transposed for a forward product
    in the time loop, row after row otherwise)."""
    stack = op.stack
    buffer = scope.names("weights", stack.vector, "{}_weights")
    cols = scope.dim_c[stack.cols]
    mark = "ᵀ" if transposed_packing(op) else ""
    layout.buffers.append(
        Buffer(
            buffer,
            c("(size_t){cols} * {w}", cols=cols, w=layout.panel(stack).width),
            c("(size_t){cols} * ({n})", cols=cols, n=scope.size_sum(m.rows for m in stack.members)),
            f"({stack.matrices}){mark} {comment}",
        )
    )
    layout.fillers[buffer] = op
    return buffer


def _add_blas_packed(scope: Scope, op: StackProduct, layout: Layout) -> None:
    """Workspace for the step product's matrices in the layout of the BLAS's own kernels, so that
    they are packed once per call, not at every step (empty where they are not)."""
    space = scope.names("blas space", op.stack.vector, "{}_weights_blas")
    pointer = scope.names("blas packed", op.stack.vector, "{}_weights_packed")
    in_pass, in_size = step_product_sizes(scope, op, layout.panel(op.stack).width)
    layout.blas_packed[op.stack] = (space, pointer)
    layout.buffers.append(
        Buffer(
            space,
            c("sg_packed_count({s})", s=in_pass),
            c("sg_packed_count({s})", s=in_size),
            f"({op.stack.matrices}) packed for BLAS, for every step",
        )
    )
