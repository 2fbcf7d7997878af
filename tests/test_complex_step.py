"""The complex-step check: the backward kernel's gradients against ``Im L(θ + ih e_k) / h`` of a
complex forward kernel, to near machine precision, with failures named to the element; and the
complex kernel itself (its forward pass, its C)."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

import symgate as sg
from symgate.codegen.render import runtime_header
from symgate.frontend import functions
from symgate.jit import toolchain
from symgate.verify.complex_step import complex_step_check

TOLERANCE = 1e-12
"""Normwise relative error (each element against the largest derivative); right gradients measure ~1e-15."""
MIXED = """\
cell mixed
const beta = 0.5
input x: D
input z: H
state h: H
state c: H
a = softplus(W @ x + b) + exp(-h*h)
g = sigmoid(U @ h + z)
n = sqrt(a + 1)*log(2 + c*c) + (a + 1)**(3/2)/4
c' = g*c + (1 - g)*tanh(n - mean(n)) + beta*relu(z)
h' = tanh(c')*(1 + sum(h)/8)
output y: P = relu(V @ h' + d)
"""
"""A user's cell: two inputs, two states, an output, every function of the cell language, a
fractional power, reductions and a constant."""


def _sizes(cell: sg.Cell) -> dict[str, int]:
    return {d: 3 + i for i, d in enumerate(cell.dims)}


@pytest.mark.parametrize(
    "name", ["lstm", "gru_cho", "gru_pytorch", "intersection_rnn", "r2rt_normalized_prototype", "lstmp_pytorch"]
)
def test_built_in_cells_agree_with_the_complex_step_to_machine_precision(name):
    cell = sg.cells.get(name)
    report = sg.gradcheck(cell, _sizes(cell), steps=4, complex_step=True)
    check = report.complex_step
    assert report.ok and check.ok, str(report)
    assert check.max_rel_error < TOLERANCE
    assert [t.name for t in check.gradients] == [t.name for t in report.gradients]  # every tensor, as gradcheck's
    assert re.search(
        r"complex step \(h = 1e-20\) vs backward kernel: max normwise rel err \S+ \(tolerance", str(report)
    )


def test_a_users_cell_with_every_function_agrees():
    cell = sg.parse(MIXED)
    report = sg.gradcheck(cell, _sizes(cell), complex_step=True)
    assert report.ok, str(report)
    assert report.complex_step.max_rel_error < TOLERANCE
    source = sg.generate(cell, "complex128").c_source
    for function in ("cexp(", "clog(", "csqrt(", "cpow(", "ctanh(", "sg_csigmoid(", "sg_csoftplus(", "sg_crelu("):
        assert function in source


def test_the_complex_step_judges_every_element_where_finite_differences_cannot():
    saturating = (
        "cell sat\ninput x: D\nstate h: H\nf = sigmoid(W @ (1000*x) + U @ h)\nh' = f*h + (1-f)*tanh(V @ (1000*x))\n"
    )
    report = sg.gradcheck(sg.parse(saturating), {"D": 3, "H": 4}, complex_step=True)
    assert report.unresolved > 0
    assert all(t.unresolved == 0 for t in report.complex_step.gradients)
    assert report.complex_step.max_rel_error < TOLERANCE


def test_a_gradient_wrong_below_what_finite_differences_see_fails_the_complex_step(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))  # the wrong kernels stay out of the shared cache
    monkeypatch.setattr(functions.sigmoid, "fdiff", lambda self, argindex=1: self * (1 - self) * (1 + 1e-9))
    report = sg.gradcheck(sg.cells.get("gru_cho"), {"D": 3, "H": 4}, complex_step=True)
    check = report.complex_step
    assert report.max_rel_error <= report.tolerance and report.taylor.ok  # finite differences pass it
    assert not check.ok and not report.ok
    assert 1e-11 < check.max_rel_error < 1e-8
    worst = check.worst
    assert f"<- largest error: {worst.where()}: kernel {worst.worst_kernel:.6e}, complex step " in str(report)


def test_a_wrong_element_is_named_with_its_step_sample_and_unit():
    cell = sg.cells.get("lstm")
    sizes = {"D": 3, "H": 4}
    kernel = sg.build(cell)
    rng = np.random.default_rng(0)
    params = kernel.init_params(sizes, seed=0)
    inputs = {"x": rng.standard_normal((5, 2, 3))}
    init = {s: rng.uniform(-0.5, 0.5, (2, 4)) for s in cell.states}
    cotangents = {"h": rng.standard_normal((5, 2, 4)), "c": rng.standard_normal((5, 2, 4))}
    grads = kernel.backward(kernel.forward(inputs, params, init), cotangents)
    assert complex_step_check(cell, params, inputs, init, cotangents, grads).ok

    largest = max(np.abs(a).max() for a in [*grads.params.values(), *grads.inputs.values(), *grads.init.values()])
    grads.inputs["x"][3, 1, 2] += 1e-9 * largest
    check = complex_step_check(cell, params, inputs, init, cotangents, grads)
    assert not check.ok and check.worst.name == "x"
    assert check.worst.where() == "x at step 3, sample 1, unit 2"
    assert check.max_rel_error == pytest.approx(1e-9, rel=1e-3)
    assert "<- largest error: x at step 3, sample 1, unit 2: kernel " in str(check)
    assert [t.name for t in check.gradients if not t.max_rel_error < TOLERANCE] == ["x"]


def test_the_complex_kernel_is_the_forward_pass_in_complex_arithmetic():
    cell = sg.cells.get("lstm")
    real, complex_ = sg.build(cell), sg.build(cell, "complex128")
    assert complex_.entry.path != real.entry.path and "lstm_complex128-" in complex_.entry.path.name
    params = real.init_params({"D": 3, "H": 4}, seed=1)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    run = complex_.forward(x.astype(np.complex128), {n: a.astype(np.complex128) for n, a in params.items()})
    expected = real.forward(x, params)
    np.testing.assert_allclose(run.states["h"].real, expected.states["h"], rtol=0, atol=1e-15)
    assert not run.states["h"].imag.any()
    with pytest.raises(sg.ArrayError, match="complex128 kernel of lstm is a forward pass only"):
        complex_.backward(run, {})
    with pytest.raises(sg.ArrayError, match="has dtype float64 but this kernel is complex128"):
        complex_.forward(x, params)


@pytest.mark.parametrize("name", ["lstmp_pytorch", "intersection_rnn", "r2rt_normalized_prototype", "mixed"])
def test_the_complex_c_compiles_without_warnings(name, tmp_path):
    """With the build's optimizer flags (some warnings need them) and the BLAS and vector-math
    switches defined: the complex kernel has no BLAS or vector-math block to enable."""
    cell = sg.parse(MIXED) if name == "mixed" else sg.cells.get(name)
    text = sg.generate(cell, "complex128").c_source
    assert "cblas" not in text and "SYMGATE_VECTOR_MATH" not in text and "_backward" not in text
    source = tmp_path / "kernel.c"
    source.write_text(text)
    strict = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", f"-I{runtime_header().parent}"]
    strict += ["-DSYMGATE_BLAS", "-DSYMGATE_MKL", "-DSYMGATE_VECTOR_MATH"]
    optimized = [flag for flag in toolchain.COMPILE_FLAGS if flag != "-shared"]
    command = [*strict, *optimized, "-c", str(source), "-o", str(tmp_path / "kernel.o")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
