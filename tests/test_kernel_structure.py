"""The shape of the generated kernels: which products run once over all steps, which run each step.

A recurrent cell's cost is the products inside the time loop. Products of inputs need no state,
so they run once over all T*B rows before the loop; the products that multiply the same vector
run as one product; matrix gradients are summed over every step by one product after the loop.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import symgate as sg
from symgate.codegen.lower import plan_kernel
from symgate.codegen.render import render, templates_digest
from symgate.frontend.cell import Equation
from symgate.frontend.functions import MatVec, MatVecT, Var
from symgate.jit.compiler import cache_key, compile_entry
from symgate.runtime.kernel import Kernel


def _split(source: str, which: str) -> tuple[str, str, str]:
    """The C of one pass: before, inside and after its time loop."""
    body = source[source.rindex(f"_{which}(int T, int B") :]  # the definition, after the declarations
    body = body[body.index("{") : body.index("\n}\n") + 1]
    loop = re.search(r"\n    for \(int t = .*?\n    }\n", body, re.S)
    return body[: loop.start()], loop.group(), body[loop.end() :]


def _calls(code: str, helper: str) -> int:
    return len(re.findall(rf"\b{helper}\(", code))


@pytest.mark.parametrize(
    ("name", "per_step"),
    [("lstm", 1), ("gru_pytorch", 1), ("lstm_peephole", 1), ("mgu", 2), ("elman_rnn", 1), ("gru_cho", 2)],
)
def test_each_step_runs_one_product_per_vector_the_recurrence_multiplies(name, per_step):
    cell = sg.cells.get(name)
    source = sg.generate(cell, "float32").c_source
    before, loop, after = _split(source, "forward")
    assert _calls(loop, "sg_gemm_packed") == per_step  # h (and r*h for the GRUs that gate it) only
    assert _calls(loop, "sg_gemm_nn") == 0
    assert _calls(before, "sg_pack_weights") == per_step  # their matrices packed for MKL once, if it is used
    assert _calls(before, "sg_gemm_nt") == 1 and "x_seq" in before  # every product of x, all steps at once
    before, loop, after = _split(source, "backward")
    assert _calls(loop, "sg_gemm_packed") == per_step
    assert _calls(before, "sg_pack_weights") == per_step
    assert _calls(loop, "sg_gemm_tn") == 0  # no weight gradient inside the loop
    assert _calls(after, "sg_gemm_nn") == 1 and "grad_x_seq" in after  # the input's gradient, all steps at once
    # the gradients of all the matrices that multiply one vector: one product over all steps
    # (two for a state: its initial value, then the sequence)
    vectors = {node.vector.name for eq in cell.equations for node in eq.expr.atoms(MatVec)}
    assert _calls(after, "sg_gemm_tn") == sum(2 if v in cell.states else 1 for v in vectors)
    assert all(f"grad_{p.name}" in after for p in cell.params if p.is_matrix)


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
    source = render(cell, split, plan_kernel(cell, split), "float64")
    assert _calls(_split(source.c_source, "backward")[1], "sg_gemm_nn") == 4  # one product per matrix
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
