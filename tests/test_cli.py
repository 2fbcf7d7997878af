"""The symgate command: list, show, build, check; exit codes."""

from __future__ import annotations

import re
import sys

import pytest

import symgate as sg
from symgate.cli import main
from symgate.frontend import functions

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
    assert r"\text{forward, per step and sample: 9 adds" in out and r"\text{backward, per step and sample" in out
    code, out, _ = run(capsys, "show", "gru_cho", "--c", "--full")
    assert code == 0 and out == sg.generate(sg.cells.get("gru_cho")).c_source


def test_show_c_prints_the_time_loop_of_each_pass_with_its_place_and_cost(capsys):
    code, out, _ = run(capsys, "show", "lstm", "--c")
    source = sg.generate(sg.cells.get("lstm")).c_source.splitlines()
    headings = re.findall(r"/\* (\w+) step: lines (\d+)-(\d+) of lstm_float64.c, in (\w+) \*/", out)
    assert code == 0 and [(h[0], h[3]) for h in headings] == [
        ("forward", "sg_lstm_float64_forward"),
        ("backward", "sg_lstm_float64_backward"),
    ]
    for name, first, last, _ in headings:
        loop = "\n".join(line.strip() for line in source[int(first) - 1 : int(last)])
        assert loop in "\n".join(line.strip() for line in out.splitlines())
        assert source[int(first) - 1].strip().startswith("for (int t")
        assert f"/* {name}, per step and sample: " in out
    assert "const double d_c = f*d_c_next_tot;" in out and "void sg_lstm" not in out


def test_show_jacobian_prints_every_block(capsys):
    code, out, _ = run(capsys, "show", "lstm", "--jacobian")
    assert code == 0
    assert "∂c'/∂c (H × H): diagonal\n    diag(f)" in out and "∂h'/∂h (H × H): products through U_f" in out
    assert out.count("∂") >= 4 * 2
    code, out, _ = run(capsys, "show", "gru_cho", "--jacobian", "--latex")
    assert code == 0 and out.startswith(r"\frac{\partial h'}{\partial h} = \operatorname{diag}\left(z\right)")


def test_show_options_that_do_not_go_together(capsys):
    code, _, err = run(capsys, "show", "lstm", "--full")
    assert code == 2 and "--full goes with --c" in err
    code, _, err = run(capsys, "show", "lstm", "--c", "--jacobian")
    assert code == 2 and "choose one" in err


def test_flow_writes_the_table_and_the_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out_file = tmp_path / "plots" / "flow.png"
    code, out, _ = run(capsys, "flow", "elman_rnn", "lstm", "--steps", "30", "--samples", "2", "--out", str(out_file))
    assert code == 0
    assert out_file.read_bytes().startswith(b"\x89PNG") and f"wrote {out_file}" in out
    table = out_file.with_suffix(".csv").read_text().splitlines()
    assert table[0] == "cell,distance,geometric_mean,min,max" and len(table) == 1 + 2 * 31
    assert "distance k   elman_rnn        lstm" in out and "per step" in out


