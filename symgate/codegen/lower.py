"""Lowering: the equations of one step -> a plan of matrix products and fused loops.

Both passes arrive here in the same form, a list of elementwise equations whose only coupling
between units is ``@`` (and, in the backward pass, parameter-gradient accumulations).

Products are grouped into *stacks*: the matrices that multiply the same vector, laid side by
side so that one matrix product serves them all (an LSTM's four ``W_k @ x`` become one product
with a 4H-row matrix). The results of a stack's products, or in the backward pass the adjoints
that feed it, sit side by side in one *panel* (rows of ``Σ rows`` numbers per sample). A stack
whose vector is an input needs no state, so its forward product runs once over all steps before
the time loop, and its backward product (the input's gradient) once after it. Matrix gradients
are all taken after the time loop, as one product over every step and sample.

Inside the time loop each equation gets a *level*: one more than the deepest product it waits
for. A level's products run first, then one fused loop per dimension computes every equation of
that level, so a step is as few sweeps over memory as its data dependencies allow. The plan also
says which vectors must live in arrays and which can stay in registers inside their loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from ..frontend.cell import Cell, Equation, Param
from ..frontend.functions import (
    SCALAR,
    AxisReduction,
    MatVec,
    MatVecT,
    ReduceMean,
    Reduction,
    RowSum,
    SampleMatVec,
    Var,
    matrix_axes,
)
from ..symbolic.derive import ADJOINT, Derivation, MatrixGradient, VectorGradient

Node = MatVec | SampleMatVec | Reduction | AxisReduction
"""A node lowered to an op of its own: a product or a reduction."""


def product_name(node: Node) -> str:
    """The name of a product's or reduction's value: ``W@x``, ``Wᵀ@δm``, ``S'ᵀ@q``, ``mean(u)``."""
    if isinstance(node, (Reduction, AxisReduction)):
        return f"{node.word}({node.vector.name})"
    mark = "ᵀ" if node.transposed else ""
    return f"{node.matrix.name}{mark}@{node.vector.name}"


@dataclass(frozen=True)
class Member:
    """One matrix of a stack, and the vector of the panel that goes with it: the result of
    ``matrix @ vector`` in the forward pass, its adjoint in the backward pass.

    ``transposed``: the member is ``matrix.T`` (the author wrote ``W.T @ v``); ``rows`` are then
    the parameter's columns. Packing writes it transposed, so the products treat it as any other.
    """

    matrix: str
    rows: str
    value: str
    transposed: bool = False

    @property
    def label(self) -> str:
        """``W``, or ``Wᵀ`` for a transposed member."""
        return self.matrix + ("ᵀ" if self.transposed else "")


@dataclass(frozen=True)
class Stack:
    """Matrices that multiply the same vector, side by side: one matrix product for all of them.

    ``hoisted``: the vector is an input, so the products need no state and run for all steps at
    once, outside the time loop.
    """

    vector: str
    cols: str
    members: tuple[Member, ...]
    hoisted: bool

    @property
    def panel(self) -> tuple[str, ...]:
        return tuple(m.value for m in self.members)

    @property
    def matrices(self) -> str:
        return ", ".join(m.label for m in self.members)

    @property
    def has_transposed(self) -> bool:
        """Some member is a transposed matrix: its products go through a packed copy."""
        return any(m.transposed for m in self.members)

    @property
    def transposed_name(self) -> str:
        """The name of ``Σ W_kᵀ @ δ_k``, the stack's part of its vector's adjoint: ``δh_matmul``."""
        return f"{ADJOINT}{self.vector}_matmul"


@dataclass(frozen=True)
class StackProduct:
    """Forward: the stack's panel = its matrices @ its vector. Backward: ``out`` (+)= Σ W_kᵀ @ δ_k.

    ``accumulate``: add to what the time loop left in ``out`` (the rest of an input's gradient).
    """

    stack: Stack
    transposed: bool
    out: str = ""
    accumulate: bool = False


@dataclass(frozen=True)
class Product:
    """``out = Wᵀ @ v`` (or ``W @ v``, not ``transposed``) for every sample: a backward product
    whose sum could not be fused; ``rows`` and ``cols`` are W's."""

    out: str
    matrix: str
    vector: str
    rows: str
    cols: str
    transposed: bool = True


@dataclass(frozen=True)
class SampleProduct:
    """``out = S @ v`` (``S.T @ v`` when ``transposed``) with each sample's own matrix ``S``,
    ``rows`` x ``cols``."""

    out: str
    matrix: str
    vector: str
    rows: str
    cols: str
    transposed: bool


