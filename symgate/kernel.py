"""Kernels: a compiled cell behind a NumPy API (forward over a sequence, backward through time).

Arrays are checked before C sees them (shape, dtype, layout, names); sizes of the cell's named
dimensions are read off the arrays and must agree. The forward pass returns a :class:`Run`
holding every state, output and saved value; the backward pass takes that run and the loss
gradients with respect to states and outputs, and returns :class:`Gradients` for parameters,
inputs and initial states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from .cache import Entry
from .cell import Cell
from .errors import ArrayError
from .functions import SCALAR
from .render import Interface

DTYPES = {"float64": np.float64, "float32": np.float32, "complex128": np.complex128}
C_TYPES = {"float64": "double", "float32": "float", "complex128": "double _Complex"}
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Run:
    """The result of a forward pass, and what its backward pass needs.

    ``states[s]`` is (T, B, size): the state after each step; ``final[s]`` the last one (the
    initial state when T = 0); ``outputs[y]`` is (T, B, size). Every array is read-only, and the
    inputs, parameters and initial states are copies, so changing the caller's arrays after the
    forward pass cannot corrupt the backward pass. ``Kernel.forward(..., copy=False)`` skips
    those copies and the read-only marking: the run then shares the caller's arrays, and the
    caller must not change them (or the run's) before the backward pass.
    """

    inputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    init: dict[str, np.ndarray]
    states: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    tape: dict[str, np.ndarray] = field(repr=False)
    sizes: dict[str, int]
    kernel: str = field(default="", repr=False)  # the cache entry that made it

    @property
    def final(self) -> dict[str, np.ndarray]:
        return {s: (seq[-1] if len(seq) else self.init[s]) for s, seq in self.states.items()}


@dataclass(frozen=True)
class Gradients:
    """Gradients of the loss: ``params[name]``, ``inputs[name]`` (T, B, size), ``init[state]`` (B, size)."""

    params: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    init: dict[str, np.ndarray]


class Kernel:
    """The compiled forward and backward kernels of one cell in one dtype."""

    def __init__(self, cell: Cell, dtype: str, entry: Entry) -> None:
        self.cell = cell
        self.dtype = dtype
        self.entry = entry
        self.interface: Interface = entry.interface
        self._module: ModuleType = entry.load()
        self._np_dtype = np.dtype(DTYPES[dtype])
        lib = self._module.lib
        self._labels = {("param", p.name): f"params[{p.name!r}]" for p in cell.params}
        self._labels |= {("input", x): f"x[{x!r}]" if len(cell.inputs) > 1 else "x" for x in cell.inputs}
        self._labels |= {("init", s): f"init[{s!r}]" for s in cell.states}
        self._functions = {
            p.function: (
                getattr(lib, p.function),
                getattr(lib, p.work_function),
                [(a.role, a.name) for a in p.arguments],
            )
            for p in (self.interface.forward, self.interface.backward)
            if p is not None  # a complex kernel has a forward pass only
        }

    @property
    def source(self) -> str:
        """The generated C of both passes."""
        return self.entry.c_source

    def __repr__(self) -> str:
        return f"<symgate.Kernel {self.cell.name} {self.dtype} at {self.entry.path}>"

    # -- parameters -----------------------------------------------------------------------
    def init_params(self, sizes: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
        """Random parameters: each drawn from U(-1/sqrt(n), 1/sqrt(n)), n its first dimension.

        For the cells PyTorch has, n is the hidden size, as in PyTorch's own initialisation.
        """
        sizes = {**self._sizes_given(sizes), SCALAR: 1}
        rng = np.random.default_rng(seed)
        params = {}
        for p in self.cell.params:
            shape = tuple(sizes[d] for d in p.shape)
            bound = 1.0 / np.sqrt(max(shape[0], 1))
            params[p.name] = rng.uniform(-bound, bound, size=shape).astype(self._np_dtype)
        return params

    def _sizes_given(self, sizes: Mapping[str, int]) -> dict[str, int]:
        missing = [d for d in self.cell.dims if d not in sizes]
        if missing:
            raise ArrayError(f"sizes are missing for dimensions {missing} of cell {self.cell.name}")
        for d in self.cell.dims:
            if not isinstance(sizes[d], (int, np.integer)) or isinstance(sizes[d], bool) or sizes[d] < 0:
                raise ArrayError(f"size of {d} must be a non-negative integer, got {sizes[d]!r}")
        return {d: int(sizes[d]) for d in self.cell.dims}

    # -- forward --------------------------------------------------------------------------
    def forward(
        self,
        x: np.ndarray | Mapping[str, np.ndarray],
        params: Mapping[str, np.ndarray],
        init: Mapping[str, np.ndarray] | None = None,
        *,
        copy: bool = True,
    ) -> Run:
        """Runs the cell over a whole sequence. ``x``: (T, B, D), or a dict for several inputs.

        ``copy=False`` makes no defensive copies (see :class:`Run`): for callers such as
        ``symgate.torch`` that share memory with the kernels and guard it themselves.
        """
        cell = self.cell
        inputs = self._named("x", x, cell.inputs)
        self._no_unknown("params", params, [p.name for p in cell.params])
        self._no_unknown("init", init or {}, list(cell.states))
        if not cell.inputs:
            raise ArrayError(f"cell {cell.name} has no inputs: nothing gives the number of steps")
        first = next(iter(inputs))
        if not isinstance(inputs[first], np.ndarray) or inputs[first].ndim != 3:
            raise ArrayError(f"{self._labels['input', first]} must be a 3-d array (T, B, {cell.inputs[first]})")
        steps, batch = inputs[first].shape[:2]
        sizes: dict[str, tuple[int, str]] = {}
        labels = self._labels
        for name, dim in cell.inputs.items():
            self._fit(labels["input", name], inputs.get(name), ("T", "B", dim), sizes, steps, batch)
        for p in cell.params:
            if p.name not in params:
                raise ArrayError(f"params is missing {p.name!r} (shape {p.shape})")
            self._fit(labels["param", p.name], params[p.name], p.shape, sizes, steps, batch)
        init = dict(init or {})
        for s, dim in cell.states.items():
            if s in init:
                self._fit(labels["init", s], init[s], ("B", dim), sizes, steps, batch)
        unresolved = [d for d in cell.dims if d not in sizes]
        if unresolved:
            raise ArrayError(f"cannot tell the sizes of {unresolved}: pass init for the states that use them")
        sizes = {d: extent for d, (extent, _) in sizes.items()}
        self._fits_c_int(steps, batch, sizes)
        for s, dim in cell.states.items():
            init.setdefault(s, np.zeros((batch, sizes[dim]), self._np_dtype))
        outputs = self._empty_all(self.interface.forward.arguments, ("states", "outputs", "tape"), steps, batch, sizes)
        arrays = {("input", n): a for n, a in inputs.items()} | {("param", n): a for n, a in params.items()}
        arrays |= {("init", n): a for n, a in init.items()} | outputs
        self._call(self.interface.forward, arrays, steps, batch, sizes)
        keep = (lambda a: _read_only(a.copy())) if copy else (lambda a: a)
        frozen = {k: _read_only(a) if copy else a for k, a in outputs.items()}
        return Run(
            inputs={n: keep(a) for n, a in inputs.items()},
            params={p.name: keep(params[p.name]) for p in cell.params},
            init={n: keep(a) for n, a in init.items()},
            states={n: a for (role, n), a in frozen.items() if role == "states"},
            outputs={n: a for (role, n), a in frozen.items() if role == "outputs"},
            tape={n: a for (role, n), a in frozen.items() if role == "tape"},
            sizes={"T": steps, "B": batch, **sizes},
            kernel=str(self.entry.path),
        )

    # -- backward -------------------------------------------------------------------------
    def backward(self, run: Run, grads: Mapping[str, np.ndarray]) -> Gradients:
        """Backpropagation through time.

        ``grads[s]`` (T, B, size) is the loss gradient with respect to each step's state ``s``
        and ``grads[y]`` with respect to each step's output ``y``; missing ones are zero.
        ``grads["final"]`` may map states to (B, size) gradients with respect to ``run.final``.
        """
        cell = self.cell
        if self.interface.backward is None:
            raise ArrayError(
                f"the {self.dtype} kernel of {cell.name} is a forward pass only, for the complex-step check"
            )
        if not isinstance(run, Run):
            raise ArrayError("backward needs the Run returned by forward")
        if run.kernel != str(self.entry.path):
            raise ArrayError(
                f"this Run was made by another kernel ({run.kernel or 'unknown'}); "
                f"pass a Run from this {self.cell.name} {self.dtype} kernel's forward"
            )
        self._no_unknown("grads", grads, [*cell.states, *cell.outputs, "final"])
        final = grads.get("final", {})
        self._no_unknown("grads['final']", final, list(cell.states))
        steps, batch, sizes = run.sizes["T"], run.sizes["B"], {d: run.sizes[d] for d in cell.dims}
        known = {d: (n, "the run") for d, n in sizes.items()}
        given = {}
        for name, dim in [*cell.states.items(), *cell.outputs.items()]:
            role = "grad_states" if name in cell.states else "grad_outputs"
            if name in grads:
                self._fit(f"grads[{name!r}]", grads[name], ("T", "B", dim), known, steps, batch)
                given[(role, name)] = grads[name]
            else:
                given[(role, name)] = np.zeros((steps, batch, sizes[dim]), self._np_dtype)
        results = self._empty_all(
            self.interface.backward.arguments, ("grad_inputs", "grad_params"), steps, batch, sizes
        )
        for s, dim in cell.states.items():
            carry = np.zeros((batch, sizes[dim]), self._np_dtype)
            if s in final:
                self._fit(f"grads['final'][{s!r}]", final[s], ("B", dim), known, steps, batch)
                carry[...] = final[s]
            results[("grad_init", s)] = carry
        arrays = {("input", n): a for n, a in run.inputs.items()} | {("param", n): a for n, a in run.params.items()}
        arrays |= {("init", n): a for n, a in run.init.items()}
        arrays |= {("states", n): a for n, a in run.states.items()} | {
            ("outputs", n): a for n, a in run.outputs.items()
        }
        arrays |= {("tape", n): a for n, a in run.tape.items()} | given | results
        self._call(self.interface.backward, arrays, steps, batch, sizes)
        return Gradients(
            params={n: a for (role, n), a in results.items() if role == "grad_params"},
            inputs={n: a for (role, n), a in results.items() if role == "grad_inputs"},
            init={n: a for (role, n), a in results.items() if role == "grad_init"},
        )

    # -- helpers --------------------------------------------------------------------------
    def _named(self, label: str, value, names: Mapping[str, str]) -> dict[str, np.ndarray]:
        if isinstance(value, Mapping):
            self._no_unknown(label, value, list(names))
            missing = [n for n in names if n not in value]
            if missing:
                raise ArrayError(f"{label} is missing inputs {missing}")
            return dict(value)
        if len(names) != 1:
            raise ArrayError(f"cell {self.cell.name} has inputs {list(names)}: pass {label} as a dict")
        return {next(iter(names)): value}

    @staticmethod
    def _no_unknown(label: str, given: Mapping, known: list[str]) -> None:
        if not isinstance(given, Mapping):
            raise ArrayError(f"{label} must be a dict, not {type(given).__name__}")
        unknown = [k for k in given if k not in known]
        if unknown:
            raise ArrayError(f"{label} has unknown names {unknown}; expected some of {known}")

    def _fit(self, label: str, array, shape: tuple[str, ...], sizes: dict, steps: int, batch: int) -> None:
        """Checks one array and records the sizes it implies (with the array they came from)."""
        if not isinstance(array, np.ndarray):
            raise ArrayError(f"{label} must be a NumPy array, not {type(array).__name__}")
        if isinstance(array, np.ma.MaskedArray):
            raise ArrayError(f"{label} is a masked array, whose mask the kernel would ignore; pass {label}.filled(0)")
        if array.dtype != self._np_dtype:
            if not array.dtype.isnative:
                raise ArrayError(f"{label} is not in native byte order; convert it with .astype(np.{self.dtype})")
            raise ArrayError(
                f"{label} has dtype {array.dtype} but this kernel is {self.dtype}; "
                f"convert it with .astype(np.{self.dtype})"
            )
        if array.ndim != len(shape):
            raise ArrayError(f"{label} must have shape ({', '.join(shape)}), got {array.shape}")
        for dim, extent in zip(shape, array.shape, strict=True):
            expected = (steps, "x") if dim == "T" else (batch, "x") if dim == "B" else sizes.get(dim)
            if dim == SCALAR:
                expected = (1, "a per-sample scalar")
            if expected is None:
                sizes[dim] = (extent, label)
            elif expected[0] != extent:
                raise ArrayError(
                    f"{label} has shape {array.shape}, expected ({', '.join(shape)}) with "
                    f"{dim}={expected[0]} (from {expected[1]})"
                )
        if not array.flags.c_contiguous:
            raise ArrayError(
                f"{label} must be C-contiguous (it has strides {array.strides}); pass np.ascontiguousarray({label})"
            )
        if not array.flags.aligned:
            raise ArrayError(f"{label} is not aligned to its dtype in memory; pass {label}.copy()")

    def _fits_c_int(self, steps: int, batch: int, sizes: dict[str, int]) -> None:
        """The kernels count in C ``int``: T * B and a dimension times the widest stack of vectors
        sharing it (bounded by the number of parameters and equations) must fit in one."""
        if max(steps, batch, steps * batch) > INT_MAX:
            raise ArrayError(f"T * B = {steps} * {batch} is over {INT_MAX}, the kernels' limit; split the sequence")
        stacked = max(8, len(self.cell.params) + len(self.cell.equations))
        for dim, extent in sizes.items():
            if extent * stacked > INT_MAX:
                raise ArrayError(f"{dim} = {extent} is over {INT_MAX // stacked}, the limit for cell {self.cell.name}")

    def _empty_all(self, arguments, roles, steps, batch, sizes) -> dict[tuple[str, str], np.ndarray]:
        extents = {"T": steps, "B": batch, SCALAR: 1, **sizes}
        return {
            (a.role, a.name): np.empty(tuple(extents[d] for d in a.shape), self._np_dtype)
            for a in arguments
            if a.role in roles
        }

    def _call(self, pass_, arrays: dict, steps: int, batch: int, sizes: dict[str, int]) -> None:
        from_buffer = self._module.ffi.from_buffer  # a view of the array's memory: no copy
        buffer = f"{C_TYPES[self.dtype]}[]"
        function, work_size, keys = self._functions[pass_.function]
        dims = [sizes[d] for d in self.interface.dims]
        work = np.empty(work_size(steps, batch, *dims), self._np_dtype)
        function(steps, batch, *dims, *[from_buffer(buffer, arrays[key]) for key in keys], from_buffer(buffer, work))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
