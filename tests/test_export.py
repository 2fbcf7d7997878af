"""Standalone C export: the library compiles strictly and under sanitizers, runs without Python and
agrees with the Python kernel; its files are deterministic; bad input is refused cleanly.

The comparison builds a driver program from the library's own header: it reads its inputs from a
file, calls every exported function and writes every result to a file. Python writes the first
file and reads the second; nothing of Python runs while the C does.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgate as sg
from symgate.codegen.render import runtime_header
from symgate.export import Export, render_export
from symgate.frontend.functions import SCALAR, dims_of

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="needs a C compiler (cc)")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
SANITIZE = [*STRICT, "-O2", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
STEPS, BATCH = 4, 3
MIXED = """\
cell mixed
input x: D, u: E
state h: H, c: C
const beta = 0.5
m = tanh(W @ x + V @ u + U @ h + b)
n = m / sqrt(var(m) + 1)
h' = beta*h + (1 - beta)*n
c' = sigmoid(int @ h' + P @ c)
output y: O = relu(Q @ h')
"""
"""Two inputs, states of different sizes, an output, a reduction, a constant and a parameter named
like a C keyword (``int``, renamed ``int_`` in C)."""
TRANSPOSED = """\
cell transposed
input x: D
state h: H
h' = tanh((W - W.T) @ h + V.T @ x + b)
output y = V @ h'
"""
"""Transposed products: W and W.T on the same vector, V.T over all steps and V at every step."""


KINKS = """\
cell kinks
input x: D
state h: H, m: H
const lo = -0.5
a = W @ x + U @ h + b
m' = max(a, m) - min(a, 0.5*m) + 0.1*abs(m)
h' = clip(a, lo, 1)*cos(h) + sin(m') + 0.1*floor(2*h) + mod(a, 0.75)
"""
"""The functions with kinks, whose C helpers the exported runtime header carries."""
GIVEN = ("input", "init", "param", "grad_states", "grad_outputs", "grad_init")


TEXTS = {"mixed": MIXED, "transposed": TRANSPOSED, "kinks": KINKS}


def _cell(name: str) -> sg.Cell:
    return sg.parse(TEXTS[name]) if name in TEXTS else sg.cells.get(name)


def _sizes(cell: sg.Cell) -> dict[str, int]:
    return {d: 5 + i for i, d in enumerate(cell.dims)}


@functools.cache
def _sanitizer_reason() -> str | None:
    """Why the sanitizer build cannot run here, or None when it can."""
    if CC is None:
        return "needs a C compiler (cc)"
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"symgate-san-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        (probe / "p.c").write_text("int main(void) { return 0; }\n")
        built = subprocess.run([CC, *SANITIZE, "p.c", "-o", "p"], cwd=probe, capture_output=True, text=True)
        if built.returncode:
            return f"{CC} cannot build with -fsanitize=address,undefined: {built.stderr.strip()[:200]}"
        ran = subprocess.run(["./p"], cwd=probe, capture_output=True, text=True)
        return None if ran.returncode == 0 else f"sanitized programs do not run here: {ran.stderr.strip()[:200]}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


# -- the driver: the library's functions called from C on data read from a file ---------------------
def _driver(library: Export, cell: sg.Cell, sizes: dict[str, int]) -> str:
    real = "double" if library.dtype == "float64" else "float"
    runtime_dims = [d for d in cell.dims if d not in library.fixed]
    runtime = {c: sizes[d] for d, c in zip(runtime_dims, library.dims, strict=True)}
    args, per_step = ", ".join(["T", "B", *library.dims]), ", ".join(["B", *library.dims])
    enum = ", ".join([f"T = {STEPS}", f"B = {BATCH}", *(f"{c} = {n}" for c, n in runtime.items())])
    lines = [
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "#include <string.h>",
        f'#include "{library.stem}.h"',
        f"enum {{ {enum} }};",
        f"static {real} *fresh(size_t n)",
        "{  /* exactly n elements, so the sanitizer sees any overrun; NaN, so any element left unwritten shows */",
        f"    {real} *a = malloc(n * sizeof *a + (n == 0));",
        "    if (!a) { exit(3); }",
        "    memset(a, 0xff, n * sizeof *a);",
        "    return a;",
        "}",
        f"static {real} *load(FILE *in, size_t n)",
        "{",
        f"    {real} *a = fresh(n);",
        '    if (fread(a, sizeof *a, n, in) != n) { fprintf(stderr, "short input\\n"); exit(4); }',
        "    return a;",
        "}",
        f"static void save(FILE *out, const {real} *a, size_t n) {{ fwrite(a, sizeof *a, n, out); }}",
        "int main(int argc, char **argv)",
        "{",
        '    FILE *in = argc == 3 ? fopen(argv[1], "rb") : NULL;',
        '    FILE *out = argc == 3 ? fopen(argv[2], "wb") : NULL;',
        "    if (!in || !out) { return 2; }",
    ]
    declared: dict[str, str] = {}
    for f in library.functions:
        for a in f.arguments:
            if a.c_name in declared:
                continue
            size = f"{library.size_macro(a.c_name)}({args})"
            declared[a.c_name] = size
            source = f"load(in, {size})" if a.role in GIVEN else f"fresh({size})"
            lines.append(f"    {real} *const {a.c_name} = {source};")
        lines.append(f"    {real} *const work_{f.name} = fresh({f.work}({args}));")
    for f in library.functions:
        written = [a for a in f.arguments if a.writes and a.role not in ("grad_init", "step_state")]
        lines += [f"    memset({a.c_name}, 0xff, {declared[a.c_name]} * sizeof *{a.c_name});" for a in written]
        if f.steps:
            call = ", ".join([args, "NULL", *(a.c_name for a in f.arguments), f"work_{f.name}"])  # all B every step
            lines.append(f"    {f.name}({call});")
            lines += [f"    save(out, {a.c_name}, {declared[a.c_name]});" for a in f.arguments if a.writes]
            continue
        sequence = {a.name: a.c_name for a in library.function("infer").arguments if a.role in ("input", "init")}
        states = [a for a in f.arguments if a.role == "step_state"]
        lines += [
            f"    memcpy({a.c_name}, {sequence[a.name]}, {declared[a.c_name]} * sizeof *{a.c_name});" for a in states
        ]
        step_args = [
            f"{sequence[a.name]} + {library.size_macro(sequence[a.name])}(t, {per_step})"
            if a.role == "step_input"
            else a.c_name
            for a in f.arguments
        ]
        lines.append("    for (int t = 0; t < T; ++t) {")
        lines.append(f"        {f.name}({', '.join([per_step, *step_args, f'work_{f.name}'])});")
        lines += [
            f"        save(out, {a.c_name}, {declared[a.c_name]});" for a in f.arguments if a.role == "step_output"
        ]
        lines.append("    }")
        lines += [f"    save(out, {a.c_name}, {declared[a.c_name]});" for a in states]
    lines += [f"    free({c});" for c in declared] + [f"    free(work_{f.name});" for f in library.functions]
    lines += ["    return fclose(in) != 0 || fclose(out) != 0;", "}"]
    return "\n".join(lines) + "\n"


def _build(library: Export, directory: Path, driver: str, flags: list[str], name: str) -> Path:
    directory.mkdir(exist_ok=True)
    library.write(directory)
    (directory / "driver.c").write_text(driver)
    command = [CC, *flags, "-o", name, "driver.c", f"{library.stem}.c", "-lm"]
    built = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    assert built.returncode == 0, f"{' '.join(command)}\n{built.stderr}"
    return directory / name


class _Case:
    """A cell's data, the Python kernel's results, and the exported library's, read back."""

    def __init__(self, name: str, dtype: str, baked: bool = False) -> None:
        self.cell = _cell(name)
        self.dtype = dtype
        self.sizes = _sizes(self.cell)
        kernel = sg.build(self.cell, dtype)
        rng = np.random.default_rng(7)
        t, b, cell = STEPS, BATCH, self.cell
        extents = {**self.sizes, SCALAR: 1}
        params64 = {p.name: rng.uniform(-0.6, 0.6, [extents[d] for d in p.shape]) for p in cell.params}
        self.params = {n: a.astype(dtype) for n, a in params64.items()}
        def unit(size: str) -> tuple[int, ...]:  # (K, V) for a matrix state
            return tuple(extents[d] for d in dims_of(size))

        self.x = {n: rng.standard_normal((t, b, *unit(d))).astype(dtype) for n, d in cell.inputs.items()}
        self.init = {n: 0.5 * rng.standard_normal((b, *unit(d))).astype(dtype) for n, d in cell.states.items()}
        named = [*cell.states.items(), *cell.outputs.items()]
        self.grads = {n: rng.standard_normal((t, b, *unit(d))).astype(dtype) for n, d in named}
        self.final = {n: rng.standard_normal((b, *unit(d))).astype(dtype) for n, d in cell.states.items()}
        self.run = kernel.forward(self.x, self.params, self.init)
        self.grad = None if baked else kernel.backward(self.run, {**self.grads, "final": self.final})
        self.library = render_export(self.cell, dtype=dtype, params=params64 if baked else None)

    def given(self, role: str, name: str) -> np.ndarray:
        table = {
            "input": self.x,
            "init": self.init,
            "param": self.params,
            "grad_states": self.grads,
            "grad_outputs": self.grads,
            "grad_init": self.final,
        }
        return table[role][name]

    def expected(self) -> list[tuple[str, np.ndarray]]:
        """What the driver writes, in its order, from the Python kernel."""
        run, grad, out = self.run, self.grad, []
        results = {"states": run.states, "outputs": run.outputs, "tape": run.tape}
        if grad:
            results |= {"grad_inputs": grad.inputs, "grad_init": grad.init, "grad_params": grad.params}
        for f in self.library.functions:
            which = f.name.rsplit("_", 1)[1]
            if which != "step":
                out += [(f"{which} {a.c_name}", results[a.role][a.name]) for a in f.arguments if a.writes]
            else:
                for t in range(STEPS):
                    out += [
                        (f"step {t} {a.name}", run.outputs[a.name][t]) for a in f.arguments if a.role == "step_output"
                    ]
                out += [(f"step {a.name}", run.final[a.name]) for a in f.arguments if a.role == "step_state"]
        return out

    def run_c(self, program: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Runs the driver on this case's data; (label, C result, Python result) for every result."""
        written: set[str] = set()
        with open(program.parent / "in.bin", "wb") as stream:
            for f in self.library.functions:
                for a in f.arguments:
                    if a.role in GIVEN and a.c_name not in written:
                        written.add(a.c_name)
                        stream.write(np.ascontiguousarray(self.given(a.role, a.name)).tobytes())
        ran = subprocess.run([str(program), "in.bin", "out.bin"], cwd=program.parent, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        data = np.fromfile(program.parent / "out.bin", dtype=self.dtype)
        results, at = [], 0
        for label, want in self.expected():
            results.append((label, data[at : at + want.size].reshape(want.shape), want))
            at += want.size
        assert at == data.size, f"the driver wrote {data.size} numbers, expected {at}"
        return results


def _largest_relative_error(results) -> float:
    """max over results of max|c - python| / max|python| (each array against its own scale)."""
    worst = 0.0
    for label, got, want in results:
        assert np.all(np.isfinite(got)), f"{label}: the C left elements unwritten or not finite"
        scale = max(float(np.max(np.abs(want), initial=0.0)), np.finfo(want.dtype).tiny)
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0)) / scale)
    return worst


