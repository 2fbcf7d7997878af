"""Plots of measured gradient flow, drawn with matplotlib when it is installed (the ``plot`` extra).

matplotlib is optional: everything else in symgate works without it, and :func:`plot_flow` says
how to install it instead of failing with an import error. The figure is drawn on a bare
``Figure`` (no pyplot), so it neither needs a display nor changes a notebook's backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..arguments import path_argument
from ..errors import MissingExtraError, SymgateError
from .flow import Flow, check_comparable

INSTALL_HINT = 'pip install "symgate[plot]" (or pip install matplotlib)'
SUFFIXES = (".png", ".svg", ".pdf")


def plot_path(path: str | Path) -> Path:
    """``path`` as a plot file, or a :class:`SymgateError` when it is not a .png, .svg or .pdf."""
    path = path_argument(path, "path")
    if path.suffix.lower() not in SUFFIXES:
        raise SymgateError(f"{path}: a plot must be a .png, .svg or .pdf file")
    return path


def plot_flow(flows: Sequence[Flow], path: str | Path) -> Path:
    """Writes ``‖∂s_T/∂s_{T-k}‖₂`` against k for every flow, log scale, one curve per cell; returns the path.

    Each curve is the geometric mean over the sequences, the shaded band their range. The file
    type follows the suffix (``.png``, ``.svg``, ``.pdf``); PNGs carry no timestamp or version.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise MissingExtraError(f"plotting gradient flow needs matplotlib: {INSTALL_HINT}") from err
    path = plot_path(path)
    check_comparable(flows)
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axes = figure.subplots()
    for flow in flows:
        distances = range(flow.steps + 1)
        bias = "".join(f", {name} = {value:g}" for name, value in flow.forget_bias.items())
        label = f"{flow.cell}{bias} (×{flow.per_step_factor():.2f} per step)"
        (line,) = axes.semilogy(distances, flow.typical, label=label)
        axes.fill_between(distances, flow.norms.min(axis=1), flow.norms.max(axis=1), color=line.get_color(), alpha=0.15)
    samples = flows[0].norms.shape[1]
    axes.set_xlabel("distance k (steps back from the last state)")
    axes.set_ylabel(f"‖∂s_T / ∂s_(T−k)‖₂ (geometric mean of {samples})")
    axes.set_title("How far back the gradient reaches")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend()
    metadata = {"Software": None} if path.suffix.lower() == ".png" else {}
    try:
        figure.savefig(path, dpi=100, metadata=metadata)
    except OSError as err:
        raise SymgateError(f"cannot write the plot {path}: {err.strerror or err}") from err
    return path
