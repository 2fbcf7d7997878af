"""The README's two commands are the ones the project really runs."""

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


def readme_blocks() -> list[tuple[str, str]]:
    """Every fenced block of the README: (its language tag, its text)."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", (ROOT / "README.md").read_text(), re.S | re.M)


def test_every_cell_in_the_readme_parses():
    cells = [text for tag, text in readme_blocks() if not tag and re.search(r"^cell \w+$", text, re.M)]
    assert len(cells) >= 2
    for text in cells:
        sg.parse(text, source="README.md")
