"""The operations of a plan as C statements, each reporting the names it reads and writes.

Every op (a packing of matrices, a matrix product, a reduction, a fused loop, a seed, a
zeroing) becomes an :class:`Emitted`: its lines of C and the set of C names they use. The pass
(:mod:`symgate.codegen.passes`) decides from those sets which rows, buffers, widths and
constants it declares and which arguments it leaves unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..frontend.functions import SCALAR, RowVector, Var, matrix_axes
from ..symbolic.derive import ADJOINT
from .ccode import Code, c, comment_safe, names_of
from .cprinter import printer_for
from .layout import Layout, Row, step_product_sizes, transposed_packing
from .lower import AxisReduce, GradientProduct, Loop, Product, Reduce, SampleProduct, StackProduct
from .scope import Scope


@dataclass(frozen=True)
class Emitted:
    """One op as C: ``lines`` (a call) or a fused loop over ``dim`` units (``pointers`` per sample,
    then ``statements`` per unit; over a matrix's ``rows`` and ``cols``, unit ``row * cols + col``,
    with ``row_statements`` once a row),
    and every C name it uses."""

    kind: str
    comment: str
    names: frozenset[str]
    lines: tuple[str, ...] = ()
    dim: str = ""
    batch: str = "B"
    pointers: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    row_statements: tuple[str, ...] = ()
    rows: str = ""
    cols: str = ""

    def template(self) -> dict:
        """The op as the template's ``op`` macro lays it out."""
        if self.kind == "loop":
            return {
                "kind": "loop",
                "comment": self.comment,
                "dim": self.dim,
                "rows": self.rows,
                "row_statements": list(self.row_statements),
                "cols": self.cols,
                "batch": self.batch,
                "pointers": list(self.pointers),
                "statements": list(self.statements),
            }
        return {"kind": self.kind, "comment": self.comment, "lines": list(self.lines)}


def _call(comment: str, lines: list[Code]) -> Emitted:
    return Emitted("call", comment_safe(comment), names_of(lines), tuple(line.text for line in lines))


def _rows_from(buffer: str, offset: Code, cols: str) -> Code:
    """``buffer`` advanced by ``offset`` rows of ``cols`` numbers."""
    if offset.text == "0":
        return c("{b}", b=buffer)
    start = c("({o})", o=offset) if " " in offset.text else offset
    return c("{b} + (size_t){s} * {cols}", b=buffer, s=start, cols=cols)


