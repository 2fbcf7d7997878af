"""The kernel cache under concurrency and faults, its key, and the ``symgate cache`` command.

Processes are real (``subprocess``) wherever the behaviour is between processes: eight builders
at once, a builder killed halfway, a damaged entry found by the next process.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import symgate as sg
import symgate.codegen.render as render
import symgate.jit.cache as cache
import symgate.jit.compiler as compiler
import symgate.jit.housekeeping as housekeeping
import symgate.jit.locks as locks
import symgate.jit.slots as slots
from symgate.cli import main

BUILDER = """\
import sys
import numpy as np
import symgate as sg
cell = sg.parse(sys.argv[1])
print("ready", flush=True)
sys.stdin.read(1)  # every process starts building at the same moment
k = sg.build(cell)
run = k.forward(np.ones((3, 2, 2)), k.init_params({"D": 2, "H": 3}, seed=0))
print(k.entry.path, float(run.states["h"].sum()).hex(), flush=True)
"""

# a compiler that logs each compile, and hangs when SG_TEST_HANG names a file (created first)
WRAPPER = """\
#!/bin/sh
if [ "$1" = "--version" ]; then exec gcc "$@"; fi
echo "$$" >> "$SG_TEST_LOG"
if [ -n "$SG_TEST_HANG" ]; then touch "$SG_TEST_HANG"; sleep 120; fi
exec gcc "$@"
"""


def new_cell(tag: str = "") -> str:
    """A cell no cache has seen: a fresh constant gives it a key of its own."""
    constant = int(uuid.uuid4().hex[:8], 16) / 2**32
    return f"cell fresh{tag}\ninput x: D\nstate h: H\nh' = tanh(W @ x + U @ h + {constant!r})\n"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A cache of its own and a logging compiler (the environment is inherited by subprocesses)."""
    root = tmp_path / "cache"
    wrapper = tmp_path / "cc"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(root))
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.setenv("SG_TEST_LOG", str(tmp_path / "compiles.log"))
    monkeypatch.delenv("SG_TEST_HANG", raising=False)
    return root


def compiles(root: Path) -> int:
    log = root.parent / "compiles.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def builder(text: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BUILDER, text],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        start_new_session=True,  # so a test can kill the process with its compiler
    )


