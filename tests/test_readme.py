"""The README's two commands are the ones the project really runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_starts_with_two_commands_and_ci_runs_the_second():
    install_and_run, test = readme_commands()[:2]
    assert "pip install" in install_and_run and "symgate check lstm" in install_and_run
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test in ci_lines
