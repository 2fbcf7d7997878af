"""What the weight importers share: the pair they return, their errors, and cutting fused gates."""

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
