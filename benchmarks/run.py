"""Benchmark symgate's compiled kernels against PyTorch, JAX (when installed) and NumPy.

What it measures, for the cells ``lstm_pytorch``, ``gru_pytorch``, ``lstm_peephole`` and ``mgu``,
three sizes (B, D, H, T) = tiny (1, 16, 32, 100), small (8, 64, 128, 100), large (64, 256, 512, 50),
both dtypes, and two modes:

* forward: the states of every step from x and the initial states;
* forward + backward: the loss ``sum(h_seq * G)`` for a fixed random G and its gradients with
  respect to every parameter, the input sequence and the initial states.

Anchors, all run in the same process on the same data and weights:

* PyTorch's own module (``nn.LSTM`` / ``nn.GRU``) for the two cells PyTorch has;
* a PyTorch Python loop over time: ``nn.LSTMCell`` / ``nn.GRUCell``, or, for ``lstm_peephole`` and
  ``mgu`` (no framework has them), the cell's equations written with torch ops, autograd for the
  backward pass;
* ``torch.compile`` as a careful user writes the loop (``benchmarks/hoisted.py``): the input
  products of all steps as one product of x (T·B, D) by the stacked input matrices before the
  loop, then a Python loop of a ``torch.compile``'d step, each one product of h by the stacked
  recurrent matrices and the cell's elementwise work. The first call of each mode compiles; it is
  timed apart (the report gives the compile times) and a mode whose compile takes over
  ``COMPILE_LIMIT`` (60 s) is reported so, not timed. (Compiling the whole loop instead unrolls it:
  7 minutes for the tiny LSTM's forward on a busy machine, so the step is what is compiled.)
* JAX, when ``import jax`` works: ``jax.jit`` of a ``lax.scan`` over the same equations,
  ``value_and_grad`` for forward + backward; and "JAX hoisted", the same split as the
  ``torch.compile`` anchor's: one product for every step's input products before the scan, one
  stacked recurrent product per step inside it (``mgu`` needs a second: its candidate multiplies
  ``f * h``), ``value_and_grad`` with respect to the stacked parameters;
* NumPy: ``symgate.verify.reference.forward`` (an independent NumPy interpreter of the equations) for
  the forward pass; it has no backward pass, so forward + backward is "n/a".

Each table gives every anchor's time; its ratio is the row's fastest anchor's time / symgate's time,
of the same run, the fastest anchor named (> 1: symgate is faster than every anchor). The script
also measures NumPy's GEMM throughput (the machine's practical peak) and reports symgate's
forward + backward GFLOP/s as a share of it, cold and cached build times (in subprocesses), and
the bytes per step the forward pass keeps for the backward pass next to what PyTorch's autograd
saves. It prints the tables and writes them to ``benchmarks/RESULTS.md`` (raw timings to
``benchmarks/results.json``).

The config ``layers`` (in the default set, not in ``--quick``'s) is a model-sized row of its own:
a 2-layer bidirectional ``sg.torch.RNN.from_torch(nn.LSTM(...))`` against that ``nn.LSTM``, on a
padded and on a packed batch; ``benchmarks/layers.py`` says what it times. It has its own section of
``RESULTS.md``, so ``--configs layers`` rewrites only that section, and a run of the cell configs
alone keeps it (``benchmarks/sections.py``: every script's section survives the others' runs).
The config ``matrix`` (in the default set too) is the same kind of section for cells with a
matrix-valued state: ``deltanet`` and ``xlstm_mlstm`` (B = 8, D = 64, K = V = 64, T = 256, float32,
forward + backward) against a PyTorch loop, its ``torch.compile``'d step and JAX's ``lax.scan``,
with memory per step; ``benchmarks/matrix_states.py`` says what it times.
The config ``training`` (in the default set too) is one more such section: the time of one training
epoch of ``examples/long_range.py --timing`` (forward, backward, gradient clipping and an Adam step
a batch, B = 64, T = 100) with symgate's ``lstm`` as a ``sg.torch.CellModule`` against
``nn.LSTM``, H = 32 (float32, float64) and 256 (float32); ``benchmarks/training.py`` says what it times.

Why: to show where symgate's generated kernels stand against the frameworks people would
otherwise use, on this machine, in numbers that can be re-measured with one command. Only
symgate's public API is used (``cells.get``, ``build``, ``Kernel.init_params`` / ``forward`` /
``backward``, ``from_torch``, ``reference.forward``), so the script keeps working while the
kernels' internals change. The environment is taken as it is (``OPENBLAS_*`` and the like are
reported, never set) but for two settings: ``torch.set_num_threads``, to the core count, and
``SYMGATE_BLAS``: ``--blas default`` (the default unless SYMGATE_BLAS is already set) sets it to the
BLAS a plain ``pip install symgate`` gets on this platform (``mkl`` if pyproject.toml's dependencies
include MKL here, else ``openblas``), so a machine with the ``mkl`` extra installed still measures
the default install; ``--blas openblas`` / ``--blas mkl`` choose. The header says which, and why.

Usage: ``python benchmarks/run.py`` (about 8 minutes on 2 idle cores before the torch.compile
anchor, whose cold compiles add some 5-20 s a case and mode) or ``--quick`` (tiny and small only,
fewer repeats: a few minutes, most of it compiling); ``--configs large`` runs one config (``--configs layers``
the layer rows only, about a minute; ``--configs training`` the training epochs only), ``--output`` writes
the report elsewhere, ``--blas mkl`` runs symgate on MKL (``pip install symgate[mkl]``). Set
``SYMGATE_CACHE_DIR`` to choose the kernel cache.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import sympy
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmark this checkout's symgate, installed or not

import hoisted  # noqa: E402  (benchmarks/hoisted.py: the steps with input products hoisted)
import layers  # noqa: E402  (benchmarks/layers.py: the "layers" config)
import matrix_states  # noqa: E402  (benchmarks/matrix_states.py: the "matrix" config)
import sections  # noqa: E402  (benchmarks/sections.py: RESULTS.md keeps other scripts' sections)
import training  # noqa: E402  (benchmarks/training.py: the "training" config)

import symgate as sg  # noqa: E402
from symgate.jit import toolchain  # noqa: E402
from symgate.verify import reference  # noqa: E402

CONFIGS: dict[str, tuple[int, int, int, int]] = {  # name -> (B, D, H, T)
    "tiny": (1, 16, 32, 100),
    "small": (8, 64, 128, 100),
    "large": (64, 256, 512, 50),
}
QUICK_CONFIGS = ("tiny", "small")
ALL_CONFIGS = (*CONFIGS, "layers", "matrix", "training")  # "layers": a stacked bidirectional nn.LSTM against
# symgate's (layers.py); "matrix": DeltaNet and mLSTM, matrix-valued states, against PyTorch and JAX
# (matrix_states.py); "training": an epoch of examples/long_range.py's LSTM against nn.LSTM's (training.py)
SECTION_CONFIGS = ("layers", "matrix", "training")  # configs with a section of their own, allowed with --quick
CELLS = ("lstm_pytorch", "gru_pytorch", "lstm_peephole", "mgu")
DTYPES = ("float32", "float64")
MODES = ("forward", "forward+backward")
TORCH_MODULES = {"lstm_pytorch": "LSTM", "gru_pytorch": "GRU"}  # cell -> torch.nn class
COLUMNS = ("PyTorch module", "PyTorch loop", "torch.compile", "JAX", "JAX hoisted", "NumPy")  # anchors, in table order
GEMM_SIZES = (1024, 2048)  # n of the n x n products the GEMM peak is the best of
ROUNDS = 3  # rounds taking turns that a (full) run times each implementation of a row in
SPREAD, NOISY = 1.5, "†"  # a measurement whose slowest run exceeds SPREAD x its fastest is marked NOISY
BUSY = 0.1  # share of the cores' time used by other processes above which the report warns
ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "GOTO", "SYMGATE_")


# -- timing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How often to run one measurement: warm-up runs, then between min and max timed runs.

    Timed runs stop at ``max_runs``, or once ``min_runs`` are done and ``budget`` seconds spent.
    A call slower than ``slow`` seconds gets a single warm-up run.
    """

    warmup: int
    min_runs: int
    max_runs: int
    budget: float
    slow: float = 2.0


