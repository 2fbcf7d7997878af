"""Names that look mistyped: a parameter spelled almost like a declared name, or like a number.

Every name a cell does not declare or assign is a parameter, so a slip of the keyboard (``C`` for
the state ``c``, ``hh`` for ``h``) silently becomes a new learned vector. The checker warns when a
vector parameter is *close* to a declared name (input, state, output, constant or intermediate):

* it differs from it only by case (``C`` and ``c``), or
* it is the name with one of its characters typed twice (``hh`` for ``h``, ``xpp`` for ``xp``), or
* it is the name with one character added, removed or replaced, or two neighbours swapped, and
  both have at least three characters (``gaet`` for ``gate``).

Short names are one edit apart from each other (``b`` and ``h``, ``b1`` and ``a1``) and papers
use them side by side, so a name of one or two characters is matched only by its case twin and
by a doubled character.
Matrices are never matched: ``U @ u`` beside a vector ``u`` is the usual convention, not a slip.
Parameters are not matched with each other either (``W_f`` beside ``W_i`` is deliberate).
"""

from __future__ import annotations

from collections.abc import Mapping

NUMBER_NAMES: Mapping[str, tuple[str, str]] = {
    "pi": ("the number pi", "write 3.141592653589793 or `const pi = 3.141592653589793`"),
    "e": ("Euler's number e", "write 2.718281828459045 or `const e = 2.718281828459045`"),
    "t": ("the time", "a cell cannot read the step it is at; if a learned vector is meant, rename it"),
}
"""Parameter names that read as a mathematical constant or as time: (what they read as, the fix)."""


def how_close(parameter: str, declared: str) -> str | None:
    """``"only by case"`` or ``"by one character"`` if ``parameter`` looks like a slip for ``declared``."""
    if parameter == declared:
        return None
    if parameter.lower() == declared.lower():
        return "only by case"
    doubled = any(parameter == declared[:i] + declared[i] + declared[i:] for i in range(len(declared)))
    if doubled or (min(len(parameter), len(declared)) >= 3 and _one_edit(parameter, declared)):
        return "by one character"
    return None


def _one_edit(a: str, b: str) -> bool:
    """Whether one insertion, deletion, replacement or swap of neighbours turns ``a`` into ``b``."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        swapped = len(differ) == 2 and differ[1] == differ[0] + 1 and a[differ[0]] == b[differ[1]]
        return len(differ) == 1 or (swapped and a[differ[1]] == b[differ[0]])
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))
