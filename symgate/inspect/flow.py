"""Gradient flow: how fast the gradient of the last state with respect to earlier ones falls.

The measured quantity is ``‖∂s_T/∂s_{T-k}‖₂`` for every distance k = 0 … T, where ``s`` is all of a
cell's states together (``[h, c]`` for the LSTM) and ``‖·‖₂`` the spectral norm: the most that any
perturbation of ``s_{T-k}`` can be amplified (or the least it is shrunk) when it reaches ``s_T``.
It is measured with the compiled kernels, on random inputs (standard normal) and parameters
from the kernel's default initialisation (``Kernel.init_params``, optionally scaled, and with the
forget-gate bias set, see :mod:`symgate.inspect.forget_gate`), from a zero initial state, all seeded.

How: the forward kernel runs the sequence once. Then every step's Jacobian ``∂s_{t+1}/∂s_t`` is
taken from the backward kernel exactly, a row at a time: a one-step run from ``s_t`` with the unit
cotangent ``e_i`` on its final state returns row i as the gradient with respect to its initial
state (the rows of many steps run as one batch). The chain rule multiplies them from the end,
``∂s_T/∂s_{T-k} = J_{T-1} ⋯ J_{T-k}``, holding a few steps' Jacobians at a time, and the norm is
taken from the singular values. Over
several sequences (``samples``) the typical value is the geometric mean, since the norms span
orders of magnitude.

This is the claim of the LSTM papers made measurable: a simple RNN's ``∂h'/∂h = diag(1 - h'²) U``
shrinks the gradient at every step, while the LSTM's ``∂c'/∂c = diag(f)`` and the GRU's
``diag(z)`` (:mod:`symgate.symbolic.jacobian`) pass it on scaled only by a gate.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..arguments import count_argument, number_argument, sizes_argument
from ..errors import ArgumentError, SymgateError
from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..frontend.functions import dims_of, matrix_axes
from ..pipeline import build
from ..runtime.arrays import shape_of
from ..runtime.kernel import Kernel, Run
from .forget_gate import forget_bias_values

ROWS_PER_CALL = 8192
"""One-step runs per kernel call when taking the step Jacobians (bounds the memory used)."""
VECTOR_SIZE, MATRIX_SIZE = 32, 8
"""The default size of a dimension, and of one of a matrix state's."""
SHOWN_DISTANCES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def step_jacobians(kernel: Kernel, run: Run) -> np.ndarray:
    """``∂s_{t+1}/∂s_t`` for every step of ``run``: (T, B, N, N), states concatenated in declared order."""
    size = sum(_state_widths(kernel.cell, run))
    jacobians = np.empty((run.sizes["T"], run.sizes["B"], size, size))
    for span, chunk in _jacobian_chunks(kernel, run):
        jacobians[span] = chunk
    return jacobians


def gradients_to_last(jacobians: np.ndarray) -> np.ndarray:
    """``∂s_T/∂s_{T-k}`` for k = 0 … T from the step Jacobians: (T + 1, B, N, N), k = 0 the identity."""
    steps, batch, size, _ = jacobians.shape
    return np.stack([np.broadcast_to(np.eye(size), (batch, size, size)), *_chain([(range(steps), jacobians)])])


