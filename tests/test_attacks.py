"""Cell text written as an attack, through the public entry points (``sg.parse``, ``sg.load``, the
``symgate`` command, ``sg.build``): each is refused with a ``SymgateError`` that names the line, or
is harmless data, and nothing runs, gets imported, or hangs.

It runs 53 hostile texts (15 payloads that would run Python, each parsed and loaded through the
command; 3 docs with C in comments; 10 with C syntax; 15 enormous or tiny numbers, exponents and
constant expressions; 1 of dangerous names; 1 nested too deeply; 1 that keeps SymPy busy; 7 files
with bad bytes) and 150 fuzzed ones (1 to 3 of 21 fragments inserted anywhere in the LSTM).

(``tests/test_syntax.py`` has the parser-level cases and the random-text properties;
``tests/test_constant_range.py`` fuzzes 120 cells with extreme numbers in functions and powers.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import LSTM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgate as sg
from symgate.cli import main

HEAD = "cell a\ninput x: D\nstate h: H\n"


@pytest.fixture
def marker(tmp_path):
    """A file every payload tries to create; the test fails if it exists afterwards."""
    path = tmp_path / "pwned"
    modules = set(sys.modules)
    yield path
    assert not path.exists(), "a payload ran"
    assert not {"antigravity", "this", "webbrowser", "ctypes.macholib"} & (set(sys.modules) - modules)


def payloads(marker) -> list[str]:
    touch = f"touch {marker}"
    return [
        f"h' = __import__('os').system('{touch}')",
        f"h' = exec(\"import os; os.system('{touch}')\")",
        f"h' = eval(\"__import__('os').system('{touch}')\")",
        "import antigravity",
        "from this import s",
        f"h' = tanh(W @ x); import os; os.system('{touch}')",
        f"h' = open('{marker}', 'w')",
        "h' = [c for c in ().__class__.__base__.__subclasses__()]",
        "h' = lambda: 1",
        f'h\' = f"{{__import__("os").system("{touch}")}}"',
        "h' = globals()['__builtins__']",
        f"h' = `{touch}`",
        f"h' = $(touch {marker})",
        "h' = tanh(W @ x) \\\n    + system",
        'h\' = system("rm -rf /")',
    ]


def test_python_that_would_run_a_command_or_import_a_module_is_refused_by_line(marker):
    for payload in payloads(marker):
        with pytest.raises(sg.CellError) as info:
            sg.parse(HEAD + payload + "\n")
        assert info.value.line == 4, payload
        assert str(info.value).startswith("<string>:4: "), payload


def test_the_same_payloads_in_a_file_through_the_command_exit_2_naming_the_file_and_line(marker, tmp_path, capsys):
    for index, payload in enumerate(payloads(marker)):
        path = tmp_path / f"attack{index}.cell"
        path.write_text(HEAD + payload + "\n")
        for command in (["show", str(path)], ["build", str(path)], ["check", str(path)]):
            assert main(command) == 2, (command, payload)
            err = capsys.readouterr().err
            assert err.startswith(f"symgate: error: {path}:4: ") and "Traceback" not in err, err


def test_names_are_data_even_when_they_name_dangerous_things(marker):
    names = ["system", "popen", "exec", "eval", "antigravity", "os", "subprocess", "unlink", "remove", "fork"]
    body = "h' = tanh(W @ x + " + " + ".join(f"{n}*h" for n in names) + ")\n"
    kernel = sg.build(sg.parse(HEAD + body))
    params = kernel.init_params({"D": 2, "H": 3})
    assert set(names) <= set(params)
    run = kernel.forward(np.ones((2, 1, 2)), params)
    kernel.backward(run, {"h": np.ones((2, 1, 3))})


C_IN_COMMENTS = [
    '# */ #include <stdlib.h>\n# static int x = system("touch {marker}"); /*',
    "# ??/\n# trigraph and a line continuation: \\",
    '# " \' */ }} }} int main(void) {{ return system("touch {marker}"); }} /*',
]


@pytest.mark.parametrize("doc", C_IN_COMMENTS)
def test_c_in_comments_never_reaches_the_generated_c(doc, marker):
    doc = doc.format(marker=marker)
    text = doc + "\n" + HEAD + 'h\' = tanh(W @ x + U @ h)   # */ system("touch x"); /*\n'
    cell = sg.parse(text)
    source = sg.generate(cell).c_source
    assert "system" not in source and "stdlib" not in source and "??/" not in source
    kernel = sg.build(cell)
    kernel.forward(np.ones((2, 1, 2)), kernel.init_params({"D": 2, "H": 3}))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("cell a; system\ninput x: D\nstate h: H\nh' = x\n", 1),
        ("cell a\ninput x: D /* */\nstate h: H\nh' = x\n", 2),
        (HEAD + "h' = x /* comment */\n", 4),
        (HEAD + "h' = x // comment\n", 4),
        (HEAD + "h' = x; int y\n", 4),
        (HEAD + "#define tanh system\nh' = x {\n", 5),
        (HEAD + "h' = x[0]\n", 4),
        (HEAD + "h' = x->y\n", 4),
        (HEAD + 'h\' = "x"\n', 4),
        (HEAD + "h' = x\n#include </etc/passwd>\nsystem = 1\n", 6),
    ],
    ids=lambda t: repr(t.splitlines()[-1])[:30] if isinstance(t, str) else str(t),
)
def test_c_syntax_in_names_and_equations_is_refused_by_line(text, line):
    with pytest.raises(sg.CellError) as info:
        sg.parse(text)
    assert info.value.line == line, str(info.value)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("h' = tanh(1e308*10*h + W @ x)", "constant 1.00000000000000E+309 is beyond the range of float64"),
        ("h' = tanh(exp(710)*h + W @ x)", "is beyond the range of float64"),
        ("h' = tanh(h ** 100000 + W @ x)", "exponent 100000 at column 16 is out of range [-64, 64]"),
        ("h' = tanh(h ** (1/99999999999999999999999999999999) + W @ x)", "too large or too precise"),
        ("h' = tanh(2 ** 2 ** 2 + W @ x)", "follows an exponent"),
        ("h' = tanh((2 ** 60) ** 60 * h + W @ x)", "over 1024 bits"),
        ("h' = tanh(1/0*h + W @ x)", "not a finite real number"),
        ("h' = tanh(W @ x + U @ h)*exp(1e300)", "constant 10^(4.3e+299) is beyond the range of float64"),
        ("h' = tanh(W @ x + U @ h)*exp(-1e300)", "constant 10^(-4.3e+299) is below the range of float64"),
        ("h' = tanh(W @ x + U @ h)*floor(exp(1e300))", "cannot evaluate the constants at column 26 ('floor')"),
        ("h' = tanh(W @ x + U @ h)*sin(exp(1e10))", "constant 10^(4.3e+9) is beyond the range of float64"),
        ("h' = tanh(W @ x + U @ h)*exp(exp(exp(710)))", "constant exp(exp(710)) ≈ 10^(9.7e+307) is beyond"),
        ("h' = tanh(W @ x + U @ h)*1e-300**2", "constant 1.00000000000000E-600 is below the range of float64"),
        ("const a = exp(-746)\nh' = tanh(W @ x + U @ h)*a", "constant a = exp(-746) ≈ 1.038284809515828"),
        ("h' = tanh(W @ x + U @ h)*abs(-exp(710))", "constant -exp(710) ≈ -2.2339947661617110E+308 is beyond"),
    ],
)
def test_enormous_numbers_and_exponents_are_refused_by_line(body, words):
    with pytest.raises(sg.CellError, match=r"^<string>:4: ") as info:
        sg.parse(HEAD + body + "\n")
    assert words in str(info.value)


def test_large_integers_become_exact_doubles_instead_of_overflowing_c_literals():
    kernel = sg.build(sg.parse(HEAD + "h' = tanh(W @ x) + h / 2**64 + 2**64 * 2**-64\n"))
    source = kernel.source
    assert "18446744073709551616" not in source  # no C integer literal can hold 2**64
    params = kernel.init_params({"D": 2, "H": 3})
    run = kernel.forward(np.zeros((1, 1, 2)), params, {"h": np.full((1, 3), 2.0**64)})
    np.testing.assert_allclose(run.states["h"], 2.0, rtol=1e-15)


def nested(depth: int, pattern: str) -> str:
    inner = "h"
    for i in range(depth):
        inner = pattern.format(inner=inner, i=i)
    return inner


def test_expressions_nested_too_deeply_for_sympy_are_a_cell_error_not_a_recursion_error():
    deep = nested(60, "tanh({inner} + b{i})")  # within the parser's 64 levels, beyond SymPy's recursion
    with pytest.raises(sg.CellError, match=r"^<string>:4: the expression is nested too deeply"):
        sg.build(sg.parse(HEAD + f"h' = {deep} + W @ x\n"))


def long_cell(path) -> None:
    """2,000 chained equations: about 2 s to parse and 10 s to derive, steadily. (Short hostile
    expressions, such as quotients of duplicated subexpressions nested 6 deep, cost anything from
    0.05 s to minutes between processes, as SymPy's set orders vary, so a test can't rely on them.)"""
    chain = [f"a{i} = tanh(a{i - 1} * a{i - 1} + h)" for i in range(1, 2000)]
    path.write_text("\n".join([*HEAD.splitlines(), "a0 = tanh(h + W @ x)", *chain, "h' = a1999"]) + "\n")


def test_a_cell_that_keeps_sympy_busy_is_stopped_by_the_time_limit(tmp_path):
    path = tmp_path / "long.cell"
    long_cell(path)
    env = {**os.environ, "SYMGATE_SYMBOLIC_SECONDS": "1"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "symgate.cli", "show", str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert time.monotonic() - start < 30
    assert result.returncode == 2, result.stdout[-300:]
    assert re.match(
        rf"symgate: error: {re.escape(str(path))}:\d+: (parse|derive) took over 1 s \(SYMGATE_SYMBOLIC_SECONDS\)",
        result.stderr,
    )


IN_A_THREAD = """\
import sys, threading, time
import symgate as sg