# -- 3. results equal the Python kernel's, from a separate program ----------------------------------
@needs_cc
@pytest.mark.parametrize(
    "name",
    ["lstm", "gru_cho", "lstmp_pytorch", "intersection_rnn", "mixed", "transposed", "kinks", "deltanet", "xlstm_mlstm"],
)
def test_exported_float64_equals_the_python_kernel(name, tmp_path):
    case = _Case(name, "float64")
    program = _build(case.library, tmp_path, _driver(case.library, case.cell, case.sizes), STRICT, "driver")
    error = _largest_relative_error(case.run_c(program))
    assert error <= 1e-12, f"{name}: exported C differs from the Python kernel by {error:.1e} (relative)"


@needs_cc
@pytest.mark.parametrize("name", ["lstm", "mixed", "kinks"])
def test_exported_float32_equals_the_python_kernel(name, tmp_path):
    case = _Case(name, "float32")
    program = _build(case.library, tmp_path, _driver(case.library, case.cell, case.sizes), STRICT, "driver")
    error = _largest_relative_error(case.run_c(program))
    assert error <= 1e-5, f"{name}: exported C differs from the Python kernel by {error:.1e} (relative)"


@pytest.mark.parametrize(
    ("name", "dtype", "baked"),
    [
        ("lstm", "float64", False),
        ("mixed", "float64", True),
        ("transposed", "float64", False),
        ("fast_weights", "float64", False),
    ],
)
def test_exported_code_runs_clean_under_address_and_undefined_behaviour_sanitizers(name, dtype, baked, tmp_path):
    reason = _sanitizer_reason()
    if reason:
        pytest.skip(reason)
    case = _Case(name, dtype, baked=baked)
    driver = _driver(case.library, case.cell, case.sizes)
    program = _build(case.library, tmp_path, driver, SANITIZE, "driver-sanitized")
    assert _largest_relative_error(case.run_c(program)) <= 1e-12
    infer = case.library.function("infer")  # the sanitizer is live: one element less of work is caught
    args = ", ".join(["T", "B", *case.library.dims])
    short = driver.replace(f"fresh({infer.work}({args}))", f"fresh({infer.work}({args}) - 1)")
    assert short != driver
    caught = subprocess.run(
        [str(_build(case.library, tmp_path, short, SANITIZE, "short")), "in.bin", "out.bin"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert caught.returncode != 0 and "heap-buffer-overflow" in caught.stderr
    example = subprocess.run(
        [CC, *SANITIZE, "-o", "example", "example.c", f"{case.library.stem}.c", "-lm"], cwd=tmp_path, text=True
    )
    assert example.returncode == 0
    ran = subprocess.run(["./example"], cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0 and not ran.stderr, ran.stderr


# -- 2. parameters baked in: inference only ----------------------------------------------------------
@needs_cc
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_baked_parameters_give_an_inference_library_equal_to_the_kernel(dtype, tmp_path):
    case = _Case("lstm", dtype, baked=True)
    library = case.library
    assert [f.name.rsplit("_", 1)[1] for f in library.functions] == ["infer", "step"]
    assert all(a.role != "param" for f in library.functions for a in f.arguments)
    assert library.fixed == {"D": 5, "H": 6} and library.dims == ()
    header = library.files["lstm_" + dtype + ".h"]
    assert "void sg_lstm_" + dtype + "_infer(int T, int B, const int *batch_sizes,\n" in header
    assert "_tape" not in header
    assert "#define SG_LSTM_" + dtype.upper() + "_DIM_H 6" in header
    assert (
        "static const " + ("double" if dtype == "float64" else "float") + " W_i[30] = {"
        in library.files[f"lstm_{dtype}.c"]
    )
    program = _build(library, tmp_path, _driver(library, case.cell, case.sizes), STRICT, "driver")
    error = _largest_relative_error(case.run_c(program))
    assert error <= (1e-12 if dtype == "float64" else 1e-5), error


def test_baked_values_read_back_exactly():
    """The printed constants are the shortest decimals that round-trip in the library's dtype."""
    from symgate.export.context import c_number as _c_number

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-30, 30, 200), [0.0, -0.0, 1.0, 1e-300]])
    for v in values:
        assert float(_c_number(v, "float64")) == v
        text = _c_number(v, "float32")
        assert text.endswith("F") and np.float32(text[:-1]) == np.float32(v)


