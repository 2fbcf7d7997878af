"""The floating-point types of kernels: one table, read by every stage that needs a type's facts.

A kernel is built for one of these. ``float64`` and ``float32`` have forward and backward passes;
``complex128`` is the forward pass alone, for the complex-step gradient check. Each record says
how the type is spelled in C (the type, the libm suffix, the literal suffix, the BLAS letter) and
in NumPy. Nothing here imports SymPy or Jinja, so the runtime and the cache can read it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ArgumentError


@dataclass(frozen=True)
class DType:
    """One kernel type: its name (``"float32"``) and its spellings."""

    name: str
    c_type: str
    """The C type of every number (``_Complex``, not ``complex``: cffi reads the declarations too)."""
    numpy: type
    real: bool
    """A real type has both passes; a complex one the forward pass alone."""
    math_suffix: str = ""
    """The suffix of libm's functions for this type (``expf``)."""
    literal_suffix: str = ""
    """The suffix of a floating-point literal of this type (``1.0F``)."""
    blas: str = "d"
    """The letter of BLAS's routines for this type (``sgemm``)."""
    overflow: int = 2**1024 - 2**970
    """The smallest magnitude a literal rounds to inf from (half an ulp above the largest finite)."""
    underflow_exponent: int = 1075
    """A literal below ``2**-underflow_exponent`` (half the smallest subnormal) rounds to 0."""
    range_text: tuple[str, str] = ("1.8e308", "4.9e-324")
    """The largest magnitude and the smallest subnormal, as messages write them."""

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.numpy)

    def literal(self, text: str) -> str:
        """A C literal of this type from the decimal ``text`` (``"1.0"`` -> ``"1.0F"``)."""
        return text + self.literal_suffix


DTYPES: dict[str, DType] = {
    "float64": DType("float64", "double", np.float64, real=True),
    "float32": DType(
        "float32",
        "float",
        np.float32,
        real=True,
        math_suffix="f",
        literal_suffix="F",
        blas="s",
        overflow=2**128 - 2**103,
        underflow_exponent=150,
        range_text=("3.4e38", "1.4e-45"),
    ),
    "complex128": DType("complex128", "double _Complex", np.complex128, real=False),  # parts are doubles
}
REAL_DTYPES = tuple(name for name, d in DTYPES.items() if d.real)
"""The types users build and train in: ``("float64", "float32")``."""


SPELLINGS = ' (spelled "float32", np.float32, np.dtype("float32") or torch.float32)'
"""How a dtype may be written, as the errors about a dtype end."""


def dtype(name: object, *, real_only: bool = False) -> DType:
    """The record of the type ``name`` (any spelling :func:`dtype_name` takes)."""
    return DTYPES[dtype_name(name, real_only=real_only)]


def dtype_name(value: object, *, real_only: bool = False) -> str:
    """The name of a kernel type, given as its name (``"float32"``), a NumPy type (``np.float32``,
    ``np.dtype("float32")``) or a PyTorch one (``torch.float32``): the spellings users reach for.
    Anything else is an :class:`~symgate.errors.ArgumentError` (a ``ValueError``) naming the choices."""
    choices = REAL_DTYPES if real_only else tuple(DTYPES)
    name = value if isinstance(value, str) else _spelled(value)
    if name not in choices:
        raise ArgumentError(f"dtype must be one of {', '.join(repr(c) for c in choices)}, not {value!r}{SPELLINGS}")
    return name


def _spelled(value: object) -> str | None:
    """The name of a NumPy or PyTorch type (``torch.float32`` prints as such), else None."""
    if value is None:  # np.dtype(None) is float64: a missing dtype is not a choice
        return None
    if str(value).startswith("torch."):
        return str(value).removeprefix("torch.")
    try:
        return np.dtype(value).name
    except (TypeError, ValueError):
        return None
