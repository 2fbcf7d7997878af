"""Cells whose backward pass shares subexpressions made of constants build and pass the gradient check.

The backward pass's CSE (``symgate.symbolic.derive``) names repeated subexpressions ``τ1, τ2, ...``,
each a vector of the size of what it reads. One made only of constants (``2*c - 1`` from
``c*(A @ h) - (1 - c)*(A @ h)``, ``1 - 2*beta`` from the Lipschitz RNN's
``(1 - β)(M + Mᵀ) + β(M - Mᵀ)``) reads no vector: it stays inline in the expressions that use it
(``δa*(2*c - 1)``), where the C compiler folds it, since every ``const`` is a C constant.
Issue 19, point 9: such a cell once failed with ``AssertionError: no size for temporary 2*c - 1``.

The hypothesis test draws cells built to make such subexpressions: a few products (``A @ h``,
``A.T @ h``, ``(A - A.T) @ h``) each used several times, weighted by ``const`` declarations,
literals and constant expressions of them, summed and subtracted, in intermediates that reuse
each other, inside elementwise functions. Each is gradient-checked in float64 against central
finite differences at :data:`TOLERANCE`. ``SYMGATE_RANDOM_CELLS`` (see tests/test_random_cells.py)
sets how many: a third as many as the random cells there, since each example compiles a kernel.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_random_cells import EXAMPLES, refusals_set_aside

import symgate as sg
from symgate.errors import InternalError
from symgate.symbolic.derive import TEMPORARY

SIZES = {"D": 3, "H": 4}
TOLERANCE = 1e-6  # relative error of the float64 gradients against central finite differences

# Issue 19, point 9: the weighted difference of one product gives the temporary `2*c - 1`.
WEIGHTED_DIFFERENCE = """\
cell k
input x: D
state h: H
const c = 0.75
a = c*(A @ h) - (1 - c)*(A @ h)
w = c*(B @ h) - (1 - c)*(B @ h)
h' = tanh(a + w + U @ x)
"""

# The Lipschitz RNN (Erichson et al., ICLR 2021) in one equation: the language has no identity
# matrix, so `- g*I` is written `- g*h`; once as a matrix expression, once with its products spelled out.
LIPSCHITZ_HEAD = """\
cell lipschitz
input x: D
state h: H
const eps = 0.03
const b = 0.75
const g = 0.001
"""
LIPSCHITZ_FORMS = {
    "matrix expression": "h' = h + eps*tanh(((1 - b)*(M + M.T) + b*(M - M.T)) @ h - g*h + U @ x + bias)\n",
    "products spelled out": (
        "h' = h + eps*tanh((1 - b)*(M @ h + M.T @ h) + b*(M @ h - M.T @ h) - g*h + U @ x + bias)\n"
    ),
}


def gradient_checked(text: str) -> sg.GradcheckReport:
    """The float64 gradient check of the cell ``text``, which must build."""
    return sg.gradcheck(sg.parse(text), SIZES, steps=3, batch=2, seed=0, tolerance=TOLERANCE)


def test_a_weighted_difference_of_one_product_builds_and_passes_the_gradient_check():
    report = gradient_checked(WEIGHTED_DIFFERENCE)
    assert report.ok, str(report)


def test_a_constant_shared_subexpression_stays_inline_and_every_temporary_has_a_size():
    derivation = sg.derive(sg.parse(WEIGHTED_DIFFERENCE))
    assert all(e.target.name in derivation.sizes for e in derivation.equations)
    assert not any(e.target.name.startswith(TEMPORARY) for e in derivation.equations)
    assert "δa_pre = δa*(2*c - 1)" in derivation.text()


@pytest.mark.parametrize("form", sorted(LIPSCHITZ_FORMS))
def test_the_lipschitz_rnn_in_one_equation_builds_and_passes_the_gradient_check(form):
    report = gradient_checked(LIPSCHITZ_HEAD + LIPSCHITZ_FORMS[form])
    assert report.ok, f"{form}\n{report}"


CONSTANTS = {"c": "0.75", "k": "-0.5", "r": "2"}
WEIGHTS = ("c", "k", "r", "(1 - c)", "(c - k)", "(2*c - 1)", "c*k", "(1 - r*c)", "0.5", "3", "(1 - 0.25)")
PRODUCTS = ("A @ h", "B @ h", "A.T @ h", "(A - A.T) @ h", "((1 - c)*(A + A.T) + c*(A - A.T)) @ h")
FUNCTIONS = ("{}", "tanh({})", "sigmoid({})", "sin({})", "softplus({})")
STEPS = (  # every one reads h, so no draw leaves the state unread
    "h' = h + 0.1*tanh({} + U @ x)",
    "h' = c*h + (1 - c)*tanh({} + U @ x + b)",
    "h' = tanh({} + U @ x) - k*h",
)


@st.composite
def weighted(draw, leaves: list[str], depth: int) -> str:
    """A sum or difference of constant-weighted ``leaves`` (products and intermediates), maybe
    inside an elementwise function, nested ``depth`` deep."""
    if depth == 0:
        return f"{draw(st.sampled_from(WEIGHTS))}*({draw(st.sampled_from(leaves))})"
    left, right = draw(weighted(leaves, depth - 1)), draw(weighted(leaves, depth - 1))
    sign = draw(st.sampled_from("+-"))
    combined = f"{left} {sign} {right}"
    if draw(st.booleans()):
        combined = f"{draw(st.sampled_from(WEIGHTS))}*({combined})"
    return draw(st.sampled_from(FUNCTIONS)).format(combined)


@st.composite
def shared_subexpression_cells(draw) -> str:
    """A cell whose few products each appear several times under constant weights."""
    products = draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=2, unique=True))
    lines: list[str] = []
    intermediates: list[str] = []
    for index in range(draw(st.integers(1, 3))):
        name = f"a{index}"
        lines.append(f"{name} = {draw(weighted(products + intermediates, draw(st.integers(1, 2))))}")
        intermediates.append(name)
    total = " + ".join(f"{draw(st.sampled_from(WEIGHTS))}*{name}" for name in intermediates)
    lines.append(draw(st.sampled_from(STEPS)).format(total))
    body = "\n".join(lines)
    read = [name for name in CONSTANTS if re.search(rf"\b{name}\b", body)]  # an unread const is refused
    head = ["cell shared", "input x: D", "state h: H", *(f"const {name} = {CONSTANTS[name]}" for name in read)]
    return "\n".join([*head, body]) + "\n"


@settings(
    max_examples=max(1, EXAMPLES // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
@given(text=shared_subexpression_cells())
def test_cells_with_constant_weighted_shared_subexpressions_pass_the_gradient_check(text):
    with refusals_set_aside():
        report = gradient_checked(text)
    assert report.ok, f"{text}\n{report}"


def test_no_assert_guards_anything_in_symgate():
    """An internal inconsistency raises InternalError (a SymgateError asking for a report), never an
    ``assert`` (skipped under ``python -O``) or a bare AssertionError."""
    found = []
    for path in sorted(Path(sg.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            raised = node.exc.func if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) else None
            if isinstance(node, ast.Assert) or (isinstance(raised, ast.Name) and raised.id == "AssertionError"):
                found.append(f"{path.name}:{node.lineno}")
    assert not found, found


def test_an_internal_error_says_it_is_a_bug_in_symgate_and_asks_for_the_cell():
    err = InternalError("the shared subexpression τ1 mixes sizes ['E', 'H']")
    assert isinstance(err, sg.SymgateError)
    assert str(err) == (
        "internal error: the shared subexpression τ1 mixes sizes ['E', 'H']. This is a bug in symgate, "
        "not in your input; please report it with the text of the cell that caused it"
    )
