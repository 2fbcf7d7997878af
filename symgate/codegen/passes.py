"""One pass of a kernel as template data: its arguments, workspace, time loop and statements.

The pass declares what its statements use, decided from the names each reports
(:class:`~symgate.codegen.emit.Emitted`): the rows of step ``t`` its loop body reads or writes,
the workspace buffers and panel widths anything reads, the constants its loops print, and
``(void)x;`` for each argument nothing reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..frontend.functions import dims_of
from ..interface import FORWARD_ROLES, GIVEN_ROLES, RESULT_ROLES, ROLE_TEXT, Argument
from .ccode import Code, c, join, names_of
from .cprinter import printer_for
from .emit import Emitted, Emitter
from .layout import plan_layout
from .lower import Plan
from .scope import Scope

INFER_TITLE = "Forward pass over T steps, saving nothing for a backward pass."
BATCH_SIZES_TEXT = "batch_sizes (T): samples run at each step, longest first, sequences packed; NULL: B each step"


@dataclass(frozen=True)
class RenderedPass:
    """A pass as the templates show it (``data``) and its workspace size as C (``work_size``), for
    targets that spell the size their own way."""

    data: dict
    work_size: Code

    @property
    def function(self) -> str:
        return self.data["function"]

    @property
    def work_function(self) -> str:
        return self.data["work_function"]


def _arg(scope: Scope, name: str, role: str, shape: tuple[str, ...], writes: bool, pattern: str) -> Argument:
    return Argument(name, role, scope.names(role, name, pattern), shape, writes)


def forward_arguments(scope: Scope, tape: bool = True) -> list[Argument]:
    """The forward pass's arrays in :data:`FORWARD_ROLES` order; ``tape=False`` leaves out what only
    the backward pass reads."""
    cell, sizes = scope.cell, scope.plan.forward.sizes
    by_role = {
        "input": [_arg(scope, x, "input", ("T", "B", *dims_of(d)), False, "{}_seq") for x, d in cell.inputs.items()],
        "init": [_arg(scope, s, "init", ("B", *dims_of(d)), False, "{}_init") for s, d in cell.states.items()],
        "param": [_arg(scope, p.name, "param", p.shape, False, "{}") for p in cell.params],
        "states": [_arg(scope, s, "states", ("T", "B", *dims_of(d)), True, "{}_seq") for s, d in cell.states.items()],
        "outputs": [
            _arg(scope, y, "outputs", ("T", "B", *dims_of(d)), True, "{}_seq") for y, d in cell.outputs.items()
        ],
        "tape": [
            _arg(scope, n, "tape", ("T", "B", *dims_of(sizes[n])), True, "{}_tape") for n in scope.plan.tape if tape
        ],
    }
    return [a for role in FORWARD_ROLES for a in by_role[role]]


def backward_arguments(scope: Scope) -> list[Argument]:
    """The forward pass's arrays (read only), then :data:`GIVEN_ROLES` and :data:`RESULT_ROLES`."""
    cell = scope.cell
    reads = [Argument(a.name, a.role, a.c_name, a.shape, False) for a in forward_arguments(scope)]
    stepwise = ("T", "B")
    by_role = {
        "grad_states": [
            _arg(scope, s, "grad_states", (*stepwise, *dims_of(d)), False, "grad_{}_seq")
            for s, d in cell.states.items()
        ],
        "grad_outputs": [
            _arg(scope, y, "grad_outputs", (*stepwise, *dims_of(d)), False, "grad_{}_seq")
            for y, d in cell.outputs.items()
        ],
        "grad_inputs": [
            _arg(scope, x, "grad_inputs", (*stepwise, *dims_of(d)), True, "grad_{}_seq") for x, d in cell.inputs.items()
        ],
        "grad_init": [
            _arg(scope, s, "grad_init", ("B", *dims_of(d)), True, "grad_{}_init") for s, d in cell.states.items()
        ],
        "grad_params": [_arg(scope, p.name, "grad_params", p.shape, True, "grad_{}") for p in cell.params],
    }
    return reads + [a for role in (*GIVEN_ROLES, *RESULT_ROLES) for a in by_role[role]]


