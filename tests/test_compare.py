"""Comparing two cells: declarations, parameters, forward equations and backward terms."""

from __future__ import annotations

import symgate as sg
from symgate.inspect.compare import compare


def changes(diff, title: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    return {c.name: (c.added, c.removed) for c in diff.section(title).changes}


def test_peepholes_add_terms_to_the_gates_and_a_path_into_the_cell_state_adjoint():
    diff = compare(sg.cells.get("lstm"), sg.cells.get("lstm_peephole"))
    assert [(c.name, c.before, c.after) for c in diff.section("parameters").changes] == [
        ("p_i", None, "p_i (H)"),
        ("p_f", None, "p_f (H)"),
        ("p_o", None, "p_o (H)"),
    ]
    assert changes(diff, "forward equations") == {"i": (("c*p_i",), ()), "f": (("c*p_f",), ()), "o": (("c'*p_o",), ())}
    backward = changes(diff, "backward equations (temporaries written out)")
    assert backward == {"δc'_tot": (("p_o*δo_pre",), ()), "δc": (("p_f*δf_pre", "p_i*δi_pre"), ())}
    assert changes(diff, "parameter gradients") == {"δp_i": ((), ()), "δp_f": ((), ()), "δp_o": ((), ())}
    assert diff.section("forward equations").same == ("g", "c'", "h'")
    text = str(diff)
    assert text.startswith("lstm → lstm_peephole\n")
    assert "  ~ δc: adds p_f*δf_pre, p_i*δi_pre" in text and "      lstm: δc = f*δc'_tot" in text
    assert "  + only in lstm_peephole: δp_o += c'*δo_pre" in text


def test_the_two_gru_conventions_differ_only_in_which_way_z_points():
    diff = compare(sg.cells.get("gru_cho"), sg.cells.get("gru_chung"))
    assert [c.name for c in diff.section("forward equations").changes] == ["h'"]
    assert not diff.section("parameters").changes and not diff.section("parameter gradients").changes
    assert changes(diff, "forward equations")["h'"] == (("h*(1 - z)", "h_tilde*z"), ("h_tilde*(1 - z)", "h*z"))


def test_declarations_and_equations_only_one_cell_has():
    diff = compare(sg.cells.get("elman_rnn"), sg.cells.get("mgu"))
    assert not diff.identical
    declared = {c.name: (c.before, c.after) for c in diff.section("inputs, states and outputs").changes}
    assert declared == {}  # both read x (D) and carry h (H)
    forward = {c.name: (c.before, c.after) for c in diff.section("forward equations").changes}
    assert forward["f"] == (None, "f = sigmoid(b_f + U_f @ h + W_f @ x)")
    assert "  - only in elman_rnn: U (H, H)" in str(diff)


def test_a_cell_against_itself_or_its_own_file_has_no_differences(tmp_path):
    path = tmp_path / "lstm.cell"
    path.write_text(sg.cells.get("lstm").text())
    diff = compare(sg.cells.get("lstm"), sg.load(path))
    assert diff.identical and str(diff).splitlines()[0].endswith(": no differences")
    assert str(path) in str(diff).splitlines()[0]  # same names: the files tell them apart
    assert diff._repr_html_().startswith("<table><caption>")
