"""The symgate command: list, show, build, check; exit codes."""

from __future__ import annotations

import pytest

from symgate import functions
from symgate.cli import main

NOVEL_CELL = """\
# A cell no framework ships: a leaky unit with a learned per-unit leak.
cell leaky
input x: D
state h: H
a = sigmoid(leak)
h' = a*h + (1 - a)*tanh(W @ x + U @ h + b)
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_builtin(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("elman_rnn", "gru_cho", "lstm", "lstm_peephole"):
        assert name in out


def test_show_prints_equations_shapes_and_backward_pass(capsys):
    code, out, _ = run(capsys, "show", "lstm")
    assert code == 0
    assert "W_f          (H, D)" in out and "c' = c*f + g*i" in out
    assert "δc = f*δc'_tot" in out and "δW_f += δf_pre ⊗ x" in out
    assert "Source:" in out


def test_show_latex_and_c(capsys):
    code, out, _ = run(capsys, "show", "lstm", "--latex")
    assert code == 0 and r"\sigma" in out and r"\delta" in out
    code, out, _ = run(capsys, "show", "gru_cho", "--c")
    assert code == 0 and "void sg_gru_cho_float64_backward(" in out


def test_build_writes_source_and_header(capsys, tmp_path):
    code, out, _ = run(capsys, "build", "elman_rnn", "--out", str(tmp_path))
    assert code == 0
    assert (tmp_path / "elman_rnn_float64.c").exists() and (tmp_path / "elman_rnn_float32.h").exists()
    assert "cached at" in out


def test_check_a_users_cell_file(capsys, tmp_path):
    path = tmp_path / "leaky.cell"
    path.write_text(NOVEL_CELL)
    code, out, _ = run(capsys, "check", str(path), "--sizes", "D=2,H=3")
    assert code == 0, out
    assert "gradcheck leaky" in out and "ok" in out and "float32 kernel vs float64 kernel" in out


def test_check_fails_with_exit_status_1_when_a_gradient_is_wrong(capsys, tmp_path, monkeypatch):
    """A deliberately wrong derivative rule (sigmoid' = s) must be caught by the check."""
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(functions.sigmoid, "fdiff", lambda self, argindex=1: self)
    code, out, _ = run(capsys, "check", "lstm")
    assert code == 1
    assert "FAILED" in out and "exceeds tolerance" in out


def test_user_errors_exit_2_with_a_message(capsys, tmp_path):
    code, _, err = run(capsys, "show", str(tmp_path / "nope.cell"))
    assert code == 2 and "nope.cell" in err
    code, _, err = run(capsys, "check", "lstm", "--sizes", "Q=3")
    assert code == 2 and "--sizes" in err
    with pytest.raises(SystemExit):
        main(["frobnicate"])


def test_checking_several_cells_prints_one_line_each_and_shares_sizes(capsys):
    code, out, _ = run(capsys, "check", "elman_rnn", "mut1", "--sizes", "H=5")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].startswith("ok") and "elman_rnn" in lines[0] and "D=3 H=5" in lines[0]
    assert "mut1" in lines[1] and "H=5" in lines[1] and lines[2].startswith("2 passed, 0 failed")
