"""Products through BLAS (scipy-openblas32, and MKL where installed) give the same gradients as
the plain loops.

Products of at least SG_BLAS_MIN multiply-adds go to OpenBLAS; ``SYMGATE_BLAS_MIN=0`` sends every
product there, so the gradient check covers the BLAS path at sizes where finite differences are
cheap, while the rest of the suite (at 16384, see conftest.py) covers the loops. With
``SYMGATE_BLAS=mkl``, products of at least SG_MKL_MIN go to MKL, with the matrices of the
products made at every step packed once per call; ``SYMGATE_MKL_MIN=0`` sends every product there.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import symgate as sg
from symgate.codegen.render import runtime_header
from symgate.jit import toolchain

pytestmark = pytest.mark.skipif(not toolchain.blas_flags(), reason="scipy-openblas32 is a dependency of symgate")
CELLS = ["lstm", "gru_pytorch", "lstmp_pytorch", "r2rt_normalized_prototype", "lstm_greff_fgr", "mgu"]
HAS_MKL = bool(toolchain._library_flags("mkl"))
NO_MKL = "MKL's wheels (a dependency on Linux x86-64) are not installed"
LIBRARIES = ["openblas", pytest.param("mkl", marks=pytest.mark.skipif(not HAS_MKL, reason=NO_MKL))]
# the variable that sends every product to the library, and the flag it becomes
EVERY_PRODUCT = {"openblas": ("SYMGATE_BLAS_MIN", "-DSG_BLAS_MIN=0"), "mkl": ("SYMGATE_MKL_MIN", "-DSG_MKL_MIN=0")}


@pytest.fixture(params=LIBRARIES)
def blas_everywhere(request, monkeypatch, tmp_path):
    """Every product through one library, named by the fixture's value."""
    monkeypatch.setenv("SYMGATE_BLAS", request.param)
    monkeypatch.setenv(EVERY_PRODUCT[request.param][0], "0")
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    return request.param


@pytest.mark.parametrize("name", CELLS)
def test_gradients_through_blas_match_finite_differences(name, blas_everywhere):
    cell = sg.cells.get(name)
    sizes = {d: s for d, s in {"D": 3, "H": 5, "P": 2}.items() if d in cell.dims}
    report = sg.gradcheck(cell, sizes, steps=4, batch=3, float32=True)
    assert report.ok, str(report)
    assert EVERY_PRODUCT[blas_everywhere][1] in toolchain.compile_flags()


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-10), ("float32", 2e-4)])
def test_blas_and_loops_agree_above_the_threshold(monkeypatch, tmp_path, library, dtype, rtol):
    """At a size above the default threshold the paths run the same cell and give the same numbers
    (float32 to its rounding: the paths sum in different orders): loops, then OpenBLAS, then (in
    a build with MKL) MKL for every product."""
    cell = sg.cells.get("lstm")
    sizes = {"D": 64, "H": 128}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 64)).astype(dtype)
    dh = rng.standard_normal((3, 4, 128)).astype(dtype)
    results = []
    monkeypatch.setenv("SYMGATE_BLAS", library)
    never = "1000000000"
    for blas_min, mkl_min in ((never, never), ("0", never), ("0", "0")):
        monkeypatch.setenv("SYMGATE_BLAS_MIN", blas_min)
        monkeypatch.setenv("SYMGATE_MKL_MIN", mkl_min)
        monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path / f"{blas_min}-{mkl_min}"))
        kernel = sg.build(cell, dtype)
        params = kernel.init_params(sizes, seed=1)
        run = kernel.forward(x, params)
        grads = kernel.backward(run, {"h": dh})
        results.append((run.states["h"], grads.params["U_f"], grads.params["W_o"], grads.inputs["x"]))
    for loops, *blas in zip(*results, strict=True):
        scale = np.abs(loops).max()
        for through_blas in blas:
            np.testing.assert_allclose(through_blas, loops, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize(
    ("name", "batch", "steps", "inputs"), [("lstm", 1, 3, 3), ("gru_pytorch", 3, 2, 3), ("lstm", 2, 1, 16)]
)
def test_gradients_through_gemv_rows_match_finite_differences(
    monkeypatch, tmp_path, library, name, batch, steps, inputs
):
    """A step of at most SG_GEMV_ROWS samples has its products made by gemv a row at a time (H = 20:
    the recurrent matrices have 1200 or 1600 numbers, over SG_GEMV_MIN); with one step of two
    samples the input's products over every step's rows (T * B of them, by the stacked input
    matrices transposed: 80 x 16 numbers) go that way too."""
    monkeypatch.setenv("SYMGATE_BLAS", library)
    monkeypatch.setenv("SYMGATE_GEMV_ROWS", "3")
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    report = sg.gradcheck(sg.cells.get(name), {"D": inputs, "H": 20}, steps=steps, batch=batch, float32=True)
    assert report.ok, str(report)
    assert "-DSG_GEMV_ROWS=3" in toolchain.compile_flags()


@pytest.mark.parametrize("batch", [1, 2, 3, 4])
def test_gemv_rows_agree_with_the_other_paths(monkeypatch, tmp_path, batch):
    """The same float64 run and gradients with gemv for steps of few samples as without it (loops
    below SG_BLAS_MIN, gemm above), sequences of different lengths included, whose last steps run
    fewer samples than the first."""
    cell = sg.cells.get("lstm_pytorch")
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((5, batch, 8))
    dh = rng.standard_normal((5, batch, 32))
    lengths = [5 - b for b in range(batch)]
    results = []
    for rows in ("0", "3"):
        monkeypatch.setenv("SYMGATE_GEMV_ROWS", rows)
        monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path / rows))
        kernel = sg.build(cell, "float64")
        params = kernel.init_params({"D": 8, "H": 32}, seed=1)
        for given in (None, lengths):
            run = kernel.forward(x, params, lengths=given)
            grads = kernel.backward(run, {"h": dh})
            results.append((run.states["h"], grads.params["W_hi"], grads.inputs["x"], grads.init["h"]))
    half = len(results) // 2
    for without, with_gemv in zip(results[:half], results[half:], strict=True):
        for a, b in zip(without, with_gemv, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())


