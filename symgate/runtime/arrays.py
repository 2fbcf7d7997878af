"""The checks that a caller's arrays fit a cell: one validator for the kernels, the torch module
and the parameters an export bakes in.

A cell names the dimensions of its arrays (``x: (T, B, D)``, ``W_f: (H, D)``); the sizes of those
dimensions are not declared but read off the arrays. :class:`Sizes` does that reading: the first
array having a dimension fixes its size (in the order of :func:`given_arrays`: inputs, parameters,
initial states), and a later array that disagrees is a :class:`Mismatch` naming both arrays.
:func:`check_array` is the full check of one array a kernel reads (type, dtype, byte order, shape,
layout), raising an :class:`~symgate.errors.ArrayError` that names what is wrong and how to fix it.
:func:`exactly` is the quick check a kernel tries first: an array that is exactly right costs a
type check and a few comparisons, and only one that fails it goes through the full check.

Example::

    sizes = Sizes({"T": (5, "x"), "B": (2, "x")})
    sizes.read("params['W_f']", (4, 3), ("H", "D"))   # None: H = 4 and D = 3 now known
    str(sizes.read("params['b_f']", (3,), ("H",)))
    # "params['b_f'] has shape (3,), expected (H) with H=4 (from params['W_f'])"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..dtypes import DType
from ..errors import ArrayError
from ..frontend.cell import Cell
from ..frontend.functions import SCALAR, dims_of

INT_MAX = 2**31 - 1
_SCALAR_SOURCE = (1, "a per-sample scalar")


def given_arrays(cell: Cell) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    """The arrays a caller gives a forward pass, in the order their sizes are read (inputs,
    parameters, initial states): (role, name) -> (the label messages name it by, its dimensions)."""
    arrays = {
        ("input", x): (f"x[{x!r}]" if len(cell.inputs) > 1 else "x", ("T", "B", dim)) for x, dim in cell.inputs.items()
    }
    arrays |= {("param", p.name): (f"params[{p.name!r}]", p.shape) for p in cell.params}
    arrays |= {("init", s): (f"init[{s!r}]", ("B", *dims_of(size))) for s, size in cell.states.items()}
    return arrays


def size_sources(cell: Cell) -> list[tuple[str, tuple[str, str], int]]:
    """Where each dimension's size is read: (dimension, (role, name) of the first array having
    it, its axis there), in the order of :func:`given_arrays` (the order :class:`Sizes` reads)."""
    sources: dict[str, tuple[tuple[str, str], int]] = {}
    for key, (_, dims) in given_arrays(cell).items():
        for axis, dim in enumerate(dims):
            if dim in cell.dims and dim not in sources:
                sources[dim] = (key, axis)
    return [(dim, key, axis) for dim, (key, axis) in sources.items()]


def shape_of(dims: tuple[str, ...], sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The shape of an array of these dimensions for these sizes (a per-sample scalar is 1)."""
    return tuple(1 if d == SCALAR else sizes[d] for d in dims)


@dataclass(frozen=True)
class Mismatch:
    """An array whose extent along ``dim`` (its axis ``axis``) is not the size read before from ``source``."""

    label: str
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    axis: int
    dim: str
    expected: int
    source: str

    def __str__(self) -> str:
        expected = f"{self.label} has shape {self.shape}, expected ({', '.join(self.dims)})"
        if self.dim == SCALAR:
            return f"{expected}: its axis {self.axis} is a scalar's, of size {SCALAR}"
        return f"{expected} with {self.dim}={self.expected} (from {self.source})"


