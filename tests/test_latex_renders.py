"""Every built-in cell's and derivation's LaTeX renders: each equation goes through matplotlib's
mathtext, the renderer a notebook without TeX falls back on and the stricter of the two (it has
no ``aligned``, so each equation is rendered alone, with its alignment mark dropped)."""

from __future__ import annotations

import pytest
from matplotlib.mathtext import MathTextParser

import symgate as sg
from symgate.frontend.notation import latex_name
from symgate.frontend.vocabulary import FUNCTIONS


@pytest.fixture(scope="module")
def parser() -> MathTextParser:
    return MathTextParser("path")


def error(parser: MathTextParser, text: str) -> str | None:
    """The last line of mathtext's complaint about ``text``, or None if it parses."""
    try:
        parser.parse(text)
    except ValueError as err:
        return str(err).splitlines()[-1]
    return None


def failures(parser: MathTextParser, rows: dict[str, list[str]]) -> list[str]:
    """``where: equation: error`` for each equation (key of ``rows``) that mathtext rejects.

    The equations are parsed as one text of ``$...$`` pieces first (one call costs less than
    hundreds), each alone only when that fails, to name the ones at fault."""
    if error(parser, " ".join(f"${row}$" for row in rows)) is None:
        return []
    found = ((row, where, error(parser, f"${row}$")) for row, where in rows.items())
    return [f"{', '.join(where)}: {row}: {problem}" for row, where, problem in found if problem]


def test_every_built_in_cells_and_derivations_equations_render(parser):
    rows: dict[str, list[str]] = {}  # an equation many cells share (the LSTM family's) is rendered once
    for name in sg.cells.names():
        cell = sg.cells.get(name)
        for kind, equations in (("forward", cell.latex_equations()), ("backward", sg.derive(cell).latex_equations())):
            for row in equations:
                rows.setdefault(row.replace("&", ""), []).append(f"{name} ({kind})")
    assert len(rows) > 300
    assert not failures(parser, rows)


def test_a_cell_with_reductions_reads_as_its_equations(parser):
    cell = sg.cells.get("r2rt_normalized_prototype")
    forward, backward = cell.latex_equations(), sg.derive(cell).latex_equations()
    assert r"\tilde{s} &= \tanh{\left(b + U U_{\mathrm{arg}} + W x \right)}" in forward
    assert r"s' &= \frac{u}{\sqrt{\operatorname{mean}\left(\mathrm{mean}_{\mathrm{arg}}\right) + 1}}" in forward
    assert r"\delta \operatorname{mean}\left(u\right) &= \operatorname{sum}\left(" in "\n".join(backward)
    assert r"\delta U &\;{+}{=}\; \delta \tilde{s}_{\mathrm{pre}} \otimes U_{\mathrm{arg}}" in backward
    note = cell.latex().removesuffix(r"\end{aligned}").rsplit(r" \\ &", 1)[1]
    assert note.startswith(r"\text{forward") and not failures(parser, {note: ["the forward count"]})
    jacobians = {j.latex(): [f"∂{j.new}/∂{j.old}"] for j in sg.derive(cell).jacobians()}
    assert jacobians and not failures(parser, jacobians)


def test_every_function_of_the_language_and_its_derivative_renders(parser):
    def call(name: str) -> str:  # max(a, h), clip(a, 1, 2): a constant argument as a number, ascending;
        record = FUNCTIONS[name]
        arguments = [str(k) if k in record.constant_arguments else "ah"[k > 0] for k in range(record.arity)]
        if record.matrices == "argument":  # rowsum(outer(a, h)): a function of a matrix
            arguments = ["outer(a, h)"]
        call = f"{name}({', '.join(arguments)})"
        return f"rowsum({call})" if record.matrices == "result" else call

    calls = " + ".join(call(name) for name in FUNCTIONS)
    cell = sg.parse(f"cell every_function\ninput x: D\nstate h: H\na = W @ x + U @ h + b\nh' = {calls}\n")
    rows = {row.replace("&", ""): ["every_function"] for row in cell.latex_equations()}
    rows |= {row.replace("&", ""): ["every_function (backward)"] for row in sg.derive(cell).latex_equations()}
    assert not failures(parser, rows)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("W_f", "W_{f}"),
        ("b_ih", "b_{ih}"),
        ("τ1", r"\tau_{1}"),
        ("beta", r"\beta"),
        ("h_tilde'", r"\tilde{h}'"),
        ("δc'_tot", r"\delta c'{}_{\mathrm{tot}}"),
        ("δs_tilde_pre", r"\delta \tilde{s}_{\mathrm{pre}}"),
        ("scale_x", r"\mathrm{scale}_{x}"),
        ("U_h_arg", r"U_{h,\mathrm{arg}}"),
        ("δ(W_inᵀ@x)", r"\delta (W_{in}^{\top} x)"),
        ("δmean(u)_parts_H", r"\delta \operatorname{mean}\left(u\right){}_{\mathrm{parts},H}"),
        ("δh_", r"\delta h\_"),
        ("|H|", "|H|"),
    ],
)
def test_names_the_derivation_makes_read_as_math(parser, name, expected):
    assert latex_name(name) == expected
    assert not failures(parser, {expected: [name]})
