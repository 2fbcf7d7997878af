"""Names symgate keeps for itself: a user's name never collides with one, in the cell language
or in the generated C."""

from __future__ import annotations

import pytest

import symgate as sg

GRU_WITH_HELPER_NAMES = """\
cell gru_named_like_helpers
input x: D
state h: H
r = sigmoid(W_r @ x + sg_add @ h + b_r)
z = sigmoid(W_z @ x + SG_BLAS_MIN @ h + b_z)
n = tanh(W_n @ x + sg_gemm_nn @ (r*h) + SYMGATE_MKL)
h' = z*h + (1 - z)*n
"""


def test_a_parameter_may_be_named_like_a_helper_the_kernels_call():
    """The recurrent matrices' gradients are summed through ``sg_add``: with a parameter of that
    name the kernel did not compile before (22b96a5: "called object 'sg_add' is not a function")."""
    cell = sg.parse(GRU_WITH_HELPER_NAMES)
    assert "sg_add(" in sg.generate(cell).c_source  # the helper is there, beside the parameter
    report = sg.gradcheck(cell, sizes={"D": 2, "H": 3}, steps=3, batch=2, seed=0)
    assert report.ok, str(report)


@pytest.mark.parametrize("role", ["inputs", "states"])
def test_a_keyword_is_refused_as_a_name_from_python_as_from_text(role):
    """``const`` is a keyword of the text: before (22b96a5) ``define`` took it as a state's name
    and the cell's ``text()`` did not parse back."""
    x, h, W, U = sg.symbols("x h W U")
    declared = {"inputs": {"x": "D"}, "states": {"h": "H"}}
    declared[role] = {"const": "H"} | declared[role]
    with pytest.raises(sg.CellNameError, match="invalid name 'const': it is a keyword of the cell language"):
        sg.define("c", **declared, equations=[(sg.next_state("h"), W @ x + U @ h)])
