"""Lowering: the equations of one step -> an ordered plan of products and fused loops.

Both passes arrive here in the same form, a list of elementwise equations whose only coupling
between units is ``@`` (and, in the backward pass, parameter-gradient accumulations). Each
equation gets a *level*: one more than the deepest product it waits for. A level's products
run first, then one fused loop per dimension computes every equation of that level, so a step
is as few sweeps over memory as its data dependencies allow. The plan also says which vectors
must live in arrays (read by another loop or product, or wanted after the step) and which can
stay in registers inside their loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from .cell import Cell, Equation, Param
from .derive import Derivation, MatrixGradient, VectorGradient
from .functions import SCALAR, MatVec, MatVecT, ReduceMean, Reduction, Var


def product_name(node: MatVec | Reduction) -> str:
    """The name of a product's or reduction's value: ``W@x``, ``Wᵀ@δm``, ``mean(u)``."""
    if isinstance(node, Reduction):
        return f"{node.word}({node.vector.name})"
    mark = "ᵀ" if isinstance(node, MatVecT) else ""
    return f"{node.matrix.name}{mark}@{node.vector.name}"


@dataclass(frozen=True)
class Product:
    """``out = W @ v`` (or ``Wᵀ @ v``) for every sample of the batch."""

    out: str
    matrix: str
    vector: str
    transposed: bool
    rows: str
    cols: str


@dataclass(frozen=True)
class Reduce:
    """``out = sum(v)`` or ``mean(v)`` over the ``dim`` units of every sample."""

    out: str
    vector: str
    dim: str
    mean: bool


@dataclass(frozen=True)
class OuterProduct:
    """``δW += Σ_batch δm ⊗ v``: a matrix gradient."""

    param: str
    adjoint: str
    vector: str
    rows: str
    cols: str


@dataclass
class Loop:
    """One sweep over ``dim`` units of every sample: loads, equations, stores, accumulations."""

    dim: str
    level: int
    loads: list[str] = field(default_factory=list)
    equations: list[Equation] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    gradients: list[VectorGradient] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """The ordered operations of one step, and the vectors that need arrays."""

    ops: tuple[Product | Reduce | Loop | OuterProduct, ...]
    arrays: tuple[str, ...]
    sizes: dict[str, str]


def lower(
    equations: tuple[Equation, ...],
    *,
    available: dict[str, str],
    keep: tuple[str, ...],
    params: tuple[Param, ...],
    gradients: tuple[MatrixGradient | VectorGradient, ...] = (),
    sizes: dict[str, str],
    constants: frozenset[str] = frozenset(),
) -> Plan:
    """Plans one step.

    ``available`` are vectors readable from arrays when the step starts (name -> dimension),
    ``keep`` the assigned vectors wanted after the step (states, outputs, saved values),
    ``sizes`` the dimension of every assigned vector, ``constants`` the names of numbers.
    """
    shapes = {p.name: p.shape for p in params}
    sizes = dict(sizes) | dict(available)
    level = dict.fromkeys(available, 0)
    products: dict[str, tuple[int, Product | Reduce]] = {}
    rewritten: list[Equation] = []
    for eq in equations:
        expr, eq_level = _name_products(eq.expr, level, products, shapes, sizes)
        level[eq.target.name] = eq_level
        rewritten.append(Equation(eq.target, expr, eq.kind, eq.line))

    loops: dict[tuple[int, str], Loop] = {}
    for eq in rewritten:
        key = (level[eq.target.name], sizes[eq.target.name])
        loops.setdefault(key, Loop(dim=key[1], level=key[0])).equations.append(eq)
    not_arrays = {p.name for p in params if not p.is_matrix} | constants | {f"|{d}|" for d in set(sizes.values())}
    for gradient in gradients:
        if isinstance(gradient, VectorGradient):
            expr, g_level = _name_products(gradient.expr, level, products, shapes, sizes)
            key = (g_level, shapes[gradient.param][0])
            loops.setdefault(key, Loop(dim=key[1], level=key[0])).gradients.append(VectorGradient(gradient.param, expr))

    defined_in = {eq.target.name: key for key, loop in loops.items() for eq in loop.equations}
    arrays: dict[str, None] = dict.fromkeys(keep)
    for _, product in products.values():
        arrays.setdefault(product.vector)
        arrays.setdefault(product.out)
    for gradient in gradients:
        if isinstance(gradient, MatrixGradient):
            arrays.setdefault(gradient.adjoint.name)
            arrays.setdefault(gradient.vector.name)
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

    ops: list[Product | Reduce | Loop | OuterProduct] = []
    for current in range(max([0, *level.values()]) + 1):
        ops += [p for lv, p in products.values() if lv == current]
        # per-sample scalars first: vectors of the same level may read them, never the reverse
        level_loops = [loop for key, loop in loops.items() if key[0] == current]
        ops += sorted(level_loops, key=lambda loop: loop.dim != SCALAR)
    for gradient in gradients:
        if isinstance(gradient, MatrixGradient):
            rows, cols = shapes[gradient.param]
            ops.append(OuterProduct(gradient.param, gradient.adjoint.name, gradient.vector.name, rows, cols))
    return Plan(ops=tuple(ops), arrays=tuple(arrays), sizes=sizes)


def _name_products(
    expr: sympy.Expr,
    level: dict[str, int],
    products: dict[str, tuple[int, Product | Reduce]],
    shapes: dict[str, tuple[str, ...]],
    sizes: dict[str, str],
) -> tuple[sympy.Expr, int]:
    """Replaces each product and reduction by a vector named after it; returns the expression's level."""
    replace = {}
    deepest = 0
    for node in sorted(expr.atoms(MatVec, Reduction), key=sympy.default_sort_key):
        name = product_name(node)
        vector = node.vector.name
        node_level = level.get(vector, 0) + 1
        if name not in products:
            if isinstance(node, Reduction):
                dim = sizes.get(vector) or shapes[vector][0]
                products[name] = (node_level, Reduce(name, vector, dim, isinstance(node, ReduceMean)))
                sizes[name] = SCALAR
            else:
                rows, cols = shapes[node.matrix.name]
                transposed = isinstance(node, MatVecT)
                out_dim, in_dim = (cols, rows) if transposed else (rows, cols)
                products[name] = (node_level, Product(name, node.matrix.name, vector, transposed, rows, cols))
                sizes[name] = out_dim
                sizes.setdefault(vector, in_dim)
            level[name] = node_level
        replace[node] = Var(name)
        deepest = max(deepest, node_level)
    flat = expr.xreplace(replace)
    for symbol in flat.free_symbols:
        deepest = max(deepest, level.get(symbol.name, 0))
    return flat, deepest


