"""The C of one step: each pass's time loop, cut from the generated file unchanged."""

from __future__ import annotations

import symgate as sg
from symgate.inspect.step_source import step_listing, step_sources


def test_every_builtin_cell_shows_the_time_loop_of_both_passes():
    for name in sg.cells.names():
        cell = sg.cells.get(name)
        lines = sg.generate(cell).c_source.splitlines()
        forward, backward = step_sources(cell)
        for step in (forward, backward):
            assert step.code.startswith("for (int t") and step.code.endswith("}"), name
            assert lines[step.first_line - 1].strip() == step.code.splitlines()[0], name
            assert lines[step.last_line - 1].strip() == "}", name
        assert forward.last_line < backward.first_line, name


def test_the_listing_says_where_each_step_is_and_what_it_costs():
    cell = sg.cells.get("elman_rnn")
    listing = step_listing(cell, "float32")
    assert "of elman_rnn (float32)" in listing and "elman_rnn_float32.c" in listing
    assert "const float h_next = tanhf(U_h + W_x + b[unit]);" in listing
    assert f"/* forward, per step and sample: {cell.operations()} */" in listing
    assert f"/* backward, per step and sample: {sg.derive(cell).operations()} */" in listing
