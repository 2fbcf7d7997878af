"""The shape of the generated kernels: which products run once over all steps, which run each step.

A recurrent cell's cost is the products inside the time loop. Products of inputs need no state,
so they run once over all T*B rows before the loop; the products that multiply the same vector
run as one product; matrix gradients are summed over every step by one product after the loop.
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache

import numpy as np
import pytest

import symgate as sg
from symgate.codegen.lower import GradientProduct, KernelPlan, Product, StackProduct, plan_kernel
from symgate.codegen.render import render, templates_digest
from symgate.export.library import render_export
from symgate.frontend.cell import Equation
from symgate.frontend.functions import MatVec, MatVecT, Var
from symgate.jit.compiler import cache_key, compile_entry
from symgate.runtime.kernel import Kernel
from symgate.symbolic.derive import Derivation

PER_STEP = [("lstm", 1), ("gru_pytorch", 1), ("lstm_peephole", 1), ("mgu", 2), ("elman_rnn", 1), ("gru_cho", 2)]
"""Built-in cells and the number of vectors their recurrence multiplies: h, and r*h for the GRUs
that gate it."""


@cache
def planned(name: str) -> tuple[sg.Cell, Derivation, KernelPlan]:
    """A built-in cell, derived and planned once for the tests of its plan and of its C."""
    cell = sg.cells.get(name)
    derivation = sg.derive(cell)
    return cell, derivation, plan_kernel(cell, derivation)


def _products(ops: tuple, kind: type) -> list:
    return [op for op in ops if isinstance(op, kind)]


@pytest.mark.parametrize(("name", "per_step"), PER_STEP)
def test_each_step_runs_one_product_per_vector_the_recurrence_multiplies(name, per_step):
    cell, derivation, plan = planned(name)
    matrices_of: dict[str, set[str]] = {}  # vector -> the matrices that multiply it
    for eq in cell.equations:
        for node in eq.expr.atoms(MatVec):
            matrices_of.setdefault(node.vector.name, set()).add(node.matrix.name)
    (x,) = cell.inputs

    forward = plan.forward
    step = _products(forward.step, StackProduct)
    assert len(step) == per_step and not _products(forward.step, Product)  # h (and r*h) only
    assert all(not op.stack.hoisted and op.stack.vector not in cell.inputs for op in step)
    (before,) = forward.before  # every product of x, all steps at once
    assert isinstance(before, StackProduct) and before.stack.hoisted and not before.transposed
    assert before.stack.vector == x and {m.matrix for m in before.stack.members} == matrices_of[x]
    assert not _products(forward.after, StackProduct)

    backward = plan.backward
    step = _products(backward.step, StackProduct)
    assert len(step) == per_step and not _products(backward.step, Product)
    assert all(op.transposed and op.stack.vector not in cell.inputs for op in step)
    assert not _products(backward.step, GradientProduct) and not backward.before  # no weight gradient inside the loop
    # the input's gradient, all steps at once
    (input_gradient,) = _products(backward.after, StackProduct)
    assert input_gradient.transposed and input_gradient.stack.vector == x
    assert input_gradient.out == derivation.input_adjoints[x].name
    assert not _products(backward.after, Product)
    # the gradients of all the matrices that multiply one vector: one product over all steps
    gradients = _products(backward.after, GradientProduct)
    assert {op.stack.vector: {m.matrix for m in op.stack.members} for op in gradients} == matrices_of
    assert len(gradients) == len(matrices_of)
    summed = {m.matrix for op in gradients for m in op.stack.members}
    assert summed == {p.name for p in cell.params if p.is_matrix}


def _split(source: str, which: str) -> tuple[str, str, str]:
    """The C of one pass: before, inside and after its time loop."""
    body = source[source.rindex(f"_{which}(int T, int B") :]  # the definition, after the declarations
    body = body[body.index("{") : body.index("\n}\n") + 1]
    loop = re.search(r"\n    for \(int t = .*?\n    }\n", body, re.S)
    return body[: loop.start()], loop.group(), body[loop.end() :]


def _calls(code: str, helper: str) -> int:
    return len(re.findall(rf"\b{helper}\(", code))


@pytest.mark.parametrize(("name", "per_step"), PER_STEP)
def test_the_c_packs_each_step_product_once_and_sums_a_state_gradient_from_its_initial_value(name, per_step):
    """How the C carries out the plan's products, which the plan leaves to the renderer: the matrices
    of each product made at every step are packed once per call, before the time loop (for MKL, if
    it is used), and a matrix gradient over a state's vector is summed over the state before each
    step, the initial one then the sequence (sg_gemm_tn_previous, which pairs them for any lengths).
    These are facts of the C text, so this test reads it."""
    cell, derivation, plan = planned(name)
    source = render(cell, derivation, plan, "float32").c_source
    for which in ("forward", "backward"):
        before, loop, _ = _split(source, which)
        assert _calls(loop, "sg_gemm_packed") == per_step
        assert _calls(before, "sg_pack_weights") == per_step
    vectors = {node.vector.name for eq in cell.equations for node in eq.expr.atoms(MatVec)}
    after = _split(source, "backward")[2]
    assert _calls(after, "sg_gemm_tn") == sum(v not in cell.states for v in vectors)
    assert _calls(after, "sg_gemm_tn_previous") == sum(v in cell.states for v in vectors)


def test_a_product_sum_split_apart_still_gives_the_same_gradients(tmp_path, monkeypatch):
    """If the sum Σ Uₖᵀ @ δₖ does not sit in one equation, each product runs on its own."""
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    cell = sg.cells.get("lstm")
    derivation = sg.derive(cell)
    equations, sizes = [], dict(derivation.sizes)
    for eq in derivation.equations:
        if eq.target.name == "δh":
            terms = [a for a in eq.expr.args if isinstance(a, MatVecT)]
            part = Var("δh_part")
            equations.append(Equation(part, terms[0] + terms[1], "adjoint"))
            equations.append(Equation(eq.target, eq.expr - terms[0] - terms[1] + part, "adjoint"))
            sizes["δh_part"] = "H"
        else:
            equations.append(eq)
    split = dataclasses.replace(derivation, equations=tuple(equations), sizes=sizes)
    plan = plan_kernel(cell, split)
    products = _products(plan.backward.step, Product)  # one product per matrix
    assert sorted(op.matrix for op in products) == ["U_f", "U_g", "U_i", "U_o"]
    assert not [op for op in plan.backward.step if isinstance(op, StackProduct) and op.stack.vector == "h"]
    source = render(cell, split, plan, "float64")
    kernel = Kernel(
        cell, "float64", compile_entry(source, cache_key("split " + cell.text(), "float64", templates_digest()))
    )
    reference = sg.build(cell)
    rng = np.random.default_rng(0)
    x, dh = rng.standard_normal((5, 3, 4)), rng.standard_normal((5, 3, 6))
    params = reference.init_params({"D": 4, "H": 6}, seed=2)
    expected = reference.backward(reference.forward(x, params), {"h": dh})
    got = kernel.backward(kernel.forward(x, params), {"h": dh})
    for name, value in expected.params.items():
        np.testing.assert_allclose(got.params[name], value, rtol=1e-12, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(got.inputs["x"], expected.inputs["x"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.init["h"], expected.init["h"], rtol=1e-12, atol=1e-14)


DEEP = """cell deep
input x: D
state h: H
a1 = tanh(W @ x + U @ h)
a2 = tanh(V @ a1)
a3 = tanh(V @ a2) * h
h' = tanh(V @ a3 + h)
"""
"""Three products by V in one step, each waiting for the one before: three stacks, one matrix."""


def _code(c_text: str) -> str:
    """C without its comments, so that only statements name the parameters."""
    return re.sub(r"/\*.*?\*/", "", c_text, flags=re.S)


def test_products_by_the_same_matrix_read_one_packed_copy_of_it():
    """V is packed (transposed for the forward products, copied for the backward ones) once per
    call, into one buffer of the workspace, which all three products of each step read: in the
    kernels and in the exported library alike."""
    cell = sg.parse(DEEP)
    derivation = sg.derive(cell)
    kernel = render(cell, derivation, plan_kernel(cell, derivation), "float64").c_source
    library = render_export(cell, dtype="float64")
    exported = library.files[f"{library.stem}.c"]
    for source, blas_packings in ((kernel, 2), (exported, 0)):  # the library links no BLAS
        for which in ("forward", "backward", "infer"):
            before, loop, _ = (_code(part) for part in _split(source, which))
            assert len(re.findall(r"\bV\b", before)) == 1, which  # one sg_pack_t or memcpy of V
            assert len(re.findall(r"\*const \w+_weights = ", before)) == 2, which  # U's copy and V's
            assert _calls(before, "sg_pack_weights") == blas_packings, which
            assert _calls(loop, "sg_gemm_packed") + _calls(loop, "sg_gemm_nn") == 4, which  # U @ h, then V thrice


def test_gradients_of_a_cell_with_products_by_the_same_matrix_check():
    report = sg.gradcheck(sg.parse(DEEP), {"D": 3, "H": 4}, steps=3, batch=2, taylor_check=False)
    assert report.ok, report