def _jacobian_chunks(kernel: Kernel, run: Run, latest_first: bool = False) -> Iterator[tuple[range, np.ndarray]]:
    """The step Jacobians a few steps at a time (``range`` of steps, (steps, B, N, N)).

    Each kernel call runs one step from ``s_t`` for every step t of the chunk, sample and row i,
    with the unit cotangent ``e_i`` on its final state: the gradient it returns with respect to
    its initial state is row i of ``∂s_{t+1}/∂s_t``.
    """
    cell = kernel.cell
    steps, batch = run.sizes["T"], run.sizes["B"]
    widths = _state_widths(cell, run)
    size = sum(widths)
    before = {s: np.concatenate([run.init[s][None], run.states[s][:-1]]) for s in cell.states}
    unit = np.split(np.eye(size, dtype=run.init[next(iter(cell.states))].dtype), np.cumsum(widths)[:-1], axis=1)
    length = max(1, ROWS_PER_CALL // max(batch * size, 1))
    starts = range(0, steps, length)
    for start in reversed(starts) if latest_first else starts:
        span = range(start, min(start + length, steps))
        copies = len(span) * batch  # one-step runs, each repeated for the N rows
        init = {
            s: np.repeat(a[span].reshape(copies, -1), size, axis=0).reshape(-1, *a.shape[2:]) for s, a in before.items()
        }
        inputs = {x: np.repeat(a[span].reshape(copies, -1), size, axis=0)[None] for x, a in run.inputs.items()}
        one_step = kernel.forward(inputs, run.params, init)
        final = {
            s: np.tile(u, (copies, 1)).reshape(-1, *run.init[s].shape[1:])
            for s, u in zip(cell.states, unit, strict=True)
        }
        grads = kernel.backward(one_step, final=final)
        rows = np.concatenate([grads.init[s].reshape(copies * size, -1) for s in cell.states], axis=1)
        yield span, rows.reshape(len(span), batch, size, size)


def _state_widths(cell: Cell, run: Run) -> list[int]:
    """The units of each state, a matrix state's K·V laid row after row: the states' blocks of a
    step Jacobian, whose norm measures all of them together."""
    return [int(np.prod(shape_of(dims_of(size), run.sizes))) for size in cell.states.values()]


def _chain(chunks_latest_first: Iterable[tuple[range, np.ndarray]]) -> Iterator[np.ndarray]:
    """``∂s_T/∂s_{T-k}`` for k = 1, 2, … T: the chain rule, one step Jacobian at a time from the end."""
    product = None
    for _, chunk in chunks_latest_first:
        for jacobian in chunk[::-1]:
            product = jacobian if product is None else product @ jacobian
            yield product


@dataclass(frozen=True)
class Flow:
    """The measured gradient flow of one cell.

    ``norms[k, b]`` is ``‖∂s_T/∂s_{T-k}‖₂`` for sequence b; ``typical[k]`` their geometric mean.
    ``forget_bias`` names the parameters set for the forget gate and their values (empty: none set).
    """

    cell: str
    norms: np.ndarray
    sizes: dict[str, int]
    seed: int
    scale: float
    forget_bias: dict[str, float]

    @property
    def steps(self) -> int:
        return self.norms.shape[0] - 1

    @property
    def typical(self) -> np.ndarray:
        """The geometric mean over sequences at every distance (0 where any sequence reached 0)."""
        with np.errstate(divide="ignore"):
            return np.exp(np.mean(np.log(self.norms), axis=1))

    def per_step_factor(self) -> float:
        """The geometric mean factor by which one step scales the norm: ``typical[T] ** (1/T)``."""
        return float(self.typical[-1] ** (1 / self.steps)) if self.steps else 1.0

    def shown_distances(self) -> list[int]:
        """The distances a table shows: 1, 2, 5, 10, 20, 50 ... up to and including ``steps``."""
        return [k for k in SHOWN_DISTANCES if k < self.steps] + [self.steps]

    def settings(self) -> str:
        sizes = " ".join(f"{d}={n}" for d, n in self.sizes.items())
        bias = ", ".join(f"{n} = {v:g}" for n, v in self.forget_bias.items()) or "as drawn"
        return f"{sizes}, scale {self.scale:g}, forget-gate bias {bias}, seed {self.seed}"

    def _repr_html_(self) -> str:
        return flow_html([self])


def measure_flow(
    cell: Cell | str | os.PathLike,
    steps: int = 100,
    sizes: Mapping[str, int] | None = None,
    samples: int = 4,
    seed: int = 0,
    scale: float = 1.0,
    forget_bias: float | None = None,
) -> Flow:
    """Measures ``‖∂s_T/∂s_{T-k}‖₂`` for k = 0 … ``steps`` with ``cell``'s float64 kernels (module doc).

    ``sizes`` default to 32 for every dimension and 8 for a matrix state's (a 32 x 32 state is 1024
    units, whose step Jacobians cost 1024³ per step to chain); others are ignored; ``samples`` is
    the number of random sequences;
    parameters are drawn with ``seed`` and multiplied by ``scale``; ``forget_bias``, when given, is
    the total bias of the cell's forget gates (a :class:`SymgateError` when it has none).
    """
    cell = cell_argument(cell)
    subject = f"gradient flow of {cell.name}"
    steps, samples = (count_argument(n, what, subject=subject) for n, what in ((steps, "steps"), (samples, "samples")))
    seed, scale = count_argument(seed, "seed", minimum=0), number_argument(scale, "scale")
    sizes = sizes_argument({} if sizes is None else sizes)
    forget_bias = None if forget_bias is None else number_argument(forget_bias, "forget_bias")
    kernel = build(cell, "float64")
    matrix_dims = {dim for size in cell.states.values() if matrix_axes(size) for dim in dims_of(size)}
    sizes = {dim: sizes.get(dim, MATRIX_SIZE if dim in matrix_dims else VECTOR_SIZE) for dim in cell.dims}
    params = {name: value * scale for name, value in kernel.init_params(sizes, seed=seed).items()}
    biases = forget_bias_values(cell, forget_bias) if forget_bias is not None else {}
    params |= {name: np.full_like(params[name], value) for name, value in biases.items()}
    rng = np.random.default_rng(seed + 1)
    inputs = {x: rng.standard_normal((steps, samples, *shape_of((dim,), sizes))) for x, dim in cell.inputs.items()}
    run = kernel.forward(inputs, params)
    chain = _chain(_jacobian_chunks(kernel, run, latest_first=True))
    norms = [np.ones(samples), *(np.linalg.norm(g, ord=2, axis=(-2, -1)) for g in chain)]
    return Flow(
        cell=cell.name,
        norms=np.array(norms),
        sizes=sizes,
        seed=seed,
        scale=scale,
        forget_bias=biases,
    )


def flow_table(flows: Sequence[Flow]) -> str:
    """The typical norm of every cell at distances 1, 2, 5, 10 ... as a text table, with the settings."""
    check_comparable(flows)
    distances = flows[0].shown_distances()
    samples = flows[0].norms.shape[1]
    width = max(12, *(len(f.cell) + 2 for f in flows))
    lines = [
        f"‖∂s_T/∂s_(T-k)‖₂, geometric mean over {samples} random sequences (float64 kernels):",
        f"{'distance k':>10}" + "".join(f"{f.cell:>{width}}" for f in flows),
    ]
    lines += [f"{k:>10}" + "".join(f"{f.typical[k]:>{width}.2e}" for f in flows) for k in distances]
    lines.append(f"{'per step':>10}" + "".join(f"{f.per_step_factor():>{width}.3f}" for f in flows))
    lines += [f"  {f.cell}: {f.settings()}" for f in flows]
    return "\n".join(lines)


def flow_csv(flows: Sequence[Flow]) -> str:
    """Every distance of every cell: ``cell,distance,geometric_mean,min,max`` over the sequences."""
    lines = ["cell,distance,geometric_mean,min,max"]
    for f in flows:
        low, high = f.norms.min(axis=1), f.norms.max(axis=1)
        lines += [f"{f.cell},{k},{f.typical[k]:.6e},{low[k]:.6e},{high[k]:.6e}" for k in range(f.steps + 1)]
    return "\n".join(lines) + "\n"


def flow_html(flows: Sequence[Flow]) -> str:
    """The table of :func:`flow_table` as HTML, for notebooks."""
    check_comparable(flows)
    head = "<tr><th>distance k</th>" + "".join(f"<th>{html.escape(f.cell)}</th>" for f in flows) + "</tr>"
    rows = "".join(
        f"<tr><td>{k}</td>" + "".join(f"<td>{f.typical[k]:.2e}</td>" for f in flows) + "</tr>"
        for k in flows[0].shown_distances()
    )
    notes = "".join(f"<li>{html.escape(f.cell)}: {html.escape(f.settings())}</li>" for f in flows)
    return f"<p>‖∂s_T/∂s_(T-k)‖₂, geometric mean over sequences</p><table>{head}{rows}</table><ul>{notes}</ul>"


def check_comparable(flows: Sequence[Flow]) -> None:
    """Flows shown side by side must exist and cover the same distances."""
    if isinstance(flows, Flow) or not isinstance(flows, Sequence) or not all(isinstance(f, Flow) for f in flows):
        raise ArgumentError(f"flows must be a list of Flow (from sg.measure_flow), not {type(flows).__name__}")
    if not flows:
        raise SymgateError("no gradient flows to show")
    if len({f.steps for f in flows}) > 1:
        steps = ", ".join(f"{f.cell}: {f.steps}" for f in flows)
        raise SymgateError(f"gradient flows over different numbers of steps cannot share a table ({steps})")
