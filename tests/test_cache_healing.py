"""The kernel cache heals whatever it cannot trust (issue 19, point 4).

One tiny cell is built once for the module; each test copies that cache, damages it in one way,
and checks that ``symgate cache verify`` names the damage, ``list`` and ``clear`` finish with a
report, the next ``sg.build`` works, and nothing outside the cache directory is touched (a link
to outside points at a directory of our own with a sentinel file in it, never at ``/etc``).
The kernel is compiled at -O0 (a compiler wrapper): the cache is under test, not the code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import symgate as sg
import symgate.jit.safe_files as safe_files
from symgate.cli import main

TINY = "cell tiny\ninput x: D\nstate h: H\nh' = tanh(W @ x + U @ h)\n"
FAST_CC = """\
#!/bin/sh
if [ "$1" = "--version" ]; then exec gcc "$@"; fi
exec gcc "$@" -O0
"""
HANG_LIMIT = 60  # seconds; the old code blocked forever on a FIFO


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cache holding one built entry, and the compiler wrapper it was built with."""
    base = tmp_path_factory.mktemp("healing")
    cc = base / "cc"
    cc.write_text(FAST_CC)
    cc.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CC", str(cc))
        patch.setenv("SYMGATE_CACHE_DIR", str(base / "cache"))
        sg.build(sg.parse(TINY))
    return base / "cache", cc


@dataclass
class Scene:
    root: Path
    entry: Path
    outside: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def library(self) -> Path:
        return next(self.entry.glob("_symgate_*"))


@pytest.fixture
def scene(pristine, tmp_path, monkeypatch) -> Scene:
    """A copy of the pristine cache in use, and a directory outside it with a sentinel file."""
    root = tmp_path / "cache"
    shutil.copytree(pristine[0], root, symlinks=True)
    monkeypatch.setenv("CC", str(pristine[1]))
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(root))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep me\n")
    (entry,) = (p for p in root.iterdir() if not p.name.startswith("."))
    return Scene(root, entry, outside, monkeypatch)


@pytest.fixture(autouse=True)
def no_hang():
    """Fails a test that blocks (on a FIFO, say) instead of hanging the suite."""

    def expired(signum, frame):
        raise TimeoutError(f"blocked for {HANG_LIMIT} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(HANG_LIMIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``directory`` (not following links): mode and contents."""
    found = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(directory))] = (info.st_mode, path.read_bytes() if path.is_file() else b"")
    return found


# -- the damage --------------------------------------------------------------------------------


def edit_manifest(change: Callable[[dict], object]) -> Callable[[Scene], None]:
    def damage(scene: Scene) -> None:
        path = scene.entry / "manifest.json"
        manifest = json.loads(path.read_text())
        changed = change(manifest)
        path.write_text(json.dumps(manifest if changed is None else changed))

    return damage


def write_manifest(text: str) -> Callable[[Scene], None]:
    return lambda scene: (scene.entry / "manifest.json").write_text(text)


def record(scene_manifest: dict, value: object) -> None:
    library = next(name for name in scene_manifest["files"] if name.startswith("_symgate_"))
    scene_manifest["files"][library] = value


def replace_with(name: str, make: Callable[[Path, Scene], None]) -> Callable[[Scene], None]:
    """Removes the entry's file ``name`` (the library for "*") and makes something else there."""

    def damage(scene: Scene) -> None:
        path = scene.library if name == "*" else scene.entry / name
        path.unlink()
        make(path, scene)

    return damage


def fifo(path: Path, scene: Scene) -> None:
    os.mkfifo(path)


def socket_node(path: Path, scene: Scene) -> None:
    os.mknod(path, stat.S_IFSOCK | 0o600)


def device(path: Path, scene: Scene) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")


def link_to_outside_copy(path: Path, scene: Scene) -> None:
    """A link to a copy outside the cache: the contents match the manifest, the file is not the entry's."""
    copy = scene.outside / path.name
    shutil.copyfile(scene.root.parent / "entry-copy" / path.name, copy)
    path.symlink_to(copy)


def one_byte_longer(path: Path, scene: Scene) -> None:
    """The module with a byte appended, as a new file: this process has the old one mapped."""
    path.write_bytes((scene.root.parent / "entry-copy" / path.name).read_bytes() + b"\0")


def entry_replaced(make: Callable[[Path, Scene], None]) -> Callable[[Scene], None]:
    def damage(scene: Scene) -> None:
        shutil.rmtree(scene.entry)
        make(scene.entry, scene)

    return damage


def copy_of_entry_outside(path: Path, scene: Scene) -> None:
    shutil.copytree(scene.root.parent / "entry-copy", scene.outside / "entry", dirs_exist_ok=True)
    path.symlink_to(scene.outside / "entry", target_is_directory=True)


