"""What the generated C is for: a frozen description handed to the renderer (as SymForce's
``CodegenConfig``), so that the kernels Python builds and an exported library are rendered by the
same code from the same plan.

* ``python``: built for Python through cffi. Such kernels may call BLAS and vectorized libm
  (a real dtype's only; see :meth:`Target.accelerated`); exported C calls neither.
* ``fixed_sizes``: dimensions whose sizes are baked in (an exported library with trained
  parameters). Each becomes a constant, ``<macro_prefix>_DIM_<size>``, and leaves the size
  arguments.
* ``hidden_roles``: argument roles that are file-scope arrays instead of arguments (the
  parameters, when baked in).
* ``macro_prefix``: the prefix of an exported library's macros (``SG_LSTM_FLOAT32``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..dtypes import dtype as dtype_of
from ..frontend.functions import SCALAR
from .ccode import Code


@dataclass(frozen=True)
class Target:
    """Who the rendered C is for; the default is a kernel built for Python."""

    python: bool = True
    fixed_sizes: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    hidden_roles: frozenset[str] = frozenset()
    macro_prefix: str = ""

    def accelerated(self, dtype: str) -> bool:
        """Whether kernels in ``dtype`` use BLAS and vector math: built for Python, in a real dtype
        (a complex kernel runs in loops)."""
        return self.python and dtype_of(dtype).real

    def fixed_macro(self, size_c: str) -> str:
        """The macro of a fixed size, by its C name: ``SG_LSTM_FLOAT32_DIM_H``."""
        return f"{self.macro_prefix}_DIM_{size_c}"

    def macro_body(self, size: Code, dim_c: Mapping[str, str]) -> str:
        """A size expression of the kernel as the body of a macro of ``(T, B, sizes...)``: the
        arguments parenthesized, fixed sizes as numbers."""
        spelling = {"T": "(T)", "B": "(B)"}
        for dim, size_c in dim_c.items():
            if dim != SCALAR:
                spelling[size_c] = str(self.fixed_sizes[dim]) if dim in self.fixed_sizes else f"({size_c})"
        return "(" + size.spell(spelling) + ")"


PYTHON = Target()
"""A kernel built for Python: BLAS and vector math where the dtype allows, every size an argument."""


def library_target(cell: str, dtype: str, fixed_sizes: Mapping[str, int] | None = None) -> Target:
    """An exported library of ``cell`` in ``dtype``; with ``fixed_sizes``, for inference with the
    parameters baked in."""
    baked = fixed_sizes is not None
    return Target(
        python=False,
        fixed_sizes=MappingProxyType(dict(fixed_sizes or {})),
        hidden_roles=frozenset({"param"} if baked else ()),
        macro_prefix=f"SG_{cell.upper()}_{dtype.upper()}",
    )