def published(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def build_at_once(text: str, count: int) -> list[tuple[int, str, str]]:
    """``count`` builder processes of ``text``, released together once all are ready: (exit code, stdout, stderr)."""
    processes = [builder(text) for _ in range(count)]
    for process in processes:
        assert process.stdout.readline() == "ready\n", process.stderr.read()
    for process in processes:
        process.stdin.write("go")
        process.stdin.close()
    results = [(process.wait(timeout=300), process.stdout.read(), process.stderr.read()) for process in processes]
    return results


def test_eight_processes_building_one_new_cell_at_once_all_succeed_with_one_entry(isolated):
    text = new_cell()
    results = build_at_once(text, 8)
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    assert len({out for _, out, _ in results}) == 1  # the same entry, and the same numbers
    (entry,) = published(isolated)
    assert results[0][1].split()[0] == str(entry)
    assert [e.ok for e in housekeeping.entries(isolated)] == [True]
    assert not list(isolated.glob(".build-*")) and not list(isolated.glob(".trash-*"))
    assert compiles(isolated) == 1  # the others waited for the first instead of compiling again


def run_builder(text: str, timeout: float = 120) -> subprocess.CompletedProcess:
    process = builder(text)
    out, err = process.communicate("go", timeout=timeout)
    assert process.returncode == 0, err
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def truncate(library: Path) -> None:
    library.write_bytes(library.read_bytes()[: library.stat().st_size // 2])


def flip_a_byte(library: Path) -> None:
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (truncate, "truncated"),
        (flip_a_byte, "SHA-256"),
        (lambda library: (library.parent / "manifest.json").unlink(), "no manifest"),
        (lambda library: (library.parent / "interface.json").write_text("{}"), "interface.json"),
    ],
    ids=["truncated module", "altered module", "no manifest", "altered interface"],
)
def test_a_damaged_entry_is_reported_by_verify_and_rebuilt_by_the_next_build(isolated, capsys, damage, problem):
    text = new_cell()
    first = run_builder(text).stdout
    (entry,) = published(isolated)
    damage(next(entry.glob("_symgate_*")))
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert problem in out and entry.name in out and "1 bad" in out

    assert run_builder(text).stdout == first  # a new process rebuilds it and computes the same
    assert published(isolated) == [entry] and compiles(isolated) == 2
    assert main(["cache", "verify"]) == 0
    assert not list(isolated.glob(".trash-*")) and not list(isolated.glob(".build-*"))


def test_four_processes_meeting_one_damaged_entry_rebuild_it_once_and_all_succeed(isolated):
    """Healing under concurrency: the damaged entry is replaced under its lock, so one process
    rebuilds it and the others load that rebuild (none deletes another's entry or build)."""
    text = new_cell()
    first = run_builder(text).stdout
    (entry,) = published(isolated)
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["files"]["kernel.c"] = "damaged"  # the record the issue found making every command fail
    (entry / "manifest.json").write_text(json.dumps(manifest))
    results = build_at_once(text, 4)
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    assert {out for _, out, _ in results} == {first.removeprefix("ready\n")}
    assert published(isolated) == [entry] and compiles(isolated) == 2
    assert [e.ok for e in housekeeping.entries(isolated)] == [True]
    assert not list(isolated.glob(".build-*")) and not list(isolated.glob(".trash-*"))


def publish_after_a_rival(monkeypatch, text: str, damage=None) -> list[str]:
    """Makes the next in-process publish lose a race: just before it renames its build into place,
    its lock file is removed (as ``cache clear`` does), so a builder process takes a new lock and
    publishes the same key first; ``damage`` is then done to that entry's module. Returns the
    rival's entry path and result once it has run."""
    rival = []
    publish = slots.Slot.publish

    def losing(slot: slots.Slot, details: dict) -> cache.Entry:
        root = slot.work.parent.parent
        (root / ".locks" / f"{slot.stem}-{slot.key}").unlink()
        rival.extend(run_builder(text).stdout.split()[1:])  # after 'ready'
        if damage is not None:
            damage(cache.entry_for(slot.stem, slot.key, root).library)
        return publish(slot, details)

    monkeypatch.setattr(slots.Slot, "publish", losing)
    return rival


def test_a_build_that_loses_the_race_to_publish_uses_the_winners_entry(isolated, monkeypatch):
    text = new_cell()
    rival = publish_after_a_rival(monkeypatch, text)
    kernel = sg.build(sg.parse(text))
    (entry,) = published(isolated)
    assert compiles(isolated) == 2 and rival[0] == str(entry) == str(kernel.entry.path)
    run = kernel.forward(np.ones((3, 2, 2)), kernel.init_params({"D": 2, "H": 3}, seed=0))
    assert float(run.states["h"].sum()).hex() == rival[1]  # the winner's module, loaded and run
    assert [e.ok for e in housekeeping.entries(isolated)] == [True]
    assert not list(isolated.glob(".build-*")) and not list(isolated.glob(".trash-*"))


def test_a_build_that_loses_the_race_to_a_damaged_entry_says_so_and_the_next_build_repairs_it(isolated, monkeypatch):
    text = new_cell()
    publish_after_a_rival(monkeypatch, text, damage=flip_a_byte)
    with pytest.raises(
        sg.BuildError,
        match=r"cannot publish the kernel .*fresh_float64-\w+: another process published "
        r"it first, but _symgate_\w+\.\S+ does not match its SHA-256 checksum .*build again",
    ) as caught:
        sg.build(sg.parse(text))
    assert isinstance(caught.value.__cause__, OSError)
    assert not list(isolated.glob(".build-*"))  # the loser's own build is gone with it
    assert main(["cache", "verify"]) == 1
    assert run_builder(text).stdout.split()[1] == str(published(isolated)[0])
    assert [e.ok for e in housekeeping.entries(isolated)] == [True] and compiles(isolated) == 3


def test_a_publish_refused_by_the_file_system_names_the_entry(isolated, monkeypatch):
    publish = slots.Slot.publish

    def refused(slot: slots.Slot, details: dict) -> cache.Entry:
        with monkeypatch.context() as patch:  # only the rename into place (cffi renames files too)
            patch.setattr(slots.os, "rename", read_only_error)
            return publish(slot, details)

    monkeypatch.setattr(slots.Slot, "publish", refused)
    with pytest.raises(sg.BuildError, match=r"cannot publish the kernel .*fresh_float64-\w+ \(Permission denied\)$"):
        sg.build(sg.parse(new_cell()))
    assert not published(isolated) and not list(isolated.glob(".build-*"))


def test_a_build_killed_halfway_neither_blocks_nor_poisons_the_next(isolated, tmp_path):
    text = new_cell()
    started = tmp_path / "compiler-started"
    victim = builder(text, SG_TEST_HANG=str(started))
    assert victim.stdout.readline() == "ready\n"
    victim.stdin.write("go")
    victim.stdin.close()
    deadline = time.monotonic() + 120
    while not started.exists():  # the victim holds the entry's lock and is compiling
        assert time.monotonic() < deadline and victim.poll() is None, victim.stderr.read()
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the process and its compiler, halfway through
    victim.wait()
    (leftover,) = isolated.glob(".build-*")

    run_builder(text, timeout=60)  # the lock died with its holder: no wait, no stale state read
    assert [e.ok for e in housekeeping.entries(isolated)] == [True]
    assert leftover.exists()  # too young to be judged dead by age

    old = time.time() - 2 * slots.STALE_AFTER
    os.utime(leftover, (old, old))
    run_builder(new_cell("b"))  # any build sweeps old build directories whose owner is gone
    assert not leftover.exists()


def test_a_live_build_is_never_swept_however_old(isolated, tmp_path):
    started = tmp_path / "compiler-started"
    live = builder(new_cell(), SG_TEST_HANG=str(started))
    try:
        assert live.stdout.readline() == "ready\n"
        live.stdin.write("go")
        live.stdin.close()
        deadline = time.monotonic() + 120
        while not started.exists():
            assert time.monotonic() < deadline and live.poll() is None, live.stderr.read()
            time.sleep(0.05)
        (building,) = isolated.glob(".build-*")
        old = time.time() - 10 * slots.STALE_AFTER
        os.utime(building, (old, old))
        run_builder(new_cell("b"))
        assert main(["cache", "clear"]) == 0
        assert building.exists() and (building / "owner").exists()
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.wait()


class FakeMsvcrt:
    """Windows' ``msvcrt.locking`` as documented, on flock: LK_NBLCK fails at once with EACCES;
    LK_LOCK tries 3 times 50 ms apart (10 times 1 s apart on Windows), then fails with EDEADLOCK."""

    LK_LOCK, LK_NBLCK = 1, 2

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gave_up = 0

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        assert nbytes == 1
        self.calls.append(mode)
        for _ in range(1 if mode == self.LK_NBLCK else 3):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.05)
        if mode == self.LK_NBLCK:
            raise PermissionError(errno.EACCES, "Permission denied")
        self.gave_up += 1
        raise OSError(errno.EDEADLOCK, "Resource deadlock avoided")