def unreadable(scene: Scene) -> None:
    """kernel.c without read permission. Root reads it anyway, so then an open of a file without
    read permission is refused as the kernel refuses it to anyone else."""
    (scene.entry / "kernel.c").chmod(0)
    if os.geteuid() != 0:
        return
    real_open = os.open

    def refusing(target, flags, *args, **kwargs):
        if "dir_fd" not in kwargs and isinstance(target, (str, os.PathLike)):
            try:
                mode = os.lstat(target).st_mode
            except OSError:
                mode = 0o444
            if stat.S_ISREG(mode) and not mode & 0o444:
                raise PermissionError(13, "Permission denied", str(target))
        return real_open(target, flags, *args, **kwargs)

    scene.monkeypatch.setattr(safe_files.os, "open", refusing)


def an_extra(make: Callable[[Path, Scene], None], name: str) -> Callable[[Scene], None]:
    return lambda scene: make(scene.entry / name, scene)


ENTRY_DAMAGE = {
    "manifest not JSON": (write_manifest("{not json"), "its manifest is not JSON"),
    "manifest a list": (write_manifest("[1, 2]"), "its manifest is of another format"),
    "manifest nested too deep": (write_manifest("[" * 200_000), "its manifest is not JSON"),
    "manifest huge": (write_manifest(" " * (2 << 20) + "{}"), "more than the 1048576"),
    "manifest files not a dict": (edit_manifest(lambda m: m.update(files="kernel.c")), "no record of its files"),
    "manifest record a string": (edit_manifest(lambda m: record(m, "damaged")), "is damaged: 'damaged'"),
    "manifest record without a checksum": (
        edit_manifest(lambda m: record(m, {"size": 1})),
        "is damaged: {'size': 1}",
    ),
    "manifest size a string": (
        edit_manifest(lambda m: record(m, {"size": "100", "sha256": "0" * 64})),
        "is damaged",
    ),
    "manifest sanitize flag damaged": (edit_manifest(lambda m: m.update(sanitize="yes")), "sanitize flag"),
    "manifest names a file outside": (
        edit_manifest(lambda m: m["files"].update({"../../outside/sentinel": {"size": 8, "sha256": "0" * 64}})),
        "not a file name inside the entry",
    ),
    "manifest a FIFO": (replace_with("manifest.json", fifo), "manifest.json is a FIFO, not a regular file"),
    "manifest a link outside": (
        replace_with("manifest.json", link_to_outside_copy),
        "manifest.json is a symbolic link (to ",
    ),
    "module a FIFO": (replace_with("*", fifo), "is a FIFO, not a regular file"),
    "kernel.c a FIFO": (replace_with("kernel.c", fifo), "kernel.c is a FIFO"),
    "kernel.h a socket": (replace_with("kernel.h", socket_node), "kernel.h is a socket"),
    "interface.json a device": (replace_with("interface.json", device), "interface.json is a character device"),
    "module a link outside": (replace_with("*", link_to_outside_copy), "is a symbolic link (to "),
    "an unlisted FIFO": (an_extra(fifo, "extra"), "it holds 'extra', which its manifest does not list"),
    "an unlisted directory": (
        lambda scene: (scene.entry / "sub").mkdir(),
        "it holds 'sub', which its manifest does not list",
    ),
    "kernel.c unreadable": (unreadable, "kernel.c cannot be read (Permission denied)"),
    "module longer": (replace_with("*", one_byte_longer), "the manifest says"),
    "entry a link outside": (entry_replaced(copy_of_entry_outside), "it is a symbolic link (to "),
    "entry a link to /": (entry_replaced(lambda path, _: path.symlink_to("/")), "it is a symbolic link (to /)"),
    "entry a file": (entry_replaced(lambda path, _: path.write_text("x")), "it is a file, not a directory"),
    "entry a FIFO": (entry_replaced(fifo), "it is a FIFO, not a directory"),
}


def build_and_run() -> sg.Kernel:
    kernel = sg.build(sg.parse(TINY))
    run = kernel.forward(np.ones((2, 1, 2)), kernel.init_params({"D": 2, "H": 3}, seed=0))
    assert np.isfinite(run.states["h"]).all()
    return kernel


