"""``symgate cache list``, ``verify`` and ``clear``: every entry and every stray, with the reason.

What the commands see of the cache directory (its layout is in :mod:`symgate.jit.cache`):
:func:`entries` are the directories under an entry's name, each verified, trusted or not;
:func:`strays` are the things that are no entry and no real build, trash or lock directory or
lock file. None of them stops part-way: each entry that cannot be trusted, and each stray, is
named with the reason. ``list`` and ``verify`` change nothing; :func:`clear` removes entries and
symgate's own debris (a link, never its target) and leaves names symgate never makes alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import BUILD_PREFIX, ENTRY_NAME, LOCKS, TRASH_PREFIX, cache_dir, discard, entry_for, names
from .safe_files import describe_node, remove
from .slots import sweep

HEALING_NOTE = (
    "left in place: the next build of a bad entry replaces it; `symgate cache clear` removes bad entries and "
    "symgate's debris now (a link, never its target), and leaves what symgate did not make alone"
)


@dataclass(frozen=True)
class EntryInfo:
    """One entry of the cache (or whatever has taken an entry's name) as ``symgate cache`` shows it."""

    path: Path
    cell: str
    dtype: str
    size: int
    age: float
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Stray:
    """Something in the cache directory that is no entry: symgate's own debris in a form no build
    makes (``ours``: a link where the lock directory belongs, a FIFO among the lock files), or a
    name symgate never makes, which it leaves alone."""

    path: Path
    problem: str
    ours: bool


@dataclass(frozen=True)
class Cleared:
    """What :func:`clear` did: the entries and debris it removed, and what it left, with why
    (``ours`` in :attr:`left`: symgate's, and it could not be removed)."""

    removed: list[EntryInfo]
    debris: list[Stray]
    left: list[Stray]


def entries(root: Path | None = None) -> list[EntryInfo]:
    """Every entry in the cache, trusted or not, sorted by cell and dtype, each verified."""
    root = root or cache_dir()
    found = []
    for name in names(root):
        match = ENTRY_NAME.match(name)
        if not match:
            continue
        path = root / name
        try:
            size, newest = _usage(path)
        except FileNotFoundError:  # removed meanwhile
            continue
        cell, _, dtype = match["stem"].rpartition("_")
        problem = entry_for(match["stem"], match["key"], root).problem()
        found.append(EntryInfo(path, cell, dtype, size, time.time() - newest, problem))
    return sorted(found, key=lambda e: (e.cell, e.dtype, e.path.name))


def _usage(top: Path) -> tuple[int, float]:
    """The bytes of the regular files under ``top`` and the newest one's time (``top``'s if it
    has none), walked without following a link; what cannot be read counts nothing."""
    info = os.lstat(top)
    size, times, todo = 0, [], [top] if stat.S_ISDIR(info.st_mode) else []
    while todo:
        try:
            with os.scandir(todo.pop()) as found:
                for item in found:
                    if item.is_dir(follow_symlinks=False):
                        todo.append(Path(item.path))
                    elif item.is_file(follow_symlinks=False):
                        item_info = item.stat(follow_symlinks=False)
                        size += item_info.st_size
                        times.append(item_info.st_mtime)
        except OSError:
            continue
    return size, max(times, default=info.st_mtime)


def strays(root: Path | None = None) -> list[Stray]:
    """Everything in the cache directory that is neither an entry's name, nor a real build, trash
    or lock directory, nor a regular lock file."""
    root = root or cache_dir()
    found = []
    for name in names(root):
        if ENTRY_NAME.match(name):
            continue
        path = root / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        what = describe_node(path, info)
        private = name.startswith((BUILD_PREFIX, TRASH_PREFIX))
        if name == LOCKS and stat.S_ISDIR(info.st_mode):
            found += [Stray(lock, f"{lock.name} is {kind}, not a lock file", True) for lock, kind in _bad_locks(path)]
        elif name == LOCKS:
            found.append(Stray(path, f"it is {what}, not the directory of locks", True))
        elif private and not stat.S_ISDIR(info.st_mode):
            found.append(Stray(path, f"it is {what}, not a build directory", True))
        elif not private:
            found.append(Stray(path, f"it is {what} that symgate did not make", False))
    return found


def _bad_locks(locks: Path) -> list[tuple[Path, str]]:
    """The names in the lock directory that are not regular files, with what each is."""
    try:
        listed = sorted(os.listdir(locks))
    except OSError as err:
        return [(locks, f"a directory that cannot be listed ({err.strerror})")]
    found = []
    for name in listed:
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(locks / name)
            if not stat.S_ISREG(info.st_mode):
                found.append((locks / name, describe_node(locks / name, info)))
    return found


def _real_directory(path: Path) -> bool:
    """Whether ``path`` is a directory itself, not a link to one (a link is never followed)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def clear(cell: str | None = None, root: Path | None = None) -> Cleared:
    """Removes every entry (or ``cell``'s), trusted or not, and with no ``cell`` symgate's debris
    and stale build directories too; names symgate never makes are left alone. Never stops
    part-way: what it cannot remove is reported in :attr:`Cleared.left`."""
    root = root or cache_dir()
    removed, left = [], []
    for entry in (e for e in entries(root) if cell is None or e.cell == cell):
        try:
            leftover = discard(entry.path)
        except OSError as err:
            left.append(Stray(entry.path, f"it cannot be renamed out of use ({err.strerror})", True))
            continue
        removed.append(entry)
        if leftover is not None:
            left.append(Stray(entry.path, f"it is out of use, but not all of it could be deleted ({leftover})", True))
        # its lock file too; a builder holding it meanwhile only risks compiling twice (see Slot.publish)
        if _real_directory(root / LOCKS):
            remove(root / LOCKS / entry.path.name)
    debris = []
    for stray in strays(root) if cell is None else []:
        if not stray.ours:
            left.append(Stray(stray.path, f"{stray.problem}: left alone (remove it yourself if unneeded)", False))
            continue
        failure = remove(stray.path)
        if failure is None:
            debris.append(stray)
        else:
            left.append(Stray(stray.path, f"{stray.problem}, and it cannot be removed ({failure})", True))
    if cell is None:
        sweep(root)
    return Cleared(removed, debris, left)


def describe(found: list[EntryInfo], root: Path, others: list[Stray] | None = None) -> str:
    """The table of ``symgate cache list``, then why each bad entry (and each stray) is not trusted."""
    lines = [f"kernel cache {root}: {len(found)} entries, {format_size(sum(e.size for e in found))}"]
    if found:
        lines.append(f"  {'cell':<24}{'dtype':<9}{'size':>9}{'age':>8}  {'status':<7}entry")
    for e in found:
        status = "ok" if e.ok else "BAD"
        lines.append(f"  {e.cell:<24}{e.dtype:<9}{format_size(e.size):>9}{_age(e.age):>8}  {status:<7}{e.path.name}")
    builds = [name for name in names(root) if name.startswith(BUILD_PREFIX) and _real_directory(root / name)]
    if builds:
        lines.append(f"  {len(builds)} build directories (in progress, or left by killed builds)")
    lines += untrusted_lines(found, others or [])
    return "\n".join(lines)


def untrusted_lines(found: list[EntryInfo], others: list[Stray]) -> list[str]:
    """One line for each entry that cannot be trusted and each stray, saying why and what
    happens to it: ``list`` and ``verify`` change nothing."""
    lines = [f"  BAD {e.path.name}: {e.problem}; left in place" for e in found if not e.ok]
    lines += [f"  {stray_status(s)} {s.path.name}: {s.problem}" for s in others]
    return [*lines, f"  ({HEALING_NOTE})"] if lines else []


def stray_status(stray: Stray) -> str:
    """How ``symgate cache`` marks a stray: BAD if it is symgate's debris."""
    return "BAD" if stray.ours else "not symgate's"


def format_size(size: float) -> str:
    """``size`` bytes for people: "512 B", "1.5 kB", "42.0 MB" (MB for anything larger)."""
    if size < 1000:
        return f"{size:.0f} B"
    if size / 1000 < 1000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1000 / 1000:.1f} MB"


def _age(seconds: float) -> str:
    """``seconds`` rounded in the largest unit it reaches: "3 d", "5 h", "12 min", "40 s"."""
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"
