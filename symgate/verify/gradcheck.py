"""Gradient check: the compiled kernels against finite differences of the NumPy reference.

Every gradient the backward kernel returns (parameters, input sequence, initial states) is
compared element by element with central finite differences of the loss
``L = Σ_t <G_t, state_t> + Σ_t <G'_t, output_t>`` (random cotangents G) evaluated by
:mod:`symgate.verify.reference`, in float64, never by the C kernel itself. The differences use the
fourth-order stencil ``(-L(2e) + 8L(e) - 8L(-e) + L(-2e)) / 12e``, taken at e = 1e-3 and e/2 and
Richardson-extrapolated to sixth order (strongly curved losses, such as ``tanh(4h)`` composed over
the steps, left fourth-order truncation errors of 1e-6). An element's relative error is
``|g - fd| / max(|fd|, 1e-3 * m, ν / tolerance)``, where m is the largest ``|fd|`` of its tensor
and ``ν = Σ|w| ε Σ|G ⊙ y| / e`` is the rounding noise of the stencil (w its weights, ε the float64
epsilon, y the states and outputs): elements far below the rest of their tensor are judged against
the tensor's scale, and no element is judged finer than the differences can resolve.
A duality test adds ``<u, VJP(G)>`` against the finite-difference directional derivative
along a random direction u over all tensors at once, and the forward kernel is compared with
the reference; optionally the float32 kernel is compared with the float64 one, and the
gradients with complex steps of a complex forward kernel (:mod:`symgate.verify.complex_step`), which
agree with a right gradient to near machine precision.

Two more guards against a check that passes or fails for the wrong reason:

* An element over tolerance whose two fourth-order estimates (at e and e/2) disagree by more
  than the tolerance themselves is *unresolved*: the loss bends within the stencil, as where an
  activation saturates, and no finite difference at this step can judge it. Such elements are
  counted and reported, not failed.
* The Taylor-remainder test (:mod:`symgate.verify.taylor`) along the same direction u needs no
  tolerance: the remainder of the first-order expansion must fall with slope 2.

A failure names, for every tensor over tolerance, its worst element: the time step, sample and
unit of an input sequence, the sample and unit of an initial state, the index of a parameter.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..arguments import count_argument, flag_argument, number_argument, sizes_argument
from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..frontend.functions import SCALAR, dims_of
from ..pipeline import build
from . import reference
from .complex_step import ComplexStepCheck, complex_step_check
from .taylor import TaylorCheck, taylor_test
from .tensor_check import TensorCheck, compare_tensor, weighted_sum

STEP = 1e-3
FOURTH_ORDER = ((-2.0, 1 / 12), (-1.0, -8 / 12), (1.0, 8 / 12), (2.0, -1 / 12))  # (offset, weight), per step e


def _richardson(stencil: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """``(16 D(e/2) - D(e)) / 15``: the fourth-order stencil extrapolated to sixth order."""
    weights: dict[float, float] = {}
    for offset, weight in stencil:
        weights[offset] = weights.get(offset, 0.0) - weight / 15
        weights[offset / 2] = weights.get(offset / 2, 0.0) + 16 / 15 * 2 * weight
    return tuple(sorted(weights.items()))


STENCIL = _richardson(FOURTH_ORDER)
"""The derivative is ``Σ weight * L(x + offset*e) / e``."""
_COARSE = dict(FOURTH_ORDER)
SPREAD = tuple(_COARSE.get(o, 0.0) - 2 * _COARSE.get(2 * o, 0.0) for o, _ in STENCIL)
"""Weights over STENCIL's offsets of ``D(e) - D(e/2)``, the two fourth-order estimates that
Richardson extrapolation combines: their difference measures how far the stencil has converged."""
NOISE_FACTOR = sum(abs(weight) for _, weight in STENCIL)  # rounding noise of L is amplified this much / e
CHUNK = 4096


@dataclass(frozen=True)
class GradcheckReport:
    """The outcome of :func:`gradcheck`; ``str()`` gives the table."""

    cell: str
    sizes: dict[str, int]
    steps: int
    batch: int
    seed: int
    tolerance: float
    gradients: tuple[TensorCheck, ...]
    noise: float
    forward_rel_error: float
    duality_rel_error: float
    float32_rel_error: float | None = None
    float32_tolerance: float = 1e-4
    taylor: TaylorCheck | None = None
    forward_worst: str = ""
    """Where the forward kernel differs most from the reference: state or output, step, sample, unit."""
    complex_step: ComplexStepCheck | None = None

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over every gradient, the forward pass and the duality test."""
        return max([t.max_rel_error for t in self.gradients] + [self.forward_rel_error, self.duality_rel_error])

    @property
    def ok(self) -> bool:
        float32_ok = self.float32_rel_error is None or self.float32_rel_error <= self.float32_tolerance
        taylor_ok = self.taylor is None or self.taylor.ok
        complex_ok = self.complex_step is None or self.complex_step.ok
        return self.max_rel_error <= self.tolerance and float32_ok and taylor_ok and complex_ok

    def __bool__(self) -> bool:
        """Whether the check passed (:attr:`ok`), so ``assert sg.gradcheck(...)`` means what it reads."""
        return self.ok

    @property
    def worst(self) -> TensorCheck:
        """The tensor whose worst element has the largest relative error."""
        return max(self.gradients, key=lambda t: t.max_rel_error)

    def title(self) -> str:
        sizes = " ".join(f"{d}={n}" for d, n in self.sizes.items())
        return (
            f"gradcheck {self.cell} (float64, {sizes}, T={self.steps}, B={self.batch}, seed {self.seed}): "
            f"{'ok' if self.ok else 'FAILED'} (tolerance {self.tolerance:g}, finite-difference noise {self.noise:.1e})"
        )

    @property
    def unresolved(self) -> int:
        """How many elements finite differences could not judge (see :func:`gradcheck`)."""
        return sum(t.unresolved for t in self.gradients)

    def checks(self) -> list[str]:
        """The checks beside the per-tensor table: forward pass, duality, Taylor, float32 and complex step,
        one line each."""
        lines = []
        if self.unresolved:
            where = ", ".join(f"{t.name} {t.unresolved}" for t in self.gradients if t.unresolved)
            lines.append(
                f"unresolved: {self.unresolved} elements ({where}) where finite differences at steps e and e/2 "
                "disagree by more than the tolerance (the loss bends within the stencil, as where an activation "
                "saturates); not counted"
            )
        forward_where = f" ({self.forward_worst})" if self.forward_rel_error > self.tolerance else ""
        lines += [
            f"forward kernel vs NumPy reference: max rel err {self.forward_rel_error:.2e}{forward_where}",
            f"duality <u, VJP(G)> vs directional FD: rel err {self.duality_rel_error:.2e}",
        ]
        if self.taylor is not None:
            lines.append(str(self.taylor) + ("" if self.taylor.ok else "  <- the gradient is wrong along u"))
        if self.gradients and self.worst.max_rel_error > self.tolerance:
            worst = self.worst
            lines.append(f"largest error: {worst.where()} (rel err {worst.max_rel_error:.2e})")
        if self.float32_rel_error is not None:
            lines.append(
                f"float32 kernel vs float64 kernel: max rel err {self.float32_rel_error:.2e} "
                f"(tolerance {self.float32_tolerance:g})"
            )
        if self.complex_step is not None:
            lines.append(str(self.complex_step))
        return lines

    def __str__(self) -> str:
        lines = [self.title(), f"  {'tensor':<14}{'kind':<8}{'elements':>9}{'max abs err':>13}{'max rel err':>13}"]
        for t in self.gradients:
            flag = "" if t.max_rel_error <= self.tolerance else "  <- exceeds tolerance"
            lines.append(
                f"  {t.name:<14}{t.kind:<8}{t.elements:>9}{t.max_abs_error:>13.2e}{t.max_rel_error:>13.2e}{flag}"
            )
            if flag:
                lines.append(f"      worst: {self._worst_line(t)}")
        lines += [f"  {line}" for line in self.checks()]
        return "\n".join(lines)

    def _worst_line(self, t: TensorCheck) -> str:
        return f"{t.where()}: kernel {t.worst_kernel:.6e}, finite differences {t.worst_differences:.6e}"

    def _repr_html_(self) -> str:
        """The same report as HTML for notebooks: one row a checked tensor, those over tolerance
        in bold and of class ``failed``, then the other checks as a list."""
        rows = "".join(self._html_row(t) for t in self.gradients)
        columns = ("tensor", "kind", "elements", "max abs err", "max rel err", "tolerance", "ok")
        head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
        checks = "".join(f"<li>{html.escape(line)}</li>" for line in self.checks())
        return (
            f"<p><b>{html.escape(self.title())}</b></p>"
            f"<table><thead>{head}</thead><tbody>{rows}</tbody></table><ul>{checks}</ul>"
        )

    def _html_row(self, t: TensorCheck) -> str:
        relative = f"{t.max_rel_error:.2e}"
        failed = t.max_rel_error > self.tolerance
        if failed:
            relative = f"<b>{relative} exceeds tolerance</b>"
        cells = (
            html.escape(t.name),
            html.escape(t.kind),
            t.elements,
            f"{t.max_abs_error:.2e}",
            relative,
            f"{self.tolerance:g}",
            "<b>no</b>" if failed else "yes",
        )
        mark = ' class="failed"' if failed else ""
        return f"<tr{mark}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def gradcheck(
    cell: Cell | str | os.PathLike,
    sizes: Mapping[str, int],
    steps: int = 5,
    batch: int = 2,
    seed: int = 0,
    tolerance: float = 1e-6,
    float32: bool = False,
    taylor_check: bool = True,
    complex_step: bool = False,
) -> GradcheckReport:
    """Checks the compiled kernels of ``cell`` against finite differences (see the module doc).

    The kernels checked are float64, the default of :func:`symgate.build` and :func:`symgate.export`:
    finite differences need its precision to tell a wrong gradient from rounding. ``float32=True``
    also builds the float32 kernels and compares them with the float64 ones.
    ``complex_step=True`` also checks the gradients against complex steps (its own tolerance,
    :data:`symgate.verify.complex_step.TOLERANCE`); it builds the cell's complex forward kernel.
    """
    cell, sizes = cell_argument(cell), sizes_argument(sizes)
    steps, batch = count_argument(steps, "steps"), count_argument(batch, "batch")
    seed, tolerance = count_argument(seed, "seed", minimum=0), number_argument(tolerance, "tolerance")
    float32, taylor_check = flag_argument(float32, "float32"), flag_argument(taylor_check, "taylor_check")
    complex_step = flag_argument(complex_step, "complex_step")
    kernel = build(cell, "float64")
    rng = np.random.default_rng(seed + 1)
    params = kernel.init_params(sizes, seed=seed)
    extents = {**sizes, SCALAR: 1}  # a per-sample scalar is (T, B, 1) or (B, 1), as the kernel takes and returns it

    def per_sample(size: str) -> tuple[int, ...]:  # a matrix state is (B, K, V)
        return tuple(extents[d] for d in dims_of(size))

    inputs = {x: rng.standard_normal((steps, batch, *per_sample(d))) for x, d in cell.inputs.items()}
    init = {s: rng.uniform(-0.5, 0.5, (batch, *per_sample(d))) for s, d in cell.states.items()}
    cotangents = {
        n: rng.standard_normal((steps, batch, *per_sample(d))) for n, d in {**cell.states, **cell.outputs}.items()
    }

    run = kernel.forward(inputs, params, init)
    grads = kernel.backward(run, cotangents)
    ref_states, ref_outputs = reference.forward(cell, inputs, params, init)
    compared = [(s, run.states[s], ref_states[s]) for s in cell.states]
    compared += [(y, run.outputs[y], ref_outputs[y]) for y in cell.outputs]
    forward_error, forward_worst = max((_normwise(a, b), _where(name, a, b)) for name, a, b in compared)

    tensors = {("param", n): a for n, a in params.items()}
    tensors |= {("input", n): a for n, a in inputs.items()} | {("init", n): a for n, a in init.items()}
    computed = {("param", n): a for n, a in grads.params.items()}
    computed |= {("input", n): a for n, a in grads.inputs.items()} | {("init", n): a for n, a in grads.init.items()}

    def loss(kind: str, name: str, perturbed: np.ndarray) -> np.ndarray:
        """The loss for a stack of perturbed copies (leading axis) of one tensor."""
        p, x, h = dict(params), dict(inputs), dict(init)
        if kind == "param":
            p[name] = perturbed
        elif kind == "init":
            h[name] = perturbed
        else:
            x[name] = np.moveaxis(perturbed, 0, 1)
        states, outputs = reference.forward(cell, x, p, h)
        return weighted_sum(states, outputs, cotangents, stacked=True)

    magnitude = sum(
        float(np.sum(np.abs(value * cotangents[name]))) for name, value in {**ref_states, **ref_outputs}.items()
    )
    noise = NOISE_FACTOR * np.finfo(np.float64).eps * magnitude / STEP
    checks = []
    for (kind, name), value in tensors.items():
        fd, spread = _finite_differences(lambda stack, kind=kind, name=name: loss(kind, name, stack), value)
        checks.append(compare_tensor(name, kind, computed[(kind, name)], fd, spread, noise / tolerance, tolerance))

    direction = {key: rng.standard_normal(value.shape) for key, value in tensors.items()}
    length = np.sqrt(sum(float(np.sum(d * d)) for d in direction.values()))  # unit length: the same
    direction = {key: d / length for key, d in direction.items()}  # step as the per-element checks
    directional = (
        sum(
            weight * weighted_sum(*_shifted_forward(cell, params, inputs, init, direction, offset * STEP), cotangents)
            for offset, weight in STENCIL
        )
        / STEP
    )
    predicted = sum(float(np.sum(direction[key] * computed[key])) for key in tensors)
    duality = abs(predicted - directional) / max(abs(predicted), abs(directional), noise / tolerance)
    along = lambda amount: weighted_sum(*_shifted_forward(cell, params, inputs, init, direction, amount), cotangents)  # noqa: E731
    taylor = taylor_test(along, predicted, noise * STEP) if taylor_check else None

    float32_error = _float32_error(cell, params, inputs, init, cotangents, run, grads) if float32 else None
    complex_check = None
    if complex_step:
        complex_check = complex_step_check(cell, params, inputs, init, cotangents, grads)
    return GradcheckReport(
        cell=cell.name,
        sizes=dict(sizes),
        steps=steps,
        batch=batch,
        seed=seed,
        tolerance=tolerance,
        gradients=tuple(checks),
        noise=noise,
        forward_rel_error=forward_error,
        duality_rel_error=duality,
        float32_rel_error=float32_error,
        taylor=taylor,
        forward_worst=forward_worst,
        complex_step=complex_check,
    )


