"""Jupyter rendering: cells, derivations, Jacobians as LaTeX; reports, flows and diffs as HTML."""

from __future__ import annotations

import symgate as sg
from symgate.inspect.compare import compare
from symgate.inspect.flow import measure_flow
from symgate.verify.gradcheck import TensorCheck


def test_cells_derivations_and_jacobians_render_as_latex():
    cell = sg.cells.get("lstm")
    derivation = sg.derive(cell)
    for latex in (cell._repr_latex_(), derivation._repr_latex_()):
        assert latex.startswith(r"$\begin{aligned}") and latex.endswith(r"\end{aligned}$")
    assert r"c' &= c f + g i" in cell._repr_latex_()
    assert r"\delta c &= f \delta c'{}_{\mathrm{tot}}" in derivation._repr_latex_()
    assert derivation.jacobian("c'", "c")._repr_latex_().startswith(r"$\frac{\partial c'}{\partial c}")


def report(worst: float) -> sg.GradcheckReport:
    checks = (TensorCheck("W_f", "param", 12, 1e-12, 1e-10), TensorCheck("h", "init", 8, 1e-9, worst))
    return sg.GradcheckReport("lstm", {"D": 3, "H": 4}, 5, 2, 0, 1e-6, checks, 1e-12, 1e-16, 1e-13, 1e-7)


def test_gradcheck_reports_render_as_html_with_failures_marked():
    good, bad = report(1e-9)._repr_html_(), report(1e-3)._repr_html_()
    assert "gradcheck lstm (float64, D=3 H=4, T=5, B=2, seed 0): ok" in good and "exceeds" not in good
    assert "<td>W_f</td><td>param</td><td>12</td>" in good
    assert "<li>duality &lt;u, VJP(G)&gt; vs directional FD: rel err 1.00e-13</li>" in good
    assert "FAILED" in bad and "<td><b>1.00e-03 exceeds tolerance</b></td>" in bad


def test_flows_and_diffs_render_as_html():
    flow = measure_flow(sg.cells.get("elman_rnn"), steps=3, samples=1, sizes={"H": 4})
    assert "<th>elman_rnn</th>" in flow._repr_html_() and "<tr><td>3</td>" in flow._repr_html_()
    diff = compare(sg.cells.get("lstm"), sg.cells.get("lstm_peephole"))._repr_html_()
    assert diff.startswith("<pre>lstm → lstm_peephole") and "δc = f*δc&#x27;_tot" in diff