POLICIES = {  # (quick?, config) -> policy
    (False, "tiny"): Policy(warmup=5, min_runs=10, max_runs=300, budget=1.0),
    (False, "small"): Policy(warmup=3, min_runs=10, max_runs=100, budget=1.5),
    (False, "large"): Policy(warmup=2, min_runs=5, max_runs=9, budget=4.0),
    (True, "tiny"): Policy(warmup=1, min_runs=3, max_runs=5, budget=0.3),
    (True, "small"): Policy(warmup=1, min_runs=3, max_runs=5, budget=0.3),
}


@dataclass
class Timing:
    """Wall times of one measurement, in seconds; when it was made in rounds, each round's median
    too, and then its median is the median of those."""

    times: list[float]
    round_medians: list[float] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.round_medians or self.times)

    def summary(self) -> dict[str, Any]:
        summary = {"median": self.median, "min": min(self.times), "max": max(self.times), "runs": len(self.times)}
        return summary | ({"round_medians": self.round_medians} if self.round_medians else {})

    @classmethod
    def of_rounds(cls, rounds: Sequence[Timing]) -> Timing:
        """One measurement made of several rounds' measurements."""
        return cls([t for r in rounds for t in r.times], [r.median for r in rounds])


SETTLE = 0.3
"""Seconds of rest before each measurement: idle BLAS and OpenMP threads keep spinning for a while
after their last call (MKL's Intel OpenMP 200 ms by default, ``KMP_BLOCKTIME``; OpenBLAS's about
0.1 s), and would otherwise take cores from whatever is timed next."""


def measure(fn: Callable[[], Any], policy: Policy) -> Timing:
    """Rest, warm up, then time ``fn`` per ``policy``; garbage is collected first so it is not
    billed here."""
    gc.collect()
    time.sleep(SETTLE)
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(policy.warmup - 1 if first < policy.slow else 0):
        fn()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < policy.max_runs and (
        len(times) < policy.min_runs or time.perf_counter() - began < policy.budget
    ):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(times)


def take_turns(
    calls: Mapping[Any, Callable[[], Any]], rounds: int, per_round: int, progress: Callable[[str], None], name: str
) -> dict[Any, list[float]]:
    """Each call's median time in each of ``rounds`` rounds, by key.

    The machine is shared and its speed drifts within minutes, so the calls take turns: a round
    times each once (``measure``: rest, a warm-up call, ``per_round`` timed calls, their median),
    in the reverse order every other round; a caller takes each call's median over the rounds.
    """
    order = list(calls)
    found: dict[Any, list[float]] = {key: [] for key in order}
    policy = Policy(warmup=1, min_runs=per_round, max_runs=per_round, budget=0.0)
    for r in range(rounds):
        for key in order if r % 2 == 0 else order[::-1]:
            found[key].append(measure(calls[key], policy).median)
        progress(f"  {name} round {r + 1}/{rounds}")
    return found


# -- the cells' equations, for the PyTorch loops and JAX ----------------------------------------
# Each step maps (ops, params, x_t, state) -> next state; x_t and states are (B, size), matrices
# (rows, cols) as in symgate, so W @ x is ``x @ W.T``. ``ops`` gives sigmoid and tanh.

State = dict[str, Any]


def lstm_pytorch_step(ops: SimpleNamespace, p: Mapping[str, Any], x: Any, s: State) -> State:
    h, c = s["h"], s["c"]

    def pre(gate: str) -> Any:
        return x @ p[f"W_i{gate}"].T + p[f"b_i{gate}"] + h @ p[f"W_h{gate}"].T + p[f"b_h{gate}"]

    i, f, g, o = ops.sigmoid(pre("i")), ops.sigmoid(pre("f")), ops.tanh(pre("g")), ops.sigmoid(pre("o"))
    c_next = f * c + i * g
    return {"h": o * ops.tanh(c_next), "c": c_next}


def gru_pytorch_step(ops: SimpleNamespace, p: Mapping[str, Any], x: Any, s: State) -> State:
    h = s["h"]
    r = ops.sigmoid(x @ p["W_ir"].T + p["b_ir"] + h @ p["W_hr"].T + p["b_hr"])
    z = ops.sigmoid(x @ p["W_iz"].T + p["b_iz"] + h @ p["W_hz"].T + p["b_hz"])
    n = ops.tanh(x @ p["W_in"].T + p["b_in"] + r * (h @ p["W_hn"].T + p["b_hn"]))
    return {"h": (1 - z) * n + z * h}


def lstm_peephole_step(ops: SimpleNamespace, p: Mapping[str, Any], x: Any, s: State) -> State:
    h, c = s["h"], s["c"]
    i = ops.sigmoid(x @ p["W_i"].T + h @ p["U_i"].T + p["p_i"] * c + p["b_i"])
    f = ops.sigmoid(x @ p["W_f"].T + h @ p["U_f"].T + p["p_f"] * c + p["b_f"])
    g = ops.tanh(x @ p["W_g"].T + h @ p["U_g"].T + p["b_g"])
    c_next = f * c + i * g
    o = ops.sigmoid(x @ p["W_o"].T + h @ p["U_o"].T + p["p_o"] * c_next + p["b_o"])
    return {"h": o * ops.tanh(c_next), "c": c_next}


def mgu_step(ops: SimpleNamespace, p: Mapping[str, Any], x: Any, s: State) -> State:
    h = s["h"]
    f = ops.sigmoid(x @ p["W_f"].T + h @ p["U_f"].T + p["b_f"])
    h_tilde = ops.tanh(x @ p["W_h"].T + (f * h) @ p["U_h"].T + p["b_h"])
    return {"h": (1 - f) * h + f * h_tilde}


STEPS: dict[str, Callable[[SimpleNamespace, Mapping[str, Any], Any, State], State]] = {
    "lstm_pytorch": lstm_pytorch_step,
    "gru_pytorch": gru_pytorch_step,
    "lstm_peephole": lstm_peephole_step,
    "mgu": mgu_step,
}
TORCH_OPS = SimpleNamespace(sigmoid=torch.sigmoid, tanh=torch.tanh)


# -- one benchmark case: a cell, a size, a dtype ------------------------------------------------


@dataclass
class Case:
    """The data every implementation of one (cell, config, dtype) runs on."""

    cell_name: str
    config: str
    dtype: str
    cell: sg.Cell
    kernel: sg.Kernel
    params: dict[str, np.ndarray]
    x: np.ndarray  # (T, B, D)
    init: dict[str, np.ndarray]  # state -> (B, H)
    G: np.ndarray  # (T, B, H): dLoss/dh_t
    module: torch.nn.Module | None = None  # nn.LSTM / nn.GRU holding the same weights

    @property
    def sizes(self) -> dict[str, int]:
        B, D, H, T = CONFIGS[self.config]
        return {"B": B, "D": D, "H": H, "T": T}


