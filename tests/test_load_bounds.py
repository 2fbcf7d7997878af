"""Reading a cell file is bounded before it is read and refuses special files (issue 19, point 7).

``sg.load`` and the ``symgate`` command's file arguments read through one function. A device that
never ends (``/dev/zero``), a FIFO (opening one waits for a writer), a directory and a file over the
size limit are each refused with a :class:`~symgate.errors.CellError` naming the file. The cases that
used to read without end or block run in a subprocess under a timeout, so a regression fails
instead of hanging the suite.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import LSTM

import symgate as sg
from symgate.cli import main
from symgate.frontend.syntax import MAX_BYTES

ROOT = Path(__file__).parents[1]
SECONDS = 60  # importing symgate and refusing the file take about a second
MEMORY = 4 << 30  # bytes of address space: a read without bound fails here rather than filling the machine


def _bounded_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter importing this checkout's symgate; fails the test after SECONDS."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=SECONDS,
            preexec_fn=_bounded_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {SECONDS} s: the file was read without bound or blocked")


LOAD = """
import symgate as sg
try:
    sg.load({path!r})
except sg.CellError as err:
    print(type(err).__name__, err, sep=": ")
"""


def refusal(path: str) -> str:
    result = run_python(LOAD.format(path=path))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_is_refused_before_reading():
    expected = "CellError: /dev/zero: cannot read cell file: it is a character device, not a regular file"
    assert refusal("/dev/zero") == expected


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "lstm.cell"
    os.mkfifo(fifo)
    expected = f"CellError: {fifo}: cannot read cell file: it is a FIFO (named pipe), not a regular file"
    assert refusal(str(fifo)) == expected
    result = run_python(f"import sys; from symgate.cli import main; sys.exit(main(['show', {str(fifo)!r}]))")
    assert result.returncode == 2 and "FIFO" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_that_replaces_the_file_after_the_check_does_not_block(tmp_path):
    """The race the non-blocking open closes: the check saw a regular file, the open finds a FIFO."""
    fifo = tmp_path / "lstm.cell"
    os.mkfifo(fifo)
    regular = tmp_path / "regular.cell"
    regular.write_text(LSTM)
    result = run_python(
        f"""
        import os
        import types
        import symgate as sg
        from symgate.frontend import source_file

        lying = {{**vars(os), "stat": lambda path: os.stat({str(regular)!r})}}  # says the FIFO is a regular file
        source_file.os = types.SimpleNamespace(**lying)
        try:
            sg.load({str(fifo)!r})
        except sg.CellError as err:
            print(err)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{fifo}: cannot read cell file: it is a FIFO (named pipe), not a regular file"


def test_a_directory_is_refused(tmp_path, capsys):
    with pytest.raises(sg.CellError, match="it is a directory, not a regular file") as info:
        sg.load(tmp_path)
    assert info.value.source == str(tmp_path)
    assert main(["show", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err


def test_a_file_over_the_limit_is_refused_by_its_size(tmp_path):
    path = tmp_path / "big.cell"
    path.write_bytes(LSTM.encode() + b"#" * MAX_BYTES)
    with pytest.raises(sg.CellSyntaxError, match=f"the file is over {MAX_BYTES} bytes long") as info:
        sg.load(path)
    assert str(info.value).startswith(f"{path}: ")


def test_a_file_at_the_limit_is_read(tmp_path):
    path = tmp_path / "full.cell"
    comment = "# padding\n"
    path.write_text(LSTM + comment * ((MAX_BYTES - len(LSTM)) // len(comment)))
    assert path.stat().st_size <= MAX_BYTES
    assert sg.load(path).fingerprint() == sg.parse(LSTM).fingerprint()


def test_a_symlink_to_a_cell_file_is_followed(tmp_path):
    target = tmp_path / "lstm.cell"
    target.write_text(LSTM)
    link = tmp_path / "link.cell"
    link.symlink_to(target)
    assert sg.load(link).fingerprint() == sg.parse(LSTM).fingerprint()


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "missing.cell"
    with pytest.raises(sg.CellError, match="cannot read cell file: No such file or directory") as info:
        sg.load(path)
    assert info.value.source == str(path)
