"""Trained parameters for an exported library: read from a ``.npz`` file or a dict, and checked
against the cell (names, dtype, shapes, sizes, finiteness) before they are baked into C.

Shapes and sizes are checked by the runtime's array validator (:class:`symgate.runtime.arrays.Sizes`):
the first parameter having a dimension fixes its size, and one that disagrees is named with the
parameter the size came from.

Example::

    values, sizes = load_params(sg.cells.get("lstm"), "weights.npz", "float32")
    sizes   # {"H": 64, "D": 2}: the sizes the parameters fix
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ExportError
from ..frontend.cell import Cell
from ..runtime.arrays import Sizes


def load_params(
    cell: Cell, source: Mapping[str, np.ndarray] | str | os.PathLike, dtype: str
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Trained parameters checked against the cell: (arrays in ``dtype``, the sizes they fix).

    Every parameter must be there under its name, with the cell's shape (sizes consistent
    across arrays, at least 1), a floating-point dtype and finite values once in ``dtype``.
    """
    where, arrays = _read_arrays(source)
    expected = [p.name for p in cell.params]
    missing = [n for n in expected if n not in arrays]
    unknown = [n for n in arrays if n not in expected]
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(unknown)}"] if unknown else []
        shapes = ", ".join(f"{p.name} ({', '.join(p.shape)})" for p in cell.params)
        raise ExportError(f"{where}: {'; '.join(parts)}; cell {cell.name} has parameters {shapes}")
    sizes = Sizes()
    out = {}
    for p in cell.params:
        label = f"{where}: {p.name}"
        try:
            array = np.asarray(arrays[p.name])
        except ValueError as err:  # ragged nested lists
            raise ExportError(f"{label} is not an array: {err}") from None
        if array.dtype.kind != "f":
            raise ExportError(f"{label} has dtype {array.dtype}; parameters must be floating point (float32, float64)")
        if array.ndim != len(p.shape):
            raise ExportError(f"{label} has shape {array.shape}; it must be ({', '.join(p.shape)})")
        mismatch = sizes.read(p.name, array.shape, p.shape)
        read = array.shape if mismatch is None else array.shape[: mismatch.axis + 1]  # axes in order, as read
        if any(extent < 1 for extent in read):
            raise ExportError(f"{label} has shape {array.shape}; every size must be at least 1")
        if mismatch is not None:
            raise ExportError(
                f"{label} has shape {array.shape}, but {mismatch.dim} = {mismatch.expected} (from {mismatch.source}); "
                f"{p.name} is ({', '.join(p.shape)})"
            )
        with np.errstate(over="ignore"):  # a value too large for float32 becomes inf, refused below
            converted = np.ascontiguousarray(array, dtype=np.dtype(dtype))
        bad = np.argwhere(~np.isfinite(converted))
        if len(bad):
            raise ExportError(f"{label} is not finite in {dtype} at index {tuple(int(i) for i in bad[0])}")
        out[p.name] = converted
    return out, sizes.values()


def _read_arrays(source: Mapping[str, np.ndarray] | str | os.PathLike) -> tuple[str, dict]:
    """(a label for messages, name -> array) from a dict or a ``.npz`` file."""
    if isinstance(source, Mapping):
        return "params", dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ExportError(f"params must be a dict of arrays or a .npz path, not {type(source).__name__}")
    path = Path(source)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ExportError(f"{path}: no such file (--params takes a .npz file of the cell's parameters)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ExportError(f"{path}: not a NumPy .npz file ({err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ExportError(f"{path}: holds one array, not a .npz archive of arrays named as the cell's parameters")
    with data:
        arrays = {}
        for name in data.files:
            try:
                arrays[name] = data[name]
            except (OSError, ValueError, zipfile.BadZipFile) as err:
                raise ExportError(f"{path}: cannot read {name}: {err}") from err
    return str(path), arrays
