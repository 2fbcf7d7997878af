"""The build cache: keyed entries, reuse without recompiling, clear build errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig

import pytest
from conftest import LSTM

import symgate as sg
import symgate.jit.cache as cache_module
import symgate.jit.compiler as build_module


def test_second_build_reuses_the_entry_without_compiling(monkeypatch):
    cell = sg.parse(LSTM)
    first = sg.build(cell)

    def no_compiler(*args, **kwargs):
        raise AssertionError("the compiler ran for a cached kernel")

    monkeypatch.setattr(build_module.subprocess, "run", no_compiler)
    monkeypatch.setattr(cache_module, "_loaded", {})
    monkeypatch.setattr(cache_module, "_verified", set())
    second = sg.build(cell)
    assert second.entry.path == first.entry.path
    assert second.source == first.source


def test_a_new_process_loads_the_cached_kernel(kernel_cache):
    sg.build(sg.cells.get("elman_rnn"))
    script = (
        "import symgate as sg, symgate.jit.compiler as b\n"
        "b.compiler = None  # any compile attempt would fail\n"
        "k = sg.build(sg.cells.get('elman_rnn'))\n"
        "print(k.entry.path)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert str(kernel_cache) in result.stdout


def test_cache_key_covers_dtype_text_and_compiler(monkeypatch):
    key = build_module.cache_key("cell a", "float64", "t")
    assert key != build_module.cache_key("cell a", "float32", "t")
    assert key != build_module.cache_key("cell b", "float64", "t")
    assert key != build_module.cache_key("cell a", "float64", "u")
    monkeypatch.setenv("CC", "gcc -m64")
    assert key != build_module.cache_key("cell a", "float64", "t")


def test_missing_compiler_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(sg.BuildError, match="apt-get install gcc"):
        sg.build(sg.cells.get("elman_rnn"))


def test_missing_python_headers_say_which_package_to_install(monkeypatch, tmp_path):
    """Python's include directory empty, as where the interpreter is installed without its -dev package."""
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "include").mkdir()
    paths = sysconfig.get_paths()
    monkeypatch.setattr(sysconfig, "get_paths", lambda *args, **kwargs: {**paths, "include": str(tmp_path / "include")})
    with pytest.raises(sg.BuildError) as info:
        sg.build(sg.cells.get("elman_rnn"))
    message = str(info.value).splitlines()[0]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert re.search(
        r"Python's C headers are not installed \(.*(Python|pyconfig)\.h'?(: No such file| file not found)", message
    )
    assert f"apt-get install python{version}-dev" in message and "dnf install python3-devel" in message
    assert "conda install" in message and "pyenv install" in message


def test_failed_compile_carries_command_and_output(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "gcc -DSYMGATE_TEST_BREAK=1 -include /nonexistent/header.h")
    with pytest.raises(sg.BuildError) as info:
        sg.build(sg.cells.get("elman_rnn"))
    assert "gcc" in info.value.command and "nonexistent" in info.value.output
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # nothing published
    assert not list(tmp_path.glob(".build*"))  # and the temporary directory is gone


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path / "here"))
    assert cache_module.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("SYMGATE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_module.cache_dir() == tmp_path / "xdg" / "symgate"


def test_a_call_to_an_undeclared_function_fails_the_build(tmp_path, monkeypatch):
    """Not a warning and a kernel that crashes when run (mkl_somatcopy, called without its
    header, took its arguments as ints and wrote out of bounds)."""
    import dataclasses

    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    cell = sg.cells.get("elman_rnn")
    source = sg.generate(cell)
    broken = dataclasses.replace(source, c_source=source.c_source + "\nvoid sg_extra(void) { undeclared_fill(7); }\n")
    with pytest.raises(sg.BuildError) as info:
        build_module.compile_entry(broken, build_module.cache_key("undeclared " + cell.text(), "float64", "t"))
    assert re.search(r"implicit declaration of function .undeclared_fill.", info.value.output)  # quotes vary