def test_without_fcntl_the_cache_locks_with_msvcrt(isolated, monkeypatch):
    fake = FakeMsvcrt()
    monkeypatch.setattr(locks, "fcntl", None)
    monkeypatch.setattr(locks, "msvcrt", fake)
    sg.build(sg.parse(new_cell()))
    assert [e.ok for e in housekeeping.entries(isolated)] == [True] and not list(isolated.glob(".build-*"))
    assert set(fake.calls) == {fake.LK_LOCK, fake.LK_NBLCK}

    with slots._private_directory(isolated, ".build-held-") as live:  # a live build is never swept
        old = time.time() - 10 * slots.STALE_AFTER
        os.utime(live, (old, old))
        assert slots.sweep(isolated) == [] and live.exists()

    path, taken, release = isolated / ".locks" / "queue", threading.Event(), threading.Event()

    def holder() -> None:
        with locks.hold(path, blocking=True):
            taken.set()
            release.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait()
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with locks.hold(path, blocking=True) as held:  # waits beyond LK_LOCK giving up, until released
        assert held and time.monotonic() - started >= 0.5 and fake.gave_up >= 2
    thread.join()


NO_LOCKS = """\
import sys
sys.modules["fcntl"] = sys.modules["msvcrt"] = None  # a platform with neither: imports fail
import symgate as sg
for text in sys.argv[1:]:
    try:
        print(sg.build(sg.parse(text)).entry.path)
    except sg.BuildError as err:
        print(err)
"""