@dataclass(frozen=True)
class KernelPlan:
    """Both passes of a cell, planned, and the forward values kept for the backward pass.

    ``tape`` lists the intermediates and product results the backward equations read: the
    forward pass saves exactly those (states, inputs and outputs are kept anyway).
    """

    forward: Plan
    backward: Plan
    tape: tuple[str, ...]


def plan_kernel(cell: Cell, derivation: Derivation) -> KernelPlan:
    """Plans the forward and backward step of a derived cell."""
    forward_nodes = {
        node: product_name(node)
        for eq in cell.equations
        for node in sorted(eq.expr.atoms(MatVec, Reduction), key=sympy.default_sort_key)
    }

    def read_saved(expr: sympy.Expr) -> sympy.Expr:
        """Forward products and reductions in backward equations are read from the tape, not recomputed."""
        return expr.xreplace({n: Var(forward_nodes[n]) for n in expr.atoms(MatVec, Reduction) if n in forward_nodes})

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

    states_next = {e.target.name: cell.sizes[e.target.name] for e in cell.equations if e.kind == "next"}
    forward = lower(
        cell.equations,
        available={**cell.inputs, **cell.states},
        keep=(*states_next, *cell.outputs, *tape),
        params=cell.params,
        sizes=cell.sizes,
        constants=frozenset(cell.constants),
    )
    available = {**cell.inputs, **cell.states, **states_next, **cell.outputs}
    available |= {name: forward.sizes[name] for name in tape}
    available |= {seed.name: cell.sizes[name] for name, seed in derivation.seeds.items()}
    backward = lower(
        equations,
        available=available,
        keep=tuple(v.name for v in (*derivation.state_adjoints.values(), *derivation.input_adjoints.values())),
        params=cell.params,
        gradients=gradients,
        sizes=derivation.sizes,
        constants=frozenset(cell.constants),
    )
    return KernelPlan(forward=forward, backward=backward, tape=tape)
