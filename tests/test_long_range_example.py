"""``examples/long_range.py``, shortened: the three cells train through ``symgate.torch``.

The full run (T = 100, 2,000 steps, a few minutes) is in docs/examples.md; here the same code runs on
sequences of 20 steps for 300 training steps, enough for the GRU to learn the task, and with
``--cell`` on a cell that exists only as a ``.cell`` file (which learns it too). Training is
seeded, so the figures quoted in the assertions repeat.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the example trains with it

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "long_range.py"


@pytest.fixture(scope="module")
def long_range():
    spec = importlib.util.spec_from_file_location("long_range", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["long_range"] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["long_range"]


SHORT = ["--length", "20", "--hidden", "16", "--eval-every", "100"]


def test_short_training_run_learns_and_writes_the_table(long_range, tmp_path, capsys):
    results = long_range.main([*SHORT, "--steps", "300", "--out", str(tmp_path / "lr")])
    assert [r.cell for r in results] == ["elman_rnn", "lstm", "gru_cho", "xlstm_mlstm"]
    mse = {r.cell: r.test_mse[-1] for r in results}
    assert mse["gru_cho"] < long_range.BASELINE / 4, mse  # measured: 0.0048 against the baseline's 0.167
    assert mse["xlstm_mlstm"] < long_range.BASELINE / 4, mse  # measured: 0.0127
    table = (tmp_path / "lr.md").read_text()
    assert "| gru_cho |" in table and "Baseline (always predict 1): MSE 0.167" in table
    assert "table: " in capsys.readouterr().out


def test_by_default_it_writes_under_the_working_directory_in_a_directory_git_ignores(long_range, tmp_path, monkeypatch):
    """Never into docs/: run from the clone, the example would otherwise overwrite the tracked copies."""
    monkeypatch.chdir(tmp_path)
    long_range.main([*SHORT, "--steps", "1", "--cell", "elman_rnn"])
    assert [p.name for p in tmp_path.iterdir()] == ["long_range_out"]
    assert (tmp_path / "long_range_out" / "long_range.md").read_text().startswith("Adding problem, T = 20")
    assert "long_range_out/" in (ROOT / ".gitignore").read_text().splitlines()


def test_a_cell_defined_only_in_a_file_trains(long_range, tmp_path):
    path = ROOT / "examples" / "cells" / "lstm_cifg_nog.cell"
    (result,) = long_range.main([*SHORT, "--steps", "300", "--cell", str(path), "--out", str(tmp_path / "c")])
    assert result.cell == "lstm_cifg_nog" and result.parameters == 2 * (16 * 2 + 16 * 16 + 16) + 17
    assert result.test_mse[-1] < long_range.BASELINE / 4  # measured: 0.0022


def test_a_cell_whose_output_has_the_input_size_gets_an_embedding(long_range, tmp_path):
    (result,) = long_range.main([*SHORT, "--steps", "2", "--cell", "sru", "--out", str(tmp_path / "s")])
    model = long_range.cell_model(long_range.sg.cells.get("sru"), 16, long_range.torch.float32)
    assert model.embed is not None and model.recurrent.sizes == {"H": 16}
    assert result.steps == [2]


def test_plot_is_written_with_matplotlib_and_explained_without(long_range, tmp_path, monkeypatch, capsys):
    results = long_range.main([*SHORT, "--steps", "2", "--cell", "elman_rnn", "--out", str(tmp_path / "p")])
    args = long_range.parse([*SHORT, "--steps", "2"])
    pytest.importorskip("matplotlib")
    assert long_range.plot(results, args, tmp_path / "p.png") and (tmp_path / "p.png").stat().st_size > 1000
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not long_range.plot(results, args, tmp_path / "q.png")
    assert 'pip install "symgate[plot]"' in capsys.readouterr().out and not (tmp_path / "q.png").exists()


def test_bad_cell_argument_exits_with_the_reason(long_range, tmp_path):
    with pytest.raises(SystemExit, match="no built-in cell named 'lstn'"):
        long_range.main(["--cell", "lstn", "--out", str(tmp_path / "x")])
    two = tmp_path / "two.cell"
    two.write_text("cell two\ninput x: D, u: D\nstate h: H\nh' = tanh(W @ x + V @ u + U @ h)\n")
    with pytest.raises(SystemExit, match=r"cell two has inputs \['x', 'u'\]: the adding problem feeds one"):
        long_range.main(["--cell", str(two), "--steps", "1", "--out", str(tmp_path / "x")])


def test_a_two_layer_model_trains_through_the_stacked_layer(long_range, tmp_path):
    args = [*SHORT, "--steps", "200", "--layers", "2", "--cell", "gru_cho", "--out", str(tmp_path / "l")]
    (result,) = long_range.main(args)
    model = long_range.cell_model(long_range.sg.cells.get("gru_cho"), 8, long_range.torch.float32, layers=2)
    assert isinstance(model.recurrent, long_range.RNN) and model.recurrent.num_layers == 2
    assert result.cell == "gru_cho (2 layers)" and "gru_cho (2 layers)" in (tmp_path / "l.md").read_text()
    assert result.test_mse[-1] < long_range.BASELINE / 4, result.test_mse  # measured: 0.0048
