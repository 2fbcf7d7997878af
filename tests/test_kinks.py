"""The functions with kinks and jumps (max, min, abs, clip, floor, mod), against PyTorch.

symgate differentiates them as PyTorch's autograd does (symgate/frontend/piecewise.py): at and
beside every kink the compiled kernel's gradient equals ``torch.autograd``'s, and ``mod`` and
``clip`` compute the values ``torch.remainder`` and ``torch.clamp`` do, on grids with negative,
tiny and large numbers. Away from ties, cells that need them pass the gradient check (finite
differences and complex steps): an sLSTM stabiliser, a hard sigmoid, and an LRU-like rotation
written with cos and sin over two real states.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgate as sg

torch = pytest.importorskip("torch")

TINY = 1e-300
EPS = np.finfo(np.float64).eps


def _unary(call: str) -> str:
    constants = "const lo = -1\n" if "lo" in call else ""
    return f"cell k\ninput x: D\nstate h: D\n{constants}h' = h + {call}\n"


def _binary(call: str) -> str:
    return f"cell k\ninput x: D, y: D\nstate h: D\nh' = h + {call}\n"


def _kernel(text: str, columns: dict[str, np.ndarray], dtype: str = "float64") -> tuple[np.ndarray, dict]:
    """``h'`` of one step from ``h = 0`` with each input a row of values, and the gradient of the sum
    of ``h'`` by each input: the function's values and derivatives, one unit per value."""
    kernel = sg.build(sg.parse(text), dtype)
    inputs = {name: np.asarray(values, dtype=dtype)[None, None, :] for name, values in columns.items()}
    init = {"h": np.zeros((1, len(next(iter(columns.values())))), dtype=dtype)}
    run = kernel.forward(inputs, {}, init)
    grads = kernel.backward(run, {"h": np.ones_like(run.states["h"])})
    return run.states["h"][0, 0], {name: grads.inputs[name][0, 0] for name in columns}


def _torch(function, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    tensors = {name: torch.tensor(values, dtype=torch.float64, requires_grad=True) for name, values in columns.items()}
    value = function(*tensors.values())
    value.sum().backward()
    return value.detach().numpy(), {name: t.grad.numpy() for name, t in tensors.items()}


def _agree(text: str, function, columns: dict[str, list[float]]) -> None:
    columns = {name: np.array(values, dtype=np.float64) for name, values in columns.items()}
    value, grads = _kernel(text, columns)
    want_value, want_grads = _torch(function, columns)
    np.testing.assert_array_equal(value, want_value)
    for name in columns:
        np.testing.assert_array_equal(grads[name], want_grads[name], err_msg=f"derivative by {name}")


def _around(point: float) -> list[float]:
    """The point and its neighbours, one ulp and 1e-9 away on either side."""
    return [point - 1e-9, np.nextafter(point, -np.inf), point, np.nextafter(point, np.inf), point + 1e-9]


# -- at and beside every kink, the kernel's derivative is PyTorch's ------------------------------------
@pytest.mark.parametrize(("name", "function"), [("max", torch.maximum), ("min", torch.minimum)])
def test_max_and_min_split_the_gradient_evenly_on_a_tie_as_torch(name, function):
    y = [1.0] * 5 + [-2.0] * 5 + [0.0] * 5
    x = _around(1.0) + _around(-2.0) + [-TINY, -0.0, 0.0, TINY, 1e300]
    _agree(_binary(f"{name}(x, y)"), function, {"x": x, "y": y})
    _, grads = _kernel(_binary(f"{name}(x, y)"), {"x": np.array([3.0]), "y": np.array([3.0])})
    assert grads["x"][0] == grads["y"][0] == 0.5


def test_abs_has_derivative_zero_at_zero_as_torch():
    _agree(_unary("abs(x)"), torch.abs, {"x": [-1.0, -TINY, -0.0, 0.0, TINY, 1.0, -1e300]})


def test_clip_passes_the_gradient_at_its_bounds_inclusive_as_torch():
    x = [-5.0, *_around(-1.0), 0.0, *_around(2.0), 1e300, -1e300]
    _agree(_unary("clip(x, lo, 2)"), lambda x: torch.clamp(x, -1.0, 2.0), {"x": x})
    _, grads = _kernel(_unary("clip(x, lo, 2)"), {"x": np.array([-1.0, 2.0])})
    assert list(grads["x"]) == [1.0, 1.0]


def test_floor_has_derivative_zero_as_torch():
    _agree(_unary("floor(x)"), torch.floor, {"x": [-2.5, *_around(-1.0), -0.0, 0.0, 0.5, *_around(3.0), 1e300]})


def test_mod_has_the_values_and_derivatives_of_torch_remainder_on_a_grid():
    a = [-1e300, -1e15, -7.5, -3.0, -2.0, -0.3, -TINY, -0.0, 0.0, TINY, 0.3, 1.0, 2.0, 7.5, 1e15 + 1, 1e300]
    b = [-1e10, -3.0, -2.0, -0.1, 0.1, 0.7, 2.0, 3.0, 1e-3, 1e10]
    grid_a, grid_b = (g.ravel().tolist() for g in np.meshgrid(a, b))
    _agree(_binary("mod(x, y)"), torch.remainder, {"x": grid_a, "y": grid_b})


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mod_computes_what_torch_remainder_does_where_a_minus_b_floor_a_over_b_loses_digits(dtype):
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-5, 30, 200), [0.3, -0.3, 1e20, -1e20]])
    b = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-3, 4, 200), [0.1, 0.1, 3.0, 3.0]])
    a, b = a.astype(dtype), b.astype(dtype)
    value, grads = _kernel(_binary("mod(x, y)"), {"x": a, "y": b}, dtype)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    torch.remainder(ta, tb).sum().backward()
    np.testing.assert_array_equal(value, torch.remainder(ta, tb).detach().numpy())
    np.testing.assert_array_equal(grads["y"], tb.grad.numpy())
    naive = a - b * np.floor(a / b)
    assert np.any(naive != value), "the grid should hold values where the naive formula rounds"


def test_clip_computes_what_torch_clamp_does():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(100) * 10.0 ** rng.integers(-3, 5, 100), [-1.0, 2.0, -0.0]])
    value, _ = _kernel(_unary("clip(x, lo, 2)"), {"x": x})
    np.testing.assert_array_equal(value, torch.clamp(torch.tensor(x), -1.0, 2.0).numpy())


@pytest.mark.parametrize("call", ["max(x, y)", "min(x, y)", "mod(x, y)"])
def test_nan_stays_nan_in_values_and_derivatives(call):
    value, grads = _kernel(_binary(call), {"x": np.array([np.nan, 1.0]), "y": np.array([1.0, np.nan])})
    assert np.all(np.isnan(value))
    if not call.startswith("mod"):  # mod's derivative by x is 1 everywhere, as torch's
        assert np.all(np.isnan(grads["x"])) and np.all(np.isnan(grads["y"]))


# -- cells that need them, gradient-checked away from ties --------------------------------------------
SLSTM = """\
# sLSTM (Beck et al., 2024, xLSTM) with its stabiliser state m: exponential input gate, sigmoid forget gate
cell slstm
input x: D
state h: H, c: H, n: H, m: H
z = tanh(W_z @ x + U_z @ h + b_z)
i_log = W_i @ x + U_i @ h + b_i
f = sigmoid(W_f @ x + U_f @ h + b_f)
o = sigmoid(W_o @ x + U_o @ h + b_o)
m' = max(log(f) + m, i_log)
i = exp(i_log - m')
g = exp(log(f) + m - m')
c' = g*c + i*z
n' = g*n + i
h' = o*c'/n'
"""

HARD_SIGMOID = """\
cell hard_sigmoid_gru
input x: D
state h: H
a = W @ x + U @ h + b
z = clip(0.2*a + 0.5, 0, 1)
h' = z*h + (1 - z)*tanh(V @ x + R @ h + c)
"""

LRU = """\
# an LRU-like diagonal linear recurrence (Orvieto et al., 2023), its complex state as two real ones
cell lru_rotation
input x: D
state a: H, b: H
lam = exp(-exp(nu))
a' = lam*(cos(theta)*a - sin(theta)*b) + B_re @ x
b' = lam*(sin(theta)*a + cos(theta)*b) + B_im @ x
"""


@pytest.mark.parametrize("text", [SLSTM, HARD_SIGMOID, LRU], ids=["slstm", "hard_sigmoid", "lru"])
def test_cells_with_the_new_functions_pass_the_gradient_check(text):
    cell = sg.parse(text)
    report = sg.gradcheck(cell, {"D": 3, "H": 4}, steps=4, batch=2, complex_step=True)
    assert report.ok and report.complex_step.ok, str(report)


def test_the_slstm_stabiliser_takes_both_branches_at_the_gradient_check_sizes():
    """max(log(f) + m, i_log) is not one-sided in such a check: both arguments win somewhere."""
    cell = sg.parse(SLSTM)
    kernel = sg.build(cell, "float64")
    rng = np.random.default_rng(0)
    p = kernel.init_params({"D": 3, "H": 4}, seed=0)
    x = rng.standard_normal((5, 2, 3))
    init = {s: rng.standard_normal((2, 4)) for s in cell.states}
    run = kernel.forward(x, p, init)
    h = np.concatenate([init["h"][None], run.states["h"][:-1]])
    i_log = x @ p["W_i"].T + h @ p["U_i"].T + p["b_i"]
    took_input_gate = run.states["m"] == i_log
    assert took_input_gate.any() and not took_input_gate.all()


# -- the pieces: error, notation and derivative text -----------------------------------------------------
def test_a_bound_of_clip_that_is_not_constant_is_an_error_naming_it():
    with pytest.raises(sg.CellError) as info:
        sg.parse("cell k\ninput x: D\nstate h: D\nh' = h + clip(x, 0, hi)\n")
    assert info.value.symbol == "hi" and info.value.line == 4
    assert info.value.reason == (
        "argument 3 of `clip(x, 0, hi)`, `hi` is not constant: clip takes a number or a `const` name there; "
        "write a number, or declare `const hi = ...`"
    )
    with pytest.raises(sg.CellError, match=r"`2\*h`, which reads h, is not constant"):
        sg.parse("cell k\ninput x: D\nstate h: D\nh' = h + clip(x, 0, 2*h)\n")


def test_the_backward_pass_reads_the_derivative_conventions():
    text = sg.derive(sg.parse(_binary("max(x, y) + abs(x) + mod(x, y)"))).text()
    assert "above(x, y)" in text and "above(y, x)" in text and "sign(x)" in text and "floordiv(x, y)" in text
