"""Reductions over a zero-sized dimension (issue 19, point 6): NumPy's and PyTorch's semantics.

``sum`` over no units is 0; ``mean`` and ``var`` over none are NaN (``np.mean``, ``torch.mean``),
and the NaN flows into the states that read it and into their gradients as it does through
``torch.autograd``; the gradient with respect to the empty input is empty. The compiled kernels
(both dtypes, forward and backward), the NumPy reference, ``CellModule`` and the exported C agree.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest

import symgate as sg
from symgate.symbolic.jacobian import step_jacobian
from symgate.verify import reference

EMPTY = """\
cell empty_mean
input x: D, u: E
state h: H
h' = tanh(W @ x + U @ h + mean(u))
output total = sum(u)
output spread = var(u)
"""
SIZES = {"D": 2, "E": 0, "H": 3}
STEPS, BATCH = 3, 2


@pytest.fixture(scope="module")
def cell() -> sg.Cell:
    return sg.parse(EMPTY)


def _data(kernel: sg.Kernel, dtype=np.float64):
    rng = np.random.default_rng(0)
    params = kernel.init_params(SIZES, seed=0)
    x = {"x": rng.standard_normal((STEPS, BATCH, 2)).astype(dtype), "u": np.zeros((STEPS, BATCH, 0), dtype)}
    init = {"h": rng.uniform(-0.5, 0.5, (BATCH, 3)).astype(dtype)}
    extents = {"h": 3, "total": 1, "spread": 1}
    grads = {n: rng.standard_normal((STEPS, BATCH, k)).astype(dtype) for n, k in extents.items()}
    return params, x, init, grads


def _expect_empty_reductions(states, outputs) -> None:
    assert np.isnan(states["h"]).all()
    assert np.isnan(outputs["spread"]).all()
    np.testing.assert_array_equal(outputs["total"], 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_give_zero_sums_and_nan_means_and_the_nan_flows_into_the_gradients(cell, dtype):
    kernel = sg.build(cell, dtype)
    params, x, init, grads = _data(kernel, np.dtype(dtype))
    run = kernel.forward(x, params, init)
    _expect_empty_reductions(run.states, run.outputs)
    back = kernel.backward(run, grads)
    assert back.inputs["u"].shape == (STEPS, BATCH, 0)
    for name, gradient in [*back.params.items(), ("x", back.inputs["x"]), ("h", back.init["h"])]:
        assert np.isnan(gradient).all(), name


def test_the_reference_agrees_with_the_kernel_and_warns_of_nothing(cell):
    kernel = sg.build(cell)
    params, x, init, _ = _data(kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN is the defined result, not an accident to warn of
        states, outputs = reference.forward(cell, x, params, init)
    _expect_empty_reductions(states, outputs)
    run = kernel.forward(x, params, init)
    for name, value in [*states.items(), *outputs.items()]:
        np.testing.assert_array_equal(value, {**run.states, **run.outputs}[name], err_msg=name)


def _torch_gradients(torch, params, x, init, grads):
    """The cell written in PyTorch, and ``torch.autograd``'s gradients of the weighted-sum loss."""
    leaves = {n: torch.tensor(a, requires_grad=True) for n, a in {**params, **x, **init}.items()}
    h, states, totals, spreads = leaves["h"], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns of var's degrees of freedom over no units
        for t in range(STEPS):
            u = leaves["u"][t]
            h = torch.tanh(leaves["x"][t] @ leaves["W"].T + h @ leaves["U"].T + u.mean(-1, keepdim=True))
            states.append(h)
            totals.append(u.sum(-1, keepdim=True))
            spreads.append(u.var(-1, unbiased=False, keepdim=True))
        values = {"h": torch.stack(states), "total": torch.stack(totals), "spread": torch.stack(spreads)}
        loss = sum((values[n] * torch.tensor(g)).sum() for n, g in grads.items())
        loss.backward()
    return {n: t.grad.numpy() for n, t in leaves.items()}, {n: v.detach().numpy() for n, v in values.items()}