def make_case(cell_name: str, config: str, dtype: str, kernels: Mapping[tuple[str, str], sg.Kernel]) -> Case:
    B, D, H, T = CONFIGS[config]
    seed = 1000 * CELLS.index(cell_name) + 10 * list(CONFIGS).index(config)
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    kernel = kernels[(cell_name, dtype)]
    module = None
    if cell_name in TORCH_MODULES:
        torch.manual_seed(seed)
        module = getattr(torch.nn, TORCH_MODULES[cell_name])(D, H).to(torch_dtype(dtype))
        [(cell, params)] = sg.from_torch(module)
        assert cell.name == cell_name, (cell.name, cell_name)
    else:
        cell, params = kernel.cell, kernel.init_params({"D": D, "H": H}, seed=seed)
    return Case(
        cell_name=cell_name,
        config=config,
        dtype=dtype,
        cell=cell,
        kernel=kernel,
        params=params,
        x=rng.standard_normal((T, B, D)).astype(np_dtype),
        init={s: (0.1 * rng.standard_normal((B, H))).astype(np_dtype) for s in cell.states},
        G=rng.standard_normal((T, B, H)).astype(np_dtype),
        module=module,
    )


def torch_dtype(dtype: str) -> torch.dtype:
    return torch.float64 if dtype == "float64" else torch.float32


def leaf(array: np.ndarray) -> torch.Tensor:
    """A torch leaf tensor (own memory) that autograd differentiates."""
    return torch.from_numpy(np.array(array)).requires_grad_()


# -- implementations: each runs a forward and a forward + backward on a Case --------------------
# ``outcome`` returns h_seq and the gradients of x and of each initial state ("h0", "c0") of the
# last forward + backward, as NumPy arrays, to check that every implementation computes the same.


class Implementation:
    label = ""

    def forward(self) -> Any:
        raise NotImplementedError

    def forward_backward(self) -> Any:
        raise NotImplementedError

    def outcome(self) -> dict[str, np.ndarray]:
        raise NotImplementedError


class Symgate(Implementation):
    label = "symgate"

    def __init__(self, case: Case) -> None:
        self.case = case
        self.last: tuple[sg.Run, sg.Gradients] | None = None

    def forward(self) -> np.ndarray:
        c = self.case
        return c.kernel.forward(c.x, c.params, init=c.init, backward=False).states["h"]

    def forward_backward(self) -> sg.Gradients:
        c = self.case
        run = c.kernel.forward(c.x, c.params, init=c.init)
        run.states["h"]  # read, as a training loop reads it for its loss (a run makes its arrays when read)
        grads = self.case.kernel.backward(run, {"h": self.case.G})
        self.last = (run, grads)
        return grads

    def outcome(self) -> dict[str, np.ndarray]:
        assert self.last is not None
        run, grads = self.last
        return {"h": run.states["h"], "x": grads.inputs["x"], **{f"{s}0": g for s, g in grads.init.items()}}


class TorchBase(Implementation):
    """Shared by the PyTorch anchors: leaf tensors for x and the initial states, the loss."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.x = leaf(case.x)
        self.init = {s: leaf(a) for s, a in case.init.items()}
        self.G = torch.from_numpy(case.G)
        self.h_seq: torch.Tensor | None = None

    def leaves(self) -> list[torch.Tensor]:
        return [self.x, *self.init.values(), *self.params()]

    def params(self) -> Iterable[torch.Tensor]:
        raise NotImplementedError

    def run(self) -> torch.Tensor:
        """h_seq (T, B, H), recorded by autograd when grad mode is on."""
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        with torch.inference_mode():
            return self.run()

    def forward_backward(self) -> torch.Tensor:
        for t in self.leaves():
            t.grad = None
        h_seq = self.run()
        (h_seq * self.G).sum().backward()
        self.h_seq = h_seq.detach()
        return self.h_seq

    def outcome(self) -> dict[str, np.ndarray]:
        assert self.h_seq is not None
        grads = {f"{s}0": t.grad.reshape(t.shape[-2:]).numpy() for s, t in self.init.items()}
        return {"h": self.h_seq.numpy(), "x": self.x.grad.numpy(), **grads}


class TorchModule(TorchBase):
    """``nn.LSTM`` / ``nn.GRU`` over the whole sequence."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        assert case.module is not None
        self.module = case.module
        self.label = f"nn.{TORCH_MODULES[case.cell_name]}"
        self.init = {s: leaf(a[None]) for s, a in case.init.items()}  # (layers, B, H)

    def params(self) -> Iterable[torch.Tensor]:
        return self.module.parameters()

    def run(self) -> torch.Tensor:
        hx = (self.init["h"], self.init["c"]) if "c" in self.init else self.init["h"]
        return self.module(self.x, hx)[0]


class TorchLoop(TorchBase):
    """A Python loop over time: ``nn.LSTMCell`` / ``nn.GRUCell``, or the cell's equations in torch ops."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        if case.module is not None:
            kind = TORCH_MODULES[case.cell_name]
            self.label = f"nn.{kind}Cell loop"
            self.cell_module = copy_to_cell_module(case.module, kind)
            self.step = self.module_step
            self.weights = list(self.cell_module.parameters())
        else:
            self.label = "torch equations loop"
            self.p = {name: leaf(a) for name, a in case.params.items()}
            self.step = self.equations_step
            self.weights = list(self.p.values())

    def params(self) -> Iterable[torch.Tensor]:
        return self.weights

    def module_step(self, x: torch.Tensor, s: State) -> State:
        if "c" in s:
            h, c = self.cell_module(x, (s["h"], s["c"]))
            return {"h": h, "c": c}
        return {"h": self.cell_module(x, s["h"])}

    def equations_step(self, x: torch.Tensor, s: State) -> State:
        return STEPS[self.case.cell_name](TORCH_OPS, self.p, x, s)

    def run(self) -> torch.Tensor:
        state: State = dict(self.init)
        hs = []
        for t in range(self.x.shape[0]):
            state = self.step(self.x[t], state)
            hs.append(state["h"])
        return torch.stack(hs)


def copy_to_cell_module(module: torch.nn.Module, kind: str) -> torch.nn.Module:
    """An ``nn.LSTMCell`` / ``nn.GRUCell`` with the weights of a one-layer ``nn.LSTM`` / ``nn.GRU``."""
    first = next(module.parameters())
    cell = getattr(torch.nn, f"{kind}Cell")(module.input_size, module.hidden_size).to(first.dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(module, f"{name}_l0"))
    return cell


class Jax(Implementation):
    """``jax.jit`` of a ``lax.scan`` over the cell's equations; ``value_and_grad`` for the backward pass."""

    label = "JAX"

    def __init__(self, case: Case) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp, self.case = jax, jnp, case
        G = jnp.asarray(case.G)
        h_seq, params = self.h_seq_function()

        def loss(params: Any, x: Any, init: Any) -> Any:
            return jnp.sum(h_seq(params, x, init) * G)

        self.fwd = jax.jit(h_seq)
        self.fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        self.args = (params, jnp.asarray(case.x), {k: jnp.asarray(v) for k, v in case.init.items()})
        self.last: Any = None

    def h_seq_function(self) -> tuple[Callable[[Any, Any, Any], Any], dict[str, Any]]:
        """``h_seq(params, x, init)`` and the params it takes (what is differentiated)."""
        jax, jnp = self.jax, self.jnp
        ops = SimpleNamespace(sigmoid=jax.nn.sigmoid, tanh=jnp.tanh)
        step = STEPS[self.case.cell_name]

        def h_seq(params: Any, x: Any, init: Any) -> Any:
            def body(state: Any, x_t: Any) -> tuple[Any, Any]:
                nxt = step(ops, params, x_t, state)
                return nxt, nxt["h"]

            return jax.lax.scan(body, init, x)[1]

        return h_seq, {k: jnp.asarray(v) for k, v in self.case.params.items()}

    def ready(self, tree: Any) -> Any:
        return self.jax.tree_util.tree_map(lambda a: a.block_until_ready(), tree)

    def forward(self) -> Any:
        return self.ready(self.fwd(*self.args))

    def forward_backward(self) -> Any:
        self.last = self.ready(self.fwd_bwd(*self.args))
        return self.last

    def outcome(self) -> dict[str, np.ndarray]:
        _, (_, gx, ginit) = self.last
        return {
            "h": np.asarray(self.forward()),
            "x": np.asarray(gx),
            **{f"{s}0": np.asarray(g) for s, g in ginit.items()},
        }