@pytest.mark.parametrize(("core", "rows"), [("SkylakeX", 0), ("Haswell", 3), ("Zen", 3), ("", 3)])
def test_gemv_rows_follow_the_core_unless_given(monkeypatch, core, rows):
    monkeypatch.delenv("SYMGATE_GEMV_ROWS", raising=False)
    monkeypatch.setenv("SYMGATE_BLAS", "openblas")
    monkeypatch.setattr(toolchain, "blas_core", lambda: core)
    assert toolchain.gemv_rows() == rows
    assert f"-DSG_GEMV_ROWS={rows}" in toolchain.compile_flags()  # and so in the cache key
    monkeypatch.setenv("SYMGATE_GEMV_ROWS", "0")
    assert toolchain.gemv_rows() == 0
    monkeypatch.setenv("SYMGATE_GEMV_ROWS", "three")
    with pytest.raises(sg.BuildError, match="SYMGATE_GEMV_ROWS must be a whole number of rows, not 'three'"):
        toolchain.compile_flags()


@pytest.mark.parametrize(("core", "threshold"), [("SkylakeX", 1), ("Haswell", 16384), ("Zen", 16384), ("", 16384)])
def test_the_threshold_follows_the_core_openblas_runs_on_unless_given(monkeypatch, core, threshold):
    monkeypatch.delenv("SYMGATE_BLAS_MIN")
    monkeypatch.setattr(toolchain, "blas_core", lambda: core)
    assert toolchain.blas_threshold() == threshold
    assert f"-DSG_BLAS_MIN={threshold}" in toolchain.compile_flags()  # and so in the cache key
    monkeypatch.setenv("SYMGATE_BLAS_MIN", "77")
    assert toolchain.blas_threshold() == 77


def test_the_core_is_the_one_openblas_reports():
    probe = "from symgate.jit import toolchain; print(toolchain.blas_core())"
    core = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert core  # e.g. SkylakeX or Haswell
    forced = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OPENBLAS_CORETYPE": "Haswell"},
    ).stdout.strip()
    assert forced == "Haswell"  # the user's OPENBLAS_CORETYPE is respected


