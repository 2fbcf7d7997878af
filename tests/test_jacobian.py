"""Step Jacobians: symbolic blocks ∂s'/∂r, their structure, and their numbers at a point."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgate as sg
from symgate.cli import main
from symgate.frontend.functions import dims_of
from symgate.verify import reference

V = sg.Var


def test_lstm_cell_state_carries_through_the_forget_gate_alone():
    block = sg.derive(sg.cells.get("lstm")).jacobian("c'", "c")
    assert block.structure == "diagonal"
    assert block.diagonal == V("f") and not block.map.paths
    assert str(block) == "∂c'/∂c (H × H): diagonal\n    diag(f)"
    assert block._repr_latex_() == r"$\frac{\partial c'}{\partial c} = \operatorname{diag}\left(f\right)$"


def test_lstm_paths_through_h_are_products_with_the_recurrent_matrices():
    d = sg.derive(sg.cells.get("lstm"))
    assert d.jacobian("c'", "h").structure == "products through U_f, U_g, U_i"
    assert d.jacobian("h'", "h").structure == "products through U_f, U_g, U_i, U_o"
    h_from_c = d.jacobian("h", "c")  # the new state may be named without its prime
    assert h_from_c.new == "h'" and h_from_c.structure == "diagonal"
    assert h_from_c.diagonal == V("f") * V("o") * (1 - sympy.tanh(V("c'")) ** 2)
    assert [(b.new, b.old) for b in d.jacobians()] == [("h'", "h"), ("h'", "c"), ("c'", "h"), ("c'", "c")]


def test_gru_interpolation_gives_a_diagonal_plus_nested_products():
    block = sg.derive(sg.cells.get("gru_cho")).jacobian("h'", "h")
    assert block.diagonal == V("z")
    assert block.structure == "diagonal plus products through U_h, U_h·U_r, U_z"
    assert "U_h · (diag(r) + diag(h*r*(1 - r)) · U_r)" in block.text()


def test_simple_rnn_has_no_diagonal_only_the_recurrent_matrix():
    block = sg.derive(sg.cells.get("elman_rnn")).jacobian("h'", "h")
    assert block.structure == "products through U"
    assert block.map.terms() == ["diag(1 - h'**2) · U"]


def test_identity_and_zero_blocks():
    cell = sg.parse("cell t\ninput x: D\nstate h: H, c: H\nh' = tanh(W @ x + U @ h)\nc' = c + h'\n")
    d = sg.derive(cell)
    assert d.jacobian("c'", "c").structure == "identity"
    assert d.jacobian("h'", "c").structure == "zero" and d.jacobian("h'", "c").text().endswith("0")
    assert d.jacobian("c'", "h").structure == "products through U"


@pytest.mark.parametrize("name", sg.cells.names())
def test_every_block_equals_finite_differences_of_the_reference_step(name):
    assert_blocks_equal_finite_differences(sg.cells.get(name))


MATRIX_OPERATIONS = """\
cell matrix_operations
input x: D
state S: K x V, h: K, g: V
a = tanh(W_a @ x)
b = tanh(W_b @ x)
S' = sigmoid(h) * S + tanh(S) * g.T + outer(a, S.T @ h) + b.T * mean(S)
h' = tanh(S @ g + rowsum(S) + a * sum(S))
g' = tanh(colsum(S) * g + S.T @ h)
"""


def test_every_operation_on_a_matrix_state_equals_finite_differences():
    """Columns and rows beside a matrix, both products with it, rowsum, colsum, sum and mean of it."""
    assert_blocks_equal_finite_differences(sg.parse(MATRIX_OPERATIONS))


def assert_blocks_equal_finite_differences(cell: sg.Cell) -> None:
    """The symbolic blocks, evaluated, against central differences of the NumPy reference; a matrix
    state (B, K, V) is perturbed unit by unit, its units row after row."""
    rng = np.random.default_rng(0)
    sizes = {dim: 3 + i for i, dim in enumerate(cell.dims)} | {"1": 1}
    params = {p.name: rng.uniform(-0.6, 0.6, tuple(sizes[d] for d in p.shape)) for p in cell.params}
    extent = {s: tuple(sizes[d] for d in dims_of(size)) for s, size in cell.states.items()}
    state = {s: rng.uniform(-0.8, 0.8, (2, *extent[s])) for s in cell.states}
    inputs = {x: rng.standard_normal((2, sizes[d])) for x, d in cell.inputs.items()}

    def step(init):
        states, _ = reference.forward(cell, {x: a[None] for x, a in inputs.items()}, params, init)
        return {s: a[0] for s, a in states.items()}

    for block in sg.derive(cell).jacobians():
        new, old, e = block.new.removesuffix("'"), block.old, 1e-6
        numeric = np.zeros((2, np.prod(extent[new], dtype=int), np.prod(extent[old], dtype=int)))
        for j in range(numeric.shape[2]):
            up, down = dict(state), dict(state)
            up[old], down[old] = state[old].copy(), state[old].copy()
            up[old].reshape(2, -1)[:, j] += e
            down[old].reshape(2, -1)[:, j] -= e
            numeric[:, :, j] = (step(up)[new] - step(down)[new]).reshape(2, -1) / (2 * e)
        np.testing.assert_allclose(block.evaluate(params, state, inputs), numeric, atol=1e-8, err_msg=block.title())


def test_deltanet_memory_passes_back_the_identity_less_the_delta_rule_through_its_key():
    """S' = S + β k (v - Sᵀk)ᵀ: δS' = δS - β k kᵀ δS, the identity plus a row (𝟏⊗I) of kᵀ δS (kᵀ⊗I)."""
    block = sg.derive(sg.cells.get("deltanet")).jacobian("S'", "S")
    assert block.structure == "diagonal plus products through (𝟏⊗I)·(kᵀ⊗I)"
    assert str(block) == "∂S'/∂S (K·V × K·V): diagonal plus products through (𝟏⊗I)·(kᵀ⊗I)\n    I\n" + (
        "  + diag(-beta*k) · (𝟏⊗I) · (kᵀ⊗I)"
    )
    assert block.rows == block.cols == "K x V"
    assert block.latex().endswith(r"\left(\mathbf{1} \otimes I\right) \, \left(k^{\top} \otimes I\right)")


def test_fast_weights_hidden_state_reads_the_memory_through_its_product_with_h0():
    """h' = tanh(z + A' @ h0), A' = λA + η h hᵀ: δA ↦ δA h0 (I⊗h0ᵀ), scaled by λ, and from h both
    through W and through the memory's update."""
    d = sg.derive(sg.cells.get("fast_weights"))
    from_memory = d.jacobian("h'", "A")
    assert from_memory.structure == "products through (I⊗h0ᵀ)"
    assert from_memory.text().splitlines()[1:] == ["    diag(lambda*(1 - h'**2)) · (I⊗h0ᵀ)"]
    assert d.jacobian("h'", "h").structure == "products through A'·W, (I⊗h0ᵀ)·(𝟏⊗I), (I⊗h0ᵀ)·(I⊗𝟏), W"
    assert d.jacobian("A'", "h").map.terms() == ["diag(eta*h) · (𝟏⊗I)", "diag(eta*hᵀ) · (I⊗𝟏)"]
    assert d.jacobian("A'", "A").structure == "diagonal"