outcome = []

def work():
    started = time.monotonic()
    try:
        sg.derive(sg.load(sys.argv[1]))
        outcome.append("finished")
    except sg.SymgateError as err:
        outcome.append(f"{time.monotonic() - started:.1f} {type(err).__name__}: {err}")
    idle = time.monotonic()
    try:  # the limit is over: nothing may be raised here any more
        while time.monotonic() - idle < 1.5:
            sum(range(1000))
    except BaseException as err:
        outcome.append(f"late {type(err).__name__}")

thread = threading.Thread(target=work)
thread.start()
thread.join()
print("\\n".join(outcome))
"""


def test_the_time_limit_stops_sympy_in_other_threads_too(tmp_path):
    """Not SIGALRM, which reaches only the main thread: the checks between equations stop it."""
    path = tmp_path / "long.cell"
    long_cell(path)
    env = {**os.environ, "SYMGATE_SYMBOLIC_SECONDS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", IN_A_THREAD, str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seconds, message = result.stdout.split(" ", 1)
    assert 1 <= float(seconds) < 5, result.stdout  # parse, or parse and derive, stopped after 1 s each
    assert re.match(
        rf"CellError: {re.escape(str(path))}:\d+: (parse|derive) took over 1 s \(SYMGATE_SYMBOLIC_SECONDS\)"
        r".*\n    a\d+ = ",
        message,
    )
    assert "late" not in message  # nothing is raised in the thread after the limit's stage


def test_a_bad_time_limit_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SYMGATE_SYMBOLIC_SECONDS", "soon")
    with pytest.raises(sg.SymgateError, match="SYMGATE_SYMBOLIC_SECONDS must be a number of seconds"):
        sg.parse(LSTM)


def test_the_time_limit_leaves_the_callers_timer_alone(monkeypatch):
    import signal

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *args: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        sg.derive(sg.parse(LSTM))
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 30 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (HEAD.encode() + b"h' = tanh(W @ x \xff+ U @ h)\n", 4, "not UTF-8: byte 0xFF at column 17"),
        (b"\xef\xbb\xbf" + HEAD.encode() + b"h' = x\n", 1, "non-ASCII character U+FEFF at column 1"),
        (HEAD.encode() + b"h' = x\x00\n", 4, "control character U+0000 at column 7"),
        (HEAD.encode() + b"h' = x\x1b[2J\n", 4, "control character U+001B"),
        (HEAD.encode() + "h' = x + \u0445\n".encode(), 4, "non-ASCII character U+0445"),  # Cyrillic x
        (HEAD.encode() + "h' = x # \u202e reversed\n".encode(), 4, "U+202E in a comment"),
        (HEAD.encode() + b"h' = " + b"x + " * 600 + b"x\n", 4, "the limit is 2000"),
    ],
    ids=["invalid UTF-8", "byte order mark", "NUL", "escape sequence", "homoglyph", "bidi override", "long line"],
)
def test_files_with_bad_bytes_are_refused_naming_the_line(tmp_path, capsys, data, line, words):
    path = tmp_path / "bad.cell"
    path.write_bytes(data)
    with pytest.raises(sg.CellError) as info:
        sg.load(path)
    assert info.value.line == line and words in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x00" not in err and "\u202e" not in err  # nothing reaches the terminal raw


FRAGMENTS = [
    "__import__('os')",
    "os.system('id')",
    "exec('1')",
    "*/",
    "/*",
    "#include <stdio.h>",
    "\\",
    "\x00",
    "\u202e",
    "';",
    "`id`",
    "$(id)",
    "{",
    "9" * 40,
    "1e999",
    "*exp(1e300)",
    "*exp(-746)",
    "*1e-300**2",
    "** 99",
    "(" * 70,
    "lambda:",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fragments_of_attacks_anywhere_in_a_valid_cell_are_refused_by_line_or_harmless(data, marker):
    text = LSTM
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(text)))
        text = text[:position] + data.draw(st.sampled_from(FRAGMENTS)) + text[position:]
    try:
        cell = sg.parse(text)
    except sg.SymgateError as err:
        assert isinstance(err, sg.CellError) and isinstance(err.line, int)
        assert 1 <= err.line <= len(text.splitlines()) + 1
        return
    assert sg.parse(cell.text()).text() == cell.text()  # harmless: a cell like any other
