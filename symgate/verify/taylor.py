"""The Taylor-remainder test: a gradient proof with no tolerance to tune.

If ``g`` is the gradient of ``L`` at ``θ``, the remainder of the first-order expansion along a
direction ``u``,

    r(ε) = |L(θ + εu) - L(θ) - ε <g, u>|,

falls like ε² as ε shrinks; with a wrong gradient it falls only like ε. So the slope of log r
against log ε is 2 for a right gradient and 1 for a wrong one, whatever the scale of the problem
(Devito's ``test_adjoint.py`` and dolfin-adjoint's ``taylor_test`` prove adjoints this way).

The steps halve from ``1e-2`` over :data:`HALVINGS` halvings. The slope is fitted by least squares
to the smallest steps whose remainder stands clear of the loss's rounding noise (at least
:data:`CLEAR` times it); the larger steps may not yet be in the asymptotic regime. If fewer than
three do, the loss is linear along ``u`` to rounding and there is no slope to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FIRST_STEP = 1e-2
HALVINGS = 12
FITTED = 6
CLEAR = 100.0
MIN_SLOPE = 1.8


@dataclass(frozen=True)
class TaylorCheck:
    """Remainders ``r(ε)`` of the first-order expansion and the slope fitted to them."""

    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    noise: float
    slope: float | None
    span: tuple[float, float] | None
    """The largest and smallest step the slope was fitted over."""

    @property
    def finite(self) -> bool:
        """Whether every remainder is a number: a NaN or inf loss or gradient along u has no slope to judge."""
        return bool(np.all(np.isfinite(self.remainders)))

    @property
    def ok(self) -> bool:
        """Finite remainders, with a slope near 2 (at least :data:`MIN_SLOPE`) or at rounding level throughout."""
        return self.finite and (self.slope is None or self.slope >= MIN_SLOPE)

    def __str__(self) -> str:
        if not self.finite:
            return "Taylor remainder |L(θ+εu) - L(θ) - ε<g,u>| is not finite: the loss or the gradient is NaN or inf"
        if self.slope is None:
            return f"Taylor remainder at rounding level (≤ {CLEAR:g} × {self.noise:.1e}) at every step: linear along u"
        return (
            f"Taylor remainder |L(θ+εu) - L(θ) - ε<g,u>|: slope {self.slope:.2f} over ε = {self.span[0]:.1e} .. "
            f"{self.span[1]:.1e} (2 if the gradient is right, 1 if not; at least {MIN_SLOPE:g} passes)"
        )


def taylor_test(loss_along: Callable[[float], float], directional: float, noise: float) -> TaylorCheck:
    """``loss_along(ε)`` is ``L(θ + εu)``, ``directional`` the claimed ``<g, u>``, ``noise`` the
    rounding noise of one loss evaluation."""
    base = loss_along(0.0)
    steps = tuple(FIRST_STEP / 2**k for k in range(HALVINGS))
    remainders = tuple(abs(loss_along(step) - base - step * directional) for step in steps)
    clear = [(s, r) for s, r in zip(steps, remainders, strict=True) if r > CLEAR * noise]
    clear = clear[-FITTED:]
    if len(clear) < 3:
        return TaylorCheck(steps, remainders, noise, None, None)
    x, y = np.log([s for s, _ in clear]), np.log([r for _, r in clear])
    slope = float(np.polyfit(x, y, 1)[0])
    return TaylorCheck(steps, remainders, noise, slope, (clear[0][0], clear[-1][0]))
