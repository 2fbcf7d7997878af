"""What the tags in a cell's header comment mean.

The built-in cells' headers say how far each cell's equations were confirmed (``Tag: [V1]``); the
tags are explained wherever a header is shown (``symgate show``, the catalogue in docs/cells.md),
so that a reader never meets one unexplained.
"""

from __future__ import annotations

import textwrap

TAGS = {
    "[V1]": "confirmed against a primary source: the framework's documentation or source code, "
    "or the code of the paper's authors",
    "[V2]": "confirmed against secondary sources only: independent transcriptions of the paper's "
    "equations or third-party reimplementations, agreeing where there are several",
    "(unverified)": "not confirmed by any source consulted; the choice made is pinned by a test",
}


def tag_legend(doc: str, width: int = 96) -> list[str]:
    """The meaning of each tag that ``doc`` uses, in the order of :data:`TAGS`, in lines of at
    most ``width`` characters."""
    lines: list[str] = []
    for tag, meaning in TAGS.items():
        if tag in doc:
            lines += textwrap.wrap(f"{tag}: {meaning}.", width, subsequent_indent="    ")
    return lines
