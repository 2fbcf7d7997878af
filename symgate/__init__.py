"""symgate: recurrent cells as equations, derived and compiled into gradient-checked C kernels.

The package is laid out as its pipeline, one subpackage a stage, each taking what the previous
one returns (``docs/architecture.md`` has the table, module by module):

1. ``frontend``   cell text (``syntax``) or SymPy objects (``define``) -> ``Cell``: roles
                  checked, sizes inferred (``shapes``), the language's functions one record each in ``vocabulary``,
                  the built-in cells in ``cells/``, time and depth bounds in ``limits``
2. ``symbolic``   ``Cell`` -> ``Derivation``: the backward equations of one step, CSE'd
                  (``derive``), the step Jacobians (``jacobian``), operation counts (``opcount``),
                  and the numbers a dtype cannot hold refused by name (``ranges``)
3. ``codegen``    ``Cell`` + ``Derivation`` -> ``KernelPlan`` (``lower``: products and fused loops)
                  -> ``KernelSource`` (``render``: C, header and the ``Interface``, through the
                  Jinja templates of ``templates/``; C names from ``cnames``, expressions from ``cprinter``)
4. ``jit``        ``KernelSource`` -> a compiled cffi module (``compiler``, with the ``toolchain``'s
                  compiler, flags and BLAS), kept by ``cache`` (checksummed, published atomically);
                  ``sanitize`` makes ASan/UBSan builds
5. ``runtime``    compiled module -> ``Kernel``: forward / backward on NumPy arrays, checked first
6. ``verify``     ``Kernel`` vs. finite differences of the NumPy ``reference`` -> ``GradcheckReport``
                  (``gradcheck``, ``taylor``, and ``complex_step`` against a complex128 forward kernel)

Beside the pipeline: ``export`` writes a cell as a standalone C99 library (``sg.export``);
``frameworks`` runs the kernels inside PyTorch (``symgate.torch``: a cell as a trainable
``torch.nn.Module``, imported on first use so PyTorch stays optional) and converts weights to and
from other frameworks (``interop``); ``inspect`` reads what the pipeline derived: ``flow``
(‖∂s_T/∂s_(T-k)‖₂ against distance, drawn by ``plot``), ``forget_gate``, ``compare`` (two cells'
differences) and ``step_source`` (the C of one step). ``pipeline`` strings stages 1-5 together
(``generate``, ``build``); ``interface`` is a kernel's calling convention and ``dtypes`` the kernel
types, both plain data read by every stage.

Quick start::

    import symgate as sg
    k = sg.build("lstm")                        # a Cell, a built-in name or a .cell path; float64
    params = k.init_params({"D": 3, "H": 4}, seed=0)
    run = k.forward(x, params)                  # x: (T, B, D)
    grads = k.backward(run, {"h": dh})          # dh: (T, B, H)
"""

from ._version import __version__ as __version__
from .errors import (
    ArgumentError,
    ArrayError,
    BuildError,
    CellError,
    CellNameError,
    CellSyntaxError,
    DimensionError,
    EquationOrderError,
    ExportError,
    InternalError,
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
from .frontend.check import load, parse
from .frontend.define import define
from .frontend.functions import MatVec, Var, next_state, relu, sigmoid, softplus, symbols
from .frontend.functions import ReduceMean as mean  # noqa: N813 - cell text's mean, var and sum, for sg.define
from .frontend.functions import ReduceSum as sum  # noqa: N813 - sg.sum as np.sum: named as cell text writes it
from .frontend.functions import variance as var
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
    "ArgumentError",
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
    "InternalError",
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
    "mean",
    "measure_flow",
    "next_state",
    "parse",
    "plot_flow",
    "relu",
    "sigmoid",
    "softplus",
    "sum",
    "symbols",
    "to_torch",
    "var",
]


def __getattr__(name: str):
    """``sg.torch`` is imported on first use, so ``import symgate`` never needs PyTorch."""
    if name == "torch":
        import importlib

        return importlib.import_module(f"{__name__}.torch")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
