"""Cells with a matrix-valued state against PyTorch and JAX, forward + backward (issue 21).

``run.py --configs matrix`` runs these rows (they are in its default set). What is timed, for
``deltanet`` and ``xlstm_mlstm`` at B = 8, D = 64, K = V = 64, T = 256, float32: the loss
``sum(y * G)`` over the cell's output y (T, B, V), for a fixed random G, and its gradients with
respect to every parameter, x and the initial states, by

* symgate: ``run = k.forward(x, params, init)``, ``run.outputs[y]``, ``k.backward(run, {y: G})``;
  and again with ``forward(..., recompute=True)``;
* a PyTorch loop: the cell as a careful user writes it (``matrix_cells.py``: everything that
  depends on x alone computed for all steps before the loop, from one stacked product; in the loop
  the recurrence, batched ``einsum``), autograd for the backward pass;
* the same loop with its step ``torch.compile``'d (the step, not the loop: Dynamo would unroll a
  loop of T steps); its first call compiles and is timed apart (cold: a new Inductor cache for the
  run, its graph caches off), as is
* JAX, when installed: ``jax.jit`` of ``jax.value_and_grad`` of the same text, the recurrence a
  ``lax.scan``; its first call compiles.

Before anything is timed, every implementation's y, dL/dx and dL/d(initial matrix state) must
agree with symgate's to ``TOLERANCE`` (relative to the largest magnitude), or the run stops. Then
the implementations take turns (``run.take_turns``) and each one's time is the median over the
rounds. Memory per step: symgate's ``run.kept_bytes / T``; PyTorch's, the storages autograd saves
(``run.autograd_saved_bytes``); JAX's, the residuals of an (eager) ``jax.vjp`` of the loss, the
inputs left out; all per step.

Why: the issue's targets are symgate ≥ 5× the PyTorch loop and ≥ 1.5× the best compiled anchor
(torch.compile or JAX), measured in one run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import matrix_cells
import numpy as np
import run
import torch

import symgate as sg

NAME = "matrix"  # the config name in run.py
SECTION = "run.py matrix"  # its section of RESULTS.md
CELL_NAMES = ("deltanet", "xlstm_mlstm")
B, D, K, V, T = 8, 64, 64, 64, 256
SEED = 21
ROUNDS = {False: 5, True: 3}  # quick? -> rounds
CALLS = 3  # timed calls a round, after one warm-up call
TOLERANCE = 1e-3  # float32 over T steps: y, dx and d(initial matrix state), relative to the largest magnitude
TARGETS = {"PyTorch loop": 5.0, "compiled": 1.5}  # issue 21: the anchor's time / symgate's, at least
COMPILED = ("torch.compile", "JAX")

TORCH_OPS = SimpleNamespace(
    einsum=torch.einsum,
    sigmoid=torch.sigmoid,
    exp=torch.exp,
    elu=torch.nn.functional.elu,
    log_sigmoid=torch.nn.functional.logsigmoid,
    maximum=torch.maximum,
    abs=torch.abs,
    split=lambda a, sizes: torch.split(a, sizes, dim=-1),
)


@dataclass
class Data:
    """What every implementation of one cell runs on (NumPy, float32)."""

    cell: matrix_cells.MatrixCell
    kernel: sg.Kernel
    params: dict[str, np.ndarray]
    x: np.ndarray  # (T, B, D)
    init: dict[str, np.ndarray]  # state -> (B, ...)
    G: np.ndarray  # (T, B, V): dL/dy

    @property
    def rows(self) -> list[int]:
        """The stacked input matrices' row counts, in stacking order."""
        return [self.params[m].shape[0] for m in self.cell.projections]


def make_data(name: str) -> Data:
    kernel = sg.build(name, "float32")
    rng = np.random.default_rng(SEED + CELL_NAMES.index(name))
    sizes = {"D": D, "K": K, "V": V}
    init = {
        s: (0.1 * rng.standard_normal((B, *(1 if a == "1" else sizes[a] for a in dims.split(" x "))))).astype("float32")
        for s, dims in kernel.cell.states.items()
    }
    return Data(
        cell=matrix_cells.CELLS[name],
        kernel=kernel,
        params=kernel.init_params(sizes, seed=SEED),
        x=rng.standard_normal((T, B, D)).astype("float32"),
        init=init,
        G=rng.standard_normal((T, B, V)).astype("float32"),
    )