@pytest.mark.parametrize(("damage", "problem"), ENTRY_DAMAGE.values(), ids=ENTRY_DAMAGE.keys())
def test_an_untrusted_entry_is_named_then_rebuilt_and_cleared_and_nothing_outside_is_touched(
    scene, capsys, damage, problem
):
    shutil.copytree(scene.entry, scene.root.parent / "entry-copy")  # for the copies outside
    damage(scene)
    outside = snapshot(scene.outside)

    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"{scene.entry.name} " in out and problem in out and "1 entries" in out and "1 bad" in out, out
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"BAD {scene.entry.name}: " in out and problem in out and "left in place" in out, out

    kernel = build_and_run()
    assert kernel.entry.path == scene.entry and not scene.entry.is_symlink() and scene.entry.is_dir()
    assert main(["cache", "verify"]) == 0
    assert "1 entries" in capsys.readouterr().out

    damage(scene)
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 entries" in out and f"removed {scene.entry.name}, which could not be trusted" in out, out
    assert not os.path.lexists(scene.entry)
    assert sorted(p.name for p in scene.root.iterdir()) == [".locks"]
    assert snapshot(scene.outside) == outside  # a link was removed, never what it points to


def locks_a_link(scene: Scene) -> None:
    shutil.rmtree(scene.root / ".locks")
    (scene.root / ".locks").symlink_to(scene.outside, target_is_directory=True)


def lock_file_replaced(make: Callable[[Path, Scene], None]) -> Callable[[Scene], None]:
    def damage(scene: Scene) -> None:
        lock = scene.root / ".locks" / scene.entry.name
        lock.unlink(missing_ok=True)
        make(lock, scene)
        shutil.rmtree(scene.entry)  # so the next build must take the lock

    return damage


def junk_dir(scene: Scene) -> None:
    (scene.root / "stuff").mkdir()
    (scene.root / "stuff" / "notes.txt").write_text("mine\n")


# name -> (damage, the damaged name relative to the cache, what verify says, whether it is
# symgate's debris (healed by a build, removed by clear) or a name symgate never makes (left alone))
DEBRIS = {
    "lock directory a link outside": (locks_a_link, ".locks", "not the directory of locks", True),
    "lock directory a file": (
        lambda s: (shutil.rmtree(s.root / ".locks"), (s.root / ".locks").write_text("x")),
        ".locks",
        "it is a file, not the directory of locks",
        True,
    ),
    "lock file a FIFO": (lock_file_replaced(fifo), ".locks/{entry}", "is a FIFO, not a lock file", True),
    "lock file a link outside": (
        lock_file_replaced(lambda path, s: path.symlink_to(s.outside / "sentinel")),
        ".locks/{entry}",
        "is a symbolic link (to ",
        True,
    ),
    "build directory a link outside": (
        lambda s: (s.root / ".build-tiny_float64-x1").symlink_to(s.outside, target_is_directory=True),
        ".build-tiny_float64-x1",
        "not a build directory",
        True,
    ),
    "trash a FIFO": (lambda s: os.mkfifo(s.root / ".trash-tiny-x2"), ".trash-tiny-x2", "it is a FIFO", True),
    "a junk file": (lambda s: (s.root / "notes.txt").write_text("x"), "notes.txt", "a file that symgate", False),
    "a junk directory": (junk_dir, "stuff", "a directory that symgate did not make", False),
    "a link to /": (lambda s: (s.root / "root").symlink_to("/"), "root", "a symbolic link (to /)", False),
    "an entry-like name with a bad key": (
        lambda s: (s.root / "tiny_float64-nothex").mkdir(),
        "tiny_float64-nothex",
        "that symgate did not make",
        False,
    ),
}


@pytest.mark.parametrize(("damage", "where", "problem", "ours"), DEBRIS.values(), ids=DEBRIS.keys())
def test_debris_in_the_cache_directory_is_named_healed_or_left_alone_and_never_followed(
    scene, capsys, damage, where, problem, ours
):
    damaged = scene.root / where.format(entry=scene.entry.name)
    damage(scene)
    outside = snapshot(scene.outside)

    assert main(["cache", "verify"]) == (1 if ours else 0)
    out = capsys.readouterr().out
    assert f"{damaged.name} " in out and problem in out and ("BAD" if ours else "not symgate's") in out, out
    assert main(["cache", "list"]) == 0
    assert problem in capsys.readouterr().out

    if ours:  # a build that compiles takes the lock and sweeps: it heals symgate's debris
        shutil.rmtree(scene.entry, ignore_errors=True)
    kernel = build_and_run()
    assert kernel.entry.path == scene.entry
    assert snapshot(scene.outside) == outside  # no lock file made through a link
    if ours:
        assert main(["cache", "verify"]) == 0
        assert problem not in capsys.readouterr().out
        damage(scene)

    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert (f"removed {damaged.name}, which could not be trusted" if ours else f"left {damaged.name}: ") in out, out
    assert os.path.lexists(damaged) is not ours and not os.path.lexists(scene.entry)
    assert snapshot(scene.outside) == outside
    assert main(["cache", "verify"]) == 0
    build_and_run()