class JaxHoisted(Jax):
    """JAX as a careful user writes it: the input products of all steps in one product before the
    ``lax.scan``, one (stacked) recurrent product per step inside it (``hoisted.py``); ``jax.jit``,
    ``value_and_grad`` for the backward pass, with respect to the stacked parameters."""

    label = "JAX, input products hoisted"

    def h_seq_function(self) -> tuple[Callable[[Any, Any, Any], Any], dict[str, Any]]:
        jax, jnp = self.jax, self.jnp
        ops = SimpleNamespace(sigmoid=jax.nn.sigmoid, tanh=jnp.tanh, split=lambda a, n: jnp.split(a, n, axis=-1))
        split = hoisted.SPLITS[self.case.cell_name]

        def h_seq(q: Any, x: Any, init: Any) -> Any:
            def body(state: Any, xw_t: Any) -> tuple[Any, Any]:
                nxt = hoisted.step(ops, split, q, xw_t, state)
                return nxt, nxt["h"]

            return jax.lax.scan(body, init, hoisted.input_products(q, x))[1]

        params = {k: jnp.asarray(v) for k, v in self.case.params.items()}
        return h_seq, hoisted.stack(split, params, lambda xs: jnp.concatenate(xs, axis=0))


COMPILE_LIMIT = 60.0  # seconds: a torch.compile slower than this is reported, not timed


class TorchCompiled(TorchBase):
    """``torch.compile`` of the PyTorch loop's step, input products hoisted (``hoisted.py``).

    Before the loop, one product of x (T·B, D) by the stacked input matrices, in eager mode; in the
    loop, the compiled step: one product by the stacked recurrent matrices and the cell's
    elementwise work, which Inductor fuses. (Compiling the whole loop instead makes Dynamo unroll
    it: the tiny LSTM's forward took 7 minutes to compile.) The first call of each mode compiles;
    its time (cold: Inductor's on-disk caches are switched off, and the run has a new, empty Inductor
    cache directory, ``cold_inductor_cache``) is kept in ``compile_times``, and a mode whose compile
    took over COMPILE_LIMIT seconds is not timed.
    """

    label = "torch.compile step, input products hoisted"

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        torch._dynamo.reset()  # each case compiles afresh: no recompilation limit reached, no stale guards
        # compile times as a first compile takes them: Inductor's and AOTAutograd's graph caches
        # would otherwise make a second compile of the same graph look 5-10x faster
        torch._inductor.config.fx_graph_cache = False
        torch._functorch.config.enable_autograd_cache = False
        self.split = hoisted.SPLITS[case.cell_name]
        params = {name: torch.from_numpy(np.array(a)) for name, a in case.params.items()}
        stacked = hoisted.stack(self.split, params, lambda xs: torch.cat(xs, dim=0))
        self.q = {name: t.detach().contiguous().requires_grad_() for name, t in stacked.items()}
        ops = SimpleNamespace(sigmoid=torch.sigmoid, tanh=torch.tanh, split=lambda a, n: torch.chunk(a, n, dim=-1))
        split = self.split

        def step(q: Mapping[str, torch.Tensor], xw_t: torch.Tensor, s: State) -> State:
            return hoisted.step(ops, split, q, xw_t, s)

        self.step = torch.compile(step)
        self.compile_times: dict[str, float] = {}

    def params(self) -> Iterable[torch.Tensor]:
        return self.q.values()

    def run(self) -> torch.Tensor:
        xw = hoisted.input_products(self.q, self.x)
        state: State = dict(self.init)
        hs = []
        for t in range(xw.shape[0]):
            state = self.step(self.q, xw[t], state)
            hs.append(state["h"])
        return torch.stack(hs)

    def compile(self, mode: str, fn: Callable[[], Any]) -> bool:
        """Compile ``mode`` by calling ``fn`` once, timed; False if it took over COMPILE_LIMIT."""
        start = time.perf_counter()
        fn()
        self.compile_times[mode] = time.perf_counter() - start
        return self.compile_times[mode] <= COMPILE_LIMIT


class NumpyReference(Implementation):
    """``symgate.verify.reference.forward``: forward only (no NumPy backward pass to time)."""

    label = "symgate.verify.reference"

    def __init__(self, case: Case) -> None:
        self.case = case

    def forward(self) -> np.ndarray:
        c = self.case
        states, _ = reference.forward(c.cell, {"x": c.x}, c.params, c.init)
        return states["h"]

    def outcome(self) -> dict[str, np.ndarray]:
        return {"h": self.forward()}