@dataclass(frozen=True)
class Reduce:
    """``out = sum(v)`` or ``mean(v)`` over the ``dim`` units of every sample."""

    out: str
    vector: str
    dim: str
    mean: bool


@dataclass(frozen=True)
class AxisReduce:
    """``out = rowsum(S)`` (``along_rows``) or ``colsum(S)`` of each sample's ``rows`` x ``cols`` matrix."""

    out: str
    matrix: str
    rows: str
    cols: str
    along_rows: bool


@dataclass(frozen=True)
class GradientProduct:
    """``δW_k += Σ δ_k ⊗ v`` over every step and sample for each matrix of a stack: one matrix
    product after the time loop, for all of the stack's matrices side by side."""

    stack: Stack


@dataclass
class Loop:
    """One sweep over ``dim`` units of every sample: loads, equations, stores, accumulations."""

    dim: str
    level: int
    loads: list[str] = field(default_factory=list)
    equations: list[Equation] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    gradients: list[VectorGradient] = field(default_factory=list)


Op = StackProduct | Product | SampleProduct | Reduce | AxisReduce | Loop | GradientProduct


@dataclass(frozen=True)
class Plan:
    """The operations of one pass: ``before`` the time loop, each ``step``, and ``after`` it.

    ``arrays`` are the vectors that need arrays, ``panels`` the vectors laid side by side (each
    with the stack that reads or writes them together), ``sizes`` the dimension of every vector.
    """

    before: tuple[Op, ...]
    step: tuple[Op, ...]
    after: tuple[Op, ...]
    arrays: tuple[str, ...]
    panels: tuple[Stack, ...]
    sizes: dict[str, str]


def lower(
    equations: tuple[Equation, ...],
    *,
    available: dict[str, str],
    keep: tuple[str, ...],
    params: tuple[Param, ...],
    stacks: tuple[Stack, ...],
    backward: bool = False,
    input_adjoints: dict[str, str] | None = None,
    gradients: tuple[MatrixGradient | VectorGradient, ...] = (),
    sizes: dict[str, str],
    constants: frozenset[str] = frozenset(),
) -> Plan:
    """Plans one pass.

    ``available`` are vectors readable from arrays when the step starts (name -> dimension),
    ``keep`` the assigned vectors wanted after the step (states, outputs, saved values),
    ``stacks`` the cell's products grouped by vector (in the backward pass, with their adjoints),
    ``input_adjoints`` (backward) maps each input to its adjoint's name, ``sizes`` the dimension
    of every assigned vector, ``constants`` the names of numbers.
    """
    shapes = {p.name: p.shape for p in params}
    sizes = dict(sizes) | dict(available)
    level = dict.fromkeys(available, 0)
    before: list[Op] = []
    after: list[Op] = []
    fused: dict[str, StackProduct] = {}
    if backward:
        equations, fused, after = _fuse_transposed_sums(equations, stacks, input_adjoints or {})
    else:
        for stack in stacks:
            fused |= {m.value: StackProduct(stack, transposed=False) for m in stack.members}
            if stack.hoisted:
                before.append(StackProduct(stack, transposed=False))
                level |= dict.fromkeys(stack.panel, 0)
    for stack in stacks:
        sizes |= {m.value: m.rows for m in stack.members}
    for name, op in fused.items():
        sizes[name] = op.stack.cols if op.transposed else sizes[name]

    namer = _ProductNamer(level, shapes, sizes, fused)
    rewritten: list[Equation] = []
    for eq in equations:
        expr, eq_level = namer.name(eq.expr)
        level[eq.target.name] = eq_level
        rewritten.append(Equation(eq.target, expr, eq.kind, eq.line))
    for name in fused:  # a product that computes an adjoint outright, read by no equation
        if name not in level:
            namer.add_fused(name)

    loops: dict[tuple[int, str], Loop] = {}
    for eq in rewritten:
        key = (level[eq.target.name], sizes[eq.target.name])
        loops.setdefault(key, Loop(dim=key[1], level=key[0])).equations.append(eq)
    not_arrays = {p.name for p in params if not p.is_matrix} | constants | {f"|{d}|" for d in set(sizes.values())}
    for gradient in gradients:
        if isinstance(gradient, VectorGradient):
            expr, g_level = namer.name(gradient.expr)
            key = (g_level, shapes[gradient.param][0])
            loops.setdefault(key, Loop(dim=key[1], level=key[0])).gradients.append(VectorGradient(gradient.param, expr))
    products = {(g.param, g.vector.name, g.transposed) for g in gradients if isinstance(g, MatrixGradient)}
    for stack in stacks:
        members = tuple(m for m in stack.members if (m.matrix, stack.vector, m.transposed) in products)
        if members:
            after.append(GradientProduct(Stack(stack.vector, stack.cols, members, stack.hoisted)))
            products -= {(m.matrix, stack.vector, m.transposed) for m in members}
    if products:
        raise ValueError(f"matrix gradients {sorted(products)} belong to no stack of products")

    assigned = {eq.target.name for eq in rewritten} | set(fused)
    defined_in = {eq.target.name: key for key, loop in loops.items() for eq in loop.equations}
    arrays: dict[str, None] = dict.fromkeys(name for name in keep if name in assigned or name in available)
    for op in [*namer.ops.values(), *before, *after]:
        for name in _operands(op):
            arrays.setdefault(name)
    for key, loop in loops.items():
        read = set()
        for expr in [e.expr for e in loop.equations] + [g.expr for g in loop.gradients]:
            read |= {s.name for s in expr.free_symbols if s.name not in not_arrays}
        for name in sorted(read):
            if defined_in.get(name) != key:
                arrays.setdefault(name)
                loop.loads.append(name)
    for loop in loops.values():
        loop.stores = [e.target.name for e in loop.equations if e.target.name in arrays]

    ops_at: dict[int, list[Op]] = {}  # a level -> its products, in the order they were named
    for name, op in namer.ops.items():
        ops_at.setdefault(level[name], []).append(op)
    loops_at: dict[int, list[Loop]] = {}
    for key, loop in loops.items():
        loops_at.setdefault(key[0], []).append(loop)
    step: list[Op] = []
    for current in range(max([0, *level.values()]) + 1):
        step += list(dict.fromkeys(ops_at.get(current, [])))
        # per-sample scalars first, matrices last: vectors of the same level may read scalars, and
        # matrices both (broadcast along their rows or columns), never the reverse
        step += sorted(loops_at.get(current, []), key=_loop_order)
    panels = tuple(dict.fromkeys(s for s in stacks if any(m.value in arrays for m in s.members)))
    return Plan(tuple(before), tuple(step), tuple(after), tuple(arrays), panels, sizes)