def render_pass(
    scope: Scope, which: str, plan: Plan, args: list[Argument], name: str = "", title: str = ""
) -> RenderedPass:
    """One pass as template data: ``which`` is "forward" or "backward"; ``name`` (default ``which``)
    ends its function's name, ``title`` opens its comment."""
    cell, dim_c, real = scope.cell, scope.dim_c, scope.real
    by_role = {(a.role, a.name): a for a in args}
    layout = plan_layout(scope, which, plan, by_role)
    rows = layout.rows
    emit = Emitter(scope)
    packing = [emit.packing(op, layout) for op in layout.packings([*plan.before, *plan.step, *plan.after])]
    before = [emit.op(op, layout) for op in plan.before]
    body = [emit.op(op, layout, "step_batch") for op in plan.step]
    after = [emit.op(op, layout) for op in plan.after]
    seeds = _seeds(scope, by_role, rows) if which == "backward" else []
    zero = _zero(scope, by_role) if which == "backward" else []

    step_names = _names(body).union(*(names for names, _ in seeds))
    step_rows = [r for r in rows.values() if r.init and r.c in step_names]
    step_rows += [m for ms in layout.mirrors.values() for m in ms if m.c in step_names]
    used = step_names | _names([*packing, *before, *after]) | names_of(r.init for r in step_rows)
    used = scope.with_extents(used.union(*(names for names, _ in zero)))
    steps = _StepRows.of(used, reverse=which == "backward")
    used |= steps.names
    buffers = [b for b in layout.buffers if b.c in used]
    inits = []
    for previous, buffer in zip([None, *buffers], buffers, strict=False):
        start = c("{p} + {e}", p=previous.c, e=previous.extent) if previous else c("{w}", w="work")
        inits.append(c(real + " *const {b} = {s};", b=buffer.c, s=start))
    used |= names_of(inits)
    widths = [w for w in layout.widths if w.c in used]
    used |= names_of(w.value for w in widths)
    dims = [dim_c[d] for d in cell.dims]
    shown = [a for a in args if a.role not in scope.target.hidden_roles]
    candidates = [*dims, "batch_sizes", *(a.c_name for a in shown), "work"]
    printer = printer_for(scope.dtype, {})
    constants = [
        f"const {real} {scope.names('const', name)} = {printer.doprint(value)};"
        for name, value in cell.constants.items()
        if scope.names("const", name) in step_names
    ]
    work_size = join((b.count for b in buffers), " + ") or c("0")
    return RenderedPass(
        {
            "which": which,
            "title": title or f"{which.capitalize()} pass over T steps.",
            "function": f"{scope.prefix}_{name or which}",
            "work_function": f"{scope.prefix}_{name or which}_work",
            "fixed": [{"c": dim_c[d], "value": scope.target.fixed_macro(dim_c[d])} for d in scope.fixed],
            "parameters": [f"{'' if a.writes else 'const '}{real} *{a.c_name}" for a in shown],
            "arg_comments": [
                BATCH_SIZES_TEXT,
                *(f"{a.c_name} ({', '.join(a.shape)}): {ROLE_TEXT[a.role].format(a.name, a.name)}" for a in shown),
            ],
            "unused": [n for n in candidates if n not in used],
            "all_rows": steps.all_rows,
            "constants": constants,
            "work_size": work_size.text,
            "work_unused": [d for d in ["T", "B", *dims] if d not in scope.with_extents(work_size.names)],
            "widths": [{"c": w.c, "value": f"const int {w.c} = {w.value.text};"} for w in widths],
            "buffers": [{"c": b.c, "comment": b.comment, "init": i.text} for b, i in zip(buffers, inits, strict=True)],
            "step_rows": [{"c": r.c, "init": r.init.text, "writes": r.writes} for r in step_rows],
            "loop_before": steps.before,
            "loop_head": steps.head,
            "loop_tail": steps.tail,
            "seeds": [seed for _, seed in seeds],
            "zero": [z for _, z in zero],
            "packing": [o.template() for o in packing],
            "before": [o.template() for o in before],
            "body": [o.template() for o in body],
            "after": [o.template() for o in after],
            "reverse": which == "backward",
        },
        work_size,
    )


@dataclass(frozen=True)
class _StepRows:
    """Where step t's rows start in the sequences and how many samples it runs: the time loop's own
    declarations, only those the pass uses. ``before`` the loop, at its ``head`` and ``tail``; with
    ``all_rows`` (the rows of all steps) declared first in the function when read."""

    before: tuple[str, ...]
    head: tuple[str, ...]
    tail: tuple[str, ...]
    all_rows: str
    names: frozenset[str]

    @classmethod
    def of(cls, used: set[str], reverse: bool) -> _StepRows:
        previous = "previous_row" in used
        row = previous or "step_row" in used
        batch = row or "step_batch" in used
        before, head, tail = [], [], []
        if batch:
            head.append("const int step_batch = sg_step_batch(batch_sizes, t, B);")
        if row and reverse:
            before.append("size_t step_row = (size_t)all_rows;")
            head.append("step_row -= (size_t)step_batch;")
        elif row:
            before.append("size_t step_row = 0;")
            tail.append("step_row += (size_t)step_batch;")
        if previous:
            head.append("const size_t previous_row = sg_previous_row(step_row, batch_sizes, t, B);")
        all_rows = "all_rows" in used or (row and reverse)
        declared = "const int all_rows = sg_all_rows(T, B, batch_sizes);" if all_rows else ""
        names = {"batch_sizes"} if batch or all_rows else set()
        return cls(tuple(before), tuple(head), tuple(tail), declared, frozenset(names | ({"B"} if batch else set())))


def _names(ops: list[Emitted]) -> frozenset[str]:
    return frozenset().union(*(o.names for o in ops))


def _seeds(scope: Scope, by_role: dict, rows: dict) -> list[tuple[frozenset[str], dict]]:
    """The backward pass's carry into each state's adjoint at step t: the gradient from step t+1
    (in ``grad_init``) plus the loss's at step t. Each with the names it uses."""
    seeds = []
    for state, dim in scope.cell.states.items():
        seed = scope.derivation.seeds[state + "'"].name
        if seed in rows:
            out, size = rows[seed].c, scope.dim_c[dim]
            carry, given = by_role[("grad_init", state)].c_name, by_role[("grad_states", state)].c_name
            data = {
                "comment": f"{seed}: gradient into {state}' from step t+1 and the loss",
                "out": out,
                "carry": carry,
                "given_array": given,  # NULL when the loss has no gradient at every step
                "given": f"{given}[step_row * {size} + n]",
                "count": f"(size_t)step_batch * {size}",
            }
            seeds.append((frozenset({out, carry, given, size, "step_row", "step_batch"}), data))
    return seeds


def _zero(scope: Scope, by_role: dict) -> list[tuple[frozenset[str], dict]]:
    """The parameter gradients, zeroed before the backward pass sums into them; with their names."""
    zero = []
    for p in scope.cell.params:
        grad, sizes = by_role[("grad_params", p.name)].c_name, [scope.dim_c[d] for d in p.shape]
        zero.append((frozenset({grad, *sizes}), {"c": grad, "count": " * ".join(f"(size_t){s}" for s in sizes)}))
    return zero
