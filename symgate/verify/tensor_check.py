"""How a computed gradient tensor is judged against a reference: shared by the finite-difference
check (:mod:`symgate.verify.gradcheck`) and the complex-step check (:mod:`symgate.verify.complex_step`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorCheck:
    """The worst disagreement within one tensor."""

    name: str
    kind: str
    elements: int
    max_abs_error: float
    max_rel_error: float
    unresolved: int = 0
    """Elements over tolerance where finite differences did not converge (left out of the errors)."""
    worst: tuple[int, ...] = ()
    """The index of the element with the largest relative error, and its two values."""
    worst_kernel: float = 0.0
    worst_differences: float = 0.0

    def where(self) -> str:
        """The worst element in words: time step, sample and unit for sequences."""
        index = self.worst
        if self.kind == "input" and len(index) == 3:
            return f"{self.name} at step {index[0]}, sample {index[1]}, unit {index[2]}"
        if self.kind == "init" and len(index) == 2:
            return f"initial {self.name}, sample {index[0]}, unit {index[1]}"
        return f"{self.name}[{', '.join(map(str, index))}]"


def compare_tensor(
    name: str, kind: str, computed: np.ndarray, fd: np.ndarray, spread: np.ndarray, resolution: float, tolerance: float
) -> TensorCheck:
    """The worst error in one tensor, leaving out unresolved elements: those over tolerance whose
    two finite-difference estimates disagree by more than the tolerance themselves."""
    error = np.abs(computed - fd)
    scale = float(np.max(np.abs(fd))) if fd.size else 0.0
    denominator = np.maximum(np.abs(fd), max(1e-3 * scale, resolution))
    relative = error / denominator
    unresolved = (relative > tolerance) & (spread > tolerance * denominator)
    judged = np.where(unresolved, -1.0, relative)
    worst = np.unravel_index(int(np.argmax(judged)), fd.shape) if fd.size else ()
    return TensorCheck(
        name=name,
        kind=kind,
        elements=int(fd.size),
        max_abs_error=float(error[~unresolved].max()) if (~unresolved).any() else 0.0,
        max_rel_error=float(relative[~unresolved].max()) if (~unresolved).any() else 0.0,
        unresolved=int(unresolved.sum()),
        worst=tuple(int(i) for i in worst),
        worst_kernel=float(computed[worst]) if fd.size else 0.0,
        worst_differences=float(fd[worst]) if fd.size else 0.0,
    )


def weighted_sum(states, outputs, cotangents, stacked: bool = False) -> np.ndarray | float:
    """``Σ <G, value>`` over states and outputs; per stacked copy when ``stacked``."""
    total = 0.0
    for name, value in {**states, **outputs}.items():
        product = value * (cotangents[name][:, None] if stacked else cotangents[name])
        # every axis but the copies' (axis 1 of (T, copies, B, units...)) is summed
        total = total + (product.sum(axis=(0, *range(2, product.ndim))) if stacked else float(product.sum()))
    return total