def _loop_order(loop: Loop) -> tuple[bool, bool]:
    """Scalars, then vectors, then matrices."""
    return matrix_axes(loop.dim) is not None, loop.dim != SCALAR


def _operands(op: Op) -> list[str]:
    """The vectors an op reads or writes, which therefore need arrays."""
    if isinstance(op, StackProduct):
        return [*op.stack.panel, op.out if op.transposed else op.stack.vector]
    if isinstance(op, GradientProduct):
        return [*op.stack.panel, op.stack.vector]
    if isinstance(op, SampleProduct):
        return [op.matrix, op.vector, op.out]
    if isinstance(op, AxisReduce):
        return [op.matrix, op.out]
    return [op.vector, op.out]


class _ProductNamer:
    """Replaces each product and reduction by a vector named after it, and records the op that makes it."""

    def __init__(self, level, shapes, sizes, fused: dict[str, StackProduct]) -> None:
        self.level, self.shapes, self.sizes, self.fused = level, shapes, sizes, fused
        self.ops: dict[str, Op] = {}  # output name -> op, in order of first use

    def name(self, expr: sympy.Expr) -> tuple[sympy.Expr, int]:
        """``expr`` with products named, and its level."""
        replace = {}
        for node in sorted(expr.atoms(MatVec, SampleMatVec, Reduction, AxisReduction), key=sympy.default_sort_key):
            name = product_name(node)
            if name in self.fused and name not in self.level:
                self.add_fused(name)
            elif name not in self.level:
                self.add(node, name)
            replace[node] = Var(name)
        flat = expr.xreplace(replace)
        deepest = 0
        for symbol in sorted(flat.free_symbols, key=lambda s: s.name):  # set order varies with the hash seed
            if symbol.name in self.fused and symbol.name not in self.level:
                self.add_fused(symbol.name)
            deepest = max(deepest, self.level.get(symbol.name, 0))
        return flat, deepest

    def add(self, node: Node, name: str) -> None:
        vector = node.vector.name
        level = self.level.get(vector, 0)
        if isinstance(node, Reduction):
            dim = self.sizes.get(vector) or self.shapes[vector][0]
            self.ops[name] = Reduce(name, vector, dim, isinstance(node, ReduceMean))
            self.sizes[name] = SCALAR
        elif isinstance(node, AxisReduction):
            rows, cols = matrix_axes(self.sizes[vector])
            along_rows = isinstance(node, RowSum)
            self.ops[name] = AxisReduce(name, vector, rows, cols, along_rows)
            self.sizes[name] = rows if along_rows else cols
        elif isinstance(node, SampleMatVec):
            matrix = node.matrix.name
            rows, cols = matrix_axes(self.sizes[matrix])
            self.ops[name] = SampleProduct(name, matrix, vector, rows, cols, node.transposed)
            self.sizes[name] = cols if node.transposed else rows
            level = max(level, self.level.get(matrix, 0))
        else:
            rows, cols = self.shapes[node.matrix.name]
            transposed = isinstance(node, MatVecT)
            self.ops[name] = Product(name, node.matrix.name, vector, rows, cols, transposed)
            self.sizes[name] = cols if transposed else rows
        self.level[name] = level + 1

    def add_fused(self, name: str) -> None:
        """A stack's product: its level is one more than the deepest vector it reads."""
        op = self.fused[name]
        reads = op.stack.panel if op.transposed else (op.stack.vector,)
        op_level = 1 + max(self.level.get(v, 0) for v in reads)
        for value in [op.out] if op.transposed else op.stack.panel:
            self.level[value] = op_level
            self.ops[value] = op


