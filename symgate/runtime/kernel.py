"""Kernels: a compiled cell behind a NumPy API (forward over a sequence, backward through time).

Arrays are checked before C sees them (shape, dtype, layout, names); sizes of the cell's named
dimensions are read off the arrays and must agree. The forward pass returns a :class:`Run`
holding every state, output and saved value (or, with ``recompute=True``, states and outputs
only); the backward pass takes that run and the loss gradients with respect to states and
outputs, and returns :class:`Gradients` for parameters, inputs and initial states.

A call costs some tens of microseconds of Python on top of the C, which matters for small cells
(a tiny LSTM's forward + backward is about 60 µs of C), so the Python does little per array: the
common case (plain arrays, exactly right) is accepted by a quick check, and only an array that
fails it goes through the full check that names what is wrong; the arrays a pass makes live in
a few blocks of memory (a run's states and outputs; its copies and tape; a backward pass's
gradients), passed to C as pointers into them, at offsets a :class:`ForwardPlan` made once per
set of sizes; a run makes its dicts of views when first read.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import numpy as np

from ..dtypes import dtype as dtype_of
from ..errors import ArrayError, BuildError
from ..frontend.cell import Cell
from ..frontend.functions import SCALAR
from ..interface import GIVEN_ROLES, STEPWISE_ROLES, Interface
from ..jit.cache import Entry
from .memory import ALIGNMENT, POOLED_FROM, pool

INT_MAX = 2**31 - 1
SHAPES_REMEMBERED = 64  # sets of sizes whose array shapes a kernel remembers
# Bytes: a workspace up to this size is kept by each thread for its next call of the same kernel
# (taking one from the pool and handing it back cost a tiny LSTM's forward + backward 4 %).
WORK_KEPT = 256 * 2**10


def _role(role: str, doc: str) -> property:
    """A read-only attribute of a :class:`Run`: its arrays of one role, by name."""

    def arrays(run: Run) -> dict[str, np.ndarray]:
        return run._part(role)

    return property(arrays, doc=doc)


class Run:
    """The result of a forward pass, and what its backward pass needs.

    ``states[s]`` is (T, B, size): the state after each step; ``final[s]`` the last one (the
    initial state when T = 0); ``outputs[y]`` is (T, B, size). Every array is read-only, and the
    inputs, parameters and initial states are copies, so changing the caller's arrays after the
    forward pass cannot corrupt the backward pass. ``Kernel.forward(..., copy=False)`` skips
    those copies and the read-only marking: the run then shares the caller's arrays, and the
    caller must not change them (or the run's) before the backward pass. A run made with
    ``recompute=True`` has an empty ``tape`` and a ``segment`` length: its backward pass
    recomputes the saved values. A run made with ``backward=False`` has no tape, shares the
    caller's arrays, has writeable states and outputs, and ``for_backward`` false: it cannot be
    passed to the backward pass.

    The arrays a run made live in two blocks of memory, one for the states and outputs, one for
    what only the backward pass reads; the dicts of views of them are made when first read (most
    callers read the states and never the tape or the copies). A run holds C pointers into its
    blocks for its backward pass, so it cannot be pickled or copied: its arrays can.
    """

    __slots__ = (
        "_arguments",
        "_blocks",
        "_for_backward",
        "_kernel",
        "_parts",
        "_segment",
        "_shapes",
        "_shared",
    )

    def __init__(
        self,
        kernel: str,
        segment: int,
        for_backward: bool,
        shapes: Shapes,
        blocks: tuple[Block, ...],
        shared: dict[tuple[str, str], np.ndarray],
        arguments: list,
    ) -> None:
        self._kernel, self._segment, self._for_backward = kernel, segment, for_backward
        self._shapes = shapes  # of the arrays of both passes, for the backward pass
        # The forward pass's pointers in its order, for its first step (``blocks`` and ``shared``
        # own what they point to): the arrays the backward pass reads first.
        self._arguments = arguments
        self._blocks, self._shared = blocks, shared
        self._parts: dict[str, dict[str, np.ndarray]] = {}

    @property
    def kernel(self) -> str:
        """The cache entry of the kernel that made it."""
        return self._kernel

    @property
    def segment(self) -> int:
        """With ``recompute=True``: the steps a backward segment recomputes; 0 = taped."""
        return self._segment

    @property
    def for_backward(self) -> bool:
        """False when made with ``backward=False``: no tape kept or recomputable."""
        return self._for_backward

    @property
    def sizes(self) -> dict[str, int]:
        """T, B and the size of each of the cell's dimensions."""
        return {"T": self._shapes.steps, "B": self._shapes.batch, **self._shapes.sizes}

    def __repr__(self) -> str:
        shown = ", ".join(f"{d}={n}" for d, n in self.sizes.items())
        return f"<symgate.Run {shown}{'' if self.for_backward else ', inference'}>"

    def __reduce__(self):
        raise TypeError(
            "a symgate Run holds C pointers into its kernel's memory and cannot be pickled or copied; "
            "pickle or copy its arrays (run.states, run.outputs, ...) instead"
        )

    def _part(self, role: str) -> dict[str, np.ndarray]:
        part = self._parts.get(role)
        if part is None:
            part = {name: a for block in self._blocks for name, a in block.views(role).items()}
            part |= {name: a for (r, name), a in self._shared.items() if r == role}
            self._parts[role] = part
        return part

    inputs = _role("input", "Copies of the inputs (the caller's with copy=False).")
    params = _role("param", "Copies of the parameters (the caller's with copy=False).")
    init = _role("init", "The initial states: copies, or zeros where none was given.")
    states = _role("states", "(T, B, size) arrays: each state after each step.")
    outputs = _role("outputs", "(T, B, size) arrays: each output at each step.")
    tape = _role("tape", "The saved values the backward pass reads, by name.")

    @property
    def kept_bytes(self) -> int:
        """Bytes this run keeps for its backward pass beyond the caller's arrays: states,
        outputs and the tape of saved values."""
        return sum(a.nbytes for part in (self.states, self.outputs, self.tape) for a in part.values())

    @property
    def final(self) -> dict[str, np.ndarray]:
        return {s: (seq[-1] if len(seq) else self.init[s]) for s, seq in self.states.items()}


class Shapes(dict):
    """The shape of every array of both passes for one set of sizes, by (role, name); and
    ``new[role, name](zero=False)``, which makes such an array (large ones from the memory pool)."""

    new: dict[tuple[str, str], Callable[..., np.ndarray]]
    steps: int
    batch: int
    sizes: dict[str, int]  # of the cell's dimensions
    dims: list[int]  # the sizes of the kernels' dimension arguments, in their order
    strides: dict[tuple[str, str], int]  # elements a step, of each (T, B, ·) array
    itemsize: int
    layouts: dict[tuple[str, ...], Layout]
    forward_plans: dict[tuple[bool, bool, bool], ForwardPlan]  # by (copies, keep_tape, backward)
    zeros: dict[tuple[str, str], np.ndarray]  # read-only, for small loss gradients not given
    by_role: dict[str, dict[str, tuple[tuple[str, str], tuple[int, ...]]]]  # role -> name -> (key, shape)

    def layout(self, roles: tuple[str, ...]) -> Layout:
        """One block for every array of these roles."""
        layout = self.layouts.get(roles)
        if layout is None:
            layout = self.layouts[roles] = Layout({k: s for k, s in self.items() if k[0] in roles}, self.itemsize)
        return layout


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
        self._np_dtype = dtype_of(dtype).np_dtype
        lib = self._module.lib
        self._labels = {("param", p.name): f"params[{p.name!r}]" for p in cell.params}
        self._labels |= {("input", x): f"x[{x!r}]" if len(cell.inputs) > 1 else "x" for x in cell.inputs}
        self._labels |= {("init", s): f"init[{s!r}]" for s in cell.states}
        self._functions = {
            p.function: (getattr(lib, p.function), getattr(lib, p.work_function))
            for p in (self.interface.forward, self.interface.backward, self.interface.infer)
            if p is not None  # a complex kernel has a forward pass only
        }
        self._ffi = self._module.ffi
        self._buffer = f"{dtype_of(dtype).c_type}[]"
        self._pointer = f"{dtype_of(dtype).c_type} *"
        self._null = self._ffi.cast(self._pointer, 0)  # for arguments a call sets itself
        self._thread = threading.local()  # its kept workspace
        self._path = str(entry.path)
        self._param_names = {p.name for p in cell.params}
        self._input_names, self._state_names = set(cell.inputs), set(cell.states)
        self._first_input = next(iter(cell.inputs), "")
        self._single_input = self._first_input if len(cell.inputs) == 1 else ""
        self._dims = cell.dims
        self._grad_names = {*cell.states, *cell.outputs, "final"}
        self._arrays_given = len(cell.inputs) + len(cell.params) + len(cell.states)  # with every initial state
        self._forward_keys = _keys(self.interface.forward)
        self._infer_keys = _keys(self.interface.infer)
        self._backward_keys = _keys(self.interface.backward)
        self._grads_given = [key for key in self._backward_keys if key[0] in GIVEN_ROLES]
        reads = len(self._forward_keys) + len(self._grads_given)
        if self._backward_keys and self._backward_keys[:reads] != self._forward_keys + self._grads_given:
            raise BuildError(f"the backward pass of {cell.name} does not take the forward pass's arrays first")
        self._tape_names = [n for role, n in self._forward_keys if role == "tape"]
        self._sources = _size_sources(cell)
        self._shapes_by_size: dict[tuple[int, ...], Shapes] = {}

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
        recompute: bool = False,
        backward: bool = True,
    ) -> Run:
        """Runs the cell over a whole sequence. ``x``: (T, B, D), or a dict for several inputs.

        ``copy=False`` makes no defensive copies (see :class:`Run`): for callers such as
        ``symgate.torch`` that share memory with the kernels and guard it themselves.

        ``recompute=True`` keeps no tape, only states and outputs: the forward pass runs in
        segments of about √T steps whose saved values are dropped, and the backward pass runs the
        segments again, latest first, recomputing each one's saved values just before it needs
        them. Memory for saved values falls from T steps' worth to √T steps' worth, for one more
        forward pass.

        ``backward=False`` is for inference: the run will not be passed to :meth:`backward`, so
        it keeps states and outputs only (writeable) and shares the caller's inputs, parameters
        and initial states (no copies); it runs the kernel's inference pass, which saves nothing
        (no tape written, no scratch memory for one).
        """
        arrays, shapes = self._accepted_forward(x, params, init) or self._checked_forward(x, params, init)
        steps = shapes.steps
        copies, keep_tape = copy and backward, backward and not recompute
        mode = (copies, keep_tape, backward)
        plan = shapes.forward_plans.get(mode) or self._forward_plan(shapes, *mode)
        # Two blocks: what callers keep (states, outputs), and what only the backward pass reads,
        # so that a state kept after the run is dropped does not keep the copies and tape.
        kept, read = pool.empty((plan.kept.size,), self._np_dtype), pool.empty((plan.read.size,), self._np_dtype)
        bases = (self._ffi.from_buffer(self._buffer, kept), self._ffi.from_buffer(self._buffer, read), self._null)
        arguments = [bases[block] + offset for block, offset in plan.slots]
        index = plan.index
        for key, a in arrays.items():
            if copies:
                self._ffi.memmove(arguments[index[key]], a, a.nbytes)
            else:
                arguments[index[key]] = self._ffi.from_buffer(self._buffer, a)
        if len(arrays) < self._arrays_given:  # initial states not given are zero
            for key, nbytes in plan.inits:
                if key not in arrays:
                    self._ffi.memmove(arguments[index[key]], plan.zeros, nbytes)
        segment = _segment(steps) if backward and recompute and self._tape_names else 0
        if not backward:
            self._call(self.interface.infer, arguments, steps, shapes)
        elif not segment:  # the tape has every step's saved values (or there are none)
            self._call(self.interface.forward, arguments, steps, shapes)
        else:
            pointers = dict(zip(self._forward_keys, arguments, strict=True))
            scratch, _owner = self._scratch(segment, shapes, ("tape",))
            for start, stop in _spans(steps, segment):
                self._forward_span(pointers, scratch, start, stop, shapes)
        if copies:
            kept.setflags(write=False)  # and so every view of it
            read.setflags(write=False)
        return Run(
            kernel=self._path,
            segment=segment,
            for_backward=backward,
            shapes=shapes,
            blocks=(Block(kept, plan.kept), Block(read, plan.read)),
            shared={} if copies else {key: arrays[key] for key in self._forward_keys if key in arrays},
            arguments=arguments,
        )

    def _forward_plan(self, shapes: Shapes, copies: bool, keep_tape: bool, backward: bool) -> ForwardPlan:
        """Where a forward call's arrays go, for these sizes and this kind of run (made once)."""
        saved = (("input", "param", "init") if copies else ("init",)) + (("tape",) if keep_tape else ())
        keys = self._forward_keys if backward else self._infer_keys
        plan = ForwardPlan(shapes.layout(("states", "outputs")), shapes.layout(saved), keys)
        shapes.forward_plans[copies, keep_tape, backward] = plan
        return plan

    def _scratch(self, steps: int, shapes: Shapes, roles: tuple[str, ...]) -> tuple[dict, object]:
        """Pointers to fresh memory for the arrays of these roles over ``steps`` steps, for spans
        that write them and drop them; and the owner of that memory, to keep while they are used."""
        block, pointers = self._block(self._shapes(steps, shapes.batch, shapes.sizes).layout(roles))
        return pointers, block

    def _forward_span(self, pointers: dict, scratch: dict, start: int, stop: int, shapes: Shapes) -> list:
        """The forward pass over steps [start, stop), from the state before ``start``; arrays
        in ``scratch`` are the span's own (written from their first element). Returns the
        pointers it passed."""
        arguments = self._arguments(self._forward_keys, pointers, scratch, start, shapes)
        self._call(self.interface.forward, arguments, stop - start, shapes)
        return arguments

    def _accepted_forward(self, x, params, init) -> tuple | None:
        """The arrays of a forward call when every one is exactly as the kernel needs (the
        common case, checked quickly); None when any is not, for :meth:`_checked_forward` to
        find and name."""
        if type(params) is not dict or params.keys() != self._param_names:
            return None
        if init is None:
            init = {}
        elif type(init) is not dict or not init.keys() <= self._state_names:
            return None
        if type(x) is np.ndarray and self._single_input:
            inputs = {self._single_input: x}
        elif type(x) is dict and x.keys() == self._input_names:
            inputs = x
        else:
            return None
        given = {"input": inputs, "param": params, "init": init}
        first = inputs.get(self._first_input)
        if type(first) is not np.ndarray or first.ndim != 3:
            return None
        steps, batch = first.shape[:2]
        sizes = {}
        for dim, (role, name), axis in self._sources:
            source = given[role].get(name)
            if type(source) is not np.ndarray or source.ndim <= axis:
                return None
            sizes[dim] = source.shape[axis]
        shapes = self._shapes(steps, batch, sizes)
        dtype = self._np_dtype
        arrays = {}
        for role, group in given.items():
            expected = shapes.by_role[role]
            for name, a in group.items():
                key, shape = expected[name]
                if not _exactly(a, dtype, shape):
                    return None
                arrays[key] = a
        return arrays, shapes

    def _checked_forward(self, x, params, init) -> tuple:
        """The arrays of a forward call, each checked with an error naming what is wrong."""
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
        arrays = {("input", n): a for n, a in inputs.items()} | {("param", p.name): params[p.name] for p in cell.params}
        arrays |= {("init", n): a for n, a in init.items()}
        return arrays, self._shapes(steps, batch, {d: extent for d, (extent, _) in sizes.items()})

    # -- backward -------------------------------------------------------------------------
    def backward(self, run: Run, grads: Mapping[str, np.ndarray]) -> Gradients:
        """Backpropagation through time.

        ``grads[s]`` (T, B, size) is the loss gradient with respect to each step's state ``s``
        and ``grads[y]`` with respect to each step's output ``y``; missing ones are zero.
        ``grads["final"]`` may map states to (B, size) gradients with respect to ``run.final``.
        """
        if self.interface.backward is None:
            raise ArrayError(
                f"the {self.dtype} kernel of {self.cell.name} is a forward pass only, for the complex-step check"
            )
        if not isinstance(run, Run):
            raise ArrayError("backward needs the Run returned by forward")
        if not run.for_backward:
            raise ArrayError(
                "this Run was made by forward(..., backward=False), which keeps no saved values; "
                "run forward without backward=False to take gradients"
            )
        if run.kernel != self._path:
            raise ArrayError(
                f"this Run was made by another kernel ({run.kernel or 'unknown'}); "
                f"pass a Run from this {self.cell.name} {self.dtype} kernel's forward"
            )
        shapes = run._shapes
        if not self._accepted_grads(grads, shapes):
            self._check_grads(grads, shapes.steps, shapes.batch, shapes.sizes)
        layout = shapes.layout(("grad_inputs", "grad_init", "grad_params"))
        block = pool.empty((layout.size,), self._np_dtype)
        base = self._ffi.from_buffer(self._buffer, block)
        results = Gradients(*(layout.views(block, role) for role in ("grad_params", "grad_inputs", "grad_init")))
        final = grads.get("final", {})
        for s, carry in results.init.items():
            if s in final:
                carry[...] = final[s]
            else:
                carry.fill(0)
        given = {}
        for role, name in self._grads_given:
            array = grads[name] if name in grads else self._zeros(shapes, (role, name))
            given[role, name] = self._ffi.from_buffer(self._buffer, array)
        if run.segment:
            pointers = dict(zip(self._forward_keys, run._arguments, strict=True)) | given | layout.pointers(base)
            self._backward_recomputing(run, pointers, results, shapes)
        else:  # the backward pass reads the forward pass's arrays, then the given gradients, then writes the results
            arguments = [*run._arguments, *given.values(), *[base + start for start in layout.starts]]
            self._call(self.interface.backward, arguments, shapes.steps, shapes)
        return results

    @staticmethod
    def _zeros(shapes: Shapes, key: tuple[str, str]) -> np.ndarray:
        """Zeros for a loss gradient not given, which the kernel only reads: made once and kept
        read-only with the sizes when small (making them took a tiny LSTM's backward call 4 µs),
        made at each call when large (kept, they would hold megabytes for each set of sizes)."""
        zeros = shapes.zeros.get(key)
        if zeros is None:
            zeros = shapes.new[key](zero=True)
            if zeros.nbytes < POOLED_FROM:
                zeros.setflags(write=False)
                shapes.zeros[key] = zeros
        return zeros

    def _backward_recomputing(self, run: Run, pointers: dict, results: Gradients, shapes: Shapes) -> None:
        """The backward pass of a run without a tape: segment by segment, latest first, each
        segment's forward pass run again from the state before it to make its states, outputs
        and tape in scratch memory. The state gradient carries from segment to segment in
        ``results``; parameter gradients are summed there."""
        recomputed, _owner = self._scratch(run.segment, shapes, ("states", "outputs", "tape"))  # kept to the end
        block, pointers_of_segment = self._block(shapes.layout(("grad_params",)))
        per_segment = block.views("grad_params")
        recomputed |= pointers_of_segment
        for total in results.params.values():
            total.fill(0)
        for start, stop in reversed(_spans(shapes.steps, run.segment)):
            self._forward_span(pointers, recomputed, start, stop, shapes)
            arguments = self._arguments(self._backward_keys, pointers, recomputed, start, shapes)
            self._call(self.interface.backward, arguments, stop - start, shapes)
            for name, part in per_segment.items():
                results.params[name] += part

    def _accepted_grads(self, grads, shapes: dict) -> bool:
        """Whether the loss gradients are exactly as the kernel needs (the quick check)."""
        if type(grads) is not dict or not grads.keys() <= self._grad_names:
            return False
        final = grads.get("final", {})
        if type(final) is not dict or not final.keys() <= self.cell.states.keys():
            return False
        dtype = self._np_dtype
        for role, name in self._grads_given:
            if name in grads and not _exactly(grads[name], dtype, shapes[role, name]):
                return False
        return not final or all(_exactly(a, dtype, shapes["grad_init", s]) for s, a in final.items())

    def _check_grads(self, grads, steps: int, batch: int, sizes: dict[str, int]) -> None:
        """Checks the loss gradients, with an error naming the one that is wrong."""
        cell = self.cell
        self._no_unknown("grads", grads, [*cell.states, *cell.outputs, "final"])
        final = grads.get("final", {})
        self._no_unknown("grads['final']", final, list(cell.states))
        known = {d: (n, "the run") for d, n in sizes.items()}
        for name, dim in [*cell.states.items(), *cell.outputs.items()]:
            if name in grads:
                self._fit(f"grads[{name!r}]", grads[name], ("T", "B", dim), known, steps, batch)
        for s, dim in cell.states.items():
            if s in final:
                self._fit(f"grads['final'][{s!r}]", final[s], ("B", dim), known, steps, batch)

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

    def _shapes(self, steps: int, batch: int, sizes: dict[str, int]) -> Shapes:
        """The shape of every array of both passes, for these sizes (remembered: a training loop
        calls with the same few sizes again and again)."""
        key = (steps, batch, *map(sizes.__getitem__, self._dims))
        shapes = self._shapes_by_size.get(key)
        if shapes is None:
            self._fits_c_int(steps, batch, sizes)
            if len(self._shapes_by_size) >= SHAPES_REMEMBERED:
                self._shapes_by_size.clear()
            extents = {"T": steps, "B": batch, SCALAR: 1, **sizes}
            arguments = [a for p in (self.interface.forward, self.interface.backward) if p for a in p.arguments]
            shapes = Shapes({(a.role, a.name): tuple(extents[d] for d in a.shape) for a in arguments})
            shapes.new = {key: pool.maker(shape, self._np_dtype) for key, shape in shapes.items()}
            shapes.steps, shapes.batch, shapes.sizes = steps, batch, sizes
            shapes.dims = [sizes[d] for d in self.interface.dims]
            shapes.strides = {key: math.prod(shape[1:]) for key, shape in shapes.items() if key[0] in STEPWISE_ROLES}
            shapes.itemsize = self._np_dtype.itemsize
            shapes.layouts = {}
            shapes.forward_plans = {}
            shapes.zeros = {}
            shapes.by_role = {"input": {}, "param": {}, "init": {}}
            for (role, name), shape in shapes.items():
                shapes.by_role.setdefault(role, {})[name] = ((role, name), shape)
            self._shapes_by_size[key] = shapes
        return shapes

    def _arguments(self, keys: list, pointers: dict, local: dict, start: int, shapes: Shapes) -> list:
        """The pointers a pass takes for the steps from ``start`` on: each sequence's moved to
        that step, the initial states' to the state before it; ``local`` ones as they are."""
        if not start and not local:
            return [pointers[key] for key in keys]
        strides = shapes.strides
        arguments = []
        for key in keys:
            role, name = key
            if key in local:
                arguments.append(local[key])
            elif role == "init" and start:
                arguments.append(pointers["states", name] + (start - 1) * strides["states", name])
            elif key in strides:
                arguments.append(pointers[key] + start * strides[key])
            else:
                arguments.append(pointers[key])
        return arguments

    def _block(self, layout: Layout) -> tuple[Block, dict[tuple[str, str], object]]:
        """Fresh memory for the arrays of ``layout``, and a pointer to each (valid while the block lives)."""
        block = Block(pool.empty((layout.size,), self._np_dtype), layout)
        return block, layout.pointers(self._ffi.from_buffer(self._buffer, block.array))

    def _call(self, pass_, arguments: list, steps: int, shapes: Shapes) -> None:
        function, work_size = self._functions[pass_.function]
        dims = shapes.dims
        nbytes = max(work_size(steps, shapes.batch, *dims), 1) * shapes.itemsize
        if nbytes > WORK_KEPT:
            block, start = pool.lend(nbytes)
            try:
                function(steps, shapes.batch, *dims, *arguments, self._ffi.cast(self._pointer, block + start))
            finally:
                pool.give_back(block, start)
            return
        kept = self._thread.__dict__
        if kept.get("work_bytes", 0) < nbytes:  # no reentry: a thread runs one call of a kernel at a time
            kept["work"] = self._ffi.new("char[]", nbytes + ALIGNMENT)
            start = -int(self._ffi.cast("uintptr_t", kept["work"])) % ALIGNMENT  # as pooled memory
            kept["work_pointer"] = self._ffi.cast(self._pointer, kept["work"] + start)
            kept["work_bytes"] = nbytes
        function(steps, shapes.batch, *dims, *arguments, kept["work_pointer"])