def test_flow_without_matplotlib_prints_the_table_and_how_to_get_the_plot(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    out_file = tmp_path / "flow.png"
    code, out, _ = run(capsys, "flow", "gru_cho", "--steps", "5", "--samples", "1", "--out", str(out_file))
    assert code == 0 and not out_file.exists() and out_file.with_suffix(".csv").exists()
    assert "distance k" in out
    assert 'no plot: plotting gradient flow needs matplotlib: pip install "symgate[plot]"' in out


def test_flow_forget_bias_applies_where_there_is_a_forget_gate(capsys, tmp_path):
    out_file = str(tmp_path / "flow.svg")
    code, out, _ = run(capsys, "flow", "elman_rnn", "lstm", "--steps", "4", "--forget-bias", "2", "--out", out_file)
    assert code == 0 and "note: cell elman_rnn has no forget gate" in out and "forget-gate bias b_f = 2" in out
    code, _, err = run(capsys, "flow", "elman_rnn", "gru_cho", "--forget-bias", "2", "--out", out_file)
    assert code == 2 and "elman_rnn has no forget gate" in err and "forget gate z of state h has no bias" in err
    code, _, err = run(capsys, "flow", "lstm", "--out", str(tmp_path / "flow.txt"))
    assert code == 2 and "flow.txt: a plot must be a .png, .svg or .pdf file" in err


def test_diff_shows_what_the_peepholes_change(capsys):
    code, out, _ = run(capsys, "diff", "lstm", "lstm_peephole")
    assert code == 0
    assert "  ~ i: adds c*p_i" in out and "  ~ δc: adds p_f*δf_pre, p_i*δi_pre" in out
    assert "  + only in lstm_peephole: p_o (H)" in out


def test_build_writes_source_and_header(capsys, tmp_path):
    code, out, _ = run(capsys, "build", "elman_rnn", "--out", str(tmp_path))
    assert code == 0
    assert (tmp_path / "elman_rnn_float64.c").exists() and (tmp_path / "elman_rnn_float32.h").exists()
    assert (tmp_path / "symgate_runtime.h").exists()  # which the .c includes
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


def test_check_with_the_complex_step_adds_it_to_each_cells_line_and_report(capsys):
    code, out, _ = run(capsys, "check", "elman_rnn", "mut1", "--sizes", "H=3", "--complex-step")
    lines = out.strip().splitlines()
    assert code == 0 and all(re.search(r"complex step \d\.\de-1\d ", line) for line in lines[:2]), out
    code, out, _ = run(capsys, "check", "mut1", "--sizes", "H=3", "--complex-step")
    assert code == 0 and "complex step (h = 1e-20) vs backward kernel: max normwise rel err" in out


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


def test_a_bug_in_symgate_is_one_line_and_exit_3(capsys, monkeypatch):
    """An exception that is not a SymgateError is a bug: one line that says so, no traceback."""

    def broken(*args, **kwargs):
        raise RuntimeError("an invariant broke")

    monkeypatch.delenv("SYMGATE_DEBUG", raising=False)
    monkeypatch.setattr(sg.cells, "names", broken)
    code, out, err = run(capsys, "list")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "a bug in symgate" in err and "RuntimeError: an invariant broke" in err
    monkeypatch.setenv("SYMGATE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="an invariant broke"):
        main(["list"])


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """`symgate show lstm | true`: the reader is gone before the first line; no BrokenPipeError traceback."""
    import subprocess

    script = f"{sys.executable} -m symgate.cli show lstm | true"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"symgate {sg.__version__}\n"


SUBCOMMANDS = {  # each command, the start of its description, and the defaults its --help must show
    "list": ("List the built-in cells", []),
    "show": ("Print a cell's equations", []),
    "build": ("Generate a cell's C kernels", ["the kernels' precision (default: both)"]),
    "export": ("Write a cell as a standalone C99 library", ["the library's precision (default: float64)"]),
    "check": ("Check that a cell's compiled backward pass", ["(default: 5)", "(default: 2)", "(default: 0)"]),
    "flow": (
        "Measure, on random sequences",
        ["(default: 100)", "(default: 4)", "(default: 1.0)", "(default: flow.png)"],
    ),
    "diff": ("Compare two cells", []),
    "cache": ("List, verify or clear the compiled kernels", []),
    "cache list": ("List every entry of the cache", []),
    "cache verify": ("Check every entry against the checksums", []),
    "cache clear": ("Remove every entry, or one cell's", []),
}


def test_top_level_help_describes_symgate_with_examples(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "``" not in out
    description = out.split("\n\n")[1]
    assert description.startswith("Turn a recurrent cell") and description.rstrip().endswith(".")
    assert "examples:\n  symgate show lstm" in out and "symgate check my_cell.cell" in out
    assert all(f"\n    {command} " in out for command in SUBCOMMANDS if " " not in command)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_a_description_and_shows_its_defaults(capsys, command):
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])
    out = capsys.readouterr().out
    description, defaults = SUBCOMMANDS[command]
    assert exited.value.code == 0 and out.split("\n\n")[1].startswith(description)
    flat = " ".join(out.split())
    assert all(default in flat for default in defaults), flat
    assert "(default: None)" not in out and "(default: False)" not in out


def test_list_aligns_names_and_wraps_descriptions_to_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "90")
    code, out, _ = run(capsys, "list")
    lines = out.splitlines()
    column = max(map(len, sg.cells.names())) + 2
    assert code == 0 and all(len(line) <= 90 for line in lines)
    starts = [line for line in lines if not line.startswith(" ")]
    assert [line.split()[0] for line in starts] == sg.cells.names()
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in starts)
    assert all(line[:column].isspace() and line[column] != " " for line in lines if line.startswith(" "))
    assert "r2rt_normalized_prototype  R2RT's normalized prototype LSTM" in out
    assert "by dividing it by sqrt(variance + 1)." in " ".join(out.split())  # a sentence wrapped, never cut


def test_the_whole_file_suggestion_for_a_cell_file_runs_as_printed(capsys, tmp_path):
    path = tmp_path / "my cell.cell"
    path.write_text(NOVEL_CELL)
    code, out, _ = run(capsys, "show", str(path), "--c")
    suggested = re.search(r"`symgate (show .* --c --full)`", out).group(1)
    import shlex

    code, full, _ = run(capsys, *shlex.split(suggested))
    assert code == 0 and full == sg.generate(sg.load(path)).c_source
    code, _, err = run(capsys, "show", str(path), "--full")
    assert code == 2 and f"`symgate show '{path}' --c --full`" in err


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    """SIGINT in the middle of a command: `symgate: interrupted` on stderr, no traceback, status 130."""
    import subprocess

    script = (
        "import signal, sys, symgate.cli as cli\n"
        # Python's handler, as in a terminal: a process started in the background by a shell
        # without job control (CI's, say) inherits SIGINT ignored, and Python then keeps it so
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "cli.cells.names = lambda: signal.raise_signal(signal.SIGINT)  # Ctrl-C while listing\n"
        "sys.exit(cli.main(['list']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and done.stderr == "symgate: interrupted\n" and done.stdout == ""
