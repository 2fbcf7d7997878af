"""The documentation's code runs as written.

Every page is covered: README.md and every ``docs/*.md`` (found by glob, so a new page needs no
edit here). Two kinds of fenced block run:

* ``python``: a page's Python blocks run one after another in one fresh interpreter, which
  imports PyTorch once for all of them (one interpreter a block took four times as long), each
  block in fresh globals;
* ``sh`` and ``bash``: each block is a script run by ``bash -e -o pipefail``, in a process of its
  own. ``console`` blocks are transcripts (a ``$ `` prompt, then what the command printed) and
  are not run; neither are blocks of cell text (no language), C or anything else.

Every block, of either kind, runs in an empty temporary directory of its own holding a copy of
the repository's ``examples/`` (so ``examples/cells/lstm_cifg_nog.cell`` is there, and a block
that writes files never touches the checkout). ``symgate`` and ``python`` on ``PATH`` are shims
running this checkout's ``symgate`` (``python -m symgate``, with ``PYTHONPATH`` at the checkout)
under the interpreter running the tests, and every block builds into the test session's kernel
cache (``SYMGATE_CACHE_DIR``, tests/conftest.py). A snippet that stops working, or that leans on
a name it never defines, fails here with its text (numbered) and its output. The failure names
each failed block by its page and the line of its opening fence (``docs/pytorch.md:42``). Each
page's test prints how many of its blocks ran and how many were skipped, and
:func:`test_every_page_is_well_formed` prints the totals (``pytest -s`` or ``-rA`` shows them).

A block is skipped only where the line before its fence says so, with a reason::

    <!-- docs-test: skip (installs packages) -->

Any other ``docs-test`` comment, a skip without a reason, or a marker not followed by a fence
fails :func:`test_every_page_is_well_formed`. Blocks that install packages, run the test suite
itself, or run for minutes are skipped so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds for one page's blocks: the slowest compiles a model with torch.compile
SHELL_TIMEOUT = 300  # seconds for one shell block


@dataclass(frozen=True)
class Page:
    """A Markdown file of the repository, or one section of it: the text under the heading
    ``section`` (without its #s), down to the next heading of the same level or above."""

    path: str
    section: str | None = None


def all_pages() -> list[Page]:
    """README.md and every page of docs/, whole."""
    return [Page("README.md"), *(Page(p.relative_to(ROOT).as_posix()) for p in sorted((ROOT / "docs").glob("*.md")))]


PAGES = all_pages()
PYTHON = ("python",)
SHELL = ("sh", "bash")  # run by bash; ``console`` blocks are transcripts, not run
LANGUAGES = PYTHON + SHELL


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
    """Every page exists, its markers are markers, and a page with code runs some of it. Prints
    how many blocks the pages hold to run and to skip."""
    ran = skipped = 0
    for page in PAGES:
        blocks, problems = read_page(page)
        assert not problems, "\n".join(problems)
        code = [b for b in blocks if b.language in LANGUAGES]
        assert not code or any(b.skip is None for b in code), f"{page.path}: every block is skipped"
        ran += sum(b.skip is None for b in code)
        skipped += sum(b.skip is not None for b in code)
    assert ran > 0
    print(f"docs: {len(PAGES)} pages, {ran} blocks to run, {skipped} skipped")


def numbered(text: str) -> str:
    return "\n".join(f"{n:4} | {row}" for n, row in enumerate(text.splitlines(), start=1))


HARNESS = """\
import contextlib, io, json, os, sys, traceback
failures = {}
for block in json.load(open(sys.argv[1])):
    os.chdir(block["directory"])
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            exec(compile(block["text"], block["where"], "exec"), {"__name__": "__main__"})
    except BaseException as stop:
        if not (isinstance(stop, SystemExit) and stop.code in (None, 0)):
            failures[block["where"]] = printed.getvalue() + traceback.format_exc()
json.dump(failures, open(sys.argv[2], "w"))
"""


def block_directory(parent: Path) -> Path:
    """An empty directory of the block's own, holding a copy of the repository's examples/."""
    where = Path(tempfile.mkdtemp(dir=parent))
    shutil.copytree(ROOT / "examples", where / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return where


def docs_environment(tmp_path: Path, kernel_cache: Path) -> dict[str, str]:
    """The environment of every block: this checkout first on PYTHONPATH, the session's kernel
    cache, and on PATH shims for ``symgate`` and ``python`` running this interpreter."""
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    for name, command in [("symgate", f'"{sys.executable}" -m symgate'), ("python", f'"{sys.executable}"')]:
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(shims), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "SYMGATE_CACHE_DIR": str(kernel_cache),
    }


def run_python(blocks: list[Block], tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """The blocks one after another in one fresh interpreter: {place: output} of those that failed."""
    given = [
        {"where": f"{b.page}:{b.line}", "text": b.text, "directory": str(block_directory(tmp_path))} for b in blocks
    ]
    harness, given_file, failures_file = tmp_path / "harness.py", tmp_path / "blocks.json", tmp_path / "failures.json"
    given_file.write_text(json.dumps(given))
    harness.write_text(HARNESS)
    command = [sys.executable, str(harness), str(given_file), str(failures_file)]
    try:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{blocks[0].page}: its {len(blocks)} Python blocks did not finish in {TIMEOUT} s")
    assert done.returncode == 0, f"{blocks[0].page}: the harness failed:\n{done.stdout}{done.stderr}"
    return json.loads(failures_file.read_text())


def run_shell(block: Block, tmp_path: Path, env: dict[str, str]) -> str | None:
    """The block as a bash script in a directory of its own: None, or its output if it failed."""
    where = block_directory(tmp_path)
    script = where.parent / f"{where.name}.sh"
    script.write_text(block.text)
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", str(script)],
            cwd=where,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as stop:
        return f"did not finish in {SHELL_TIMEOUT} s\n{stop.stdout or ''}{stop.stderr or ''}"
    if done.returncode != 0:
        return f"exit status {done.returncode}\n{done.stdout}{done.stderr}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=[p.path for p in PAGES])
def test_page_runs_as_written(page: Page, tmp_path: Path, kernel_cache: Path):
    """The page's Python blocks, one after another in one fresh interpreter (PyTorch imported once
    for all of them), each in fresh globals; then its shell blocks, each by bash; every block in
    its own directory with a copy of examples/."""
    blocks = [b for b in read_page(page)[0] if b.language in LANGUAGES]
    if not blocks:
        pytest.skip(f"{page.path} has no Python or shell block")
    runnable = [b for b in blocks if b.skip is None]
    env = docs_environment(tmp_path, kernel_cache)
    failures: dict[str, str] = {}
    python = [b for b in runnable if b.language in PYTHON]
    if python:
        failures.update(run_python(python, tmp_path, env))
    for block in runnable:
        if block.language in SHELL:
            failed = run_shell(block, tmp_path, env)
            if failed is not None:
                failures[f"{block.page}:{block.line}"] = failed
    by_place = {f"{b.page}:{b.line}": b for b in runnable}
    assert not failures, "\n\n".join(
        f"the block at {where} failed:\n{numbered(by_place[where].text)}\n--- output\n{text}"
        for where, text in failures.items()
    )
    counts = f"{len(python)} Python, {len(runnable) - len(python)} shell"
    print(f"{page.path}: {len(runnable)} blocks ran ({counts}), {len(blocks) - len(runnable)} skipped")


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
