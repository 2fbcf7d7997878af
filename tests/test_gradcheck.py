"""The gradient check beyond one tolerance: the Taylor-remainder slope, and failure reports that
name the tensor, the element and the time step with the largest error."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgate as sg
from symgate.frontend import functions
from symgate.verify import reference
from symgate.verify.gradcheck import GradcheckReport, TensorCheck

SIZES = {"D": 3, "H": 4}


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "lstm_peephole", "sru"])
def test_right_gradients_give_a_taylor_slope_of_2(name):
    report = sg.gradcheck(sg.cells.get(name), {d: 3 + i for i, d in enumerate(sg.cells.get(name).dims)})
    assert report.ok and report, str(report)  # a report is true when it passed: `assert sg.gradcheck(...)`
    assert 1.95 < report.taylor.slope < 2.05
    assert re.search(r"Taylor remainder .*: slope 2\.0\d over ε = ", str(report))
    assert report.taylor.span[0] > report.taylor.span[1] > 0


def test_a_subtly_wrong_derivative_fails_every_check_and_the_report_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))  # the wrong kernels stay out of the shared cache
    monkeypatch.setattr(functions.sigmoid, "fdiff", lambda self, argindex=1: self * (1 - self) * 1.0001)
    cell = sg.cells.get("gru_cho")
    report = sg.gradcheck(cell, SIZES)
    text = str(report)
    assert not report.ok and not report and not report.taylor.ok
    assert report.taylor.slope < 1.5 and "<- the gradient is wrong along u" in text
    shapes = {n: a.shape for n, a in sg.build(cell).init_params(SIZES).items()} | {"x": (5, 2, 3), "h": (2, 4)}
    for check in report.gradients:
        if check.max_rel_error <= report.tolerance:
            continue
        assert f"      worst: {check.where()}: kernel " in text
        assert all(0 <= i < n for i, n in zip(check.worst, shapes[check.name], strict=True))
        assert 0 < abs(check.worst_kernel - check.worst_differences) <= check.max_abs_error
    x = next(t for t in report.gradients if t.name == "x")
    assert re.fullmatch(r"x at step [0-4], sample [01], unit [0-2]", x.where())
    assert re.fullmatch(
        r"initial h, sample [01], unit [0-3]", next(t for t in report.gradients if t.name == "h").where()
    )
    assert f"largest error: {report.worst.where()} (rel err {report.worst.max_rel_error:.2e})" in text


def test_a_forward_mismatch_names_the_state_step_sample_and_unit(monkeypatch):
    wrong = dict(reference._FUNCTIONS)
    wrong[functions.sigmoid] = lambda a: 0.5 * (1.0 + np.tanh(0.5 * a)) * (1 + 1e-4 * (a > 0.5))
    monkeypatch.setattr(reference, "_FUNCTIONS", wrong)
    report = sg.gradcheck(sg.cells.get("lstm"), SIZES)
    assert not report.ok and report.forward_rel_error > report.tolerance
    assert re.search(
        r"forward kernel vs NumPy reference: max rel err \S+ \([hc] at step \d, sample \d, unit \d: ", str(report)
    )


def test_a_loss_linear_along_the_direction_has_no_slope_to_judge():
    report = sg.gradcheck(sg.parse("cell lin\ninput x: H\nstate h: H\nh' = 0.5*h + 1 + 0.5*x\n"), SIZES)
    assert report.ok and report.taylor.slope is None and report.taylor.ok
    assert "Taylor remainder at rounding level" in str(report)


def test_the_taylor_test_holds_where_finite_differences_cannot_resolve_every_element():
    saturating = (
        "cell sat\ninput x: D\nstate h: H\nf = sigmoid(W @ (1000*x) + U @ h)\nh' = f*h + (1-f)*tanh(V @ (1000*x))\n"
    )
    report = sg.gradcheck(sg.parse(saturating), SIZES)
    assert report.unresolved > 0 and report.ok and 1.95 < report.taylor.slope < 2.05


def test_the_worst_element_is_described_by_its_kind():
    def check(kind, worst):
        return TensorCheck("v", kind, 10, 1.0, 1.0, 0, worst, 2.0, 1.0)

    assert check("input", (3, 1, 0)).where() == "v at step 3, sample 1, unit 0"
    assert check("init", (1, 2)).where() == "initial v, sample 1, unit 2"
    assert check("param", (2, 0)).where() == "v[2, 0]"
    assert check("param", (5,)).where() == "v[5]"
    report = GradcheckReport("c", {"H": 4}, 5, 2, 0, 1e-6, (check("input", (3, 1, 0)),), 0.0, 0.0, 0.0)
    assert "      worst: v at step 3, sample 1, unit 0: kernel 2.000000e+00, finite differences 1.000000e+00" in str(
        report
    )
    assert "largest error: v at step 3, sample 1, unit 0 (rel err 1.00e+00)" in str(report)


SCALAR_OUTPUT = """cell s
input x: D
state h: H
h' = tanh(W @ x + U @ h)
output e = sum(h'**2)
"""


def test_a_per_sample_scalar_output_is_gradient_checked_in_every_way():
    cell = sg.parse(SCALAR_OUTPUT)
    assert cell.outputs == {"e": "1"}
    report = sg.gradcheck(cell, SIZES, float32=True, complex_step=True)
    assert report.ok, str(report)
    assert 1.95 < report.taylor.slope < 2.05
    kernel = sg.build(cell)
    params = kernel.init_params(SIZES)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    run = kernel.forward({"x": x}, params)
    _, outputs = reference.forward(cell, {"x": x}, params, {"h": np.zeros((2, 4))})
    assert run.outputs["e"].shape == outputs["e"].shape == (5, 2, 1)
    np.testing.assert_allclose(run.outputs["e"][..., 0], np.sum(run.states["h"] ** 2, axis=-1), rtol=1e-12)


def test_a_nan_loss_fails_the_taylor_check_instead_of_reading_as_linear():
    """A NaN remainder is never 'clear of the noise', so it once read as a loss linear along u."""
    from symgate.verify.taylor import taylor_test

    linear = taylor_test(lambda step: 1.0 + 3.0 * step, 3.0, 1e-16)
    assert linear.ok and linear.slope is None and "linear along u" in str(linear)
    broken = taylor_test(lambda step: float("nan"), 3.0, 1e-16)
    assert not broken.ok and "not finite" in str(broken)


def test_an_output_that_cancels_to_zero_is_rounding_noise_not_a_forward_mismatch():
    """y = hᵀQh - hᵀQᵀh is 0: kernel and reference give different rounding noise (about 1e-17,
    a relative difference of order 1), which the forward comparison must not take for an error
    (hypothesis found it, in a random cell): it compares relative to at least √eps."""
    cell = sg.parse(
        "cell cancels\ninput x: D\nstate h: H\nparam W: H x D, Q: H x H\n"
        "h' = tanh(W @ x + h)\noutput y: 1 = sum(h*(Q @ h - Q.T @ h))\n"
    )
    report = sg.gradcheck(cell, {"D": 3, "H": 4}, steps=4, batch=2, seed=0)
    assert report.ok, report
    assert report.forward_rel_error < 1e-6