def jax_version() -> str | None:
    """JAX's version if ``import jax`` works (float64 enabled), else None."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)  # float32 arrays stay float32; float64 ones need it
    return jax.__version__


def anchors(case: Case, with_jax: bool) -> dict[str, Implementation | str]:
    """The anchor implementations of a case by column, or the text for the column when there is none."""
    return {
        "PyTorch module": TorchModule(case) if case.module is not None else "no module",
        "PyTorch loop": TorchLoop(case),
        "torch.compile": TorchCompiled(case),
        "JAX": Jax(case) if with_jax else "not installed",
        "JAX hoisted": JaxHoisted(case) if with_jax else "not installed",
        "NumPy": NumpyReference(case),
    }


# -- measuring a case ---------------------------------------------------------------------------


@dataclass
class Result:
    """The measurements of one case: times by (implementation column, mode), and checks."""

    cell: str
    config: str
    dtype: str
    times: dict[str, dict[str, Timing | str]] = field(default_factory=dict)  # column -> mode -> Timing or text
    labels: dict[str, str] = field(default_factory=dict)  # column -> what ran
    max_rel_diff: dict[str, float] = field(default_factory=dict)  # mode -> worst relative difference
    flops: float = 0.0  # of one forward + backward
    compile_times: dict[str, float] = field(default_factory=dict)  # mode -> torch.compile's first call, seconds


def run_case(case: Case, policy: Policy, with_jax: bool, rounds: int) -> Result:
    """Every implementation of a case timed in ``rounds`` rounds taking turns (the order reversed
    every other round), each round a share of ``policy``'s runs: the machine's speed drifts within
    minutes, and an implementation timed once, minutes after another, can meet another machine."""
    result = Result(case.cell_name, case.config, case.dtype, flops=fwd_bwd_flops(case.cell, case.sizes))
    impls: dict[str, Implementation | str] = {"symgate": Symgate(case), **anchors(case, with_jax)}
    timed: list[tuple[str, str, Callable[[], Any]]] = []
    for column, impl in impls.items():
        if isinstance(impl, str):
            result.times[column] = dict.fromkeys(MODES, impl)
            continue
        result.labels[column] = impl.label
        calls = {"forward": impl.forward, "forward+backward": impl.forward_backward}
        if isinstance(impl, NumpyReference):
            calls.pop("forward+backward")
        result.times[column] = {mode: "n/a" for mode in MODES}
        for mode, call in calls.items():
            if not isinstance(impl, TorchCompiled) or impl.compile(mode, call):
                timed.append((column, mode, call))
            else:
                result.times[column][mode] = f"compile > {COMPILE_LIMIT:.0f} s"
        if isinstance(impl, TorchCompiled):
            result.compile_times = impl.compile_times
    made: dict[tuple[str, str], list[Timing]] = {(column, mode): [] for column, mode, _ in timed}
    for r in range(rounds):
        share = round_policy(policy, rounds, first=r == 0)
        for column, mode, call in timed if r % 2 == 0 else reversed(timed):
            made[column, mode].append(measure(call, share))
    for (column, mode), timings in made.items():
        result.times[column][mode] = Timing.of_rounds(timings)
    result.max_rel_diff = agreement(impls)
    return result


def round_policy(policy: Policy, rounds: int, first: bool) -> Policy:
    """One round's share of ``policy``: its runs and time divided among the rounds; after the
    first round, which warms up as ``policy`` says, one warm-up run."""
    return Policy(
        warmup=policy.warmup if first else 1,
        min_runs=-(-policy.min_runs // rounds),
        max_runs=-(-policy.max_runs // rounds),
        budget=policy.budget / rounds,
        slow=policy.slow,
    )


def agreement(impls: Mapping[str, Implementation | str]) -> dict[str, float]:
    """Worst relative difference to symgate: of h_seq (forward), of h_seq, dx, dh0, dc0 (forward + backward)."""
    ours = impls["symgate"]
    assert isinstance(ours, Implementation)
    mine = ours.outcome()
    worst = dict.fromkeys(MODES, 0.0)
    for impl in impls.values():
        if isinstance(impl, str) or impl is ours:
            continue
        theirs = impl.outcome()
        for key, value in theirs.items():
            diff = float(np.max(np.abs(mine[key] - value)) / max(np.max(np.abs(value)), 1e-30))
            worst["forward+backward"] = max(worst["forward+backward"], diff)
            if key == "h":
                worst["forward"] = max(worst["forward"], diff)
    return worst


def fwd_bwd_flops(cell: sg.Cell, sizes: Mapping[str, int]) -> float:
    """FLOPs of the matrix products of one forward + backward: 3 x (2 rows cols B T) per product.

    The forward pass does each product once; the backward pass twice (the gradient of its vector
    argument and of its matrix). Elementwise work is not counted.
    """
    total = 0.0
    for p in cell.params:
        if len(p.shape) == 2:
            rows, cols = (sizes[d] for d in p.shape)
            total += 3 * 2 * rows * cols * sizes["B"] * sizes["T"] * products_of(cell, p.name)
    return total


def products_of(cell: sg.Cell, matrix: str) -> int:
    """How many ``matrix @ v`` products a step does (at least 1)."""
    count = sum(
        isinstance(node, sg.MatVec) and getattr(getattr(node, "matrix", None), "name", None) == matrix
        for eq in cell.equations
        for node in sympy.preorder_traversal(eq.expr)
    )
    return max(count, 1)


# -- memory -------------------------------------------------------------------------------------


def symgate_bytes_per_step(case: Case, recompute: bool = False) -> float:
    """What symgate's forward pass keeps (states, outputs, tape) per step; with ``recompute``,
    states and outputs only (the backward pass rebuilds the tape about √T steps at a time)."""
    run = case.kernel.forward(case.x, case.params, init=case.init, recompute=recompute)
    return run.kept_bytes / case.sizes["T"]


def autograd_saved_bytes(leaves: Iterable[torch.Tensor], fn: Callable[[], Any]) -> int:
    """Bytes autograd saves for the backward pass while ``fn`` runs (its result is dropped).

    Every tensor autograd saves is seen through ``saved_tensors_hooks``; storages are counted once
    each, and those of the ``leaves`` (parameters, x, initial states) are left out, as they are for
    symgate.
    """
    kept = {t.untyped_storage().data_ptr() for t in leaves}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in kept:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def torch_saved_bytes_per_step(impl: TorchBase) -> float:
    """Bytes autograd saves for the backward pass during one forward, per step."""
    return autograd_saved_bytes(impl.leaves(), impl.run) / impl.case.sizes["T"]


def memory_row(case: Case) -> dict[str, Any]:
    loop = TorchLoop(case)
    row = {
        "cell": case.cell_name,
        "config": case.config,
        "symgate": symgate_bytes_per_step(case),
        "recompute": symgate_bytes_per_step(case, recompute=True),
        "segment": math.isqrt(max(case.sizes["T"] - 1, 0)) + 1,
        "loop_label": loop.label,
        "loop": torch_saved_bytes_per_step(loop),
    }
    row["module"] = torch_saved_bytes_per_step(TorchModule(case)) if case.module is not None else None
    return row


# -- machine-level measurements -----------------------------------------------------------------


GEMM_SCRIPT = """
import json, statistics, sys, time
import numpy as np
runs, sizes = int(sys.argv[1]), [int(n) for n in sys.argv[2].split(",")]
rates = {}
for dtype in sys.argv[3:]:
    rng = np.random.default_rng(0)
    for n in sizes:
        a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        for _ in range(2):
            a @ b
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        rates[dtype] = max(rates.get(dtype, 0.0), 2 * n**3 / statistics.median(times) / 1e9)
print(json.dumps(rates))
"""


def gemm_gflops(runs: int) -> dict[str, float]:
    """GFLOP/s of NumPy's ``a @ b`` per dtype: the best over GEMM_SIZES of the median of ``runs``.

    Measured in a child interpreter, so NumPy's BLAS threads do not linger (spinning) in this one.
    """
    argv = [sys.executable, "-c", GEMM_SCRIPT, str(runs), ",".join(map(str, GEMM_SIZES)), *DTYPES]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


BUILD_SCRIPT = """
import json, sys, time
start = time.perf_counter()
import symgate as sg
imported = time.perf_counter() - start
cell = sg.cells.get("lstm_pytorch")
times = {}
for dtype in sys.argv[1:]:
    start = time.perf_counter()
    sg.build(cell, dtype=dtype)
    times[dtype] = time.perf_counter() - start
print(json.dumps({"import": imported, "build": times}))
"""


def build_in_subprocess(cache: Path, dtype: str) -> dict[str, Any]:
    """``sg.build(lstm_pytorch, dtype)`` timed in a fresh interpreter using ``cache`` as the kernel cache."""
    env = {**os.environ, "SYMGATE_CACHE_DIR": str(cache)}  # the child's environment only
    done = subprocess.run(
        [sys.executable, "-c", BUILD_SCRIPT, dtype], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_times(repeats: int) -> dict[str, dict[str, float]]:
    """Median cold (empty cache) and cached (second fresh process, same cache) build times per dtype."""
    found: dict[str, dict[str, list[float]]] = {d: {"cold": [], "cached": [], "import": []} for d in DTYPES}
    for _ in range(repeats):
        for dtype in DTYPES:
            cache = Path(tempfile.mkdtemp(prefix="symgate-bench-cache-"))
            try:
                cold = build_in_subprocess(cache, dtype)
                cached = build_in_subprocess(cache, dtype)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            found[dtype]["cold"].append(cold["build"][dtype])
            found[dtype]["cached"].append(cached["build"][dtype])
            found[dtype]["import"].append(cached["import"])
    return {d: {k: statistics.median(v) for k, v in kinds.items()} for d, kinds in found.items()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def core_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def blas_description() -> str:
    """Which BLAS symgate's kernels call, with the sizes that choose it (see symgate.jit.toolchain)."""
    library = toolchain.blas_library()
    if library == "mkl":
        return (
            f"MKL {package_version('mkl')} for products of at least {toolchain.mkl_threshold()} multiply-adds "
            f"(their matrices packed once per call in the time loop), OpenBLAS from "
            f"{toolchain.blas_threshold()} (core {toolchain.blas_core()}), loops below{_gemv_rows()}"
        )
    if library == "openblas":
        return (
            f"OpenBLAS from {toolchain.blas_threshold()} multiply-adds (core {toolchain.blas_core()}; on one thread, "
            f"on all from {toolchain.threads_threshold()}), loops below{_gemv_rows()}"
        )
    return "none: generated loops for every product"


