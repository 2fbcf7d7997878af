"""Export: a cell -> a standalone C99 library (one ``.c``, one ``.h``, the runtime header, a README
and an example).

The library holds the kernels the Python :class:`~symgate.runtime.kernel.Kernel` calls, rendered by the
same code and template (``templates/export.c.jinja`` extends ``kernel.c.jinja``, leaving out cffi's
declarations and the switch to the runtime header's BLAS and vector-math paths), and two functions
for inference:

* ``infer``: the forward pass over T steps, planned without a tape (``KernelPlan.infer``, the
  pass the Python kernel runs with ``backward=False``), so it writes only states and outputs;
* ``step``: one step of ``infer``, the states updated in place, for streaming.

With trained parameters (``params=``, a ``.npz`` file or a dict of arrays) the library is for
inference only: the parameters become ``static const`` arrays, the sizes they fix become
constants, and ``infer`` and ``step`` take no parameter arguments.

    cell (+ parameters) -> derive, plan -> library_context (the kernels rendered for a library
    Target, as template data) -> Export (file texts)
    -> Export.write(directory): staged in a private directory, then renamed into place

Example::

    import symgate as sg
    sg.export("lstm", "out/lstm", dtype="float32")          # out/lstm/lstm_float32.{c,h}, ...
    sg.export("lstm", "out/infer", params="weights.npz")    # inference only, weights baked in
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..arguments import path_argument
from ..codegen.lower import plan_kernel
from ..codegen.render import RUNTIME_HEADER, environment, render_placed, runtime_header
from ..dtypes import dtype_name
from ..errors import ArgumentError, ExportError
from ..frontend.cell import Cell
from ..frontend.cells import cell_argument
from ..symbolic.derive import derive
from ..symbolic.ranges import check_numbers
from .context import CFunction, library_context
from .params import load_params


@dataclass(frozen=True)
class Export:
    """An exported library: the text of each file, and the functions its header declares.

    ``dims`` are the C names of the size arguments after ``T`` and ``B``; ``fixed`` the sizes
    baked in with the parameters (dimension -> size). :meth:`size_macro` names the macro that
    gives an array's number of elements, for ``(T, B, *dims)``; ``build_command`` builds and
    runs the example program in the library's directory.
    """

    cell: str
    dtype: str
    stem: str
    prefix: str
    dims: tuple[str, ...]
    fixed: dict[str, int]
    functions: tuple[CFunction, ...]
    build_command: str
    files: dict[str, str] = field(repr=False)

    def function(self, suffix: str) -> CFunction:
        """The function whose name ends with ``_suffix`` ("forward", "backward", "infer", "step")."""
        return next(f for f in self.functions if f.name.endswith("_" + suffix))

    def size_macro(self, c_name: str) -> str:
        return f"{self.prefix}_SIZE_{c_name}"

    def write(self, directory: str | os.PathLike) -> Path:
        """Writes the files into ``directory``; on failure it is left as it was (see :func:`export`)."""
        target = Path(directory)
        if target.exists() and not target.is_dir():
            raise ExportError(f"cannot export into {target}: it exists and is not a directory")
        staging = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            for name, text in self.files.items():
                (staging / name).write_bytes(text.encode("utf-8"))
            if target.is_dir():  # each file replaced atomically
                for name in self.files:
                    os.replace(staging / name, target / name)
            else:  # the directory appears whole
                staging.rename(target)
        except OSError as err:
            where = err.filename or target
            raise ExportError(f"cannot export into {target}: {where}: {err.strerror or err}") from err
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def export(
    cell: Cell | str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: object = "float64",
    params: Mapping[str, np.ndarray] | str | os.PathLike | None = None,
) -> Export:
    """Writes ``cell``'s standalone C library into the directory ``out`` and returns it.

    ``cell`` is a :class:`Cell`, a built-in name or a ``.cell`` path. ``dtype`` is "float64" by
    default, as for :func:`symgate.build`: the library then computes what the gradient check
    verified, to the last bits; pass ``dtype="float32"`` (or ``np.float32``) for half the memory and
    faster kernels, as an embedded target usually wants. ``params`` (a ``.npz``
    file or a dict of arrays named as the cell's parameters, any float dtype) makes an
    inference-only library with those values baked in. A new directory appears whole or not at
    all; into an existing one, each file is replaced atomically. Bad input raises
    :class:`~symgate.errors.ExportError` (or the cell's own error) naming what is wrong.
    """
    out = path_argument(out, "out")
    library = render_export(cell, dtype=dtype, params=params)
    library.write(out)
    return library


def render_export(
    cell: Cell | str | os.PathLike,
    *,
    dtype: object = "float64",
    params: Mapping[str, np.ndarray] | str | os.PathLike | None = None,
) -> Export:
    """The exported library's files as text, without writing them (same input, same bytes)."""
    cell = cell_argument(cell)
    try:
        dtype = dtype_name(dtype, real_only=True)
    except ArgumentError as err:
        raise ExportError(str(err)) from None
    baked = None if params is None else load_params(cell, params, dtype)
    derivation = derive(cell)
    check_numbers(cell, dtype, None if baked is not None else derivation)  # inference only: no backward pass
    context = library_context(cell, derivation, plan_kernel(cell, derivation), dtype, baked)
    env = environment()
    stem = context["stem"]
    files = {
        f"{stem}.h": env.get_template("export.h.jinja").render(context),
        f"{stem}.c": render_placed("export.c.jinja", context)[0],
        "README.md": env.get_template("export_readme.md.jinja").render(context),
        "example.c": env.get_template("export_example.c.jinja").render(context),
        RUNTIME_HEADER: runtime_header().read_text(encoding="utf-8"),
    }
    return Export(
        cell=cell.name,
        dtype=dtype,
        stem=stem,
        prefix=context["prefix"],
        dims=tuple(context["dims"]),
        fixed=dict(baked[1]) if baked is not None else {},
        functions=context["functions"],
        build_command=context["build_command"],
        files=files,
    )