def _fuse_transposed_sums(
    equations: tuple[Equation, ...], stacks: tuple[Stack, ...], input_adjoints: dict[str, str]
) -> tuple[tuple[Equation, ...], dict[str, StackProduct], list[Op]]:
    """Finds each stack's ``Σ W_kᵀ @ δ_k`` in the backward equations and makes it one product.

    An input's gradient is not needed by the recurrence, so its stack's product runs after the
    time loop over all steps at once; the loop computes only the rest of that gradient, if any.
    A sum that CSE split apart stays as separate products. A transposed member (``W.T @ v`` in
    the forward pass) passes back ``W @ δ``, a plain product.
    """
    equations = list(equations)
    fused: dict[str, StackProduct] = {}
    after: list[Op] = []
    holding: dict[tuple[type, str, str], set[int]] = {}  # a product term -> the equations summing it
    for index, eq in enumerate(equations):
        for arg in sympy.Add.make_args(eq.expr):
            if isinstance(arg, MatVec):
                holding.setdefault((type(arg), arg.matrix.name, arg.vector.name), set()).add(index)
    for stack in stacks:
        wanted = {(MatVec if m.transposed else MatVecT, m.matrix, m.value) for m in stack.members}
        for index in sorted(set.intersection(*(holding.get(term, set()) for term in wanted))):
            eq = equations[index]
            if eq is None:
                continue
            args = sympy.Add.make_args(eq.expr)
            terms = [a for a in args if isinstance(a, MatVec) and (type(a), a.matrix.name, a.vector.name) in wanted]
            if len(terms) != len(wanted):
                continue
            rest = sympy.Add(*(a for a in args if a not in terms))
            if stack.hoisted and eq.target.name == input_adjoints.get(stack.vector):
                after.append(StackProduct(stack, transposed=True, out=eq.target.name, accumulate=rest != 0))
                equations[index] = Equation(eq.target, rest, eq.kind, eq.line) if rest != 0 else None
            else:  # the sum is the whole adjoint, or part of it
                name = stack.transposed_name if rest != 0 else eq.target.name
                fused[name] = StackProduct(stack, transposed=True, out=name)
                equations[index] = Equation(eq.target, rest + Var(name), eq.kind, eq.line) if rest != 0 else None
            break
    return tuple(eq for eq in equations if eq is not None), fused, after


@dataclass(frozen=True)
class KernelPlan:
    """The passes of a cell, planned, and the forward values kept for the backward pass.

    ``tape`` lists the intermediates and product results the backward equations read: the
    forward pass saves exactly those (states, inputs and outputs are kept anyway). ``infer`` is
    the forward pass for inference, which saves nothing: the forward pass itself when the tape
    is empty.
    """

    forward: Plan
    backward: Plan
    tape: tuple[str, ...]
    infer: Plan


