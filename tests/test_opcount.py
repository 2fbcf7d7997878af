"""Operation counts of one step, read off the forward and backward equations."""

from __future__ import annotations

import symgate as sg
from symgate.symbolic.opcount import OpCount

EVERY_KIND = """\
cell every_kind
input x: D
state h: H
a = W @ x + U @ h
h' = relu(a/(1 + h**2)) - 2*h**(-3) + sqrt(mean(a)) + W @ x
"""


def test_lstm_forward_step_counts_each_gate_and_the_cell_update():
    # four gates: 2 adds and 1 call each; c' = c*f + g*i: 1 add, 2 multiplies; h' = o*tanh(c')
    assert sg.cells.get("lstm").operations() == OpCount(adds=9, multiplies=3, transcendental=5, products=8)


def test_lstm_backward_step_counts_adjoints_accumulations_and_outer_products():
    counts = sg.derive(sg.cells.get("lstm")).operations()
    # tanh(c') once (τ1), the gate derivatives in terms of their outputs, 4 bias accumulations
    assert counts == OpCount(adds=16, multiplies=16, transcendental=1, products=8, outer_products=8)


def test_divides_powers_comparisons_reductions_and_a_shared_product():
    counts = sg.parse(EVERY_KIND).operations()
    # adds: W@x + U@h, the 4-term sum, 1 + h², mean(a); multiplies: h², h³ in -2/h³;
    # divides: a/(...), -2/h³; sqrt is a call, relu a comparison; W @ x appears twice, counted once
    assert counts == OpCount(adds=6, multiplies=3, divides=2, transcendental=1, comparisons=1, products=2)


def test_counts_read_as_a_sentence_naming_only_what_occurs():
    assert str(sg.cells.get("elman_rnn").operations()) == (
        "2 adds, 0 multiplies, 1 transcendental call per unit; 2 matrix-vector products"
    )
    text = str(sg.derive(sg.parse(EVERY_KIND)).operations())
    assert "divides" in text and "comparisons" in text and "2 outer products" in text


def test_each_pass_ends_with_its_count_in_text_and_latex():
    cell = sg.cells.get("lstm")
    derivation = sg.derive(cell)
    assert cell.describe().splitlines()[-1] == f"  forward, per step and sample: {cell.operations()}"
    assert str(derivation).splitlines()[-1] == f"backward, per step and sample: {derivation.operations()}"
    assert cell.latex().endswith(rf"&\text{{forward, per step and sample: {cell.operations()}}}\end{{aligned}}")
    assert rf"\text{{backward, per step and sample: {derivation.operations()}}}" in derivation.latex()
