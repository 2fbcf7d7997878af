"""Per-sample scalars: a dimension ``1`` declares a scalar input, state or output, and a parameter
that meets only scalars is one learned number. Scalars broadcast against any vector.

Each cell passes ``sg.gradcheck`` in float64 (its forward values against the NumPy reference, its
gradients against finite differences, duality and Taylor), and its forward values equal an
independent NumPy step written here to 1e-10. The backward pass sums what a scalar broadcast into:
a scalar input's and initial state's gradient over the units, a scalar parameter's over units,
batch and time. The torch module takes scalar inputs as (T, B, 1) and scalar states as (B, 1), as
the kernel does, and passes ``torch.autograd.gradcheck``; the exported C library's example program
compiles strictly and runs.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import symgate as sg
from symgate.errors import CellSyntaxError, DimensionError
from symgate.frontend.cell import Param

STEPS, BATCH = 6, 3
SIZES = {"D": 3, "H": 4}

LTC = """\
# Liquid time-constant cell, Euler step of length dt per sample (Hasani et al. 2021): irregular sampling
cell ltc
input x: D, dt: 1
state h: H
f = sigmoid(W @ x + U @ h + b)
h' = h + dt*(f*(A - h) - w*h)
"""
"""A scalar input (the time since the previous sample) broadcast over the units of a vector loop."""

STABILISED = """\
cell stabilised
input x: D
state h: H, m: 1
h' = tanh(W @ x + U @ h + v*m)
m' = a*m + mean(log(1 + exp(h')))
output e: 1 = sum(h'*h')
"""
"""A scalar state (as xLSTM's stabiliser) read by a vector loop, a scalar output, and ``a``: a
parameter that meets only the scalar m, so it is one learned number."""

CORNN = """\
# coupled oscillatory RNN (Rusch & Mishra 2021)
cell {name}
input x: D
state y: H, z: H
const gamma = 0.5
const eps = 0.3
{dt}z' = z + dt*(tanh(W @ y + Wz @ z + V @ x + b) - gamma*y - eps*z)
y' = y + dt*z'
"""


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def ltc_step(p, x, dt, h):
    f = sigmoid(x @ p["W"].T + h @ p["U"].T + p["b"])
    return {"h": h + dt * (f * (p["A"] - h) - p["w"] * h)}


def stabilised_step(p, x, h, m):
    h_next = np.tanh(x @ p["W"].T + h @ p["U"].T + p["v"] * m)
    m_next = p["a"] * m + np.mean(np.log(1 + np.exp(h_next)), axis=-1, keepdims=True)
    return {"h": h_next, "m": m_next, "e": np.sum(h_next**2, axis=-1, keepdims=True)}


def cornn_step(p, x, y, z, dt):
    z_next = z + dt * (np.tanh(y @ p["W"].T + z @ p["Wz"].T + x @ p["V"].T + p["b"]) - 0.5 * y - 0.3 * z)
    return {"y": y + dt * z_next, "z": z_next}


def cornn(dt: str) -> sg.Cell:
    """coRNN with ``dt`` a constant, or (``dt="learned"``) one learned number.

    The cell language has no declaration for a scalar parameter yet (``param dt: 1``), and ``dt``
    meets the vector z' here, so inference makes it a vector: the learned case sets the shape
    ``(1,)`` that declaration gives.
    """
    if dt != "learned":
        return sg.parse(CORNN.format(name="cornn", dt=f"const dt = {dt}\n"))
    cell = sg.parse(CORNN.format(name="cornn", dt=""))
    params = tuple(Param(p.name, ("1",)) if p.name == "dt" else p for p in cell.params)
    return dataclasses.replace(cell, params=params)


def run_numpy(step, cell: sg.Cell, params, inputs, init, **fixed):
    """States and outputs of every step from a NumPy step function: (T, B, size) arrays."""
    state = dict(init)
    results: dict[str, list[np.ndarray]] = {}
    for t in range(STEPS):
        values = step(params, **{x: a[t] for x, a in inputs.items()}, **state, **fixed)
        state = {s: values[s] for s in cell.states}
        for name, value in values.items():
            results.setdefault(name, []).append(value)
    return {name: np.stack(values) for name, values in results.items()}


def data(cell: sg.Cell, seed: int = 0):
    """Parameters, inputs (a time step dt in (0.05, 0.5)) and initial states for ``cell``."""
    rng = np.random.default_rng(seed)
    params = sg.build(cell).init_params(SIZES, seed=seed)
    extents = {**SIZES, "1": 1}
    inputs = {x: rng.standard_normal((STEPS, BATCH, extents[d])) for x, d in cell.inputs.items()}
    if "dt" in inputs:
        inputs["dt"] = rng.uniform(0.05, 0.5, (STEPS, BATCH, 1))
    init = {s: rng.uniform(-0.5, 0.5, (BATCH, extents[d])) for s, d in cell.states.items()}
    return params, inputs, init


def assert_forward_equals(cell: sg.Cell, step, **fixed) -> None:
    params, inputs, init = data(cell)
    run = sg.build(cell).forward(inputs, params, init)
    expected = run_numpy(step, cell, params, inputs, init, **fixed)
    for name, got in {**run.states, **run.outputs}.items():
        assert got.shape == expected[name].shape, name
        np.testing.assert_allclose(got, expected[name], rtol=1e-10, atol=1e-10, err_msg=name)


def assert_gradcheck(cell: sg.Cell, **options) -> sg.GradcheckReport:
    report = sg.gradcheck(cell, SIZES, **options)
    assert report.ok, str(report)
    assert report.forward_rel_error < 1e-12, str(report)
    return report


# -- the language --------------------------------------------------------------------------------


def test_dimension_1_declares_scalar_inputs_states_and_outputs():
    cell = sg.parse(STABILISED)
    assert cell.states == {"h": "H", "m": "1"}
    assert cell.outputs == {"e": "1"}
    assert cell.dims == ("D", "H")  # 1 is no size to give
    assert cell.param("a").shape == ("1",)  # a meets only the scalar m: one learned number
    assert cell.param("v").shape == ("H",)
    assert sg.parse(LTC).inputs == {"x": "D", "dt": "1"}
    assert sg.parse(cell.text()).text() == cell.text()
    ltc = sg.parse(LTC)
    pairs = [(eq.target, eq.expr) for eq in ltc.equations]
    assert sg.define("ltc", inputs={"x": "D", "dt": "1"}, states={"h": "H"}, equations=pairs).text() == ltc.text()


def test_a_scalar_on_the_right_of_a_product_makes_a_one_column_matrix():
    cell = sg.parse("cell s\ninput x: D, dt: 1\nstate h: H\nh' = tanh(W @ x + U @ h + V @ dt)\n")
    assert cell.param("V").shape == ("H", "1")
    assert_gradcheck(cell)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (
            "input x: D, dt: 2\nstate h: H\nh' = x + h*dt",
            CellSyntaxError,
            "expected a dimension name after ':', found '2' at column 17: sizes are named and given when the "
            "kernel runs; 1 declares a per-sample scalar",
        ),
        (
            "input x: D\nstate h: H, m: 1\nh' = tanh(W @ x + U @ h)\nm' = m + h",
            DimensionError,
            "m' has size 1 but `h + m` has size H; a per-sample scalar takes one value per sample: reduce the "
            "vector (sum, mean)",
        ),
        (
            "input x: D\nstate h: H\nh' = tanh(W @ x + U @ h)\noutput e: 1 = h'",
            DimensionError,
            "e has size 1 but `h'` has size H; a per-sample scalar takes one value per sample",
        ),
        (
            "input x: D, dt: 1\nstate h: H\nh' = tanh(W @ x + dt @ h)",
            sg.CellNameError,
            "dt is an input (a per-sample scalar); the left side of '@' must be a parameter matrix",
        ),
    ],
)
def test_misused_scalars_are_errors_that_say_so(text, kind, message):
    with pytest.raises(kind) as info:
        sg.parse("cell s\n" + text + "\n")
    assert message in str(info.value)


# -- forward values and gradients ------------------------------------------------------------------


def test_ltc_with_a_time_step_per_sample():
    cell = sg.parse(LTC)
    assert_forward_equals(cell, ltc_step)
    report = assert_gradcheck(cell)
    assert {t.name for t in report.gradients} >= {"dt", "x", "h"}


def test_scalar_state_output_and_inferred_scalar_parameter():
    cell = sg.parse(STABILISED)
    assert_forward_equals(cell, stabilised_step)
    assert_gradcheck(cell, float32=True, complex_step=True)


@pytest.mark.parametrize("dt", ["0.1", "learned"])
def test_cornn_with_a_constant_or_a_learned_scalar_step(dt):
    cell = cornn(dt)
    params, _, _ = data(cell)
    assert_forward_equals(cell, cornn_step, dt=params.get("dt", 0.1))
    assert_gradcheck(cell, complex_step=dt == "learned")


def test_a_scalar_parameter_gradient_sums_over_units_batch_and_time():
    """δdt is the sum over every unit, sample and step of what dt multiplied: against the gradient
    of the same cell with dt a vector of H equal numbers, summed over its units."""
    scalar, vector = cornn("learned"), sg.parse(CORNN.format(name="cornn", dt=""))
    assert scalar.text() == vector.text() and scalar.fingerprint() != vector.fingerprint()  # two kernels
    params, inputs, init = data(scalar)
    cotangents = {s: np.random.default_rng(3).standard_normal((STEPS, BATCH, SIZES["H"])) for s in scalar.states}
    kernel = sg.build(scalar)
    grads = kernel.backward(kernel.forward(inputs, params, init), cotangents)
    spread = {**params, "dt": np.full(SIZES["H"], params["dt"][0])}
    wide = sg.build(vector)
    wide_grads = wide.backward(wide.forward(inputs, spread, init), cotangents)
    assert grads.params["dt"].shape == (1,)
    np.testing.assert_allclose(grads.params["dt"][0], wide_grads.params["dt"].sum(), rtol=1e-12)


def test_a_scalar_input_gradient_sums_over_the_units_it_broadcast_into():
    cell = sg.parse(LTC)
    params, inputs, init = data(cell)
    kernel = sg.build(cell)
    run = kernel.forward(inputs, params, init)
    cotangents = {"h": np.random.default_rng(4).standard_normal((STEPS, BATCH, SIZES["H"]))}
    grads = kernel.backward(run, cotangents)
    assert grads.inputs["dt"].shape == (STEPS, BATCH, 1)
    # the last step's dt reaches the loss through h' only: δdt = Σ_units δh'*(f*(A - h) - w*h)
    h = run.states["h"][-2]
    f = sigmoid(inputs["x"][-1] @ params["W"].T + h @ params["U"].T + params["b"])
    expected = np.sum(cotangents["h"][-1] * (f * (params["A"] - h) - params["w"] * h), axis=-1, keepdims=True)
    np.testing.assert_allclose(grads.inputs["dt"][-1], expected, rtol=1e-12)


# -- the torch module and the exported library -----------------------------------------------------


def test_torch_module_takes_scalars_as_the_kernel_does_and_passes_gradcheck():
    torch = pytest.importorskip("torch")
    from symgate.torch import CellModule

    cell = sg.parse(LTC + "output e: 1 = sum(h'*h')\n")
    module = CellModule(cell, SIZES, dtype=torch.float64, seed=1)
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.standard_normal((STEPS, BATCH, 3)), requires_grad=True)
    dt = torch.tensor(rng.uniform(0.05, 0.5, (STEPS, BATCH, 1)), requires_grad=True)
    h0 = torch.tensor(rng.uniform(-0.5, 0.5, (BATCH, 4)), requires_grad=True)
    sequences = module.sequences({"x": x, "dt": dt}, h0)
    assert sequences.outputs["e"].shape == (STEPS, BATCH, 1)
    names = [name for name, _ in module.named_parameters()]
    leaves = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def everything(x, dt, h0, *params):
        run = torch.func.functional_call(module, dict(zip(names, params, strict=True)), ({"x": x, "dt": dt}, h0))
        out, final = run
        return out, *final

    assert torch.autograd.gradcheck(everything, (x, dt, h0, *leaves))
    with pytest.raises(sg.ArrayError, match=r"expected \(T, B, 1\)"):
        module({"x": x, "dt": dt[..., 0]}, h0)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")
def test_exported_library_of_a_scalar_cell_builds_strictly_and_runs(tmp_path):
    library = sg.export(sg.parse(STABILISED), tmp_path, dtype="float64")
    ran = subprocess.run(library.build_command, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert any(line.startswith("forward: m after the last step: ") for line in lines)
    assert any(line.startswith("d loss / d a: ") for line in lines)
    assert lines[-1] == "step by step, the states differ from infer's by at most 0"
    strict = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-c", "example.c", "stabilised_float64.c"]
    built = subprocess.run(["cc", *strict], cwd=tmp_path, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr


def test_the_language_page_example_of_scalars_is_checked_as_described():
    page = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text()
    block = re.search(r"^( *)```\n(\1cell ltc_irregular\n.*?)^\1```", page, re.S | re.M)
    cell = sg.parse(re.sub(r"^ +", "", block[2], flags=re.M))
    assert cell.inputs["dt"] == "1" and cell.states["m"] == "1" and cell.outputs["e"] == "1"
    assert cell.param("w").shape == ("H",) and cell.param("a").shape == ("1",)
    assert_gradcheck(cell)


def test_the_kernel_refuses_a_scalar_of_the_wrong_shape_naming_it():
    cell = sg.parse(STABILISED)
    params, inputs, init = data(cell)
    kernel = sg.build(cell)
    with pytest.raises(sg.ArrayError) as info:
        kernel.forward(inputs, params, {**init, "m": np.zeros((BATCH, 2))})
    assert str(info.value) == "init['m'] has shape (3, 2), expected (B, 1): its axis 1 is a scalar's, of size 1"
    with pytest.raises(sg.ArrayError) as info:
        kernel.forward(inputs, {**params, "a": np.zeros(2)}, init)
    assert str(info.value) == "params['a'] has shape (2,), expected (1): its axis 0 is a scalar's, of size 1"
