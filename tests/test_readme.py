"""The README's two commands are the ones the project really runs, and the cell text of the README and of
docs/ parses."""

from __future__ import annotations

import re
from pathlib import Path

import symgate as sg

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_starts_with_two_commands_and_ci_runs_the_second():
    install_and_run, test = readme_commands()[:2]
    assert "pip install" in install_and_run and "symgate check lstm" in install_and_run
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test in ci_lines


def fenced_blocks(page: Path) -> list[tuple[str, str]]:
    """Every fenced block of a page: (its language tag, its text), a block indented under a list
    item without its indentation."""
    blocks = re.findall(r"^( *)```(\w*)\n(.*?)^\1```$", page.read_text(), re.S | re.M)
    return [(tag, re.sub(rf"^{indent}", "", text, flags=re.M)) for indent, tag, text in blocks]


def test_every_cell_in_the_readme_and_docs_parses():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    cells = [
        (page, text)
        for page in pages
        for tag, text in fenced_blocks(page)
        if not tag and re.search(r"^cell \w+$", text, re.M)
    ]
    assert len(cells) >= 5
    for page, text in cells:
        sg.parse(text, source=page.relative_to(ROOT).as_posix())


def test_the_quickstart_shows_its_cell_file_as_the_file_holds_it():
    """The README shows examples/cells/lstm_cifg_nog.cell from its `cell` line on (the header
    comments above it give its source), so the two cannot drift apart."""
    (shown,) = [text for tag, text in fenced_blocks(ROOT / "README.md") if text.startswith("cell lstm_cifg_nog\n")]
    text = (ROOT / "examples" / "cells" / "lstm_cifg_nog.cell").read_text()
    assert text[text.index("\ncell lstm_cifg_nog\n") + 1 :] == shown
    assert "symgate check examples/cells/lstm_cifg_nog.cell" in (ROOT / "README.md").read_text()
