"""Export: a cell -> a standalone C99 library (see :mod:`symgate.export.library`)."""

from .library import CFunction, Export, export, load_params, render_export

__all__ = ["CFunction", "Export", "export", "load_params", "render_export"]
