"""symgate: recurrent cells as equations, derived and compiled into gradient-checked C kernels.

The pipeline, one module a stage, each taking what the previous one returns:

1. ``syntax``    cell text -> ``CellSource`` (declarations and SymPy equations, with lines)
2. ``check``     ``CellSource`` (or SymPy objects, ``define``) -> ``Cell`` (roles, sizes inferred)
3. ``derive``    ``Cell`` -> ``Derivation`` (backward equations of one step, CSE'd)
4. ``lower``     both passes -> ``KernelPlan`` (products and fused loops per step)
5. ``render``    ``KernelPlan`` -> template context -> ``KernelSource`` (C, header, interface)
6. ``compiler``  ``KernelSource`` -> compiled cffi module, kept by ``cache`` (checksummed entries,
                 published atomically; ``symgate cache``); ``sanitize`` adds ASan/UBSan builds
7. ``kernel``    compiled module -> ``Kernel`` (forward / backward on NumPy arrays, checked first)
8. ``gradcheck`` ``Kernel`` vs. finite differences of the NumPy ``reference`` -> ``GradcheckReport``
                 (with the Taylor-remainder test of ``taylor``, and optionally ``complex_step``:
                 the gradients vs. complex steps of a ``complex128`` forward kernel)

``limits`` bounds the time and depth of the symbolic stages 1-5, so hostile text cannot hang them.
``ranges`` refuses, before stage 5, a number the kernel's dtype cannot hold (inf or 0 in C), naming
the constant and the equation, the derivative's own numbers included.

``export`` takes a ``Cell`` (and, optionally, trained parameters) through stages 3-5 into a
standalone C99 library: the kernels without Python, BLAS or allocation, inference functions, a
documented header, a README and an example program (``sg.export``, ``symgate export``).

``pipeline`` strings stages 2-7 together (``generate``, ``build``). ``symgate.torch`` (``sg.torch``,
imported on first use, so PyTorch stays optional) runs the kernels inside PyTorch: a cell as a
trainable ``torch.nn.Module``.

Inspecting what the pipeline derives, each a module of its own:

* ``opcount``      equations -> ``OpCount`` per step (``Cell.operations()``, ``Derivation.operations()``)
* ``jacobian``     ``Cell`` -> ``StepJacobian`` blocks ∂s'/∂r with their structure (``Derivation.jacobian``)
* ``forget_gate``  ``Cell`` -> its forget gates and their bias parameters, found from the equations
* ``flow``         ``Kernel`` runs -> ``Flow``: ‖∂s_T/∂s_(T-k)‖₂ against distance; ``plot`` draws it
* ``compare``      two ``Cell`` -> ``CellDiff`` (declarations, parameters, forward and backward terms)
* ``c_step``       generated C -> the time loop of each pass, for reading

Quick start::

    import symgate as sg
    k = sg.build(sg.cells.get("lstm"))
    params = k.init_params({"D": 3, "H": 4}, seed=0)
    run = k.forward(x, params)                  # x: (T, B, D)
    grads = k.backward(run, {"h": dh})          # dh: (T, B, H)
"""

from ._version import __version__ as __version__
from .errors import (
    ArrayError,
    BuildError,
    CellError,
    CellNameError,
    CellSyntaxError,
    DimensionError,
    EquationOrderError,
    ExportError,
    MissingExtraError,
    StateUpdateError,
    SymgateError,
    SymgateWarning,
    UnknownCellError,
    UnknownFunctionError,
)
from .export import export
from .frameworks import interop
from .frameworks.interop import InteropError, from_torch, to_torch
from .frontend import cells
from .frontend.cell import Cell, Param
from .frontend.check import define, load, parse
from .frontend.functions import MatVec, Var, next_state, relu, sigmoid, softplus, symbols
from .inspect.compare import CellDiff, compare
from .inspect.flow import Flow, measure_flow
from .inspect.plot import plot_flow
from .pipeline import build, generate
from .runtime.kernel import Gradients, Kernel, Run
from .symbolic.derive import Derivation, derive
from .symbolic.jacobian import StepJacobian
from .symbolic.opcount import OpCount
from .verify.gradcheck import GradcheckReport, gradcheck

__all__ = [
    "ArrayError",
    "BuildError",
    "Cell",
    "CellDiff",
    "CellError",
    "CellNameError",
    "CellSyntaxError",
    "Derivation",
    "DimensionError",
    "EquationOrderError",
    "ExportError",
    "Flow",
    "GradcheckReport",
    "Gradients",
    "InteropError",
    "Kernel",
    "MatVec",
    "MissingExtraError",
    "OpCount",
    "Param",
    "Run",
    "StateUpdateError",
    "StepJacobian",
    "SymgateError",
    "SymgateWarning",
    "UnknownCellError",
    "UnknownFunctionError",
    "Var",
    "build",
    "cells",
    "compare",
    "define",
    "derive",
    "export",
    "from_torch",
    "generate",
    "gradcheck",
    "interop",
    "load",
    "measure_flow",
    "next_state",
    "parse",
    "plot_flow",
    "relu",
    "sigmoid",
    "softplus",
    "symbols",
    "to_torch",
]


def __getattr__(name: str):
    """``sg.torch`` is imported on first use, so ``import symgate`` never needs PyTorch."""
    if name == "torch":
        import importlib

        return importlib.import_module(f"{__name__}.torch")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
