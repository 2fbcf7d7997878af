"""Sanitizer builds (``SYMGATE_SANITIZE=1``): how they are made and loaded, and that a report
stops the process, which is what makes the sanitizer pass of ``.ci/run`` fail on any report."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import symgate as sg
from symgate.jit import compiler, sanitize, toolchain

ASAN = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
pytestmark = pytest.mark.skipif(not os.path.isabs(ASAN), reason="gcc has no AddressSanitizer runtime here")

SCRIPT = """\
import sys
import numpy as np
import symgate as sg
k = sg.build(sg.cells.get("elman_rnn"))
print(k.entry.manifest["sanitize"], flush=True)
params = k.init_params({"D": 3, "H": 4})
x = np.ones((5, 2, 3))
run = k.forward(x, params)
k.backward(run, {"h": np.ones((5, 2, 4))})
print("ran", flush=True)
if sys.argv[1] == "overflow":  # call the C directly with T larger than the arrays: never through the API
    lib, ffi = k.entry.load().lib, k.entry.load().ffi
    function = getattr(lib, k.interface.forward.function)
    work = np.empty(getattr(lib, k.interface.forward.work_function)(50, 2, 3, 4))
    arrays = [x, *params.values(), np.zeros((2, 4)), np.empty((5, 2, 4))]
    views = [ffi.from_buffer("double[]", a) for a in arrays]
    function(50, 2, 3, 4, ffi.NULL, *views, ffi.from_buffer("double[]", work))
    print("not caught", flush=True)
"""


def run(tmp_path, mode: str, preload: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYMGATE_SANITIZE": "1", "SYMGATE_CACHE_DIR": str(tmp_path), "ASAN_OPTIONS": "detect_leaks=0"}
    if preload:
        env["LD_PRELOAD"] = ASAN
    else:
        env.pop("LD_PRELOAD", None)
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, timeout=300)


def test_sanitized_kernels_run_clean_and_a_bad_access_stops_the_process_with_a_report(tmp_path):
    clean = run(tmp_path, "clean", preload=True)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.split() == ["True", "ran"]

    caught = run(tmp_path, "overflow", preload=True)
    assert caught.returncode != 0 and "not caught" not in caught.stdout
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in caught.stderr
    assert "sg_elman_rnn_float64_forward" in caught.stderr  # the report names the kernel


def test_a_sanitized_kernel_without_the_runtime_is_a_clear_error_not_an_abort(tmp_path):
    result = run(tmp_path, "clean", preload=False)
    assert result.returncode == 1 and "symgate.errors.BuildError" in result.stderr
    assert "ASan runtime does not come first" not in result.stderr  # the abort it would have been
    assert f"LD_PRELOAD={ASAN} ASAN_OPTIONS=detect_leaks=0" in result.stderr


def test_sanitizer_flags_are_part_of_the_flags_and_the_key(monkeypatch):
    monkeypatch.delenv("SYMGATE_SANITIZE", raising=False)
    plain = compiler.cache_key("cell a", "float64", "t")
    assert not set(sanitize.FLAGS) & set(toolchain.compile_flags())
    monkeypatch.setenv("SYMGATE_SANITIZE", "1")
    assert toolchain.compile_flags()[-len(sanitize.FLAGS) :] == sanitize.FLAGS
    assert "-fsanitize=address,undefined" in sanitize.FLAGS and "-fno-sanitize-recover=all" in sanitize.FLAGS
    assert compiler.cache_key("cell a", "float64", "t") != plain
    monkeypatch.setenv("SYMGATE_SANITIZE", "0")
    assert compiler.cache_key("cell a", "float64", "t") == plain


def test_a_bad_sanitize_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SYMGATE_SANITIZE", "yes")
    with pytest.raises(sg.BuildError, match=r"SYMGATE_SANITIZE must be 1 .* or 0, not 'yes'"):
        sg.build(sg.cells.get("elman_rnn"))


def test_kernels_built_in_this_run_are_sanitized_exactly_when_asked(tmp_path, monkeypatch):
    """In the sanitizer pass of .ci/run this proves the kernels under test are instrumented."""
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    kernel = sg.build(sg.parse("cell s\ninput x: D\nstate h: H\nh' = tanh(W @ x + U @ h)\n"))
    assert kernel.entry.manifest["sanitize"] is sanitize.enabled()
    assert ("-fsanitize=address,undefined" in kernel.entry.manifest["flags"]) is sanitize.enabled()
    if sanitize.enabled():
        assert sanitize.runtime_loaded()
