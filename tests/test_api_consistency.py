"""One API (issue 23, point 4): the same arguments mean the same thing in every public function.

* A cell is a ``Cell``, a built-in name or a ``.cell`` path, wherever a cell is taken.
* A dtype is ``"float64"``, ``np.float64``, ``np.dtype("float64")`` or ``torch.float64`` (and the
  float32 spellings), wherever a dtype is taken; anything else is refused naming the value and the
  accepted spellings.
* float64 is the default of the NumPy and C API; the torch layers follow ``torch.get_default_dtype()``.
* ``sg.define`` takes the cell language's reductions (``sg.mean``, ``sg.var``, ``sg.sum``), and a
  matrix-vector product written with ``*`` or with SymPy matrices gets a ``CellError`` saying how to
  write it.

Every case uses the LSTM in float64, so the file compiles one kernel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sympy

import symgate as sg
from symgate.cli import main
from symgate.inspect.forget_gate import forget_bias_values, forget_gates
from symgate.inspect.step_source import step_listing

torch = pytest.importorskip("torch")
import symgate.torch as sgt  # noqa: E402 - after the skip: symgate.torch imports PyTorch

NAME = "lstm"
SIZES = {"D": 2, "H": 3}

# -- 1. a cell: a Cell, a built-in name or a .cell path -------------------------------------------------
FORMS = {
    "Cell": lambda: sg.cells.get(NAME),
    "name": lambda: NAME,
    "Path": lambda: sg.cells.path(NAME),
    "path text": lambda: str(sg.cells.path(NAME)),
}

TAKES_A_CELL: dict[str, Callable[[object, Path], object]] = {
    "build": lambda c, _: sg.build(c).cell.fingerprint(),
    "generate": lambda c, _: sg.generate(c).c_source,
    "derive": lambda c, _: sg.derive(c).equations,
    "gradcheck": lambda c, _: sg.gradcheck(c, SIZES, steps=2, batch=1, taylor_check=False).ok,
    "export": lambda c, out: sorted(sg.export(c, out / "lib").files.items()),
    "compare": lambda c, _: sg.compare(c, NAME).identical,
    "measure_flow": lambda c, _: sg.measure_flow(c, steps=3, sizes=SIZES, samples=1).norms.tolist(),
    "forget_gates": lambda c, _: forget_gates(c),
    "forget_bias_values": lambda c, _: forget_bias_values(c, 1.0),
    "step_listing": lambda c, _: step_listing(c),
    "torch.CellModule": lambda c, _: sgt.CellModule(c, SIZES, dtype=torch.float64, seed=0).W_f.tolist(),
    "torch.from_cell": lambda c, _: sgt.from_cell(c, SIZES, dtype=torch.float64, seed=0).W_f.tolist(),
    "torch.RNN": lambda c, _: str(sgt.RNN(c, 2, 3, dtype=torch.float64, seed=0)),
    "torch.kernel_for": lambda c, _: sgt.kernel_for(c, torch.float64).cell.fingerprint(),
    "torch.default_output": lambda c, _: sgt.default_output(c),
}


@pytest.mark.parametrize("entry", list(TAKES_A_CELL))
def test_every_function_that_takes_a_cell_takes_a_name_or_a_path(entry: str, tmp_path: Path) -> None:
    results = {}
    for form, make in FORMS.items():
        (tmp_path / form).mkdir()
        results[form] = TAKES_A_CELL[entry](make(), tmp_path / form)
    assert all(r == results["Cell"] for r in results.values()), f"{entry} differs by the form of its cell"
    assert results["Cell"] not in (None, False, [], "")


@pytest.mark.parametrize("entry", list(TAKES_A_CELL))
def test_what_is_not_a_cell_is_refused_naming_the_argument(entry: str, tmp_path: Path) -> None:
    with pytest.raises(sg.SymgateError, match=r"(cell|first) must be a symgate Cell, a built-in cell's name or a"):
        TAKES_A_CELL[entry](42, tmp_path)


# -- 2. a dtype: as a name, a NumPy type or dtype, or a PyTorch dtype -----------------------------------
SPELLINGS = ["float64", np.float64, np.dtype("float64"), torch.float64]

TAKES_A_DTYPE: dict[str, Callable[[object, Path], object]] = {
    "build": lambda d, _: sg.build(NAME, d).dtype,
    "generate": lambda d, _: sg.generate(NAME, d).interface.dtype,
    "export": lambda d, out: sg.export(NAME, out, dtype=d).dtype,
    "step_listing": lambda d, _: "(float64)" in step_listing(NAME, d),
    "torch.CellModule": lambda d, _: sgt.CellModule(NAME, SIZES, dtype=d, seed=0).W_f.dtype,
    "torch.CellModule.kernel": lambda d, _: sgt.CellModule(NAME, SIZES, dtype=d, seed=0).kernel(d).dtype,
    "torch.from_cell": lambda d, _: sgt.from_cell(NAME, SIZES, dtype=d, seed=0).W_f.dtype,
    "torch.RNN": lambda d, _: sgt.RNN(NAME, 2, 3, dtype=d, seed=0).cell_modules[0].W_f.dtype,
    "torch.kernel_for": lambda d, _: sgt.kernel_for(NAME, d).dtype,
}


@pytest.mark.parametrize("entry", list(TAKES_A_DTYPE))
def test_every_dtype_argument_takes_every_spelling(entry: str, tmp_path: Path) -> None:
    results = [TAKES_A_DTYPE[entry](spelling, tmp_path / str(n)) for n, spelling in enumerate(SPELLINGS)]
    assert all(r == results[0] for r in results), f"{entry}: {results}"
    assert results[0] in ("float64", True, torch.float64)


@pytest.mark.parametrize("entry", list(TAKES_A_DTYPE))
@pytest.mark.parametrize("bad", ["float16", np.int8, torch.int32])
def test_a_bad_dtype_is_refused_naming_it_and_the_accepted_spellings(entry: str, bad: object, tmp_path: Path) -> None:
    with pytest.raises(sg.SymgateError) as refused:
        TAKES_A_DTYPE[entry](bad, tmp_path)
    message = str(refused.value)
    assert repr(bad) in message
    assert "float32" in message and "np.float32" in message and "torch.float32" in message


# -- 3. one default: float64 for NumPy and C, torch's default for the torch layers ---------------------
@pytest.mark.parametrize("function", [sg.build, sg.generate, sg.export])
def test_the_numpy_and_c_api_default_to_float64(function: Callable) -> None:
    assert inspect.signature(function).parameters["dtype"].default == "float64"
    assert "float64" in inspect.getdoc(sg.build) and "gradient check" in inspect.getdoc(sg.build)


def test_export_and_its_command_write_float64_by_default(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert sg.export(NAME, tmp_path / "api").dtype == "float64"
    assert main(["export", NAME, "-o", str(tmp_path / "cli")]) == 0
    assert "lstm float64" in capsys.readouterr().out
    assert (tmp_path / "cli" / "lstm_float64.c").read_text() == (tmp_path / "api" / "lstm_float64.c").read_text()


def test_the_torch_layers_follow_torch_s_default_dtype() -> None:
    params = sg.build(NAME).init_params(SIZES, seed=0)  # given parameters: nothing more is built
    assert sgt.CellModule(NAME, SIZES, params=params).W_f.dtype == torch.get_default_dtype() == torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert sgt.CellModule(NAME, SIZES, seed=0).W_f.dtype == torch.float64
        assert sgt.RNN(NAME, 2, 3, seed=0).cell_modules[0].W_f.dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)


# -- 4. sg.define: reductions, and products written as SymPy would -------------------------------------
def test_define_takes_the_cell_language_s_reductions() -> None:
    x, h, W, U, b = sg.symbols("x h W U b")
    z = sg.Var("z")
    normed = (z - sg.mean(z)) / sympy.sqrt(sg.var(z) + sympy.Rational(1, 100000))
    defined = sg.define(
        "ln_rnn",
        inputs={"x": "D"},
        states={"h": "H"},
        equations=[(z, W @ x + U @ h), (sg.next_state("h"), sympy.tanh(normed + b) + sg.sum(h) / 10)],
    )
    parsed = sg.parse(
        "cell ln_rnn\ninput x: D\nstate h: H\nz = W @ x + U @ h\n"
        "h' = tanh((z - mean(z)) / sqrt(var(z) + 1/100000) + b) + sum(h) / 10\n"
    )
    assert sg.compare(defined, parsed).identical
    assert [e.expr for e in defined.equations] == [e.expr for e in parsed.equations]
    assert parsed.equations[-1].expr.atoms(sg.mean) and parsed.equations[-1].expr.atoms(sg.sum)


def test_sympy_s_symbols_have_no_matmul_and_symgate_s_do() -> None:
    """Where the raw TypeError comes from (SymPy, before symgate sees anything), and the way around it."""
    W, x = sympy.symbols("W x")
    with pytest.raises(TypeError):
        W @ x
    W, x = sg.symbols("W x")
    assert isinstance(W @ x, sg.MatVec)


def test_a_matrix_multiplied_with_star_is_told_to_use_matmul() -> None:
    W, x, h = sympy.symbols("W x h")  # as a SymPy user writes them
    equations = [(sg.next_state("h"), sympy.tanh(W * x + h))]
    with pytest.raises(sg.DimensionError, match=r'if W is a matrix, write the product with @.*sg\.symbols\("W x"\)'):
        sg.define("a", inputs={"x": "D"}, states={"h": "H"}, equations=equations)
    with pytest.raises(sg.CellError, match=r"W is a matrix \(params gives it shape \(H, D\)\), but `W\*x` multipl"):
        sg.define("a", inputs={"x": "D"}, states={"h": "H"}, equations=equations, params={"W": ("H", "D")})
    W, x = sympy.MatrixSymbol("W", 3, 2), sympy.MatrixSymbol("x", 2, 1)
    with pytest.raises(sg.CellError, match=r"holds SymPy matrices \(W, x\).*W @ x"):
        sg.define("a", inputs={"x": "D"}, states={"h": "H"}, equations=[(sg.next_state("h"), W * x)])


def test_products_that_are_meant_stay_valid() -> None:
    """A peephole ``p*c`` (a vector parameter times a state) and a declared matrix scaled on the
    left of ``@`` (``(2*W - W.T) @ h``) are no mistakes: no hint, no error."""
    p, c = sympy.symbols("p c")
    update = p * c + sg.Var("x")
    cell = sg.define("peep", inputs={"x": "H"}, states={"c": "H"}, equations=[(sg.next_state("c"), update)])
    assert [param.name for param in cell.params] == ["p"]
    W, h = sg.symbols("W h")
    update = sympy.tanh(sg.MatVec(2 * W - W.T, h))
    skew = {"inputs": {}, "states": {"h": "H"}, "params": {"W": ("H", "H")}}
    cell = sg.define("skew", equations=[(sg.next_state("h"), update)], **skew)
    assert sg.compare(cell, sg.parse("cell skew\nstate h: H\nparam W: H x H\nh' = tanh((2*W - W.T) @ h)\n")).identical
