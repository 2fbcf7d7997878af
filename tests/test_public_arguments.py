"""Arguments of the wrong kind to public functions raise a SymgateError naming the argument.

Each case is refused before any kernel is built (nothing here compiles), and the error is an
:class:`~symgate.errors.ArgumentError` or another :class:`~symgate.SymgateError`: never an
``AttributeError`` or a ``TypeError`` from inside symgate. The first cases are the ones issue 19
found (``define(..., equations=None)``, ``define(5, ...)``, ``init_params`` of 2**40 x 2**40,
``from_tf1_lstm(forget_bias=None)``, ``from_onnx_lstm(direction='x')``).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import example, given, settings
from hypothesis import strategies as st

import symgate as sg
from symgate.errors import ArgumentError
from symgate.frameworks.interop.common import WeightLayoutError

TEXT = "cell a\ninput x: D\nstate h: H\nh' = tanh(W @ x + U @ h)\n"
CELL = sg.parse(TEXT)
X, H = sympy.symbols("x h")
DEFINE = {"inputs": {"x": "D"}, "states": {"h": "H"}, "equations": [("h'", sympy.tanh(X))]}
D_, H_ = 2, 3
LSTM_KERNEL = np.zeros((D_ + H_, 4 * H_))
ONNX_W, ONNX_R = np.zeros((1, 4 * H_, D_)), np.zeros((1, 4 * H_, H_))

REFUSED = {
    # issue 19's reproducers
    "define equations=None": lambda: sg.define("a", **(DEFINE | {"equations": None})),
    "define name 5": lambda: sg.define(5, **DEFINE),
    "define equations 5": lambda: sg.define("a", **(DEFINE | {"equations": 5})),
    "define outputs None": lambda: sg.define("a", **DEFINE, outputs=None),
    "define constants list": lambda: sg.define("a", **DEFINE, constants=[1.0]),
    "define constants key 5": lambda: sg.define("a", **DEFINE, constants={5: 1.0}),
    "define doc 5": lambda: sg.define("a", **DEFINE, doc=5),
    "tf1 forget_bias None": lambda: sg.interop.from_tf1_lstm(LSTM_KERNEL, forget_bias=None),
    "tf1 forget_bias text": lambda: sg.interop.from_tf1_lstm(LSTM_KERNEL, forget_bias="1"),
    "tf1 forget_bias nan": lambda: sg.interop.from_tf1_lstm(LSTM_KERNEL, forget_bias=float("nan")),
    "tf1 kernel of text": lambda: sg.interop.from_tf1_lstm([["a", "b"]]),
    "onnx direction 'x'": lambda: sg.interop.from_onnx_lstm(ONNX_W, ONNX_R, direction="x"),
    "onnx direction 1.5": lambda: sg.interop.from_onnx_lstm(ONNX_W, ONNX_R, direction=1.5),
    "onnx linear_before_reset 5": lambda: sg.interop.from_onnx_gru(
        ONNX_W[:, : 3 * H_], ONNX_R[:, : 3 * H_], linear_before_reset=5
    ),
    "keras reset_after 'no'": lambda: sg.interop.from_keras_gru(
        np.zeros((D_, 3 * H_)), np.zeros((H_, 3 * H_)), reset_after="no"
    ),
    # the cell argument of every function that takes one
    "build None": lambda: sg.build(None),
    "build dtype None": lambda: sg.build(CELL, None),
    "generate 5": lambda: sg.generate(5),
    "derive []": lambda: sg.derive([]),
    "compare second None": lambda: sg.compare(CELL, None),
    "gradcheck sizes None": lambda: sg.gradcheck(CELL, None),
    "gradcheck steps 0": lambda: sg.gradcheck(CELL, {"D": 2, "H": 2}, steps=0),
    "gradcheck tolerance nan": lambda: sg.gradcheck(CELL, {"D": 2, "H": 2}, tolerance=float("nan")),
    "gradcheck float32 'yes'": lambda: sg.gradcheck(CELL, {"D": 2, "H": 2}, float32="yes"),
    "measure_flow steps None": lambda: sg.measure_flow(CELL, steps=None),
    "measure_flow steps 2**70": lambda: sg.measure_flow(CELL, steps=2**70),
    "measure_flow scale 2**2000": lambda: sg.measure_flow(CELL, scale=2**2000),
    "plot_flow of a cell": lambda: sg.plot_flow(CELL, "flow.png"),
    "plot_flow path None": lambda: sg.plot_flow([], None),
    "export cell None": lambda: sg.export(None, "out"),
    "export out None": lambda: sg.export(CELL, None),
    "export params 5": lambda: sg.export(CELL, "out", params=5),
    "export out with a NUL byte": lambda: sg.export(CELL, "out\x00dir"),
    "load path with a NUL byte": lambda: sg.load("a\x00b.cell"),
    "load None": lambda: sg.load(None),
    "load empty path": lambda: sg.load(""),
    "parse None": lambda: sg.parse(None),
    "parse bytes": lambda: sg.parse(TEXT.encode()),
    "parse strict 'yes'": lambda: sg.parse(TEXT, strict="yes"),
    "symbols None": lambda: sg.symbols(None),
    "next_state 5": lambda: sg.next_state(5),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_argument_is_refused_with_a_symgate_error(case: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing a refused call might write lands in the tree
    with pytest.raises(sg.SymgateError):
        REFUSED[case]()
    assert not any(tmp_path.iterdir()), "a refused call wrote files"


@pytest.mark.parametrize("sizes", [{"D": 2**40, "H": 2**40}, {"D": 2**20, "H": 2**20}, {"D": 2**70, "H": 1}])
def test_init_params_too_large_to_allocate_names_the_parameter(sizes: dict[str, int]) -> None:
    kernel = sg.build(CELL)
    with pytest.raises(sg.ArrayError, match="cannot allocate parameter W"):
        kernel.init_params(sizes)


def test_argument_errors_are_also_python_s_type_and_value_errors() -> None:
    """Code written against Python's conventions (``except TypeError``) keeps catching them."""
    with pytest.raises(TypeError):
        sg.build(None)
    with pytest.raises(ValueError):
        sg.build(CELL, "float16")
    assert issubclass(ArgumentError, sg.SymgateError)
    assert issubclass(WeightLayoutError, sg.SymgateError)