def test_a_bad_threshold_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SYMGATE_BLAS_MIN", "lots")
    with pytest.raises(sg.BuildError, match="SYMGATE_BLAS_MIN"):
        toolchain.compile_flags()


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_blas_and_vector_math_branches_compile_without_warnings(dtype, library, tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGATE_BLAS", library)
    source = tmp_path / "kernel.c"
    source.write_text(sg.generate(sg.cells.get("lstmp_pytorch"), dtype).c_source)
    defines = [flag for flag in toolchain.blas_flags() if flag.startswith(("-I", "-D"))]
    strict = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", f"-I{runtime_header().parent}", *defines]
    # some warnings need the optimizer, and the vectorizer as the kernels are built
    optimized = [*toolchain.COMPILE_FLAGS, *toolchain.vector_math_flags(), *toolchain.vector_width_flags()]
    optimized = [flag for flag in optimized if flag not in ("-shared", "-lmvec")]
    command = [*strict, *optimized, "-c", str(source), "-o", str(tmp_path / "kernel.o")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not HAS_MKL, reason=NO_MKL)
def test_a_large_step_product_has_its_matrices_packed_once_for_mkl(monkeypatch, tmp_path):
    """Above SG_MKL_MIN the product made at every step reads its matrices as MKL packed them
    before the time loop; the results equal OpenBLAS's to float32 rounding."""
    cell = sg.cells.get("lstm_pytorch")
    source = sg.generate(cell, "float32").c_source
    assert "sg_pack_weights(B, h_products_width, H, h_weights" in source  # before the loop
    assert "sg_gemm_packed(step_batch, h_products_width, H, h_row" in source  # in it
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 16, 40)).astype("float32")
    dh = rng.standard_normal((3, 16, 48)).astype("float32")
    results = []
    for library in ("openblas", "mkl"):
        monkeypatch.setenv("SYMGATE_BLAS", library)
        monkeypatch.setenv("SYMGATE_MKL_MIN", "30000")  # the step products are 16 x 192 x 48 = 147456
        monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path / library))
        kernel = sg.build(cell, "float32")
        params = kernel.init_params({"D": 40, "H": 48}, seed=3)
        run = kernel.forward(x, params)
        grads = kernel.backward(run, {"h": dh})
        results.append((run.states["h"], grads.params["W_hi"], grads.inputs["x"], grads.init["h"]))
    for openblas, mkl in zip(*results, strict=True):
        np.testing.assert_allclose(mkl, openblas, rtol=2e-4, atol=2e-4 * np.abs(openblas).max())


def test_the_blas_library_is_chosen_by_symgate_blas(monkeypatch):
    monkeypatch.setenv("SYMGATE_BLAS", "none")
    assert toolchain.blas_library() == "none"
    assert not any(flag.startswith(("-DSYMGATE_BLAS", "-DSYMGATE_MKL", "-DSG_")) for flag in toolchain.compile_flags())
    monkeypatch.setenv("SYMGATE_BLAS", "OpenBLAS")
    assert toolchain.blas_library() == "openblas"
    assert "-DSYMGATE_BLAS" in toolchain.compile_flags()
    assert "-DSYMGATE_MKL" not in toolchain.compile_flags()
    monkeypatch.delenv("SYMGATE_BLAS")
    monkeypatch.setattr(toolchain, "cpu_vendor", lambda: "GenuineIntel")
    assert toolchain.blas_library() == ("mkl" if HAS_MKL else "openblas")  # MKL when installed, on Intel's CPUs
    monkeypatch.setattr(toolchain, "cpu_vendor", lambda: "AuthenticAMD")
    assert toolchain.blas_library() == "openblas"  # where OpenBLAS's kernels made the large products faster
    assert "-DSG_THREADS_MIN=1048576" in toolchain.compile_flags()


def test_a_bad_or_missing_blas_library_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SYMGATE_BLAS", "atlas")
    with pytest.raises(sg.BuildError, match="SYMGATE_BLAS must be one of mkl, openblas, none, not 'atlas'"):
        toolchain.compile_flags()
    monkeypatch.setenv("SYMGATE_BLAS", "mkl")
    monkeypatch.setattr(toolchain, "_library_flags", lambda library: ())  # as without MKL's wheels
    with pytest.raises(sg.BuildError, match="SYMGATE_BLAS=mkl, but it needs mkl, mkl-include"):
        toolchain.compile_flags()


@pytest.mark.skipif(not HAS_MKL, reason=NO_MKL)
def test_a_bad_mkl_threshold_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SYMGATE_BLAS", "mkl")
    monkeypatch.setenv("SYMGATE_MKL_MIN", "2**20")
    with pytest.raises(sg.BuildError, match="SYMGATE_MKL_MIN must be a whole number"):
        toolchain.compile_flags()


THREADS_PROBE = """
import os
import symgate as sg
from symgate.jit import toolchain
library = toolchain.openblas()
before = library.scipy_openblas_get_num_threads()
sg.build(sg.cells.get("lstm"), "float32")
print(before, library.scipy_openblas_get_num_threads())
"""


def openblas_untouched(tmp_path, **symgate: str) -> dict[str, str]:
    """This process's environment without OpenBLAS's own settings (the user's choices), with a
    kernel cache in ``tmp_path`` and symgate's variables ``symgate``."""
    settings = (*toolchain.OPENBLAS_THREAD_VARIABLES, "OPENBLAS_THREAD_TIMEOUT")
    return {k: v for k, v in os.environ.items() if k not in settings} | {"SYMGATE_CACHE_DIR": str(tmp_path), **symgate}


