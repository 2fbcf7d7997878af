"""Export: a cell -> a standalone C99 library (see :mod:`symgate.export.library`)."""

from .library import CFunction, Export, export, render_export
from .params import load_params

__all__ = ["CFunction", "Export", "export", "load_params", "render_export"]