def test_a_built_in_name_or_a_path_is_a_cell_everywhere(tmp_path) -> None:
    path = tmp_path / "a.cell"
    path.write_text(TEXT)
    assert sg.derive("elman_rnn").equations == sg.derive(sg.cells.get("elman_rnn")).equations
    assert sg.compare(path, CELL).identical


NOT_A_CELL = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=12).filter(lambda t: t not in sg.cells.names()),  # no built-in name; no cell file
)


@settings(max_examples=60, deadline=None)
@given(value=NOT_A_CELL)
@example(value="/\x00")  # a path holding a NUL byte (os.stat raised ValueError)
@example(value="cells/a\x00b.cell")
def test_anything_that_is_not_a_cell_is_refused_by_name(value: object) -> None:
    """Stated count: 60 drawn values, each given to derive and to compare."""
    for call in (lambda: sg.derive(value), lambda: sg.compare(CELL, value)):
        with pytest.raises(sg.SymgateError):
            call()


def test_a_dtype_may_be_spelled_as_numpy_and_torch_spell_it():
    """``np.float32``, ``np.dtype("float32")`` and ``torch.float32`` name the same kernels as ``"float32"``."""
    from symgate.dtypes import dtype_name

    assert {dtype_name(v) for v in ("float32", np.float32, np.dtype("float32"))} == {"float32"}
    assert sg.build(CELL, np.float32).dtype == sg.build(CELL, "float32").dtype == "float32"
    assert sg.build(CELL, np.dtype("float64")).dtype == "float64"
    for refused in (None, np.float16, "float16", int, 5):
        with pytest.raises(ArgumentError, match="dtype must be one of"):
            dtype_name(refused)
    torch = pytest.importorskip("torch")
    from symgate.torch import from_cell

    assert dtype_name(torch.float64) == "float64"
    assert from_cell(CELL, {"D": 2, "H": 3}, dtype="float64", seed=0).W.dtype == torch.float64
    assert from_cell(CELL, {"D": 2, "H": 3}, dtype=np.float32, seed=0).W.dtype == torch.float32