# -- implementations: each call is one forward + backward; ``outcome`` its y, dx, d(init matrix) --


class Symgate:
    def __init__(self, data: Data, recompute: bool) -> None:
        self.data, self.recompute = data, recompute
        self.label = "symgate `recompute=True`" if recompute else "symgate"
        self.last: tuple[sg.Run, sg.Gradients] | None = None

    def __call__(self) -> None:
        d = self.data
        found = d.kernel.forward(d.x, d.params, init=d.init, recompute=self.recompute)
        found.outputs[d.cell.output]  # read, as a training loop reads it for its loss
        self.last = (found, d.kernel.backward(found, {d.cell.output: d.G}))

    def outcome(self) -> dict[str, np.ndarray]:
        assert self.last is not None
        found, grads = self.last
        return {
            "y": found.outputs[self.data.cell.output],
            "x": grads.inputs["x"],
            "S0": grads.init[self.data.cell.matrix_state],
        }

    def kept_per_step(self) -> float:
        d = self.data
        return d.kernel.forward(d.x, d.params, init=d.init, recompute=self.recompute).kept_bytes / T


class TorchLoop:
    """The PyTorch loop, its step eager or ``torch.compile``'d (``compiled``)."""

    def __init__(self, data: Data, compiled: bool) -> None:
        self.data = data
        self.x = run.leaf(data.x)
        self.init = {s: run.leaf(a) for s, a in data.init.items()}
        params = {n: torch.from_numpy(a) for n, a in data.params.items()}
        stacked = matrix_cells.stack(data.cell, params, lambda ts: torch.cat(ts, dim=0))
        self.q = {n: t.detach().contiguous().requires_grad_() for n, t in stacked.items()}
        self.G = torch.from_numpy(data.G)
        recur = data.cell.recur

        def step(f_t: Mapping[str, torch.Tensor], s: Mapping[str, torch.Tensor]) -> tuple[Any, torch.Tensor]:
            return recur(TORCH_OPS, f_t, s)

        if compiled:
            torch._dynamo.reset()  # each cell compiles afresh
            torch._inductor.config.fx_graph_cache = False  # compile times as a first compile takes them
            torch._functorch.config.enable_autograd_cache = False
        self.step = torch.compile(step) if compiled else step
        self.label = "torch.compile step" if compiled else "PyTorch loop"
        self.y: torch.Tensor | None = None

    def leaves(self) -> list[torch.Tensor]:
        return [self.x, *self.init.values(), *self.q.values()]

    def sequence(self) -> torch.Tensor:
        f = matrix_cells.features(TORCH_OPS, self.data.cell, self.q, self.data.rows, self.x)
        # unbind, not f[t]: each f[t]'s backward would write a zero-filled (T, B, ·) gradient, T² work
        per_step = {n: a.unbind(0) for n, a in f.items()}
        state, ys = dict(self.init), []
        for t in range(T):
            state, y = self.step({n: a[t] for n, a in per_step.items()}, state)
            ys.append(y)
        return torch.stack(ys)

    def __call__(self) -> None:
        for t in self.leaves():
            t.grad = None
        y = self.sequence()
        (y * self.G).sum().backward()
        self.y = y.detach()

    def outcome(self) -> dict[str, np.ndarray]:
        assert self.y is not None
        return {
            "y": self.y.numpy(),
            "x": self.x.grad.numpy(),
            "S0": self.init[self.data.cell.matrix_state].grad.numpy(),
        }

    def kept_per_step(self) -> float:
        return run.autograd_saved_bytes(self.leaves(), self.sequence) / T


