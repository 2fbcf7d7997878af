"""Sections of ``benchmarks/RESULTS.md`` that one script writes and every other script keeps.

``RESULTS.md`` is ``run.py``'s main report followed by sections that other scripts (or
``run.py --configs layers``) write on their own, each between the lines
``<!-- NAME: begin -->`` and ``<!-- NAME: end -->``. Why: the scripts run at different times, and
re-running one must neither drop nor duplicate what the others measured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

SECTION = re.compile(r"<!-- (?P<name>[^\n]+?): begin -->\n.*?<!-- (?P=name): end -->\n?", re.DOTALL)


def marked(name: str, body: str) -> str:
    """``body`` between the begin and end lines of section ``name``; a body that has them already
    (a section taken from another report, as ``split`` gives it) is not wrapped in them twice."""
    begin, end, inner = f"<!-- {name}: begin -->", f"<!-- {name}: end -->", body.strip()
    if inner.startswith(begin) and inner.endswith(end):
        inner = inner[len(begin) : -len(end)].strip()
    return f"{begin}\n{inner}\n{end}\n"


def split(text: str) -> tuple[str, dict[str, str]]:
    """The text outside every section, and each section (markers included) by name, in file order."""
    found = {m["name"]: m[0] if m[0].endswith("\n") else m[0] + "\n" for m in SECTION.finditer(text)}
    return SECTION.sub("", text), found


def join(main: str, sections: Mapping[str, str]) -> str:
    parts = [main.strip(), *(s.strip() for s in sections.values())]
    return "\n\n".join(p for p in parts if p) + "\n"


def write_section(path: Path, name: str, body: str) -> None:
    """Puts section ``name`` in ``path`` in place of its previous text, or at the end."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    main, found = split(old)
    found[name] = marked(name, body)
    path.write_text(join(main, found), encoding="utf-8")


def write_report(path: Path, main: str | None, own: Mapping[str, str]) -> None:
    """``main`` (None: keep the file's) and the sections ``own`` (name -> body) right after it,
    then every other section already in ``path``, unchanged and in its order."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    old_main, found = split(old)
    sections = {name: marked(name, body) for name, body in own.items()}
    sections |= {name: text for name, text in found.items() if name not in sections}
    path.write_text(join(old_main if main is None else main, sections), encoding="utf-8")
