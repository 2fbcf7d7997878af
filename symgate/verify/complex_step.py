"""The complex-step check: the backward kernel's gradients against a complex forward kernel.

For a loss ``L`` analytic in an element ``θ_k``, ``L(θ + ih e_k) = L(θ) + ih ∂L/∂θ_k + O(h²)``, so
``Im L(θ + ih e_k) / h`` is the derivative with no subtraction to lose digits to: at h = 1e-20 the
truncation error is far below rounding, and a right gradient agrees to near machine precision,
where finite differences stop near 1e-10. The complex forward kernel is the real kernel's forward
pass in ``double _Complex`` (``build(cell, "complex128")``); where a function has a kink (relu,
max, min, abs, clip, mod, step) it follows the branch of the real part, the convention that makes
the check agree with the derivative the backward pass uses (on a tie of ``max``, the mean of both
arguments, whose imaginary part is half of each, as the derivative splits it).

The loss is the gradient check's, ``Σ_t <G_t, state_t> + Σ_t <G'_t, output_t>`` with real
cotangents G, so ``Im L = Σ <G, Im state> + Σ <G', Im output>``. Every element of every
parameter, input sequence and initial state is perturbed in turn, one forward pass each (cheap
at the sizes of a gradient check). Errors are normwise over the whole gradient: every element is
judged against the largest derivative of any tensor. Not against its own tensor's: where a cell
saturates, a tensor's derivatives can all be tiny, and the backward pass computes them only to an
absolute accuracy near rounding (``1 - tanh²`` with tanh ≈ ±1), right as the derivation is. A
failure names the worst element: time step, sample and unit of an input sequence, sample and unit
of an initial state, index of a parameter.

Use it through ``sg.gradcheck(cell, sizes, complex_step=True)``, or directly on any gradients::

    check = complex_step_check(cell, params, inputs, init, cotangents, kernel.backward(run, cotangents))
    assert check.ok, str(check)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..pipeline import build
from ..runtime.kernel import Gradients
from .tensor_check import TensorCheck, compare_tensor, weighted_sum

STEP = 1e-20
"""The imaginary step h: small enough that O(h²) vanishes below rounding, far above underflow."""
TOLERANCE = 1e-12
"""Normwise relative error allowed: thousands of float64 epsilons; right gradients measure ~1e-15."""


@dataclass(frozen=True)
class ComplexStepCheck:
    """The complex-step check of every gradient; ``str()`` gives one line, naming the worst element on failure."""

    gradients: tuple[TensorCheck, ...]
    step: float
    tolerance: float

    @property
    def max_rel_error(self) -> float:
        """The largest error over every tensor, relative to the largest derivative."""
        return max((t.max_rel_error for t in self.gradients), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.tolerance

    @property
    def worst(self) -> TensorCheck | None:
        """The tensor with the largest error (None for a cell with nothing to check)."""
        return max(self.gradients, key=lambda t: t.max_rel_error, default=None)

    def __str__(self) -> str:
        line = (
            f"complex step (h = {self.step:g}) vs backward kernel: max normwise rel err {self.max_rel_error:.2e} "
            f"(tolerance {self.tolerance:g})"
        )
        if self.ok:
            return line
        t = self.worst
        return (
            f"{line}  <- largest error: {t.where()}: kernel {t.worst_kernel:.6e}, "
            f"complex step {t.worst_differences:.6e}"
        )


def complex_step_check(
    cell: Cell | str | os.PathLike,
    params: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    init: Mapping[str, np.ndarray],
    cotangents: Mapping[str, np.ndarray],
    gradients: Gradients,
    *,
    step: float = STEP,
    tolerance: float = TOLERANCE,
) -> ComplexStepCheck:
    """Checks ``gradients`` (of the loss with ``cotangents``, at ``params``, ``inputs`` and ``init``,
    every state's initial value given) against complex steps of ``cell``'s complex forward kernel
    (``cell`` a ``Cell``, a built-in name or a ``.cell`` path)."""
    cell = cell_argument(cell)
    kernel = build(cell, "complex128")
    arrays = {
        "param": {n: np.array(a, dtype=np.complex128) for n, a in params.items()},
        "input": {n: np.array(a, dtype=np.complex128) for n, a in inputs.items()},
        "init": {n: np.array(a, dtype=np.complex128) for n, a in init.items()},
    }
    computed = {"param": gradients.params, "input": gradients.inputs, "init": gradients.init}
    derivatives = {}
    for kind, values in arrays.items():
        for name, value in values.items():
            derivative = np.empty(value.shape)
            flat, out = value.reshape(-1), derivative.reshape(-1)  # views: flat steps the array forward reads
            for index in range(flat.size):
                flat[index] += 1j * step
                run = kernel.forward(arrays["input"], arrays["param"], arrays["init"], copy=False)
                out[index] = weighted_sum(_imaginary(run.states), _imaginary(run.outputs), cotangents) / step
                flat[index] = flat[index].real
            derivatives[(kind, name)] = derivative
    largest = max((float(np.max(np.abs(d))) for d in derivatives.values() if d.size), default=0.0)
    scale = max(largest, np.finfo(np.float64).tiny)  # as the resolution, it is every element's denominator
    checks = tuple(
        compare_tensor(name, kind, computed[kind][name], d, np.zeros(d.shape), scale, tolerance)
        for (kind, name), d in derivatives.items()
    )
    return ComplexStepCheck(gradients=checks, step=step, tolerance=tolerance)


def _imaginary(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {n: v.imag for n, v in values.items()}
