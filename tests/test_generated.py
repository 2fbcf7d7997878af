"""Golden files: generated/ holds the C of every built-in cell, exactly as the code renders it, and
generated/export/ the standalone library of the LSTM in float32 (``symgate export lstm --dtype float32``).

To accept a change in the generated C:  SYMGATE_REGENERATE=1 python -m pytest tests/test_generated.py
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

import symgate as sg
from symgate.codegen.render import KernelSource, runtime_header
from symgate.export import render_export

GENERATED = Path(__file__).resolve().parent.parent / "generated"
EXPORTED = GENERATED / "export"
REGENERATE = os.environ.get("SYMGATE_REGENERATE") == "1"
DTYPES = ("float64", "float32")
CASES = [(name, dtype) for name in sg.cells.names() for dtype in DTYPES]
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror")


@cache
def rendered(name: str, dtype: str) -> KernelSource:
    """The C of one built-in cell, rendered once for both tests that read it."""
    return sg.generate(sg.cells.get(name), dtype)


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_generated_files_match_what_the_code_renders(name, dtype):
    source = rendered(name, dtype)
    for suffix, text in ((".c", source.c_source), (".h", source.header)):
        _compare(GENERATED / f"{source.stem}{suffix}", text)


def test_exported_lstm_matches_what_the_code_renders():
    for name, text in render_export("lstm", dtype="float32").files.items():
        _compare(EXPORTED / name, text)


def _compare(path: Path, text: str) -> None:
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return
    committed = path.read_text() if path.exists() else ""
    if committed != text:
        diff = "".join(
            list(difflib.unified_diff(committed.splitlines(True), text.splitlines(True), str(path), "rendered"))[:80]
        )
        pytest.fail(
            f"{path.name} differs from what the code renders now.\n{diff}\n"
            "If the change is intended: SYMGATE_REGENERATE=1 python -m pytest tests/test_generated.py"
        )


def test_generated_holds_nothing_stale():
    expected = {f"{name}_{dtype}{suffix}" for name, dtype in CASES for suffix in (".c", ".h")}
    assert {p.name for p in GENERATED.iterdir()} == expected | {"export"}
    assert {p.name for p in EXPORTED.iterdir()} == set(render_export("lstm", dtype="float32").files)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_generated_c_compiles_without_warnings(name, dtype, tmp_path):
    source = rendered(name, dtype)
    (tmp_path / f"{source.stem}.c").write_text(source.c_source)
    (tmp_path / f"{source.stem}.h").write_text(source.header)
    for filename in (f"{source.stem}.c", f"{source.stem}.h"):
        result = check_strictly(tmp_path, filename)
        assert result.returncode == 0, result.stderr


def check_strictly(directory: Path, filename: str) -> subprocess.CompletedProcess:
    """gcc's verdict on one generated file under the strict flags (``STRICT``), without compiling it.

    ``-fsyntax-only`` runs the whole C front end, so every diagnostic of the C language and of the
    strict flags is issued (unused or shadowed names, sign and type mixes, anything not C99), but no
    code is generated: the kernels are compiled once, by the kernel cache, for the tests that run
    them. What only the optimizer can see (``-Wmaybe-uninitialized``) is therefore not checked here.
    """
    command = ["gcc", *STRICT, f"-I{runtime_header().parent}", "-fsyntax-only", filename]
    return subprocess.run(command, cwd=directory, capture_output=True, text=True)