def test_without_any_file_lock_symgate_imports_loads_built_kernels_and_refuses_to_build_clearly(isolated):
    built, new = new_cell(), new_cell("b")
    entry = sg.build(sg.parse(built)).entry.path
    result = subprocess.run(
        [sys.executable, "-c", NO_LOCKS, built, new], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found, refused = result.stdout.splitlines()
    assert found == str(entry)
    assert re.fullmatch(
        rf"cannot lock {re.escape(str(isolated))}/\.locks/freshb_float64-[0-9a-f]{{20}}: this platform has neither "
        r"flock \(fcntl\) nor msvcrt\.locking, which building kernels needs; kernels already in the cache still load",
        refused,
    )


def test_a_cache_directory_that_cannot_be_created_is_named_in_the_error(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(sg.BuildError, match=r"a-file/cache cannot be written .* set SYMGATE_CACHE_DIR"):
        sg.build(sg.parse(new_cell()))


def test_a_read_only_cache_serves_its_kernels_and_refuses_new_ones_clearly(monkeypatch, tmp_path):
    root = tmp_path / "cache"
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(root))
    known = sg.parse(new_cell())
    built = sg.build(known)
    for path in [root, root / ".locks", built.entry.path]:
        path.chmod(0o555)
    if os.access(root, os.W_OK):  # root ignores permissions: refuse writes as the kernel would
        monkeypatch.setattr(slots.tempfile, "mkdtemp", read_only_error)
        monkeypatch.setattr(slots.tempfile, "TemporaryFile", read_only_error)
    monkeypatch.setattr(cache, "_verified", set())
    try:
        assert sg.build(known).entry.path == built.entry.path
        with pytest.raises(sg.BuildError, match=rf"{root} cannot be written \(Permission denied\)"):
            sg.build(sg.parse(new_cell()))
    finally:
        for path in [root, root / ".locks", built.entry.path]:
            path.chmod(0o755)


def read_only_error(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


def test_no_compiler_at_all_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcc, no cc
    with pytest.raises(sg.BuildError, match=r"no C compiler found .*apt-get install gcc"):
        sg.build(sg.parse(new_cell()))
    assert not published(tmp_path) and not list(tmp_path.glob(".build-*"))


def test_the_key_covers_everything_that_determines_the_binary(monkeypatch):
    base = compiler.cache_key("cell a", "float64", "templates")
    assert set(compiler.key_inputs("cell a", "float64", "templates")) == {
        "cell",
        "dtype",
        "symgate",
        "code",
        "templates",
        "compiler",
        "compiler version",
        "flags",
        "cpu",
        "cffi",
        "python abi",
    }
    changes = [
        lambda m: m.setattr(compiler, "__version__", "9.9.9"),
        lambda m: m.setattr(compiler, "source_digest", lambda: "other code"),
        lambda m: m.setenv("CC", "gcc -m64"),
        lambda m: m.setattr(compiler, "compiler_identity", lambda command: "gcc 99.1"),
        lambda m: m.setenv("SYMGATE_BLAS_MIN", "7"),
        lambda m: m.setenv("SYMGATE_SANITIZE", "1"),
        lambda m: m.setattr(compiler, "cpu_identity", lambda: "another CPU"),
        lambda m: m.setattr(compiler.cffi, "__version__", "0.0"),
        lambda m: m.setattr(compiler.sys, "version", "3.99"),
    ]
    for change in changes:
        with monkeypatch.context() as patch:
            change(patch)
            assert compiler.cache_key("cell a", "float64", "templates") != base
    assert compiler.cache_key("cell b", "float64", "templates") != base
    assert compiler.cache_key("cell a", "float32", "templates") != base
    assert compiler.cache_key("cell a", "float64", "other templates") != base
    assert compiler.cache_key("cell a", "float64", "templates") == base


def test_editing_the_runtime_header_changes_the_templates_digest(tmp_path, monkeypatch):
    """Every kernel includes symgate_runtime.h: a change in it must build new kernels."""
    copy = tmp_path / "templates"
    shutil.copytree(render.template_dir(), copy)
    monkeypatch.setattr(render, "template_dir", lambda: copy)
    before = render.templates_digest()
    header = copy / render.RUNTIME_HEADER
    header.write_text(header.read_text() + "/* edited */\n")
    assert render.templates_digest() != before


def test_the_key_is_the_canonical_cell_not_its_spelling(isolated):
    text = new_cell()
    respelled = "# a comment\n" + text.replace(" + ", "   +   ").replace("h' =", "h'=")
    first = sg.build(sg.parse(text))
    assert sg.build(sg.parse(respelled)).entry.path == first.entry.path
    changed = text.replace("tanh(", "sigmoid(")
    assert sg.build(sg.parse(changed)).entry.path != first.entry.path


def test_cache_list_verify_and_clear(isolated, capsys):
    kept, gone = sg.parse(new_cell("kept")), sg.parse(new_cell("kept").replace("cell freshkept", "cell freshkept_x"))
    for cell in (kept, gone):
        sg.build(cell, "float32")
    sg.build(kept, "float64")
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"kernel cache {isolated}: 3 entries" in out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [(r[0], r[1], r[5], r[6]) for r in rows] == [
        ("freshkept", "float32", "s", "ok"),
        ("freshkept", "float64", "s", "ok"),
        ("freshkept_x", "float32", "s", "ok"),
    ]
    assert all(r[3] == "kB" and float(r[2]) > 10 for r in rows)  # sizes in kB

    assert main(["cache", "verify"]) == 0
    out = capsys.readouterr().out
    assert "3 entries" in out and "0 bad" in out

    assert main(["cache", "clear", "--cell", "freshkept_x"]) == 0  # not a prefix match
    assert "removed 1 entries of cell freshkept_x" in capsys.readouterr().out
    assert [(e.cell, e.dtype) for e in housekeeping.entries()] == [("freshkept", "float32"), ("freshkept", "float64")]
    assert main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert not published(isolated) and not list((isolated / ".locks").iterdir())
    assert main(["cache", "list"]) == 0
    assert "0 entries" in capsys.readouterr().out


def test_cache_list_counts_real_build_directories_and_not_a_link_to_one(tmp_path, monkeypatch, capsys):
    root, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    (root / ".build-fresh_float64-live").mkdir(parents=True)
    elsewhere.mkdir()
    (root / ".build-fresh_float64-link").symlink_to(elsewhere)
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(root))
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "  1 build directories" in out
    assert "BAD .build-fresh_float64-link: it is a symbolic link" in out


def test_the_manifest_records_what_was_built(isolated):
    kernel = sg.build(sg.parse(new_cell()), "float32")
    manifest = json.loads((kernel.entry.path / "manifest.json").read_text())
    assert (manifest["cell"], manifest["dtype"], manifest["sanitize"]) == ("fresh", "float32", False)
    assert "-O3" in manifest["flags"] and set(manifest["files"]) == {
        kernel.entry.library.name,
        "kernel.c",
        "kernel.h",
        "interface.json",
    }