class Layout:
    """Where the arrays of some roles live in one block of memory, each at a 64-byte boundary:
    arrays made together are allocated, passed to C and released together."""

    def __init__(self, shapes: Mapping[tuple[str, str], tuple[int, ...]], itemsize: int) -> None:
        align = ALIGNMENT // itemsize
        self.itemsize = itemsize
        self.offsets: dict[tuple[str, str], int] = {}
        self.spans_by_role: dict[str, list[tuple[str, int, int, tuple[int, ...]]]] = {}
        offset = 0
        for (role, name), shape in shapes.items():
            count = math.prod(shape)
            self.offsets[role, name] = offset
            self.spans_by_role.setdefault(role, []).append((name, offset, offset + count, shape))
            offset += -(-count // align) * align
        self.size = offset
        self.starts = list(self.offsets.values())

    def views(self, block: np.ndarray, role: str) -> dict[str, np.ndarray]:
        """The arrays of one role, by name: views of ``block``."""
        return {
            name: block[start:stop] if len(shape) == 1 else block[start:stop].reshape(shape)
            for name, start, stop, shape in self.spans_by_role.get(role, ())
        }

    def pointers(self, buffer) -> dict[tuple[str, str], object]:
        """Pointers to each array, from a cffi buffer of the block (which must outlive them)."""
        return {key: buffer + start for key, start in self.offsets.items()}


class ForwardPlan:
    """Where each argument of a forward call lives: in the block of states and outputs (0), in
    the block of what the backward pass reads (1), or in neither (2: a caller's array, or a tape
    in scratch memory, which the call passes itself), at an offset."""

    def __init__(self, kept: Layout, read: Layout, keys: list[tuple[str, str]]) -> None:
        self.kept, self.read = kept, read
        self.slots = [
            (0, kept.offsets[key]) if key in kept.offsets else (1, read.offsets[key]) if key in read.offsets else (2, 0)
            for key in keys
        ]
        self.index = {key: i for i, key in enumerate(keys)}
        self.inits = [
            (("init", name), (stop - start) * read.itemsize)
            for name, start, stop, _ in read.spans_by_role.get("init", ())
        ]
        self.zeros = bytes(max((nbytes for _, nbytes in self.inits), default=0))  # copied to initial states not given


class Block(NamedTuple):
    """Memory holding the arrays of a layout."""

    array: np.ndarray
    layout: Layout

    def views(self, role: str) -> dict[str, np.ndarray]:
        """The arrays of one role, by name."""
        return self.layout.views(self.array, role)


def _segment(steps: int) -> int:
    """Steps a segment of a recomputing run: about √T, so that T/segment segments' states and
    one segment's tape are both about √T steps' worth."""
    return max(1, math.isqrt(max(steps - 1, 0)) + 1)


def _spans(steps: int, segment: int) -> list[tuple[int, int]]:
    """The [start, stop) step ranges of a pass over ``steps`` steps in segments of ``segment``
    (0: one span); a pass over no steps is still one call, which sets its results."""
    if not steps or not segment:
        return [(0, steps)]
    return [(start, min(start + segment, steps)) for start in range(0, steps, segment)]


def _keys(pass_) -> list[tuple[str, str]]:
    return [(a.role, a.name) for a in (pass_.arguments if pass_ else ())]


def _size_sources(cell: Cell) -> list[tuple[str, tuple[str, str], int]]:
    """Where each dimension's size is read: the first array having it, in the order inputs,
    parameters, initial states (the order the full check reads them in)."""
    shapes = [(("input", x), ("T", "B", dim)) for x, dim in cell.inputs.items()]
    shapes += [(("param", p.name), p.shape) for p in cell.params]
    shapes += [(("init", s), ("B", dim)) for s, dim in cell.states.items()]
    sources = {}
    for key, shape in shapes:
        for axis, dim in enumerate(shape):
            if dim in cell.dims and dim not in sources:
                sources[dim] = (key, axis)
    return [(dim, key, axis) for dim, (key, axis) in sources.items()]


def _exactly(array, dtype: np.dtype, shape: tuple[int, ...]) -> bool:
    """Whether ``array`` is a plain ndarray the kernel can use as it is."""
    if type(array) is not np.ndarray or array.shape != shape or (array.dtype is not dtype and array.dtype != dtype):
        return False
    flags = array.flags
    return flags.c_contiguous and flags.aligned