def test_params_from_npz_are_checked_and_named(tmp_path):
    cell = sg.cells.get("lstm")
    good = {p.name: np.zeros((4, 3) if p.name[0] == "W" else (4, 4) if p.name[0] == "U" else (4,)) for p in cell.params}

    def refused(arrays=None, *, path=None, match):
        if path is None:
            path = tmp_path / "p.npz"
            np.savez(path, **arrays)
        with pytest.raises(sg.ExportError, match=match):
            render_export(cell, dtype="float32", params=path)
        assert not (tmp_path / "out").exists()

    refused(path=tmp_path / "missing.npz", match=r"missing\.npz: no such file")
    (tmp_path / "junk.npz").write_text("not an archive")
    refused(path=tmp_path / "junk.npz", match=r"junk\.npz: not a NumPy \.npz file")
    np.save(tmp_path / "one.npy", np.zeros(3))
    refused(path=tmp_path / "one.npy", match=r"one\.npy: holds one array")
    refused({k: v for k, v in good.items() if k != "b_o"}, match=r"p\.npz: missing b_o; cell lstm has parameters W_i")
    refused({**good, "extra": np.zeros(2)}, match=r"unknown extra")
    refused({**good, "U_f": np.zeros((4, 5))}, match=r"U_f has shape \(4, 5\), but H = 4 \(from W_i\)")
    refused({**good, "b_i": np.zeros((4, 1))}, match=r"b_i has shape \(4, 1\); it must be \(H\)")
    refused({**good, "W_i": np.zeros((4, 3), dtype=np.int64)}, match=r"W_i has dtype int64; parameters must be float")
    refused({**good, "W_i": np.full((4, 3), np.nan)}, match=r"W_i is not finite in float32 at index \(0, 0\)")
    refused({**good, "W_i": np.full((4, 3), 1e300)}, match=r"W_i is not finite in float32")
    refused({**good, "W_i": np.zeros((0, 3)), "U_i": np.zeros((0, 0))}, match=r"at least 1")
    np.savez(tmp_path / "pickled.npz", **{**good, "W_i": np.array([{}] * 12, dtype=object).reshape(4, 3)})
    refused(path=tmp_path / "pickled.npz", match=r"pickled\.npz: cannot read W_i")