def _gemv_rows() -> str:
    """What the report says of products of few rows (``SG_GEMV_ROWS``)."""
    rows = toolchain.gemv_rows()
    return f"; a product of 1 to {rows} rows by OpenBLAS's gemv, a row at a time" if rows else ""


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


class CpuMeter:
    """How busy the machine was with other work between its creation and ``others()``.

    From the first line of /proc/stat (user nice system idle iowait irq softirq steal, in clock
    ticks) less this process's and its children's CPU time: the share of all cores' time that other
    processes used, and the share the hypervisor gave away (steal). None where /proc/stat is missing.
    """

    def __init__(self) -> None:
        self.start = self.sample()

    @staticmethod
    def sample() -> tuple[float, float, float, float] | None:
        try:
            ticks = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        ticks += [0.0] * (8 - len(ticks))
        per_second = os.sysconf("SC_CLK_TCK")
        busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
        return sum(ticks) / per_second, busy / per_second, ticks[7] / per_second, sum(os.times()[:4])

    def others(self) -> dict[str, float] | None:
        end = self.sample()
        if self.start is None or end is None:
            return None
        total, busy, steal, ours = (e - s for e, s in zip(end, self.start, strict=True))
        if total <= 0:
            return None
        return {"others": max(busy - ours, 0.0) / total, "steal": steal / total}


def machine_info(jax: str | None, threads: int, blas_choice: str) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": core_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "jax": jax or "not installed",
        "symgate": sg.__version__,
        "scipy-openblas32": package_version("scipy-openblas32"),
        "blas": blas_description(),
        "blas_choice": blas_choice,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", *sys.argv]),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
        "load_before": load_average(),
    }


# -- formatting ---------------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_bytes(n: float) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def timing_cell(entry: Timing | str, ours: Timing | str | None = None) -> str:
    """Median time, † if noisy, and the speedup over symgate in bold when ``ours`` is given."""
    if isinstance(entry, str):
        return entry
    noisy = NOISY if max(entry.times) > SPREAD * min(entry.times) else ""
    text = f"{fmt_time(entry.median)}{noisy}"
    if isinstance(ours, Timing):
        text += f" (**{entry.median / ours.median:.3g}×**)"
    return text


def fastest_anchor(r: Result, mode: str) -> tuple[str, Timing] | None:
    """The anchor column with the smallest median time of ``mode`` in row ``r``, and its timing."""
    timed = [(c, t) for c in COLUMNS if isinstance(t := r.times[c][mode], Timing)]
    return min(timed, key=lambda ct: ct[1].median) if timed else None


def timing_table(results: list[Result], dtype: str, mode: str) -> str:
    header = ["config", "cell", "symgate", *COLUMNS, "fastest anchor (**its time / symgate's**)", "max rel. diff"]
    rows = []
    for r in (r for r in results if r.dtype == dtype):
        ours = r.times["symgate"][mode]
        best = fastest_anchor(r, mode)
        versus = f"{best[0]} (**{best[1].median / ours.median:.3g}×**)" if best and isinstance(ours, Timing) else "none"
        rows.append(
            [r.config, r.cell, timing_cell(ours)]
            + [timing_cell(r.times[c][mode]) for c in COLUMNS]
            + [versus, f"{r.max_rel_diff[mode]:.1e}"]
        )
    return table(header, rows)


def compile_note(results: list[Result]) -> str:
    """torch.compile's first-call (compile) times: their range per config and mode, the slowest named."""
    lines = []
    for config in dict.fromkeys(r.config for r in results):
        for mode in MODES:
            found = [(r.compile_times[mode], r) for r in results if r.config == config and mode in r.compile_times]
            if found:
                (low, _), (high, slow) = min(found, key=lambda f: f[0]), max(found, key=lambda f: f[0])
                lines.append(
                    f"{config} {mode}: {fmt_time(low)} to {fmt_time(high)} (slowest: {slow.cell} {slow.dtype})"
                )
    return "; ".join(lines) or "none measured"


def gemm_table(results: list[Result], peaks: Mapping[str, float]) -> str:
    header = ["config", "cell", "GFLOP (fwd+bwd)"]
    header += [f"{d} symgate GFLOP/s (% of peak)" for d in DTYPES] + [f"{d} fastest anchor GFLOP/s" for d in DTYPES]
    by_key = {(r.config, r.cell, r.dtype): r for r in results}
    rows = []
    for config, cell in dict.fromkeys((r.config, r.cell) for r in results):
        found = [by_key[(config, cell, d)] for d in DTYPES]
        row = [config, cell, f"{found[0].flops / 1e9:.3g}"]
        for d, r in zip(DTYPES, found, strict=True):
            rate = r.flops / r.times["symgate"]["forward+backward"].median / 1e9
            row.append(f"{rate:.3g} ({100 * rate / peaks[d]:.1f} %)")
        for r in found:
            best = fastest_anchor(r, "forward+backward")
            row.append(f"{r.flops / best[1].median / 1e9:.3g} ({best[0]})" if best else "none")
        rows.append(row)
    return table(header, rows)


def memory_table(rows: list[dict[str, Any]]) -> str:
    header = [
        "config",
        "cell",
        "symgate (states + tape)",
        "symgate `recompute=True` (+ one segment's tape in backward)",
        "PyTorch loop autograd",
        "nn.LSTM / nn.GRU autograd",
    ]
    body = []
    for m in rows:
        ratio = f" ({m['loop'] / m['symgate']:.2f}× symgate)" if m["symgate"] else ""
        module = fmt_bytes(m["module"]) if m["module"] is not None else "no module"
        recompute = f"{fmt_bytes(m['recompute'])} (+ {m['segment']} steps)"
        body.append(
            [m["config"], m["cell"], fmt_bytes(m["symgate"]), recompute, f"{fmt_bytes(m['loop'])}{ratio}", module]
        )
    return table(header, body)


def build_table(builds: Mapping[str, Mapping[str, float]]) -> str:
    rows = [[d, fmt_time(b["cold"]), fmt_time(b["cached"]), fmt_time(b["import"])] for d, b in builds.items()]
    return table(["dtype", "cold build", "cached build", "`import symgate`"], rows)


def machine_section(info: Mapping[str, Any]) -> str:
    env = ", ".join(f"`{k}={v}`" for k, v in info["env"].items()) or "none"
    lines = [
        f"- Machine: {info['cpu']}, {info['cores']} cores; load average {info['load_before']} before the run, "
        f"{info['load_after']} after; {contention(info['cpu_others'])}",
        f"- Python {info['python']}, NumPy {info['numpy']}, PyTorch {info['torch']} "
        f"(`torch.set_num_threads({info['torch_threads']})`"
        f"{', the core count' if info['torch_threads'] == info['cores'] else ''}), JAX {info['jax']}, "
        f"symgate {info['symgate']}, scipy-openblas32 {info['scipy-openblas32']}",
        f"- Date: {info['date']}; wall time {info['wall']:.0f} s",
        f"- Command: `{info['command']}`",
        f"- `OPENBLAS_CORETYPE`: {info['OPENBLAS_CORETYPE']}; thread and BLAS variables in force: {env}",
        f"- symgate's BLAS, chosen by {info['blas_choice']}; its matrix products: {info['blas']}",
    ]
    return "\n".join(lines)