class Jax:
    """``jax.jit`` of ``value_and_grad`` of the loss, the recurrence a ``lax.scan``."""

    label = "JAX `lax.scan`"

    def __init__(self, data: Data) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.data = jax, data
        ops = SimpleNamespace(
            einsum=jnp.einsum,
            sigmoid=jax.nn.sigmoid,
            exp=jnp.exp,
            elu=jax.nn.elu,
            log_sigmoid=jax.nn.log_sigmoid,
            maximum=jnp.maximum,
            abs=jnp.abs,
            split=lambda a, sizes: jnp.split(a, np.cumsum(sizes)[:-1].tolist(), axis=-1),
        )
        cell, rows, G = data.cell, data.rows, jnp.asarray(data.G)

        def sequence(q: Any, x: Any, init: Any) -> Any:
            f = matrix_cells.features(ops, cell, q, rows, x)
            return jax.lax.scan(lambda s, f_t: cell.recur(ops, f_t, s), init, f)[1]

        def loss(q: Any, x: Any, init: Any) -> Any:
            return jnp.sum(sequence(q, x, init) * G)

        self.loss, self.sequence = loss, jax.jit(sequence)
        self.fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        params = {n: jnp.asarray(a) for n, a in data.params.items()}
        q = matrix_cells.stack(cell, params, lambda xs: jnp.concatenate(xs, axis=0))
        self.args = (q, jnp.asarray(data.x), {s: jnp.asarray(a) for s, a in data.init.items()})
        self.last: Any = None

    def __call__(self) -> None:
        self.last = self.jax.block_until_ready(self.fwd_bwd(*self.args))

    def outcome(self) -> dict[str, np.ndarray]:
        _, (_, gx, ginit) = self.last
        y = self.sequence(*self.args)
        return {"y": np.asarray(y), "x": np.asarray(gx), "S0": np.asarray(ginit[self.data.cell.matrix_state])}

    def kept_per_step(self) -> float:
        """nbytes of the residuals an eager ``jax.vjp`` of the loss keeps, the inputs left out."""
        inputs = {a.unsafe_buffer_pointer() for a in self.jax.tree_util.tree_leaves(self.args)}
        _, backward = self.jax.vjp(self.loss, *self.args)
        residuals = self.jax.tree_util.tree_leaves(backward)
        return sum(r.nbytes for r in residuals if r.unsafe_buffer_pointer() not in inputs) / T


Implementation = Symgate | TorchLoop | Jax


def implementations(data: Data, with_jax: bool) -> dict[str, Implementation]:
    found: dict[str, Implementation] = {
        "symgate": Symgate(data, recompute=False),
        "symgate recompute": Symgate(data, recompute=True),
        "PyTorch loop": TorchLoop(data, compiled=False),
        "torch.compile": TorchLoop(data, compiled=True),
    }
    if with_jax:
        found["JAX"] = Jax(data)
    return found


# -- measuring -------------------------------------------------------------------------------


@dataclass
class CellResult:
    """One cell's per-round medians, memory per step, agreement with symgate and compile times."""

    rounds: dict[str, list[float]]  # implementation -> its median in each round
    labels: dict[str, str]
    kept: dict[str, float]  # implementation -> bytes kept for the backward pass, per step
    max_rel_diff: dict[str, float]  # implementation -> worst of y, dx, dS0 against symgate's
    compile_times: dict[str, float]  # implementation -> first call, seconds

    def timing(self, impl: str) -> run.Timing:
        return run.Timing(self.rounds[impl])

    def median(self, impl: str) -> float:
        return statistics.median(self.rounds[impl])

    def best_compiled(self) -> str | None:
        found = [c for c in COMPILED if c in self.rounds]
        return min(found, key=self.median) if found else None


def rel_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))


def check_agreement(impls: Mapping[str, Implementation], name: str) -> dict[str, float]:
    """Each implementation's worst relative difference to symgate over y, dx and d(initial matrix
    state), from its last call; raises if one exceeds TOLERANCE (nothing is timed then)."""
    ours = impls["symgate"].outcome()
    worst = {}
    for impl, found in impls.items():
        theirs = found.outcome()
        worst[impl] = max(rel_diff(ours[key], theirs[key]) for key in ours)
        if worst[impl] > TOLERANCE:
            raise AssertionError(f"{name}: {impl} differs from symgate by {worst[impl]:.2e} (> {TOLERANCE})")
    return worst


def measure_cell(name: str, quick: bool, with_jax: bool, progress: Callable[[str], None]) -> CellResult:
    data = make_data(name)
    impls = implementations(data, with_jax)
    compile_times = {}
    for impl, call in impls.items():  # first calls: compiles (timed apart), and the runs the guard compares
        start = time.perf_counter()
        call()
        if impl in COMPILED:
            compile_times[impl] = time.perf_counter() - start
    diffs = check_agreement(impls, name)
    kept = {impl: call.kept_per_step() for impl, call in impls.items()}
    progress(f"  {NAME} {name}: agreement checked, compiles {compile_times}")
    rounds = run.take_turns(impls, ROUNDS[quick], CALLS, progress, f"{NAME} {name}")
    return CellResult(rounds, {i: c.label for i, c in impls.items()}, kept, diffs, compile_times)