def test_kernel_and_cell_module_agree_with_torch_autograd(cell):
    torch = pytest.importorskip("torch")
    from symgate.torch import CellModule

    kernel = sg.build(cell)
    params, x, init, grads = _data(kernel)
    expected, values = _torch_gradients(torch, params, x, init, grads)
    assert np.isnan(values["h"]).all() and np.isnan(values["spread"]).all() and not values["total"].any()
    back = kernel.backward(kernel.forward(x, params, init), grads)
    got = {**back.params, **back.inputs, **back.init}
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)  # NaN where torch has NaN, equal shapes

    module = CellModule(cell, SIZES, dtype=torch.float64, params=params)
    leaves = {n: torch.tensor(a, requires_grad=True) for n, a in {**x, **init}.items()}
    seq = module.sequences({"x": leaves["x"], "u": leaves["u"]}, {"h": leaves["h"]})
    for name, value in values.items():
        np.testing.assert_array_equal({**seq.states, **seq.outputs}[name].detach().numpy(), value, err_msg=name)
    sum((t * torch.tensor(grads[n])).sum() for n, t in {**seq.states, **seq.outputs}.items()).backward()
    for name in params:
        np.testing.assert_array_equal(module.param(name).grad.numpy(), expected[name], err_msg=name)
    for name, leaf in leaves.items():
        np.testing.assert_array_equal(leaf.grad.numpy(), expected[name], err_msg=name)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")
def test_the_exported_library_gives_zero_sums_and_nan_means(cell, tmp_path):
    library = sg.export(cell, tmp_path, dtype="float64")
    infer = library.function("infer")
    sizes = ", ".join(["T", "B", *library.dims])
    dims = dict(zip(library.dims, [SIZES[d] for d in cell.dims], strict=True))
    lines = [
        "#include <stdio.h>",
        "#include <stdlib.h>",
        f'#include "{library.stem}.h"',
        f"enum {{ T = {STEPS}, B = {BATCH}, {', '.join(f'{c} = {n}' for c, n in dims.items())} }};",
        "static double *filled(size_t n) { double *a = malloc((n + 1) * sizeof *a);"
        " for (size_t k = 0; k <= n; ++k) { a[k] = 0.25; } return a; }",
        "int main(void) {",
    ]
    for a in infer.arguments:
        lines.append(f"    double *{a.c_name} = filled({library.size_macro(a.c_name)}({sizes}));")
    lines.append(f"    double *work = filled({infer.work}({sizes}));")
    lines.append(f"    {infer.name}({sizes}, NULL, {', '.join(a.c_name for a in infer.arguments)}, work);")
    for a in infer.arguments:
        if a.writes:
            count = f"{library.size_macro(a.c_name)}({sizes})"
            lines.append(f'    for (size_t k = 0; k < {count}; ++k) {{ printf("{a.name} %g\\n", {a.c_name}[k]); }}')
    lines += ["    return 0;", "}"]
    (tmp_path / "empty.c").write_text("\n".join(lines) + "\n")
    flags = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
    subprocess.run(["cc", *flags, "-o", "empty", "empty.c", f"{library.stem}.c", "-lm"], cwd=tmp_path, check=True)
    printed = subprocess.run(["./empty"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split()
    values: dict[str, list[float]] = {}
    for name, value in zip(printed[::2], printed[1::2], strict=True):
        values.setdefault(name, []).append(float(value))
    assert len(values["h"]) == STEPS * BATCH * 3 and np.isnan(values["h"]).all()
    assert values["total"] == [0.0] * STEPS * BATCH and np.isnan(values["spread"]).all()


def test_a_step_jacobian_through_a_mean_over_no_units_is_nan_not_an_exception():
    cell = sg.parse("cell empty_state\ninput x: D\nstate h: H, c: E\nh' = tanh(W @ x + mean(c))*h\nc' = tanh(c)\n")
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 2))}
    state, inputs = {"h": np.ones((BATCH, 3)), "c": np.zeros((BATCH, 0))}, {"x": np.ones((BATCH, 2))}
    assert step_jacobian(cell, "h'", "c").evaluate(params, state, inputs).shape == (BATCH, 3, 0)
    assert np.isnan(step_jacobian(cell, "h'", "h").evaluate(params, state, inputs)).all()