def contention(shares: Mapping[str, float] | None) -> str:
    if shares is None:
        return "other processes' CPU use unknown (no /proc/stat)"
    text = (
        f"other processes used {100 * shares['others']:.0f} % of the cores' time during the run "
        f"(steal {100 * shares['steal']:.0f} %)"
    )
    if shares["others"] + shares["steal"] > BUSY:
        text += (
            ". **The machine was busy: these timings are disturbed** (PyTorch's multi-threaded calls suffer "
            "most, up to 100× slower when a core is taken); re-run on an idle machine"
        )
    return text


def report(
    info: Mapping[str, Any],
    results: list[Result],
    peaks: Mapping[str, Mapping[str, float]],
    memory: list[dict[str, Any]],
    builds: Mapping[str, Mapping[str, float]],
    policies: Mapping[str, Policy],
    rounds: int,
) -> str:
    repeat = "; ".join(
        f"{c}: {p.warmup} warm-up, median of {p.min_runs}-{p.max_runs} runs within about {p.budget:g} s"
        for c, p in policies.items()
    )
    parts = [
        "# symgate benchmark results",
        "",
        machine_section(info),
        "",
        "How to read the timing tables:",
        "",
        "- **Configs** (B, D, H, T): "
        + ", ".join(f"{name} {CONFIGS[name]}" for name in dict.fromkeys(r.config for r in results))
        + ". Same weights, x, h0, c0 and G for every implementation of a row.",
        "- **symgate**: forward is `k.forward(x, params, init={h, c}, backward=False).states['h']` (inference: no "
        "saved values kept, as under PyTorch's `inference_mode`); forward + backward is "
        "`run = k.forward(x, params, init={h, c})`, `run.states['h']`, then `k.backward(run, {'h': G})`. A run "
        "makes the arrays it holds when they are first read, so reading h_seq is part of the time.",
        "- **PyTorch module**: `nn.LSTM` / `nn.GRU` over the whole sequence (weights mapped with "
        "`sg.from_torch`). **PyTorch loop**: a Python loop over time of `nn.LSTMCell` / `nn.GRUCell`, or, "
        "for lstm_peephole and mgu (no framework has them), of the cell's equations in torch ops. "
        "Forward runs under `torch.inference_mode()`; forward + backward is `loss.backward()` on "
        "`loss = sum(h_seq * G)`, with parameters, x, h0 (and c0) requiring grad.",
        "- **torch.compile**: the loop as a careful user writes it (`benchmarks/hoisted.py`): the input products "
        "of all steps as one product of x (T·B, D) by the stacked input matrices before the loop, then a Python "
        "loop of `torch.compile`d steps, each one product of h by the stacked recurrent matrices (mgu: two, its "
        "candidate multiplies `f * h`) and the cell's elementwise work; parameters kept stacked. The first call "
        f"of each mode compiles (not timed; over {COMPILE_LIMIT:.0f} s the mode is reported, not timed); cold "
        f"compile times (a new, empty Inductor cache for the run, its graph caches off): {compile_note(results)}.",
        "- **JAX**: `jax.jit` of a `lax.scan` over the same equations, `jax.value_and_grad` for forward + "
        "backward. **JAX hoisted**: the same split as torch.compile's (`benchmarks/hoisted.py`): one product for "
        "every step's input products before the `lax.scan`, one stacked recurrent product per step inside it, "
        "`jax.jit`, `jax.value_and_grad` with respect to the stacked parameters. **NumPy**: "
        "`symgate.verify.reference.forward` (forward only, so forward + backward is n/a).",
        "- Each anchor entry is its median time; the last columns but one name the fastest anchor of the row and, "
        "in bold, `its time / symgate's time`, measured in the same run (> 1: symgate is faster than every "
        f"anchor). {NOISY} marks a measurement whose slowest run took more than {SPREAD}× its fastest.",
        f"- Repeats: {repeat}; a call slower than 2 s gets a single warm-up. "
        + (
            f"Each measurement is made in {rounds} rounds taking turns (every implementation of the row in "
            "a round, in reverse order every other round), each round a rest, one warm-up after the first "
            f"round's, and 1/{rounds} of those runs and that time; the time shown is the median of the "
            f"rounds' medians, and {NOISY} looks at every run of every round."
            if rounds > 1
            else "One round."
        ),
        "- *max rel. diff*: the largest `max|symgate - anchor| / max|anchor|` over the anchors of the row, "
        "of h_seq (forward) and of h_seq, dL/dx, dL/dh0, dL/dc0 (forward + backward): all compute the same.",
    ]
    for mode in MODES:
        for dtype in DTYPES:
            parts += ["", f"## {mode}, {dtype}", "", timing_table(results, dtype, mode)]
    parts += [
        "",
        "## Throughput against the GEMM peak",
        "",
        "Peak: NumPy `a @ b`, the best of the medians on "
        + " and ".join(f"{n}×{n}" for n in GEMM_SIZES)
        + " matrices, measured before and after the kernels (this machine's speed drifts within a run): "
        + ", ".join(f"{d} {peaks['before'][d]:.1f} then {peaks['after'][d]:.1f} GFLOP/s" for d in DTYPES)
        + "; the higher of the two is the peak. FLOPs count the matrix products only: "
        "2·rows·cols·B·T per product forward, twice that backward "
        "(input and weight gradients). *Fastest anchor*: the row's fastest anchor in forward + backward, named.",
        "",
        gemm_table(results, {d: max(peaks["before"][d], peaks["after"][d]) for d in DTYPES}),
        "",
        "## Memory kept by the forward pass for the backward pass, per step (float32; float64 is twice)",
        "",
        "symgate: nbytes of `run.states`, `run.outputs` and `run.tape` divided by T (`Run.kept_bytes`); with "
        "`forward(..., recompute=True)` the run keeps no tape, and its backward pass holds one segment's tape "
        "(about √T steps) at a time. PyTorch: the storages "
        "autograd saves during the forward pass (`torch.autograd.graph.saved_tensors_hooks`), each counted "
        "once, the leaves (parameters, x, h0, c0) left out, divided by T.",
        "",
        memory_table(memory),
        "",
        "## Build time of lstm_pytorch",
        "",
        "Cold: a fresh interpreter with `SYMGATE_CACHE_DIR` set to a new empty directory, timing "
        "`sg.build(cell, dtype)` (generate, compile, load). Cached: a second fresh interpreter on the same "
        "cache, timing `sg.build` after `import symgate`. Medians over the repeats.",
        "",
        build_table(builds),
        "",
    ]
    return "\n".join(parts)


# -- main ---------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny and small configs only, fewer repeats")
    parser.add_argument(
        "--configs", nargs="+", choices=ALL_CONFIGS, help="the configs to run (default: all, or tiny and small)"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch.set_num_threads (default: the core count)"
    )
    parser.add_argument(
        "--output", type=Path, default=HERE / "RESULTS.md", help="markdown report (default: %(default)s)"
    )
    parser.add_argument(
        "--blas",
        choices=BLAS_CHOICES,
        help="sets SYMGATE_BLAS for the run: 'default' the BLAS of a plain `pip install symgate` on this "
        "platform (from pyproject.toml's dependencies), or the library named (default: SYMGATE_BLAS if set, "
        "else 'default')",
    )
    args = parser.parse_args(argv)
    if args.quick and args.configs and not set(args.configs) <= {*QUICK_CONFIGS, *SECTION_CONFIGS}:
        parser.error(f"--quick runs only {', '.join((*QUICK_CONFIGS, *SECTION_CONFIGS))}")
    return args


