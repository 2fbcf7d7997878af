"""Jupyter rendering: cells, derivations, Jacobians as LaTeX; reports, flows and diffs as HTML."""

from __future__ import annotations

from html.parser import HTMLParser

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


class Table(HTMLParser):
    """The rows of an HTML table as (class, texts of its cells), entities decoded; the caption."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.rows: list[tuple[str | None, list[str]]] = []
        self.caption = ""
        self._inside: str | None = None  # the element whose text is being read: caption, td or th
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append((dict(attrs).get("class"), []))
        elif tag in ("td", "th"):
            self.rows[-1][1].append("")
        if tag in ("caption", "td", "th"):
            self._inside = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._inside:
            self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside == "caption":
            self.caption += data
        elif self._inside:
            self.rows[-1][1][-1] += data


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
    assert diff.startswith("<table><caption>lstm → lstm_peephole</caption>") and "δc = f*δc&#x27;_tot" in diff


def test_a_gradcheck_report_is_a_table_of_tensors_with_the_failed_rows_marked():
    rows = Table(report(1e-3)._repr_html_()).rows
    assert rows[0] == (None, ["tensor", "kind", "elements", "max abs err", "max rel err", "tolerance", "ok"])
    assert rows[1] == (None, ["W_f", "param", "12", "1.00e-12", "1.00e-10", "1e-06", "yes"])
    assert rows[2] == ("failed", ["h", "init", "8", "1.00e-09", "1.00e-03 exceeds tolerance", "1e-06", "no"])
    assert [row for row in Table(report(1e-9)._repr_html_()).rows if row[0] == "failed"] == []


def test_a_diff_is_a_table_of_names_each_marked_same_changed_or_only_in_one():
    table = Table(compare(sg.cells.get("elman_rnn"), sg.cells.get("lstm_peephole"))._repr_html_())
    assert table.caption == "elman_rnn → lstm_peephole"
    assert table.rows[0] == (None, ["name", "status", "elman_rnn", "lstm_peephole", "terms"])
    rows = {(cls, cells[0]): cells for cls, cells in table.rows[1:]}
    assert rows[None, "forward equations"] == ["forward equations"]  # a section's heading
    assert rows["same", "x"] == ["x", "same", "input x: D", ""]
    assert rows["only-first", "U"] == ["U", "only in elman_rnn", "U (H, H)", "", ""]
    assert rows["only-second", "c'"][1:4] == ["only in lstm_peephole", "", "c' = c*f + g*i"]
    assert rows["changed", "h'"][:2] == ["h'", "changed"] and rows["changed", "h'"][2] == "h' = tanh(b + U @ h + W @ x)"
    classes = {cls for cls, _ in table.rows}
    assert classes == {None, "same", "changed", "only-first", "only-second"}


def test_a_diffs_text_is_escaped(tmp_path):
    folder = tmp_path / "a<b>&c"
    folder.mkdir()
    (folder / "lstm.cell").write_text(sg.cells.get("lstm").text())
    markup = compare(sg.cells.get("lstm"), sg.load(folder / "lstm.cell"))._repr_html_()
    assert "<b>" not in markup and "&c" not in markup.replace("&amp;c", "")
    assert Table(markup).caption.endswith(f"{folder / 'lstm.cell'}: no differences")
