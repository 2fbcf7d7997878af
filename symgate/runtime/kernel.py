"""Kernels: a compiled cell behind a NumPy API (forward over a sequence, backward through time).

Arrays are checked before C sees them (:mod:`symgate.runtime.arrays`: shape, dtype, layout,
names); sizes of the cell's named dimensions are read off the arrays and must agree. The forward
pass returns a :class:`~symgate.runtime.run.Run` holding every state, output and saved value (or,
with ``recompute=True``, states and outputs only: :mod:`symgate.runtime.recompute`); the
backward pass takes that run and the loss gradients with respect to states and outputs, and
returns :class:`~symgate.runtime.run.Gradients` for parameters, inputs and initial states.

A call costs some tens of microseconds of Python on top of the C, which matters for small cells,
so the Python does little per array: the common case (plain arrays, exactly right) is accepted by
a quick check, and only an array that fails it goes through the full check that names what is
wrong; the arrays a pass makes live in a few blocks of memory, passed to C as pointers into them,
at offsets planned once per set of sizes (:mod:`symgate.runtime.buffers`); a run makes its dicts
of views when first read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np

from ..dtypes import dtype as dtype_of
from ..errors import ArrayError, BuildError
from ..frontend.cell import Cell
from ..frontend.functions import dims_of
from ..interface import GIVEN_ROLES, RESULT_ROLES, Interface
from ..jit.cache import Entry
from .arrays import Sizes, check_array, check_fits_c_int, check_names, exactly, given_arrays, shape_of, size_sources
from .buffers import Block, Key, Layout, Shapes
from .lengths import Packing, packing_of
from .memory import ALIGNMENT, pool
from .recompute import Checkpoints, Segments, end_pointers, ends_of, kept_at_ends, segment_length
from .run import Gradients, Run

SHAPES_REMEMBERED = 64  # sets of sizes whose array shapes a kernel remembers
# Bytes: a workspace up to this size is kept by each thread for its next call of the same kernel
# (taking one from the pool and handing it back cost a tiny LSTM's forward + backward 4 %).
WORK_KEPT = 256 * 2**10


class Kernel:
    """The compiled forward and backward kernels of one cell in one dtype."""

    def __init__(self, cell: Cell, dtype: str, entry: Entry) -> None:
        self.cell = cell
        self.dtype = dtype
        self.entry = entry
        self.interface: Interface = entry.interface
        self._module: ModuleType = entry.load()
        self._dtype = dtype_of(dtype)
        self._np_dtype = self._dtype.np_dtype
        lib = self._module.lib
        self._functions = {
            p.function: (getattr(lib, p.function), getattr(lib, p.work_function))
            for p in (self.interface.forward, self.interface.backward, self.interface.infer)
            if p is not None  # a complex kernel has a forward pass only
        }
        threads = self.interface.threads_function
        self._one_blas_thread = getattr(lib, threads) if threads else None
        self._ffi = self._module.ffi
        self._buffer = f"{self._dtype.c_type}[]"
        self._pointer = f"{self._dtype.c_type} *"
        self._null = self._ffi.cast(self._pointer, 0)  # for arguments a call sets itself
        self._every_sample = self._ffi.cast("int *", 0)  # batch_sizes of a pass whose steps all run B samples
        self._thread = threading.local()  # its kept workspace
        self._path = str(entry.path)
        self._given = given_arrays(cell)
        self._sources = size_sources(cell)
        self._param_names = {p.name for p in cell.params}
        self._input_names, self._state_names = set(cell.inputs), set(cell.states)
        self._first_input = next(iter(cell.inputs), "")
        self._single_input = self._first_input if len(cell.inputs) == 1 else ""
        self._dims = cell.dims
        self._grad_names = {*cell.states, *cell.outputs}  # what grads may hold: every step's gradients
        # The old spelling grads["final"] for the final states' gradients, where no state or output has that name.
        self._old_final = "final" not in self._grad_names
        self._arrays_given = len(self._given)  # with every initial state
        self._forward_keys = _keys(self.interface.forward)
        self._infer_keys = _keys(self.interface.infer)
        self._backward_keys = _keys(self.interface.backward)
        self._grads_given = [key for key in self._backward_keys if key[0] in GIVEN_ROLES]
        reads = len(self._forward_keys) + len(self._grads_given)
        if self._backward_keys and self._backward_keys[:reads] != self._forward_keys + self._grads_given:
            raise BuildError(f"the backward pass of {cell.name} does not take the forward pass's arrays first")
        self._tape_names = [n for role, n in self._forward_keys if role == "tape"]
        self._at_ends = kept_at_ends(cell.states)  # what a recomputing run keeps at segment ends only
        self._segments = Segments(
            self._call, self.interface.forward, self.interface.backward, self._forward_keys, self._backward_keys
        )
        self._shapes_by_size: dict[tuple[int, ...], Shapes] = {}

    @property
    def source(self) -> str:
        """The generated C of both passes."""
        return self.entry.c_source

    def __repr__(self) -> str:
        return f"<symgate.Kernel {self.cell.name} {self.dtype} at {self.entry.path}>"

    def one_blas_thread(self, on: bool) -> bool:
        """With ``on``: whether calls of this kernel may now run in several threads at once, each
        matrix product on the thread calling it (the BLAS library set to one thread), so that the
        calls share the cores instead of taking turns for the library's threads; ``False`` when
        the user's environment set the library's thread count above one, which is left alone.
        With ``on`` false the products get their threads back. What
        :func:`symgate.runtime.together.run_together` asks before running calls side by side."""
        return self._one_blas_thread is None or bool(self._one_blas_thread(int(on)))

    # -- parameters -----------------------------------------------------------------------
    def init_params(self, sizes: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
        """Random parameters: each drawn from U(-1/sqrt(n), 1/sqrt(n)), n its first dimension.

        For the cells PyTorch has, n is the hidden size, as in PyTorch's own initialisation.
        """
        sizes = self._sizes_given(sizes)
        rng = np.random.default_rng(seed)
        params = {}
        for p in self.cell.params:
            shape = shape_of(p.shape, sizes)
            bound = 1.0 / np.sqrt(max(shape[0], 1))
            try:
                params[p.name] = rng.uniform(-bound, bound, size=shape).astype(self._np_dtype)
            except (ValueError, MemoryError) as err:  # NumPy's "array is too big" and "unable to allocate"
                raise ArrayError(f"cannot allocate parameter {p.name} of shape {shape}: {err}") from None
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
        lengths: Sequence[int] | np.ndarray | None = None,
    ) -> Run:
        """Runs the cell over a whole sequence. ``x``: (T, B, D), or a dict for several inputs.

        ``lengths`` (B integers from 0 to T) runs sample b over its first ``lengths[b]`` steps
        only: its states stop changing after its length (``run.states`` holds the state at the
        length from there on, ``run.final`` each sample's state at its own length), its outputs
        past the length are zero, and the backward pass gives it zero gradient there. The C time
        loop runs each step for the samples still running only, in the packed layout of
        :mod:`symgate.runtime.lengths`, so the work is proportional to the sum of the lengths.

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
        packing = batch_sizes = None
        if lengths is not None:
            packing = packing_of(lengths, shapes.steps, shapes.batch)
            arrays = self._packed(arrays, packing)
            batch_sizes = packing.batch_sizes
        steps = shapes.steps
        segment = self._segment(steps, recompute) if backward else 0
        copies, keep_tape = copy and backward, backward and not segment
        mode = (copies, keep_tape, backward, bool(segment and self._at_ends))
        plan = shapes.forward_plans.get(mode) or shapes.forward_plan(
            *mode[:3],
            self._forward_keys if backward else self._infer_keys,
            self._at_ends if segment else (),
            ends_of(steps, segment),
        )
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
        checkpoints = {}
        if not backward:
            self._call(self.interface.infer, arguments, steps, shapes, batch_sizes)
        elif not segment:  # the tape has every step's saved values (or there are none)
            self._call(self.interface.forward, arguments, steps, shapes, batch_sizes)
        else:
            pointers = dict(zip(self._forward_keys, arguments, strict=True))
            given_init = {s: arrays["init", s] for s in self._at_ends if ("init", s) in arrays}
            matrix_ends = Checkpoints(Block(kept, plan.kept), bases[0], segment, shapes, packing, given_init)
            checkpoints = matrix_ends.pointers
            scratch, block = self._scratch(segment, shapes, ("tape",), self._at_ends)
            self._segments.forward(
                pointers | checkpoints, scratch, segment, shapes, packing, matrix_ends, block.views("states")
            )
        if packing is not None and keep_tape:  # rows no step wrote, zeroed: a tape read back is the same every time
            for tape in Block(read, plan.read).views("tape").values():
                tape.reshape(-1, *tape.shape[2:])[packing.rows :] = 0
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
            packing=packing,
            checkpoints=checkpoints,
        )

    def _segment(self, steps: int, recompute: bool) -> int:
        """The steps of a segment of a run for a backward pass (0: one pass, keeping its tape):
        with ``recompute``, where there is a tape to drop or a matrix state to keep at segment
        ends only."""
        return segment_length(steps) if recompute and (self._tape_names or self._at_ends) else 0

    def _packed(self, arrays: dict, packing: Packing) -> dict:
        """The arrays of a forward call in the packed layout (each sequence's rows in the front of
        an array of its padded shape)."""
        result = {}
        for key, a in arrays.items():
            if key[0] == "input":
                result[key] = self._packed_sequence(a, packing)
            elif key[0] == "init":
                result[key] = packing.sort(a)
            else:
                result[key] = a
        return result

    def run_of(
        self,
        x: np.ndarray | Mapping[str, np.ndarray],
        params: Mapping[str, np.ndarray],
        init: Mapping[str, np.ndarray] | None,
        states: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        tape: Mapping[str, np.ndarray],
        *,
        recompute: bool = False,
        lengths: Sequence[int] | np.ndarray | None = None,
        checkpoints: Mapping[str, np.ndarray] | None = None,
    ) -> Run:
        """The run of ``forward(x, params, init, copy=False, recompute=recompute, lengths=lengths)``
        rebuilt from its arrays (``tape`` empty with ``recompute``; states and outputs as the run
        shows them, the tape and ``checkpoints`` as it holds them: a recomputing run's matrix
        states are its ``checkpoints``, not in ``states``), for :meth:`backward`: for callers that
        cannot keep the Run itself between the passes (``symgate.torch``'s custom operators). It
        shares every array given (but those it packs), which must not change before the backward
        pass; its ``final`` lacks the matrix states of a recomputing run."""
        arrays, shapes = self._accepted_forward(x, params, init) or self._checked_forward(x, params, init)
        segment = self._segment(shapes.steps, recompute)
        at_ends = self._at_ends if segment else ()
        ends = {}
        for s in at_ends:
            shape = (ends_of(shapes.steps, segment), *shapes.of["init", s])
            given = (checkpoints or {}).get(s)
            if given is None or not exactly(given, self._np_dtype, shape):
                raise ArrayError(f"the run's checkpoints of {s!r} are missing or not a {shape} array")
            ends["checkpoints", s] = end_pointers(self._ffi.from_buffer(self._buffer, given), given, segment)
            arrays["checkpoints", s] = given
        made = {("states", n): a for n, a in states.items()} | {("outputs", n): a for n, a in outputs.items()}
        packing = None
        if lengths is not None:
            packing = packing_of(lengths, shapes.steps, shapes.batch)
            arrays = self._packed(arrays, packing)
            made = {key: self._packed_sequence(a, packing) for key, a in made.items()}
        made |= {("tape", n): a for n, a in tape.items()}
        for key in self._forward_keys:
            role = key[0]
            if role == "init" and key not in arrays:
                arrays[key] = shapes.zeros(key)
            elif (role in ("states", "outputs") and key[1] not in at_ends) or (role == "tape" and not segment):
                if key not in made or not exactly(made[key], self._np_dtype, shapes.of[key]):
                    raise ArrayError(f"the run's {role} {key[1]!r} is missing or not a {shapes.of[key]} array")
                arrays[key] = made[key]
        arguments = [  # a recomputing run's tape is made by its backward pass
            self._ffi.from_buffer(self._buffer, arrays[key]) if key in arrays else self._null
            for key in self._forward_keys
        ]
        return Run(self._path, segment, True, shapes, (), arrays, arguments, packing=packing, checkpoints=ends)

    def _packed_sequence(self, padded: np.ndarray, packing: Packing) -> np.ndarray:
        """A padded sequence in the packed layout (in the front of an array of its shape)."""
        packed = np.empty(padded.shape, self._np_dtype)
        packing.pack(padded, packed)
        return packed

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
                if not exactly(a, dtype, shape):
                    return None
                arrays[key] = a
        return arrays, shapes

    def _checked_forward(self, x, params, init) -> tuple:
        """The arrays of a forward call, each checked with an error naming what is wrong."""
        cell = self.cell
        inputs = self._named("x", x, cell.inputs)
        check_names("params", params, [p.name for p in cell.params])
        check_names("init", init or {}, list(cell.states))
        if not cell.inputs:
            raise ArrayError(f"cell {cell.name} has no inputs: nothing gives the number of steps")
        first = next(iter(inputs))
        if not isinstance(inputs[first], np.ndarray) or inputs[first].ndim != 3:
            raise ArrayError(f"{self._given['input', first][0]} must be a 3-d array (T, B, {cell.inputs[first]})")
        steps, batch = inputs[first].shape[:2]
        sizes = Sizes({"T": (steps, "x"), "B": (batch, "x")})
        given = {"input": inputs, "param": params, "init": init or {}}
        arrays = {}
        for (role, name), (label, dims) in self._given.items():
            if name not in given[role]:  # every input is there (see _named); an initial state not given is zero
                if role == "param":
                    raise ArrayError(f"params is missing {name!r} (shape {dims})")
                continue
            check_array(label, given[role][name], dims, sizes, self._dtype)
            arrays[role, name] = given[role][name]
        read = sizes.values()
        unresolved = [d for d in cell.dims if d not in read]
        if unresolved:
            raise ArrayError(f"cannot tell the sizes of {unresolved}: pass init for the states that use them")
        return arrays, self._shapes(steps, batch, read)

    def _named(self, label: str, value, names: Mapping[str, str]) -> dict[str, np.ndarray]:
        """The inputs by name, from a dict of them or (for a cell of one input) an array."""
        if isinstance(value, Mapping):
            check_names(label, value, list(names))
            missing = [n for n in names if n not in value]
            if missing:
                raise ArrayError(f"{label} is missing inputs {missing}")
            return dict(value)
        if len(names) != 1:
            raise ArrayError(f"cell {self.cell.name} has inputs {list(names)}: pass {label} as a dict")
        return {next(iter(names)): value}

    # -- backward -------------------------------------------------------------------------
    def backward(
        self,
        run: Run,
        grads: Mapping[str, np.ndarray] | None = None,
        *,
        final: Mapping[str, np.ndarray] | None = None,
    ) -> Gradients:
        """Backpropagation through time.

        ``grads[s]`` (T, B, size) is the loss gradient with respect to each step's state ``s``
        and ``grads[y]`` with respect to each step's output ``y``; ``final[s]`` (B, size) with
        respect to ``run.final[s]``; missing ones are zero. Example::

            k.backward(run, {"y": dy}, final={"h": dh_last})

        Final-state gradients are a keyword of their own so that a state or output may be named
        ``final``. The older spelling ``grads["final"] = {...}`` still works in a cell with no
        state or output of that name (in one with it, ``grads["final"]`` is that name's gradient).
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
        shapes, packing = run._shapes, run._packing
        grads, final, label = self._final_spelling({} if grads is None else grads, final)
        if not self._accepted_grads(grads, final, shapes):
            self._check_grads(grads, final, label, shapes)
        batch_sizes = None
        if packing is not None:
            grads, final = self._packed_grads(grads, final, shapes, packing)
            batch_sizes = packing.batch_sizes
        layout = shapes.layout(RESULT_ROLES)
        block = pool.empty((layout.size,), self._np_dtype)
        base = self._ffi.from_buffer(self._buffer, block)
        results = Gradients(*(layout.views(block, role) for role in ("grad_params", "grad_inputs", "grad_init")))
        for s, carry in results.init.items():
            if s in final:
                carry[...] = final[s]
            else:
                carry.fill(0)
        given = {}
        for key in self._grads_given:
            if key[1] in grads:
                given[key] = self._ffi.from_buffer(self._buffer, grads[key[1]])
            elif key[0] == "grad_states":  # the kernel reads NULL as no gradient: no (T, B, ...) zeros to read
                given[key] = self._null
            else:
                given[key] = self._ffi.from_buffer(self._buffer, shapes.zeros(key))
        if run.segment:
            pointers = dict(zip(self._forward_keys, run._arguments, strict=True)) | given | layout.pointers(base)
            pointers |= run._checkpoints
            recomputed, _owner = self._scratch(run.segment, shapes, ("states", "outputs", "tape"))  # kept to the end
            per_segment, per_segment_pointers = self._block(shapes.layout(("grad_params",)))
            recomputed |= per_segment_pointers
            self._segments.backward(
                pointers, recomputed, per_segment.views("grad_params"), results.params, run.segment, shapes, packing
            )
        else:  # the backward pass reads the forward pass's arrays, then the given gradients, then writes the results
            arguments = [*run._arguments, *given.values(), *[base + start for start in layout.starts]]
            self._call(self.interface.backward, arguments, shapes.steps, shapes, batch_sizes)
        if packing is None:
            return results
        return Gradients(
            results.params,
            {x: packing.unpack(g) for x, g in results.inputs.items()},
            {s: packing.unsort(g) for s, g in results.init.items()},
        )

    def _packed_grads(self, grads, final, shapes: Shapes, packing: Packing) -> tuple[dict, dict]:
        """The loss gradients of a run over sequences of different lengths in the packed layout
        (each in the front of an array of its padded shape) and the final states' in sorted order,
        with the gradients given past each length added to its state's at the length."""
        packed, packed_final = {}, {}
        for role, name in self._grads_given:
            if name not in grads:
                continue
            packed[name] = np.empty(shapes.of[role, name], self._np_dtype)
            if role == "grad_states":
                start = final.get(name, np.zeros(grads[name].shape[1:], self._np_dtype))
                packed_final[name] = packing.pack_state_gradient(grads[name], start, packed[name])
            else:
                packing.pack(grads[name], packed[name])
        for s, g in final.items():
            packed_final.setdefault(s, packing.sort(g))
        return packed, packed_final

    def _final_spelling(self, grads, final) -> tuple[object, object, str]:
        """``(grads, final, label)``: every step's gradients, the final states' (``{}`` when none)
        and the label errors name the latter by, from either spelling: ``final=...``, or the older
        ``grads["final"]`` where no state or output is named ``final``."""
        if isinstance(grads, Mapping) and "final" in grads:
            if self._old_final:
                if final is not None:
                    raise ArrayError(
                        "the final states' gradients are given twice, as grads['final'] and as final=; "
                        "pass them once, as final="
                    )
                return {k: v for k, v in grads.items() if k != "final"}, grads["final"], "grads['final']"
            if isinstance(grads["final"], Mapping):
                name = "state" if "final" in self.cell.states else "output"
                raise ArrayError(
                    f"grads['final'] is the gradient for every step of the {name} 'final' of cell {self.cell.name}, "
                    f"a (T, B, size) array; pass the final states' gradients as backward(run, grads, final={{...}})"
                )
        return grads, {} if final is None else final, "final"

    def _accepted_grads(self, grads, final, shapes: Shapes) -> bool:
        """Whether the loss gradients are exactly as the kernel needs (the quick check)."""
        if type(grads) is not dict or not grads.keys() <= self._grad_names:
            return False
        if type(final) is not dict or not final.keys() <= self._state_names:
            return False
        dtype = self._np_dtype
        of = shapes.of
        for key in self._grads_given:
            if key[1] in grads and not exactly(grads[key[1]], dtype, of[key]):
                return False
        return not final or all(exactly(a, dtype, of["grad_init", s]) for s, a in final.items())

    def _check_grads(self, grads, final, label: str, shapes: Shapes) -> None:
        """Checks the loss gradients, with an error naming the one that is wrong (the final
        states' by ``label``, the spelling they were given in)."""
        cell = self.cell
        check_names("grads", grads, [*cell.states, *cell.outputs])
        check_names(label, final, list(cell.states))
        run = {d: (n, "the run") for d, n in shapes.sizes.items()}
        sizes = Sizes({"T": (shapes.steps, "x"), "B": (shapes.batch, "x"), **run})
        for name, dim in [*cell.states.items(), *cell.outputs.items()]:
            if name in grads:
                check_array(f"grads[{name!r}]", grads[name], ("T", "B", *dims_of(dim)), sizes, self._dtype)
        for s, dim in cell.states.items():
            if s in final:
                check_array(f"{label}[{s!r}]", final[s], ("B", *dims_of(dim)), sizes, self._dtype)

    # -- memory and calls -----------------------------------------------------------------
    def _shapes(self, steps: int, batch: int, sizes: dict[str, int]) -> Shapes:
        """The shape of every array of both passes, for these sizes (remembered: a training loop
        calls with the same few sizes again and again)."""
        key = (steps, batch, *map(sizes.__getitem__, self._dims))
        shapes = self._shapes_by_size.get(key)
        if shapes is None:
            check_fits_c_int(self.cell, steps, batch, sizes)
            if len(self._shapes_by_size) >= SHAPES_REMEMBERED:
                self._shapes_by_size.clear()
            shapes = Shapes.of_sizes(self.interface, self._np_dtype, steps, batch, sizes)
            self._shapes_by_size[key] = shapes
        return shapes

    def _scratch(
        self, steps: int, shapes: Shapes, roles: tuple[str, ...], states: tuple[str, ...] = ()
    ) -> tuple[dict, Block]:
        """Pointers to fresh memory for the arrays of these roles (and the sequences of these
        ``states``) over ``steps`` steps, for spans that write them and drop them; and the block
        of that memory, to keep while they are used."""
        block, pointers = self._block(self._shapes(steps, shapes.batch, shapes.sizes).layout(roles, states))
        return pointers, block

    def _block(self, layout: Layout) -> tuple[Block, dict[Key, object]]:
        """Fresh memory for the arrays of ``layout``, and a pointer to each (valid while the block lives)."""
        block = Block(pool.empty((layout.size,), self._np_dtype), layout)
        return block, layout.pointers(self._ffi.from_buffer(self._buffer, block.array))

    def _call(self, pass_, arguments: list, steps: int, shapes: Shapes, batch_sizes: np.ndarray | None = None) -> None:
        """Runs one pass over ``steps`` steps with a workspace: kept by the thread when small,
        lent by the pool when large. ``batch_sizes``: the samples each step runs (C ints, the
        sequences packed), or None for B at every step."""
        function, work_size = self._functions[pass_.function]
        dims = shapes.dims
        sizes = self._every_sample if batch_sizes is None else self._ffi.from_buffer("int[]", batch_sizes)
        nbytes = max(work_size(steps, shapes.batch, *dims), 1) * shapes.itemsize
        if nbytes > WORK_KEPT:
            block, start = pool.lend(nbytes)
            try:
                function(steps, shapes.batch, *dims, sizes, *arguments, self._ffi.cast(self._pointer, block + start))
            finally:
                pool.give_back(block, start)
            return
        kept = self._thread.__dict__
        if kept.get("work_bytes", 0) < nbytes:  # no reentry: a thread runs one call of a kernel at a time
            kept["work"] = self._ffi.new("char[]", nbytes + ALIGNMENT)
            start = -int(self._ffi.cast("uintptr_t", kept["work"])) % ALIGNMENT  # as pooled memory
            kept["work_pointer"] = self._ffi.cast(self._pointer, kept["work"] + start)
            kept["work_bytes"] = nbytes
        function(steps, shapes.batch, *dims, sizes, *arguments, kept["work_pointer"])


def _keys(pass_) -> list[Key]:
    return [(a.role, a.name) for a in (pass_.arguments if pass_ else ())]