BLAS_CHOICES = ("default", "openblas", "mkl")


def default_install_blas() -> str:
    """The BLAS a plain ``pip install symgate`` gets here: the first of the libraries symgate
    prefers on this CPU (:func:`symgate.jit.toolchain.preferred_libraries`) that it installs, MKL
    being installed where this checkout's pyproject.toml makes it a dependency (an environment marker)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project.get("dependencies", [])]
    has_mkl = any(r.name == "mkl" and (r.marker is None or r.marker.evaluate({"extra": ""})) for r in requirements)
    return next(name for name in toolchain.preferred_libraries() if name != "mkl" or has_mkl)


def choose_blas(given: str | None) -> str:
    """Sets SYMGATE_BLAS for this process and its children; returns how it was chosen, for the report."""
    if given is None and os.environ.get("SYMGATE_BLAS", "").strip():
        return f"`SYMGATE_BLAS={os.environ['SYMGATE_BLAS']}` from the environment"
    choice = given or "default"
    library = default_install_blas() if choice == "default" else choice
    os.environ["SYMGATE_BLAS"] = library
    if choice == "default":
        return f"`--blas default`: the default install's BLAS, `SYMGATE_BLAS={library}`"
    return f"`--blas {choice}`: `SYMGATE_BLAS={library}`"


def build_kernels() -> dict[tuple[str, str], sg.Kernel]:
    return {(c, d): sg.build(sg.cells.get(c), dtype=d) for c in CELLS for d in DTYPES}


def run_all(configs: Iterable[str], quick: bool, with_jax: bool) -> tuple[list[Result], list[dict[str, Any]]]:
    kernels = build_kernels()
    results, memory = [], []
    for config in configs:
        for dtype in DTYPES:
            for cell_name in CELLS:
                start = time.perf_counter()
                case = make_case(cell_name, config, dtype, kernels)
                results.append(run_case(case, POLICIES[(quick, config)], with_jax, 1 if quick else ROUNDS))
                if dtype == "float32":
                    memory.append(memory_row(case))
                progress(f"  {config:<5} {dtype} {cell_name:<13} {time.perf_counter() - start:6.1f} s")
    return results, memory


def results_json(info: Mapping[str, Any], results: list[Result], extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "machine": info,
        **extra,
        "results": [
            {
                **{k: v for k, v in asdict(r).items() if k != "times"},
                "times": {
                    c: {m: t.summary() if isinstance(t, Timing) else t for m, t in modes.items()}
                    for c, modes in r.times.items()
                },
            }
            for r in results
        ],
    }


def update_json(path: Path, data: Mapping[str, Any]) -> None:
    """Replaces the keys of ``data`` in the JSON file ``path``, keeping the others (another run's)."""
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **data}, indent=1) + "\n")


def run_cells(args: argparse.Namespace, configs: tuple[str, ...], jax: str, threads: int) -> tuple[str, dict[str, Any]]:
    """The cells' tables, GEMM peak, memory and build times: the main report and its JSON."""
    began, meter, info = time.perf_counter(), CpuMeter(), machine_info(jax, threads, args.blas_choice)
    progress("GEMM peak ...")
    peaks = {"before": gemm_gflops(5 if args.quick else 15)}
    progress("build times ...")
    builds = build_times(1 if args.quick else 3)
    progress("kernels ...")
    results, memory = run_all(configs, args.quick, jax != "not installed")
    progress("GEMM peak again ...")
    peaks["after"] = gemm_gflops(5 if args.quick else 15)
    info = {**info, "load_after": load_average(), "cpu_others": meter.others(), "wall": time.perf_counter() - began}
    policies = {c: POLICIES[(args.quick, c)] for c in configs}
    text = report(info, results, peaks, memory, builds, policies, 1 if args.quick else ROUNDS)
    return text, results_json(info, results, {"gemm_peak": peaks, "build": builds, "memory": memory})


def run_layers(args: argparse.Namespace, jax: str, threads: int) -> tuple[str, dict[str, Any]]:
    """The "layers" rows (layers.py): their section of the report, with its own machine lines, and JSON."""
    progress("layers ...")
    began, meter, info = time.perf_counter(), CpuMeter(), machine_info(jax, threads, args.blas_choice)
    result = layers.measure_layers(args.quick, progress)
    info = {**info, "load_after": load_average(), "cpu_others": meter.others(), "wall": time.perf_counter() - began}
    return layers.report(result, info), {"machine": info, **result.summary()}


def run_matrix(args: argparse.Namespace, jax: str, threads: int) -> tuple[str, dict[str, Any]]:
    """The "matrix" rows (matrix_states.py): their section of the report, with its own machine lines, and JSON."""
    progress("matrix ...")
    began, meter, info = time.perf_counter(), CpuMeter(), machine_info(jax, threads, args.blas_choice)
    with cold_inductor_cache():
        results = matrix_states.measure_matrix(args.quick, jax != "not installed", progress)
    info = {**info, "load_after": load_average(), "cpu_others": meter.others(), "wall": time.perf_counter() - began}
    return matrix_states.report(results, info), {"machine": info, **matrix_states.summary(results)}


def run_training(args: argparse.Namespace, jax: str, threads: int) -> tuple[str, dict[str, Any]]:
    """The "training" rows (training.py): their section of the report, with its own machine lines, and JSON."""
    progress("training ...")
    began, meter, info = time.perf_counter(), CpuMeter(), machine_info(jax, threads, args.blas_choice)
    result = training.measure_training(args.quick, progress)
    info = {**info, "load_after": load_average(), "cpu_others": meter.others(), "wall": time.perf_counter() - began}
    return training.report(result, info), {"machine": info, **result.summary()}


@contextlib.contextmanager
def cold_inductor_cache() -> Iterator[None]:
    """A new, empty Inductor cache for the run (unless ``TORCHINDUCTOR_CACHE_DIR`` is set), removed
    after it: the torch.compile anchor's compile times are then those of a first compile, not of
    kernels an earlier run left in /tmp/torchinductor_$USER."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        yield
        return
    cache = tempfile.mkdtemp(prefix="symgate-bench-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        yield
    finally:
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
        shutil.rmtree(cache, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    threads = args.torch_threads or core_count()
    args.blas_choice = choose_blas(args.blas)  # before any kernel is built: SYMGATE_BLAS is read at build time
    torch.set_num_threads(threads)
    jax = jax_version() or "not installed"
    configs = tuple(args.configs) if args.configs else QUICK_CONFIGS if args.quick else ALL_CONFIGS
    progress(f"symgate benchmark: configs {', '.join(configs)}; torch threads {threads}; JAX {jax}; {args.blas_choice}")
    cell_configs = tuple(c for c in configs if c in CONFIGS)
    main_text, data, own = None, {}, {}
    if cell_configs:
        with cold_inductor_cache():
            main_text, data = run_cells(args, cell_configs, jax, threads)
        print(main_text)
    if "layers" in configs:
        own[layers.SECTION], data["layers"] = run_layers(args, jax, threads)
        print(own[layers.SECTION])
    if "matrix" in configs:
        own[matrix_states.SECTION], data["matrix"] = run_matrix(args, jax, threads)
        print(own[matrix_states.SECTION])
    if "training" in configs:
        own[training.SECTION], data["training"] = run_training(args, jax, threads)
        print(own[training.SECTION])
    sections.write_report(args.output, main_text, own)  # keeps the sections this run did not write
    update_json(args.output.with_name("results.json"), data)
    what = "the main report" if main_text is not None else f"the {', '.join(own)} section(s) only"
    progress(f"wrote {args.output} ({what}; the other sections kept) in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
