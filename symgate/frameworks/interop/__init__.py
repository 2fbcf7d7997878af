"""Weights in and out of other frameworks: PyTorch modules, and Keras / TF1 / ONNX fused arrays.

Frameworks store a recurrent layer as a few *fused* tensors (all gates stacked in one matrix, in
a framework-specific gate order and orientation); symgate's cells name one tensor per gate and
per role (``W_*`` input weights (H, D), ``U_*`` / ``W_h*`` recurrent weights, ``b_*`` biases).
The importers here only cut, reorder and (for Keras / TF1) transpose blocks: each returns
``(cell, params)`` ready for ``symgate.build(cell).forward(x, params)``, and nothing in the
kernels knows where the weights came from.

* :mod:`symgate.frameworks.interop.pytorch`: ``from_torch`` / ``to_torch`` for ``torch.nn.RNN``, ``LSTM``,
  ``GRU`` and their ``...Cell`` classes (torch is imported only when these are called).
* :mod:`symgate.frameworks.interop.keras`: ``from_keras_*``, ``from_tf1_lstm`` and ``from_onnx_*``, which
  take NumPy arrays and need no framework at all.

Gate orders and layouts follow ``cells.md`` section 8.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...errors import SymgateError
from ...frontend.cell import Cell

Pair = tuple[Cell, dict[str, np.ndarray]]
"""What the importers return: a built-in cell and its parameters, named as in the cell."""


class InteropError(SymgateError):
    """Weights could not be converted between symgate and another framework."""


class FrameworkNotInstalledError(InteropError):
    """The framework a converter talks to (PyTorch) is not installed."""


class UnsupportedModuleError(InteropError):
    """A module, or an option of it, has no symgate cell: the message names both."""


class WeightLayoutError(InteropError):
    """Arrays whose shapes, dtypes or names do not fit the layout they were given as."""


def split_gates(fused: np.ndarray, gates: Iterable[str], *, label: str) -> dict[str, np.ndarray]:
    """Cuts ``fused`` into equal blocks along its first axis, one per gate, in the given order.

    ``split_gates(weight_ih, "ifgo", label=...)`` on a (4H, D) matrix gives ``{"i": (H, D), ...}``.
    Each block is a C-contiguous copy, so it can go straight to a kernel and owns its memory.
    ``label`` names the array in the error raised when its first axis does not divide evenly.
    """
    gates = list(gates)
    fused = np.asarray(fused)
    if fused.ndim == 0 or fused.shape[0] % len(gates):
        raise WeightLayoutError(
            f"{label} has shape {fused.shape}: its first axis should hold {len(gates)} equal gate blocks "
            f"({', '.join(gates)})"
        )
    size = fused.shape[0] // len(gates)
    return {gate: np.array(fused[k * size : (k + 1) * size], order="C") for k, gate in enumerate(gates)}


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The symgate dtype for imported arrays: float32 if they all are, else float64."""
    if all(np.asarray(a).dtype == np.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


# The converters import the helpers above from this package, so they are imported after them.
from .keras import (  # noqa: E402
    from_keras_gru,
    from_keras_lstm,
    from_keras_simple_rnn,
    from_onnx_gru,
    from_onnx_lstm,
    from_tf1_lstm,
)
from .pytorch import from_torch, to_torch  # noqa: E402

__all__ = [
    "FrameworkNotInstalledError",
    "InteropError",
    "Pair",
    "UnsupportedModuleError",
    "WeightLayoutError",
    "from_keras_gru",
    "from_keras_lstm",
    "from_keras_simple_rnn",
    "from_onnx_gru",
    "from_onnx_lstm",
    "from_tf1_lstm",
    "from_torch",
    "split_gates",
    "to_torch",
]