def forward_stacks(cell: Cell) -> tuple[Stack, ...]:
    """The cell's products grouped by the vector they multiply, in order of first use."""
    by_vector: dict[str, list[Member]] = {}
    cols: dict[str, str] = {}
    for eq in cell.equations:
        for node in sorted(eq.expr.atoms(MatVec), key=sympy.default_sort_key):
            transposed = isinstance(node, MatVecT)
            rows, cols[node.vector.name] = cell.param(node.matrix.name).shape[:: -1 if transposed else 1]
            members = by_vector.setdefault(node.vector.name, [])
            member = Member(node.matrix.name, rows, product_name(node), transposed)
            if member not in members:
                members.append(member)
    return tuple(
        Stack(vector, cols[vector], tuple(members), vector in cell.inputs) for vector, members in by_vector.items()
    )


def backward_stacks(
    forward: tuple[Stack, ...], gradients: tuple[MatrixGradient | VectorGradient, ...]
) -> tuple[Stack, ...]:
    """The forward stacks with each product's adjoint in place of its result (products with no
    gradient, because nothing depends on them, drop out)."""
    adjoint = {
        (g.param, g.vector.name, g.transposed): g.adjoint.name for g in gradients if isinstance(g, MatrixGradient)
    }
    stacks = []
    for stack in forward:
        members = tuple(
            Member(m.matrix, m.rows, adjoint[(m.matrix, stack.vector, m.transposed)], m.transposed)
            for m in stack.members
            if (m.matrix, stack.vector, m.transposed) in adjoint
        )
        if members:
            stacks.append(Stack(stack.vector, stack.cols, members, stack.hoisted))
    return tuple(stacks)


def plan_kernel(cell: Cell, derivation: Derivation) -> KernelPlan:
    """Plans the forward and backward passes of a derived cell."""
    nodes = (MatVec, SampleMatVec, Reduction, AxisReduction)
    forward_nodes = {
        node: product_name(node)
        for eq in cell.equations
        for node in sorted(eq.expr.atoms(*nodes), key=sympy.default_sort_key)
    }

    def read_saved(expr: sympy.Expr) -> sympy.Expr:
        """Forward products and reductions in backward equations are read from the tape, not recomputed."""
        return expr.xreplace({n: Var(forward_nodes[n]) for n in expr.atoms(*nodes) if n in forward_nodes})

    equations = tuple(Equation(e.target, read_saved(e.expr), e.kind) for e in derivation.equations)
    gradients = tuple(
        VectorGradient(g.param, read_saved(g.expr)) if isinstance(g, VectorGradient) else g
        for g in derivation.gradients
    )
    read = {s.name for e in equations for s in e.expr.free_symbols}
    read |= {s.name for g in gradients if isinstance(g, VectorGradient) for s in g.expr.free_symbols}
    read |= {g.vector.name for g in gradients if isinstance(g, MatrixGradient)}
    savable = [e.target.name for e in cell.equations if e.kind == "intermediate"] + list(forward_nodes.values())
    tape = tuple(name for name in savable if name in read)

    stacks = forward_stacks(cell)
    states_next = {e.target.name: cell.sizes[e.target.name] for e in cell.equations if e.kind == "next"}
    forward = plan_forward(cell, tape)
    available = {**cell.inputs, **cell.states, **states_next, **cell.outputs}
    available |= {name: forward.sizes[name] for name in tape}
    available |= {seed.name: cell.sizes[name] for name, seed in derivation.seeds.items()}
    backward = lower(
        equations,
        available=available,
        keep=tuple(v.name for v in (*derivation.state_adjoints.values(), *derivation.input_adjoints.values())),
        params=cell.params,
        stacks=backward_stacks(stacks, gradients),
        backward=True,
        input_adjoints={x: v.name for x, v in derivation.input_adjoints.items()},
        gradients=gradients,
        sizes=derivation.sizes,
        constants=frozenset(cell.constants),
    )
    return KernelPlan(forward=forward, backward=backward, tape=tape, infer=plan_forward(cell) if tape else forward)


def plan_forward(cell: Cell, tape: tuple[str, ...] = ()) -> Plan:
    """Plans the forward pass alone, keeping states, outputs and the values named in ``tape``.

    With no tape this is the pass for inference: it saves nothing for a backward pass, so its
    intermediates stay in registers or the workspace.
    """
    states_next = [e.target.name for e in cell.equations if e.kind == "next"]
    return lower(
        cell.equations,
        available={**cell.inputs, **cell.states},
        keep=(*states_next, *cell.outputs, *tape),
        params=cell.params,
        stacks=forward_stacks(cell),
        sizes=cell.sizes,
        constants=frozenset(cell.constants),
    )