def measure_matrix(quick: bool, with_jax: bool, progress: Callable[[str], None]) -> dict[str, CellResult]:
    return {name: measure_cell(name, quick, with_jax, progress) for name in CELL_NAMES}


def summary(results: Mapping[str, CellResult]) -> dict[str, Any]:
    return {
        "sizes": {"B": B, "D": D, "K": K, "V": V, "T": T, "dtype": "float32"},
        "cells": {
            name: {
                "times": {impl: r.timing(impl).summary() for impl in r.rounds},
                "round_medians": r.rounds,
                "kept_bytes_per_step": r.kept,
                "max_rel_diff": r.max_rel_diff,
                "compile_times": r.compile_times,
            }
            for name, r in results.items()
        },
    }


# -- the report ----------------------------------------------------------------------------------


def ratio_text(r: CellResult, anchor: str | None, target: float) -> str:
    if anchor is None:
        return "none"
    ratio = r.median(anchor) / r.median("symgate")
    return f"{anchor} **{ratio:.2f}×** ({'meets' if ratio >= target else 'below'} the target ≥ {target:g}×)"


def cell_table(r: CellResult) -> str:
    ours = r.timing("symgate")
    rows = []
    for impl, label in r.labels.items():
        rows.append(
            [
                label,
                run.timing_cell(r.timing(impl), None if impl == "symgate" else ours),
                run.fmt_bytes(r.kept[impl]),
                run.fmt_time(r.compile_times[impl]) if impl in r.compile_times else "",
                "" if impl == "symgate" else f"{r.max_rel_diff[impl]:.1e}",
            ]
        )
    header = [
        "implementation",
        "forward + backward (**its time / symgate's**)",
        "kept per step",
        "compile",
        "max rel. diff",
    ]
    return run.table(header, rows)


def report(results: Mapping[str, CellResult], info: Mapping[str, Any]) -> str:
    """The section of RESULTS.md: the machine, what the rows mean, a table per cell, the ratios."""
    rounds = len(next(iter(next(iter(results.values())).rounds.values())))
    parts = [
        "## Matrix-valued states: DeltaNet and mLSTM against PyTorch and JAX (`run.py --configs matrix`)",
        "",
        run.machine_section(info),
        "",
        f"B = {B}, D = {D}, K = V = {K}, T = {T}, float32, forward + backward: the loss `sum(y * G)` over the "
        "output y (T, B, V), fixed random G, and its gradients with respect to every parameter, x and the initial "
        "states. symgate: `run = k.forward(x, params, init)`, `run.outputs[y]`, `k.backward(run, {y: G})`, and "
        "the same with `recompute=True`. The anchors (`benchmarks/matrix_cells.py`) compute everything that "
        "depends on x alone for all steps before the loop (one stacked product, the feature maps and gates), and "
        "loop over the recurrence only (batched `einsum`): *PyTorch loop* eager with autograd, *torch.compile "
        "step* the same with the step `torch.compile`d (its first call compiles: cold, a new Inductor cache, its "
        "graph caches off), *JAX* `jax.jit(jax.value_and_grad(loss))` with the recurrence a `lax.scan` (its first "
        f"call compiles). Times are medians over {rounds} rounds taking turns (each round's median of {CALLS} calls "
        f"after a warm-up); in bold the anchor's time / symgate's. {run.NOISY} marks times whose slowest round "
        f"took more than {run.SPREAD}× the fastest. *kept per step*: symgate's `run.kept_bytes / T` (every step's "
        "states and outputs, and the tape unless `recompute=True`); PyTorch's, the storages autograd saves "
        "(`saved_tensors_hooks`, leaves left out); JAX's, the residuals of an eager `jax.vjp` of the loss, inputs "
        "left out. *max rel. diff*: worst of y, dL/dx and dL/d(initial matrix state) against symgate's, checked "
        f"(≤ {TOLERANCE:g}) before anything is timed.",
    ]
    for name, r in results.items():
        parts += [
            "",
            f"### {name}",
            "",
            cell_table(r),
            "",
            f"symgate against the PyTorch loop: {ratio_text(r, 'PyTorch loop', TARGETS['PyTorch loop'])}; against "
            f"the best compiled anchor: {ratio_text(r, r.best_compiled(), TARGETS['compiled'])}.",
        ]
    return "\n".join(parts)