# -- 1. the files, and how they are written ----------------------------------------------------------
def test_export_writes_a_self_contained_library(tmp_path):
    library = sg.export("lstm", tmp_path / "lstm", dtype="float32")
    assert sorted(p.name for p in (tmp_path / "lstm").iterdir()) == sorted(library.files)
    assert sorted(library.files) == ["README.md", "example.c", "lstm_float32.c", "lstm_float32.h", "symgate_runtime.h"]
    assert library.files["symgate_runtime.h"] == runtime_header().read_text()
    source, header = library.files["lstm_float32.c"], library.files["lstm_float32.h"]
    for banned in (r"\b(malloc|calloc|realloc|alloca|free)\s*\(", "cblas", "SYMGATE_BLAS", "__attribute__", "Python"):
        assert not re.search(banned, source + header), banned
    assert [line for line in source.splitlines() if line.startswith("#include")] == [
        "#include <math.h>",
        "#include <stddef.h>",
        "#include <string.h>",
        '#include "symgate_runtime.h"',
        '#include "lstm_float32.h"',
    ]
    assert [f.name for f in library.functions] == [
        f"sg_lstm_float32_{which}" for which in ("forward", "backward", "infer", "step")
    ]
    for f in library.functions:  # every buffer of every function has its size
        assert f"#define {f.work}(T, B, D, H) " in header
        assert f"size_t {f.name}_work(" in header
        for a in f.arguments:
            assert f"#define {library.size_macro(a.c_name)}(T, B, D, H) " in header
    readme = library.files["README.md"]
    assert "cc -std=c99 -O2 -o example example.c lstm_float32.c -lm && ./example" in readme
    assert library.build_command in library.files["example.c"]