class Emitter:
    """Renders the ops of one cell's passes."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.dim_c = scope.dim_c

    def param(self, matrix: str) -> str:
        return self.scope.names("param", matrix)

    def packing(self, op: StackProduct, layout: Layout) -> Emitted:
        """Copies a stack's matrices side by side once per call, so one product serves them all.

        A transposed member (``W.T``) is written transposed: as W's rows where the others' rows
        become columns, as W's columns where the others are copied row by row.
        """
        scope = self.scope
        buffer = layout.weights(op.stack)
        cols = self.dim_c[op.stack.cols]
        width = layout.panel(op.stack).width
        lines = []
        for index, member in enumerate(op.stack.members):
            offset = scope.int_sum(m.rows for m in op.stack.members[:index])
            matrix, rows = self.param(member.matrix), self.dim_c[member.rows]
            if transposed_packing(op):
                helper = "sg_pack" if member.transposed else "sg_pack_t"
                target = c("{b} + {o}", b=buffer, o=offset) if offset.text != "0" else c("{b}", b=buffer)
                shape = {"r": cols, "cols": rows} if member.transposed else {"r": rows, "cols": cols}
                lines.append(c(helper + "({r}, {cols}, {m}, {t}, {w});", m=matrix, t=target, w=width, **shape))
            elif member.transposed:
                target = _rows_from(buffer, offset, cols)
                lines.append(c("sg_pack_t({r}, {cols}, {m}, {t}, {r});", r=cols, cols=rows, m=matrix, t=target))
            else:
                target = _rows_from(buffer, offset, cols)
                lines.append(
                    c(
                        "memcpy({t}, {m}, sizeof(" + scope.real + ") * (size_t){r} * {cols});",
                        t=target,
                        m=matrix,
                        r=rows,
                        cols=cols,
                    )
                )
        if op.stack in layout.blas_packed:
            space, pointer = layout.blas_packed[op.stack]
            sizes, _ = step_product_sizes(scope, op, width)
            lines.append(
                c(
                    "const " + scope.real + " *const {p} = sg_pack_weights({s}, {b}, {ld}, {space});",
                    p=pointer,
                    s=sizes,
                    b=buffer,
                    ld=cols if op.transposed else width,
                    space=space,
                )
            )
        how = "side by side" if transposed_packing(op) else "stacked"
        mark = "ᵀ" if transposed_packing(op) else ""
        return _call(f"({op.stack.matrices}){mark} {how}", lines)

    def op(self, op, layout: Layout, batch: str = "B") -> Emitted:
        """One op for ``batch`` samples: ``step_batch`` in the time loop (the samples step t runs)."""
        rows = layout.rows
        if isinstance(op, Loop):
            return self.loop(op, layout, batch)
        if isinstance(op, Reduce):
            helper = "sg_mean" if op.mean else "sg_sum"
            vector = rows[op.vector]
            line = c(
                helper + "({B}, {d}, {v}, {vw}, {out});",
                B=batch,
                d=self.dim_c[op.dim],
                v=vector.c,
                vw=vector.width,
                out=rows[op.out].c,
            )
            return _call(op.out, [line])
        if isinstance(op, Product):  # W @ v reads W's rows (A Bᵀ), the backward pass's Wᵀ @ v its columns (A B)
            vector, out = rows[op.vector], rows[op.out]
            if op.transposed:
                call, sizes, comment = "sg_gemm_nn", "{cols}, {rows}", f"{op.matrix}ᵀ @ {op.vector}"
            else:
                call, sizes, comment = "sg_gemm_nt", "{rows}, {cols}", f"{op.matrix} @ {op.vector}"
            line = c(
                call + "({B}, " + sizes + ", {v}, {vw}, {m}, {cols}, {out}, {ow}, 0);",
                B=batch,
                cols=self.dim_c[op.cols],
                rows=self.dim_c[op.rows],
                v=vector.c,
                vw=vector.width,
                m=self.param(op.matrix),
                out=out.c,
                ow=out.width,
            )
            return _call(comment, [line])
        if isinstance(op, SampleProduct):
            helper, mark = ("sg_sample_gemv_t", "ᵀ") if op.transposed else ("sg_sample_gemv", "")
            line = self.matrix_call(helper, op, [op.matrix, op.vector, op.out], layout, batch)
            return _call(f"{op.out} = {op.matrix}{mark} @ {op.vector}, each sample's own matrix", [line])
        if isinstance(op, AxisReduce):
            helper = "sg_rowsum" if op.along_rows else "sg_colsum"
            return _call(op.out, [self.matrix_call(helper, op, [op.matrix, op.out], layout, batch)])
        if isinstance(op, GradientProduct):
            return self.gradient_product(op, layout)
        return self.stack_product(op, layout, batch)

    def matrix_call(
        self, helper: str, op: SampleProduct | AxisReduce, operands: list[str], layout: Layout, batch: str
    ) -> Code:
        """``helper(B, rows, cols, a, lda, ...)``: a runtime helper on each sample's own ``rows`` x
        ``cols`` matrix, every operand given by its row at this step and the stride between samples."""
        fields = {"B": batch, "r": self.dim_c[op.rows], "cols": self.dim_c[op.cols]}
        slots = []
        for index, name in enumerate(operands):
            place = layout.rows[name]
            fields |= {f"a{index}": place.c, f"w{index}": place.width}
            slots.append(f"{{a{index}}}, {{w{index}}}")
        return c(helper + "({B}, {r}, {cols}, " + ", ".join(slots) + ");", **fields)

    def stack_product(self, op: StackProduct, layout: Layout, batch: str) -> Emitted:
        stack = op.stack
        cols = self.dim_c[stack.cols]
        values = ", ".join(stack.panel)
        if op.transposed:
            comment = f"{op.out} {'+' if op.accumulate else ''}= ({stack.matrices})ᵀ @ ({values})"
        else:
            comment = f"({values}) = ({stack.matrices}) @ {stack.vector}"
        if stack in layout.packed:  # one product per step, with the packed matrices
            panel = layout.panel(stack).start
            packed_c = layout.packed[stack]
            if op.transposed:
                out = layout.rows[op.out]
                a, lda, ldw, result, ldc = panel.c, panel.width, cols, out.c, out.width
            else:
                vector = layout.rows[stack.vector]
                a, lda, ldw, result, ldc = vector.c, vector.width, panel.width, panel.c, panel.width
            sizes, _ = step_product_sizes(self.scope, op, panel.width, batch)
            fields = {"s": sizes, "a": a, "lda": lda, "w": packed_c, "ldw": ldw, "r": result, "ldc": ldc}
            if stack in layout.blas_packed:
                line = c(
                    "sg_gemm_packed({s}, {a}, {lda}, {w}, {ldw}, {p}, {r}, {ldc});",
                    p=layout.blas_packed[stack][1],
                    **fields,
                )
            else:
                line = c("sg_gemm_nn({s}, {a}, {lda}, {w}, {ldw}, {r}, {ldc}, 0);", **fields)
            return _call(comment, [line])
        # over all steps at once: one product, with the matrices stacked when there are several
        if stack in layout.stacked:
            panel = layout.panel(stack)
            matrix, values_c, width, rows = layout.stacked[stack], c("{p}", p=panel.c), panel.width, panel.width
        else:
            member = stack.members[0]
            matrix, rows = self.param(member.matrix), self.dim_c[member.rows]
            values_c, width = layout.sequences[member.value]
        if op.transposed:
            out, ld = layout.sequences[op.out]
            line = c(
                "sg_gemm_nn({N}, {cols}, {rows}, {v}, {w}, {m}, {cols}, {out}, {ld}, " + f"{int(op.accumulate)});",
                N="all_rows",
                cols=cols,
                rows=rows,
                v=values_c,
                w=width,
                m=matrix,
                out=out,
                ld=ld,
            )
        else:
            vector, ld = layout.sequences[stack.vector]
            line = c(
                "sg_gemm_nt({N}, {rows}, {cols}, {x}, {ld}, {m}, {cols}, {v}, {w}, 0);",
                N="all_rows",
                rows=rows,
                cols=cols,
                x=vector,
                ld=ld,
                m=matrix,
                v=values_c,
                w=width,
            )
        return _call(comment + ", all steps", [line])

    def gradient_product(self, op: GradientProduct, layout: Layout) -> Emitted:
        """``δW_k += Σ δ_k ⊗ v``: one product over all steps, into the stack's gradients side by
        side when it has several matrices (then added to each), or straight into the one."""
        scope = self.scope
        stack = op.stack
        cols = self.dim_c[stack.cols]
        first = stack.members[0]
        matrices, adjoints = (first.label, first.value)
        if len(stack.members) > 1:
            matrices, adjoints = f"({stack.matrices})", f"({', '.join(stack.panel)})"
        comment = f"{ADJOINT}{matrices} += Σ {adjoints} ⊗ {stack.vector}, all steps"
        if stack not in layout.packed_gradients:
            adjoint, width = layout.sequences[first.value]
            grad = scope.names("grad_params", first.matrix)
            return _call(
                comment, self.sum_over_steps(layout, self.dim_c[first.rows], cols, adjoint, width, stack.vector, grad)
            )
        panel = layout.panel(stack)
        buffer = layout.packed_gradients[stack]
        lines = [
            c("memset({b}, 0, sizeof(" + scope.real + ") * (size_t){w} * {cols});", b=buffer, w=panel.width, cols=cols)
        ]
        lines += self.sum_over_steps(layout, panel.width, cols, c("{p}", p=panel.c), panel.width, stack.vector, buffer)
        for index, member in enumerate(stack.members):
            source = _rows_from(buffer, scope.int_sum(m.rows for m in stack.members[:index]), cols)
            grad = scope.names("grad_params", member.matrix)
            helper = "sg_add_t" if member.transposed else "sg_add"
            count = "{r}, {cols}" if member.transposed else "(size_t){r} * {cols}"
            rows = self.dim_c[member.rows]
            lines.append(c(helper + "(" + count + ", {s}, {g});", r=rows, cols=cols, s=source, g=grad))
        return _call(comment, lines)

    def sum_over_steps(
        self, layout: Layout, rows: str, cols: str, adjoints: Code, width: str, vector: str, out: str
    ) -> list[Code]:
        """``out (rows, cols) += Σ_t,b adjoints[t, b] ⊗ vector[t, b]``; a state's vector is the
        previous state: the initial one, then the sequence."""
        sequence, ld = layout.sequences[vector]
        fields = {"r": rows, "cols": cols, "a": adjoints, "w": width, "ld": ld, "out": out}
        if vector in self.scope.cell.states:
            init = self.scope.names("init", vector, "{}_init")
            return [
                c(
                    "sg_gemm_tn_previous({r}, {cols}, {T}, {B}, {sizes}, {a}, {w}, {i}, {s}, {ld}, {out}, {cols});",
                    T="T",
                    B="B",
                    sizes="batch_sizes",
                    i=init,
                    s=sequence,
                    **fields,
                )
            ]
        return [
            c("sg_gemm_tn({r}, {cols}, {N}, {a}, {w}, {s}, {ld}, {out}, {cols});", N="all_rows", s=sequence, **fields)
        ]

    def loop(self, loop: Loop, layout: Layout, batch: str) -> Emitted:
        """A fused loop: ``batch`` samples, every unit of ``loop.dim``; loads, equations, stores
        and parameter-gradient sums, printed by the dtype's printer.

        Over a matrix, a vector is read at the unit's row (a column, broadcast along the row) and,
        written ``vᵀ``, at its column (a row, broadcast down the column): two locals when read both ways.
        """
        scope = self.scope
        rows = layout.rows
        axes = matrix_axes(loop.dim)
        as_row = {node: Var(node.vector.name + "ᵀ") for e in loop.equations for node in e.expr.atoms(RowVector)}
        equations = [(e.target.name, e.expr.xreplace(as_row)) for e in loop.equations]
        read = {
            s.name for expr in [e for _, e in equations] + [g.expr for g in loop.gradients] for s in expr.free_symbols
        }
        loads = [(n, n, self.index(rows[n].dim, loop.dim)) for n in loop.loads if n in read]
        loads += [(r.name, node.vector.name, "col") for node, r in as_row.items() if node.vector.name in loop.loads]
        locals_ = {name: scope.names("local", name) for name in [n for n, _, _ in loads] + [t for t, _ in equations]}
        params = {p.name: scope.names("param", p.name) for p in scope.cell.params if not p.is_matrix}
        # a scalar parameter (shape (1,)) is one number that every unit reads
        unit_of = {
            p.name: "0" if p.shape == (SCALAR,) else self.index(p.shape[0], loop.dim)
            for p in scope.cell.params
            if not p.is_matrix
        }
        constants = {name: scope.names("const", name) for name in scope.cell.constants}
        extents = {f"|{d}|": c for d, c in self.dim_c.items() if not matrix_axes(d)}
        spelled = {
            **{n: f"{p}[{unit_of[n]}]" for n, p in params.items()},
            **constants,
            **{n: f"(({scope.real}){c})" for n, c in extents.items()},
            **locals_,
        }
        recording = _Recording(spelled)
        printer = printer_for(scope.dtype, recording)
        pointers: dict[str, str] = {}  # row -> its start for the current sample
        names: set[str] = {self.dim_c[loop.dim], batch}
        declarations: list[str] = []

        def at(place: Row, index: str = "unit", writes: bool = False) -> str:
            names.add(place.c)
            if place.dim == SCALAR and loop.dim != SCALAR:
                return f"{place.c}[sample]"
            if place.c not in pointers:
                pointers[place.c] = scope.names("sample", place.c.removesuffix("_row"), "{}_sample")
                names.add(place.width)
                const = "" if writes else "const "
                declarations.append(
                    f"{const}{scope.real} *const {pointers[place.c]} = {place.c} + (size_t)sample * {place.width};"
                )
            return f"{pointers[place.c]}[{index}]"

        # over a matrix, what is read at the row is read once a row, before the loop over its columns
        per_row = [f"const {scope.real} {locals_[local]} = {at(rows[n], i)};" for local, n, i in loads if i == "row"]
        statements = [f"const {scope.real} {locals_[local]} = {at(rows[n], i)};" for local, n, i in loads if i != "row"]
        statements += [f"const {scope.real} {locals_[t]} = {printer.doprint(expr)};" for t, expr in equations]
        written = [n for n in loop.stores] + [n for n in loop.loads if n in layout.mirrors]
        for name in written:
            places = ([rows[name]] if name in loop.stores else []) + layout.mirrors.get(name, [])
            for place in places:
                if (place.c, name) in layout.written:
                    continue
                layout.written.add((place.c, name))
                index = self.index(place.dim, loop.dim)
                if name in locals_:
                    (per_row if index == "row" else statements).append(
                        f"{at(place, index, writes=True)} = {locals_[name]};"
                    )
                else:  # read only as a row: its copy is written along the first row
                    local = locals_[name + "ᵀ"]
                    statements.append(f"if (row == 0) {{ {at(place, 'col', writes=True)} = {local}; }}")
        for g in loop.gradients:
            grad = scope.names("grad_params", g.param)
            names.add(grad)
            statements.append(f"{grad}[{unit_of[g.param]}] += {printer.doprint(g.expr)};")
        identifiers = {**params, **constants, **extents, **locals_}
        names |= {identifiers[symbol] for symbol in recording.looked_up}
        targets = [e.target.name for e in loop.equations] + [f"{ADJOINT}{g.param}" for g in loop.gradients]
        return Emitted(
            "loop",
            comment_safe(", ".join(targets)),
            frozenset(names),
            dim=self.dim_c[loop.dim],
            batch=batch,
            pointers=tuple(declarations),
            statements=tuple(statements),
            row_statements=tuple(per_row),
            rows=self.dim_c[axes[0]] if axes else "",
            cols=self.dim_c[axes[1]] if axes else "",
        )

    @staticmethod
    def index(dim: str, loop_dim: str) -> str:
        """Where a value of size ``dim`` is read in a loop over ``loop_dim``: at the unit, or in a
        loop over a matrix at the unit's row (a vector beside a matrix is a column)."""
        return "row" if matrix_axes(loop_dim) and dim != loop_dim else "unit"


class _Recording(Mapping[str, str]):
    """The printer's symbol names, remembering which it looked up: the names a loop reads."""

    def __init__(self, spelled: dict[str, str]) -> None:
        self.spelled = spelled
        self.looked_up: set[str] = set()

    def __getitem__(self, key: str) -> str:
        value = self.spelled[key]
        self.looked_up.add(key)
        return value

    def __iter__(self):
        return iter(self.spelled)

    def __len__(self) -> int:
        return len(self.spelled)