def _finite_differences(loss_of_stack, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The extrapolated central difference of the loss for every element of ``value``, and
    ``|D(e) - D(e/2)|``, how much the two fourth-order estimates it combines disagree."""
    flat = value.reshape(-1)
    result, spread = np.zeros(flat.size), np.zeros(flat.size)
    for start in range(0, flat.size, CHUNK // len(STENCIL)):
        index = np.arange(start, min(start + CHUNK // len(STENCIL), flat.size))
        stack = np.repeat(flat[None, :], len(index) * len(STENCIL), axis=0)
        rows = np.arange(len(index) * len(STENCIL))
        offsets = np.tile([o for o, _ in STENCIL], len(index))
        stack[rows, np.repeat(index, len(STENCIL))] += offsets * STEP
        losses = loss_of_stack(stack.reshape(-1, *value.shape)).reshape(len(index), len(STENCIL))
        result[index] = losses @ np.array([w for _, w in STENCIL]) / STEP
        spread[index] = np.abs(losses @ np.array(SPREAD)) / STEP
    return result.reshape(value.shape), spread.reshape(value.shape)


def _shifted_forward(cell, params, inputs, init, direction, amount):
    shift = lambda kind, values: {n: v + amount * direction[(kind, n)] for n, v in values.items()}  # noqa: E731
    return reference.forward(cell, shift("input", inputs), shift("param", params), shift("init", init))


def _where(name: str, a: np.ndarray, b: np.ndarray) -> str:
    """The step, sample and unit (a matrix's row and column) of a sequence where ``a`` differs most from ``b``."""
    if a.size == 0:
        return name
    index = np.unravel_index(int(np.argmax(np.abs(a - b))), a.shape)
    step, sample, *unit = (int(i) for i in index)
    where = f"unit {unit[0]}" if len(unit) == 1 else f"row {unit[0]}, column {unit[1]}"
    return f"{name} at step {step}, sample {sample}, {where}: kernel {a[index]:.6e}, reference {b[index]:.6e}"


ZERO_TO_ROUNDING = float(np.sqrt(np.finfo(np.float64).eps))
"""The least magnitude an array is compared relative to: an array zero to rounding (a value that
cancels exactly, such as hᵀQh - hᵀQᵀh) holds rounding noise in both the kernel and the
reference, and noise relative to noise is no error."""


def _normwise(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference of ``a`` from ``b`` relative to the largest magnitude of ``b``."""
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), ZERO_TO_ROUNDING))


def _float32_error(cell, params, inputs, init, cotangents, run64, grads64) -> float:
    """The largest normwise relative difference of the float32 kernel from the float64 one."""
    kernel = build(cell, "float32")
    single = lambda values: {n: v.astype(np.float32) for n, v in values.items()}  # noqa: E731
    run = kernel.forward(single(inputs), single(params), single(init))
    grads = kernel.backward(run, single(cotangents))
    pairs = [(run.states[s], run64.states[s]) for s in cell.states]
    pairs += [(run.outputs[y], run64.outputs[y]) for y in cell.outputs]
    pairs += [(grads.params[n], grads64.params[n]) for n in grads64.params]
    pairs += [(grads.inputs[n], grads64.inputs[n]) for n in grads64.inputs]
    pairs += [(grads.init[n], grads64.init[n]) for n in grads64.init]
    return max(_normwise(a.astype(np.float64), b) for a, b in pairs)