def test_show_explains_the_kronecker_maps_for_a_cell_with_a_matrix_only(capsys):
    assert main(["show", "deltanet", "--jacobian"]) == 0
    out = capsys.readouterr().out
    assert "(I⊗vᵀ) is δS ↦ δS v" in out and "∂S'/∂S (K·V × K·V): diagonal plus products" in out
    assert main(["show", "lstm", "--jacobian"]) == 0
    assert "⊗" not in capsys.readouterr().out


def test_a_block_from_a_per_sample_scalar_is_a_column():
    d = sg.derive(sg.cells.get("xlstm_mlstm"))
    assert d.jacobian("C'", "m").structure == "column" and d.jacobian("m'", "m").structure == "diagonal"


def test_unknown_states_are_named_in_the_error():
    d = sg.derive(sg.cells.get("lstm"))
    with pytest.raises(sg.SymgateError, match=r"old_state 'q' is not a state of cell lstm; its states are h, c"):
        d.jacobian("h'", "q")
    with pytest.raises(sg.CellNameError, match=r"new_state 'y' is not a state of cell lstm"):
        d.jacobian("y'", "h")


def test_evaluating_without_a_needed_array_says_which():
    cell = sg.cells.get("lstm")
    block = sg.derive(cell).jacobian("c'", "c")
    with pytest.raises(sg.ArrayError, match=r"∂c'/∂c of cell lstm: params lacks \['W_i', 'U_i'"):
        block.evaluate({}, {"h": np.zeros((1, 2))}, {"x": np.zeros((1, 2))})
    params = {p.name: np.zeros(2 if len(p.shape) == 1 else (2, 2)) for p in cell.params}
    with pytest.raises(sg.ArrayError, match=r"∂c'/∂c of cell lstm: state lacks \['c'\]"):
        block.evaluate(params, {"h": np.zeros((1, 2))}, {"x": np.zeros((1, 2))})


def test_a_matrix_state_without_its_batch_axis_is_named_in_the_error():
    cell = sg.cells.get("deltanet")
    params = {p.name: np.zeros((1 if p.shape[0] == "1" else 3, 2)) for p in cell.params}
    with pytest.raises(sg.ArrayError, match=r"cell deltanet: S has shape \(3, 3\), not \(B, K, V\)"):
        sg.derive(cell).jacobian("S'", "S").evaluate(params, {"S": np.zeros((3, 3))}, {"x": np.zeros((1, 2))})