class Sizes:
    """The sizes of named dimensions as read off arrays, each with the array it was read from.

    ``known`` seeds it (``{"T": (5, "x")}``); a per-sample scalar dimension is always 1.
    """

    def __init__(self, known: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.read_from: dict[str, tuple[int, str]] = dict(known or {})
        self._known = frozenset(self.read_from)

    def read(self, source: str, shape: tuple[int, ...], dims: tuple[str, ...]) -> Mismatch | None:
        """Records the sizes the array ``source`` of ``shape`` over ``dims`` gives; returns the
        first dimension that disagrees with a size read before, if any, as a mismatch."""
        for axis, (dim, extent) in enumerate(zip(dims, shape, strict=True)):
            expected = _SCALAR_SOURCE if dim == SCALAR else self.read_from.get(dim)
            if expected is None:
                self.read_from[dim] = (extent, source)
            elif expected[0] != extent:
                return Mismatch(source, shape, dims, axis, dim, expected[0], expected[1])
        return None

    def values(self) -> dict[str, int]:
        """The size of each dimension read off an array (not those it was seeded with), in the
        order they were read."""
        return {dim: extent for dim, (extent, _) in self.read_from.items() if dim not in self._known}


def check_array(label: str, array: object, dims: tuple[str, ...], sizes: Sizes, dtype: DType) -> None:
    """The full check of an array a kernel of ``dtype`` reads: a plain NumPy array of that dtype
    in native byte order, C-contiguous and aligned, whose shape over ``dims`` agrees with the
    sizes read so far (and adds the sizes it gives). The error names ``label`` and the fix."""
    if not isinstance(array, np.ndarray):
        raise ArrayError(f"{label} must be a NumPy array, not {type(array).__name__}")
    if isinstance(array, np.ma.MaskedArray):
        raise ArrayError(f"{label} is a masked array, whose mask the kernel would ignore; pass {label}.filled(0)")
    if array.dtype != dtype.np_dtype:
        if not array.dtype.isnative:
            raise ArrayError(f"{label} is not in native byte order; convert it with .astype(np.{dtype.name})")
        raise ArrayError(
            f"{label} has dtype {array.dtype} but this kernel is {dtype.name}; convert it with .astype(np.{dtype.name})"
        )
    if array.ndim != len(dims):
        raise ArrayError(f"{label} must have shape ({', '.join(dims)}), got {array.shape}")
    mismatch = sizes.read(label, array.shape, dims)
    if mismatch is not None:
        raise ArrayError(str(mismatch))
    if not array.flags.c_contiguous:
        raise ArrayError(
            f"{label} must be C-contiguous (it has strides {array.strides}); pass np.ascontiguousarray({label})"
        )
    if not array.flags.aligned:
        raise ArrayError(f"{label} is not aligned to its dtype in memory; pass {label}.copy()")


def check_fits_c_int(cell: Cell, steps: int, batch: int, sizes: Mapping[str, int]) -> None:
    """The kernels count in C ``int``: T * B and a dimension times the widest stack of vectors
    sharing it (bounded by the number of parameters and equations) must fit in one."""
    if max(steps, batch, steps * batch) > INT_MAX:
        raise ArrayError(f"T * B = {steps} * {batch} is over {INT_MAX}, the kernels' limit; split the sequence")
    stacked = max(8, len(cell.params) + len(cell.equations))
    for dim, extent in sizes.items():
        if extent * stacked > INT_MAX:
            raise ArrayError(f"{dim} = {extent} is over {INT_MAX // stacked}, the limit for cell {cell.name}")


def check_names(label: str, given: object, known: list[str]) -> None:
    """``given`` must be a dict whose keys are among ``known``."""
    if not isinstance(given, Mapping):
        raise ArrayError(f"{label} must be a dict, not {type(given).__name__}")
    unknown = [k for k in given if k not in known]
    if unknown:
        raise ArrayError(f"{label} has unknown names {unknown}; expected some of {known}")


def exactly(array: object, dtype: np.dtype, shape: tuple[int, ...]) -> bool:
    """Whether ``array`` is a plain ndarray a kernel can use as it is: the quick check, which
    costs a type check and a few comparisons (its failures go through :func:`check_array`)."""
    if type(array) is not np.ndarray or array.shape != shape or (array.dtype is not dtype and array.dtype != dtype):
        return False
    flags = array.flags
    return flags.c_contiguous and flags.aligned