def test_exported_files_are_deterministic_and_say_what_made_them(tmp_path):
    first = render_export("gru_cho", dtype="float64").files
    assert render_export("gru_cho", dtype="float64").files == first
    script = (
        "import hashlib, sys; from symgate.export import render_export; "
        "files = render_export('gru_cho', dtype='float64').files; "
        "print(hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(sg.__file__).parent.parent)}
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert other.stdout.strip() == hashlib.sha256(repr(sorted(first.items())).encode()).hexdigest()
    for name in ("gru_cho_float64.c", "gru_cho_float64.h"):
        head = first[name].split("*/", 1)[0]
        assert f"exported by symgate {sg.__version__}" in head
        assert all(f" *   {line}\n" in head for line in sg.cells.get("gru_cho").text().splitlines())
    assert "/tmp" not in "".join(first.values()) and str(tmp_path) not in "".join(first.values())


def test_output_directory_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    written = []
    real_write = Path.write_bytes

    def failing_write(self, data):
        written.append(self.name)
        if len(written) == 3:
            raise OSError(28, "No space left on device", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(sg.ExportError, match=r"cannot export into .*out: .*No space left on device"):
        sg.export("lstm", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the directory nor its staging copy
    monkeypatch.undo()

    (tmp_path / "a-file").write_text("")
    with pytest.raises(sg.ExportError, match=r"a-file: it exists and is not a directory"):
        sg.export("lstm", tmp_path / "a-file")
    with pytest.raises(sg.ExportError, match=r"cannot export into .*a-file/out"):
        sg.export("lstm", tmp_path / "a-file" / "out")

    existing = tmp_path / "project"
    existing.mkdir()
    (existing / "main.c").write_text("kept")
    (existing / "lstm_float32.c").write_text("stale")
    library = sg.export("lstm", existing, dtype="float32")
    assert (existing / "main.c").read_text() == "kept"
    assert (existing / "lstm_float32.c").read_text() == library.files["lstm_float32.c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "project"]


def test_unknown_cells_and_dtypes_are_refused():
    with pytest.raises(sg.UnknownCellError, match="no built-in cell named 'lstmm'; did you mean lstm"):
        render_export("lstmm")
    with pytest.raises(sg.ExportError, match="dtype must be one of"):
        render_export("lstm", dtype="float16")


# -- the example program -----------------------------------------------------------------------------
@needs_cc
def test_example_builds_with_the_readme_command_and_runs(tmp_path):
    library = sg.export(sg.parse(MIXED), tmp_path, dtype="float64")
    ran = subprocess.run(library.build_command, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("forward: h after the last step: ")
    assert any(line.startswith("d loss / d int: ") for line in lines)
    assert lines[-1] == "step by step, the states differ from infer's by at most 0"
    strict = subprocess.run(
        [CC, *STRICT, "-c", "example.c", "mixed_float64.c"], cwd=tmp_path, capture_output=True, text=True
    )
    assert strict.returncode == 0, strict.stderr
    switches = ["-DSYMGATE_BLAS", "-DSYMGATE_MKL", "-DSYMGATE_VECTOR_MATH"]  # BLAS stays off whatever cc is told
    plain = subprocess.run([CC, *switches, "-E", "mixed_float64.c"], cwd=tmp_path, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    assert "cblas" not in plain.stdout and 'simd("notinbranch")' not in plain.stdout
    header_alone = subprocess.run([CC, *STRICT, "-fsyntax-only", "mixed_float64.h"], cwd=tmp_path, capture_output=True)
    assert header_alone.returncode == 0
    cxx = shutil.which("c++")
    if cxx:  # the header is usable from C++ too (extern "C")
        command = [cxx, "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only", "-x", "c++", "mixed_float64.h"]
        assert subprocess.run(command, cwd=tmp_path).returncode == 0


# -- the command line --------------------------------------------------------------------------------
def test_cli_export(tmp_path, capsys):
    from symgate.cli import main

    weights = tmp_path / "weights.npz"
    kernel = sg.build(sg.cells.get("elman_rnn"), "float32")
    np.savez(weights, **kernel.init_params({"D": 2, "H": 3}))
    args = ["export", "elman_rnn", "--dtype", "float32", "-o", str(tmp_path / "lib"), "--params", str(weights)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "elman_rnn float32 (inference only, parameters baked in): wrote elman_rnn_float32.h" in out
    assert "static const float W[6] = {" in (tmp_path / "lib" / "elman_rnn_float32.c").read_text()
    assert main(["export", "elman_rnn", "-o", str(tmp_path / "bad"), "--params", str(tmp_path / "none.npz")]) == 2
    assert "none.npz: no such file" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
