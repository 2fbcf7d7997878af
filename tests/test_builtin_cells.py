"""The built-in cells: exactly the reference equations, and gradient-checked."""

from __future__ import annotations

import pytest
import sympy

import symgate as sg

V = sg.Var
BUILTINS = ["elman_rnn", "gru_cho", "lstm", "lstm_peephole"]


def test_the_first_built_in_cells_ship():
    assert set(BUILTINS) <= set(sg.cells.names())


def test_builtin_files_are_readable_examples_with_provenance():
    for name in BUILTINS:
        text = sg.cells.path(name).read_text()
        assert text.startswith("# ") and f"cell {name}" in text
        assert "Source:" in sg.cells.get(name).doc


def expressions(name: str) -> dict[str, sympy.Expr]:
    return {e.target.name: e.expr for e in sg.cells.get(name).equations}


def test_peephole_gates_see_the_cell_states_of_the_reference():
    eq = expressions("lstm_peephole")
    assert eq["i"].has(V("p_i") * V("c")) and eq["f"].has(V("p_f") * V("c"))
    assert eq["o"].has(V("p_o") * V("c'"))  # the output gate peeks at the updated cell
    assert not eq["g"].has(V("p_i")) and len(sg.cells.get("lstm_peephole").params) == 15


def test_gru_cho_resets_before_the_product_and_keeps_with_z():
    eq = expressions("gru_cho")
    assert eq["U_h_arg"] == V("r") * V("h")
    assert eq["h'"] == V("z") * V("h") + (1 - V("z")) * V("h_tilde")
    assert len(sg.cells.get("gru_cho").params) == 6


def test_parameter_counts_match_the_reference_table():
    counts = {name: len(sg.cells.get(name).params) for name in BUILTINS}
    assert counts == {"elman_rnn": 3, "gru_cho": 6, "lstm": 12, "lstm_peephole": 15}


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize(
    ("sizes", "steps", "batch", "seed"),
    [
        ({"D": 3, "H": 4}, 5, 2, 0),
        ({"D": 5, "H": 2}, 4, 1, 1),
        ({"D": 4, "H": 4}, 3, 3, 2),
        ({"D": 2, "H": 7}, 6, 2, 3),
    ],
)
def test_gradients_match_finite_differences(name, sizes, steps, batch, seed):
    """Float64 gradients within 1e-6 relative error of 4th-order central differences."""
    report = sg.gradcheck(sg.cells.get(name), sizes, steps=steps, batch=batch, seed=seed)
    assert report.ok, str(report)
    assert report.max_rel_error <= 1e-6
    assert report.forward_rel_error <= 1e-13  # the C forward pass against the NumPy reference


@pytest.mark.parametrize("name", BUILTINS)
def test_float32_kernels_agree_with_float64(name):
    report = sg.gradcheck(sg.cells.get(name), {"D": 3, "H": 5}, float32=True, seed=4)
    assert report.float32_rel_error is not None and report.float32_rel_error <= 1e-4, str(report)
