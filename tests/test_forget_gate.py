"""Forget gates are found from the equations, whatever the cell or its names."""

from __future__ import annotations

import pytest

import symgate as sg
from symgate.inspect.forget_gate import forget_bias_values, forget_gates


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lstm", {"b_f": 1.5}),
        ("lstm_pytorch", {"b_if": 1.5, "b_hf": 0.0}),  # two biases: their sum is what counts
        ("gru_pytorch", {"b_iz": 1.5, "b_hz": 0.0}),  # h' = (1 - z)*n + z*h: z keeps h
        ("mgu", {"b_f": -1.5}),  # h' = (1 - f)*h + f*h_tilde: a larger f forgets
        ("lstm_greff_cifg", {"b_i": -1.5}),  # f = 1 - i, written out
        ("lstm_slp3", None),  # k = c*f: found through the intermediate, but f has no bias
        ("janet", {"b_f": 1.5}),  # c' = sigmoid(s)*c + ...: a gate written inline
        ("lstm_greff_fgr", {"b_f": 1.5}),  # the gate is itself a state, f'
    ],
)
def test_the_forget_gate_bias_is_found_from_the_equations(name, expected):
    cell = sg.cells.get(name)
    if expected is None:
        with pytest.raises(sg.SymgateError, match=f"cell {name}: the forget gate f of state c has no bias parameter"):
            forget_bias_values(cell, 1.5)
    else:
        assert forget_bias_values(cell, 1.5) == expected


def test_names_play_no_part():
    cell = sg.parse(
        "cell renamed\ninput x: D\nstate m: H\n"
        "keep = sigmoid(A @ x + B @ m + beta)\nm' = keep*m + (1 - keep)*tanh(C @ x + b_f)\n"
    )
    [gate] = forget_gates(cell)
    assert (gate.state, gate.gate, gate.keeps, gate.biases) == ("m", "keep", 1, ("beta",))
    assert forget_bias_values(cell, 2.0) == {"beta": 2.0}


@pytest.mark.parametrize(
    "name, message",
    [
        ("elman_rnn", "cell elman_rnn has no forget gate"),
        ("lstm_greff_nfg", "cell lstm_greff_nfg has no forget gate"),  # c' = c + ...: nothing to set
        ("gru_cho", "cell gru_cho: the forget gate z of state h has no bias parameter"),
    ],
)
def test_cells_without_a_forget_gate_bias_are_refused_by_name(name, message):
    with pytest.raises(sg.SymgateError, match=message):
        forget_bias_values(sg.cells.get(name), 1.0)
