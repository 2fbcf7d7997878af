"""The documentation's code runs as written.

Every fenced Python block on the pages of ``PAGES`` runs, each in fresh globals and an empty
temporary directory, importing this checkout's ``symgate`` and building into the test session's
kernel cache (tests/conftest.py), so a snippet that stops working, or that leans on a name it
never defines, fails here with its text (numbered) and its output. A page's blocks run one after
another in one fresh interpreter, which imports PyTorch once for all of them: one interpreter a
block took four times as long. The failure names each failed block by its page and the line of
its opening fence (``docs/pytorch.md:42``).

A block is skipped only where the line before its fence says so, with a reason::

    <!-- docs-test: skip (needs a GPU) -->

Any other ``docs-test`` comment, a skip without a reason, or a marker not followed by a fence
fails :func:`test_every_page_is_well_formed`.

To take in more pages (all of docs/ and the whole README, issue 23), extend ``PAGES``; to run
shell blocks too, add their language to ``LANGUAGES`` and a way to run them to the harness.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds for one page's blocks: the slowest compiles a model with torch.compile


@dataclass(frozen=True)
class Page:
    """A Markdown file of the repository, or one section of it: the text under the heading
    ``section`` (without its #s), down to the next heading of the same level or above."""

    path: str
    section: str | None = None


PAGES = [
    Page("docs/pytorch.md"),
    Page("README.md", "Training in PyTorch"),
]
LANGUAGES = ("python",)  # the blocks run; a shell block would need a runner of its own


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language and text, and the stated reason to skip it."""

    page: str
    line: int  # of the opening fence, from 1
    language: str
    text: str
    skip: str | None


FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>`{3,})(?P<language>[\w+-]*)\s*$")
HEADING = re.compile(r"^(?P<level>#{1,6}) +(?P<title>.+?)\s*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:(?P<directive>.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s*\((?P<reason>.*\S.*)\)\s*$")


def read_page(page: Page) -> tuple[list[Block], list[str]]:
    """The page's fenced blocks (every language), and what is wrong with its markup."""
    return read_markdown((ROOT / page.path).read_text(), page)


def read_markdown(text: str, page: Page) -> tuple[list[Block], list[str]]:
    """The fenced blocks of ``text``, the Markdown of ``page`` (or of its section), and what is
    wrong with its markup. Headings are read outside fences only (a ``# comment`` in a block is
    no heading). A block indented under a list item loses that indentation."""
    lines = text.splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    inside = page.section is None
    section_level = 0
    fence = None  # (indent, ticks, language, line, skip) of the open fence
    body: list[str] = []
    marker: tuple[int, str] | None = None  # (line, reason) of a skip marker waiting for its fence
    for number, line in enumerate(lines, start=1):
        if fence is not None:
            indent, ticks, language, start, skip = fence
            closing = FENCE.match(line)
            if closing and not closing["language"] and len(closing["ticks"]) >= len(ticks):
                if inside:
                    code = "\n".join(row[len(indent) :] if row.startswith(indent) else row for row in body)
                    blocks.append(Block(page.path, start, language, code + "\n", skip))
                fence, body = None, []
            else:
                body.append(line)
            continue
        opening = FENCE.match(line)
        heading = HEADING.match(line)
        if heading and page.section is not None:
            level = len(heading["level"])
            if heading["title"] == page.section:
                inside, section_level = True, level
            elif inside and level <= section_level:
                inside = False
        if marker is not None and not opening:
            problems.append(f"{page.path}:{marker[0]}: a docs-test marker must be the line just before a fence")
            marker = None
        if opening:
            skip = None
            if marker is not None:
                skip, marker = marker[1], None
            fence = (opening["indent"], opening["ticks"], opening["language"], number, skip)
            continue
        found = MARKER.match(line)
        if found:
            skip_match = SKIP.match(found["directive"])
            if skip_match is None:
                problems.append(
                    f"{page.path}:{number}: {line.strip()!r} is not a docs-test marker; "
                    f"write <!-- docs-test: skip (the reason) -->"
                )
            else:
                marker = (number, skip_match["reason"].strip())
    if fence is not None:
        problems.append(f"{page.path}:{fence[3]}: the fence opened here is never closed")
    if marker is not None:
        problems.append(f"{page.path}:{marker[0]}: a docs-test marker must be the line just before a fence")
    if page.section is not None and section_level == 0:
        problems.append(f"{page.path}: no heading {page.section!r}")
    return blocks, problems


def test_every_page_is_well_formed():
    """Every page (or section) exists, has a block to run, and its markers are markers."""
    for page in PAGES:
        blocks, problems = read_page(page)
        assert not problems, "\n".join(problems)
        where = page.path + (f', section "{page.section}"' if page.section else "")
        assert any(b.language in LANGUAGES for b in blocks), f"{where} has no block in {sorted(LANGUAGES)}"


def numbered(text: str) -> str:
    return "\n".join(f"{n:4} | {row}" for n, row in enumerate(text.splitlines(), start=1))


HARNESS = """\
import contextlib, io, json, os, sys, tempfile, traceback
blocks = json.load(open(sys.argv[1]))
failures = {}
for block in blocks:
    os.chdir(tempfile.mkdtemp(dir=sys.argv[2]))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            exec(compile(block["text"], block["where"], "exec"), {"__name__": "__main__"})
    except SystemExit as stop:
        if stop.code not in (None, 0):
            failures[block["where"]] = printed.getvalue() + traceback.format_exc()
    except BaseException:
        failures[block["where"]] = printed.getvalue() + traceback.format_exc()
json.dump(failures, open(sys.argv[3], "w"))
"""


@pytest.mark.parametrize("page", PAGES, ids=[p.path + (f"#{p.section}" if p.section else "") for p in PAGES])
def test_page_runs_as_written(page: Page, tmp_path: Path, kernel_cache: Path):
    """The page's blocks, one after another in one fresh interpreter (PyTorch imported once for
    all of them), each in fresh globals and its own empty directory."""
    blocks = [b for b in read_page(page)[0] if b.language in LANGUAGES]
    runnable = [b for b in blocks if b.skip is None]
    assert runnable, f"{page.path}: every block is skipped"
    given = [{"where": f"{b.page}:{b.line}", "text": b.text} for b in runnable]
    (tmp_path / "blocks.json").write_text(json.dumps(given))
    (tmp_path / "harness.py").write_text(HARNESS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "SYMGATE_CACHE_DIR": str(kernel_cache),
    }
    command = [
        sys.executable,
        str(tmp_path / "harness.py"),
        str(tmp_path / "blocks.json"),
        str(tmp_path),
        str(tmp_path / "failures.json"),
    ]
    try:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{page.path}: its {len(runnable)} blocks did not finish in {TIMEOUT} s")
    assert done.returncode == 0, f"{page.path}: the harness failed:\n{done.stdout}{done.stderr}"
    failures = json.loads((tmp_path / "failures.json").read_text())
    by_place = {f"{b.page}:{b.line}": b for b in runnable}
    assert not failures, "\n\n".join(
        f"the block at {where} failed:\n{numbered(by_place[where].text)}\n--- output\n{text}"
        for where, text in failures.items()
    )
    print(f"{page.path}: {len(runnable)} blocks ran, {len(blocks) - len(runnable)} skipped")


def test_markers_sections_and_indented_blocks_are_read_as_meant():
    text = """# Page
```python
print("outside the section")
```
## Wanted
<!-- docs-test: skip (needs a GPU) -->
```python
# not a heading
print(1)
```
* a list item:

  ```python
  print(2)
  ```
### A subsection is inside
```sh
echo 3
```
## Next
```python
print(4)
```
"""
    blocks, problems = read_markdown(text, Page("page.md", "Wanted"))
    assert not problems
    assert [(b.line, b.language, b.text, b.skip) for b in blocks] == [
        (7, "python", "# not a heading\nprint(1)\n", "needs a GPU"),
        (13, "python", "print(2)\n", None),
        (17, "sh", "echo 3\n", None),
    ]
    bad = "<!-- docs-test: skip -->\n```python\n```\n<!-- docs-test: skip (why) -->\n\n```python\n```\n```sh\n"
    _, problems = read_markdown(bad, Page("bad.md", "Missing"))
    assert problems == [
        "bad.md:1: '<!-- docs-test: skip -->' is not a docs-test marker; write <!-- docs-test: skip (the reason) -->",
        "bad.md:4: a docs-test marker must be the line just before a fence",
        "bad.md:8: the fence opened here is never closed",
        "bad.md: no heading 'Missing'",
    ]
