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

Gate orders and layouts are the frameworks' own (docs/cells.md gives each built-in cell's, in its conventions).
"""

from __future__ import annotations

from .common import (
    FrameworkNotInstalledError,
    InteropError,
    Pair,
    UnsupportedModuleError,
    WeightLayoutError,
    split_gates,
)
from .keras import (
    from_keras_gru,
    from_keras_lstm,
    from_keras_simple_rnn,
    from_onnx_gru,
    from_onnx_lstm,
    from_tf1_lstm,
)
from .pytorch import from_torch, to_torch

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