def printed(script: str, env: dict[str, str]) -> str:
    """What ``script`` prints in a new Python process with environment ``env``."""
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not HAS_MKL, reason=NO_MKL)
def test_openblas_runs_on_one_thread_beside_mkl_unless_the_user_chose(tmp_path):
    """With MKL taking the products worth two threads, OpenBLAS's smaller ones run on one once a
    kernel is loaded (a second thread cost a scheduler time slice at every step when another
    process held the other core); a thread count the user set is left as it is."""
    plain = openblas_untouched(tmp_path, SYMGATE_BLAS="mkl")
    assert printed(THREADS_PROBE, plain) == f"{os.cpu_count() or 1} 1"
    assert printed(THREADS_PROBE, {**plain, "OPENBLAS_NUM_THREADS": "2"}) == "2 2"


THREAD_SWITCH_PROBE = """
import numpy as np
import symgate as sg
from symgate.jit import toolchain
kernel = sg.build(sg.cells.get("lstm_pytorch"), "float32")
counts = []
for batch, hidden in ((1, 8), (16, 256), (1, 8)):  # a step's product: 1 x 32 x 8, then 16 x 1024 x 256
    params = kernel.init_params({"D": 4, "H": hidden}, seed=0)
    kernel.forward(np.ones((2, batch, 4), np.float32), params)
    counts.append(toolchain.openblas().scipy_openblas_get_num_threads())
print(*counts)
"""


def test_openblas_alone_runs_small_products_on_one_thread_unless_the_user_chose(tmp_path):
    """Built with OpenBLAS alone, a product under SG_THREADS_MIN multiply-adds runs on one of its
    threads and a larger one on all of them, switched as the products come; a thread count the
    user set is left as it is."""
    plain = openblas_untouched(tmp_path, SYMGATE_BLAS="openblas", SYMGATE_BLAS_MIN="0")
    assert printed(THREAD_SWITCH_PROBE, plain) == f"1 {os.cpu_count() or 1} 1"
    assert printed(THREAD_SWITCH_PROBE, {**plain, "OPENBLAS_NUM_THREADS": "2"}) == "2 2 2"


SPIN_PROBE = """
import os, pathlib, threading, time
import numpy as np
import symgate as sg
kernel = sg.build(sg.cells.get("lstm_pytorch"), "float32")
kernel.forward(np.ones((2, 64, 256), np.float32), kernel.init_params({"D": 256, "H": 256}, seed=0))
time.sleep(0.1)  # the step products (64 x 1024 x 256) ran on all of OpenBLAS's threads
me = threading.get_native_id()
tasks = [pathlib.Path(f"/proc/self/task/{t}/stat").read_text() for t in os.listdir("/proc/self/task") if int(t) != me]
running = [stat.rsplit(")", 1)[1].split()[0] == "R" for stat in tasks]
print(sum(running), os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2, reason="reads /proc; 2 cores")
def test_openblas_threads_sleep_soon_after_the_last_product_unless_the_user_chose(tmp_path):
    """OpenBLAS's idle threads wait busily 2**28 cycles (about 0.1 s) by default before they sleep,
    holding a core from whatever runs next (PyTorch's own threads in a training step): the kernels'
    copy starts with 2**20 unless the user set OPENBLAS_THREAD_TIMEOUT, and the environment is
    left as it was. 0.1 s after a kernel's products no thread but the main one is running; with
    the user's 2**30 cycles (about 0.3 s and more), OpenBLAS's is."""
    plain = openblas_untouched(tmp_path, SYMGATE_BLAS="openblas")
    assert printed(SPIN_PROBE, plain) == "0 None"
    assert printed(SPIN_PROBE, {**plain, "OPENBLAS_THREAD_TIMEOUT": "30"}) == "1 30"


FORK_SCRIPT = """
import os, sys
import numpy as np
import symgate as sg
kernel = sg.build(sg.cells.get("lstm_pytorch"), "float32")
params = kernel.init_params({"D": 40, "H": 128}, seed=0)
x = np.ones((3, 16, 40), np.float32)
def gradient():
    run = kernel.forward(x, params)
    return kernel.backward(run, {"h": np.ones((3, 16, 128), np.float32)}).inputs["x"]
before = gradient()  # the BLAS's threads start in this process
child = os.fork()
if child == 0:
    os._exit(0 if np.array_equal(gradient(), before) else 3)
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("library", LIBRARIES)
def test_a_process_forked_after_the_kernels_ran_runs_them_too(library, tmp_path):
    """A forked child (a data loader's worker, say) runs the kernels with products large enough
    for the BLAS's threads (16 x 512 x 128). GNU OpenMP's threads, for one, hang a child forked
    after they started; MKL runs on Intel's OpenMP, which survives fork."""
    env = {**os.environ, "SYMGATE_BLAS": library, "SYMGATE_MKL_MIN": "1048576", "SYMGATE_CACHE_DIR": str(tmp_path)}
    printed(FORK_SCRIPT, env)  # exits with 0 when the child finished and computed the same
