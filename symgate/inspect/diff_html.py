"""A :class:`~symgate.inspect.compare.CellDiff` as an HTML table, for notebooks.

One row a name, under a heading row per section (declarations, parameters, forward equations,
backward equations, parameter gradients); each row says whether the name is the same in both
cells, changed, or only in one, in its text and in its ``class`` (``same``, ``changed``,
``only-first``, ``only-second``), so that a stylesheet can colour it. All text is escaped.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compare import CellDiff, Change

COLUMNS = 5
"""name, status, the first cell's line, the second cell's line, the terms one adds or drops."""


def diff_table(diff: CellDiff) -> str:
    """The whole diff: a caption naming the cells, a header, then each section's rows."""
    caption = f"{diff.first} → {diff.second}" + (": no differences" if diff.identical else "")
    head = _row("th", ["name", "status", diff.first, diff.second, "terms"])
    body = []
    for section in diff.sections:
        body.append(f'<tr><th colspan="{COLUMNS}">{escape(section.title)}</th></tr>')
        body += [_change_row(change, diff.first, diff.second) for change in section.changes]
        body += [_same_row(name, line) for name, line in zip(section.same, section.same_lines, strict=True)]
    return f"<table><caption>{escape(caption)}</caption><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _change_row(change: Change, first: str, second: str) -> str:
    if change.before is None:
        return _row("td", [change.name, f"only in {second}", "", change.after, ""], "only-second")
    if change.after is None:
        return _row("td", [change.name, f"only in {first}", change.before, "", ""], "only-first")
    return _row("td", [change.name, "changed", change.before, change.after, change.terms()], "changed")


def _same_row(name: str, line: str) -> str:
    """A name the same in both cells: its one line across both cells' columns."""
    return f'<tr class="same"><td>{escape(name)}</td><td>same</td><td colspan="2">{escape(line)}</td><td></td></tr>'


def _row(tag: str, cells: list[str], status: str | None = None) -> str:
    mark = f' class="{status}"' if status else ""
    return f"<tr{mark}>" + "".join(f"<{tag}>{escape(text)}</{tag}>" for text in cells) + "</tr>"
