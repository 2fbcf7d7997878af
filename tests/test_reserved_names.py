"""Names symgate keeps for itself: a user's name never collides with one, in the cell language
or in the generated C."""

from __future__ import annotations

import re

import pytest

import symgate as sg
from symgate.codegen.cnames import GENERATED_PREFIXES, RESERVED, RESERVED_PREFIXES, CNames
from symgate.codegen.render import RUNTIME_HEADER, runtime_header
from symgate.export import render_export

GRU_WITH_HELPER_NAMES = """\
cell gru_named_like_helpers
input x: D
state h: H
r = sigmoid(W_r @ x + sg_add @ h + b_r)
z = sigmoid(W_z @ x + SG_BLAS_MIN @ h + b_z)
n = tanh(W_n @ x + sg_gemm_nn @ (r*h) + SYMGATE_MKL)
h' = z*h + (1 - z)*n
"""


def test_a_parameter_may_be_named_like_a_helper_the_kernels_call():
    """The recurrent matrices' gradients are summed through ``sg_add``: with a parameter of that
    name the kernel did not compile before (22b96a5: "called object 'sg_add' is not a function")."""
    cell = sg.parse(GRU_WITH_HELPER_NAMES)
    assert "sg_add(" in sg.generate(cell).c_source  # the helper is there, beside the parameter
    report = sg.gradcheck(cell, sizes={"D": 2, "H": 3}, steps=3, batch=2, seed=0)
    assert report.ok, str(report)


@pytest.mark.parametrize("role", ["inputs", "states"])
def test_a_keyword_is_refused_as_a_name_from_python_as_from_text(role):
    """``const`` is a keyword of the text: before (22b96a5) ``define`` took it as a state's name
    and the cell's ``text()`` did not parse back."""
    x, h, W, U = sg.symbols("x h W U")
    declared = {"inputs": {"x": "D"}, "states": {"h": "H"}}
    declared[role] = {"const": "H"} | declared[role]
    with pytest.raises(sg.CellNameError, match="invalid name 'const': it is a keyword of the cell language"):
        sg.define("c", **declared, equations=[(sg.next_state("h"), W @ x + U @ h)])


PREPROCESSOR = {"define", "ifdef", "ifndef", "endif", "include", "if", "else", "elif", "defined", "pragma"}
EXAMPLE_HELPER = re.compile(r"^static [^\n]*\bexample_\w+\([^)]*\)\n\{\n.*?^\}\n", re.M | re.S)
"""The example program's own helper functions: what they declare is theirs alone (a user's name
from the file is shadowed inside them and never used there)."""


def identifiers(c_text: str) -> set[str]:
    """The identifiers of C text, without comments, string literals, includes and the example's
    helper functions."""
    text = re.sub(r"/\*.*?\*/", " ", c_text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\])*"', " ", text)
    text = re.sub(r"^#\s*include.*$", " ", text, flags=re.M)
    text = re.sub(r"^(#\s*define\s+SG_\w+)\s.*$", r"\1", text, flags=re.M)  # values pasted into the header's names
    text = EXAMPLE_HELPER.sub(" ", text)
    text = re.sub(r"\b\d[\w.]*", " ", text)  # numbers, suffixes and all (1.0F)
    return set(re.findall(r"\b[A-Za-z_]\w*\b", text)) - PREPROCESSOR


def test_every_name_the_renderer_makes_up_is_kept_from_users(monkeypatch):
    """Every identifier in the generated C is either a name handed out for the cell's own things
    (unique, by :class:`CNames`) or one symgate makes up, and each of the latter is one no user name
    can become: reserved, or under a prefix symgate keeps (so adding a helper never breaks a cell)."""
    handed_out: set[str] = set()
    hand_out = CNames.__call__

    def recording(self, kind: str, name: str, pattern: str = "{}") -> str:
        given = hand_out(self, kind, name, pattern)
        handed_out.add(given)
        return given

    monkeypatch.setattr(CNames, "__call__", recording)
    texts = []
    for name in ("lstm", "gru_cho", "lstmp_pytorch", "sru", "qrnn_ifo"):
        cell = sg.cells.get(name)
        for dtype in ("float64", "float32", "complex128"):
            source = sg.generate(cell, dtype)
            texts += [source.c_source, source.header]
        library = render_export(cell, dtype="float32")
        texts += [
            text for file, text in library.files.items() if file.endswith((".c", ".h")) and file != RUNTIME_HEADER
        ]
    made_up = set().union(*map(identifiers, texts)) - handed_out
    assert "sg_gemm_nn" in made_up and "sg_lstm_float64_forward" in made_up  # the scan sees them
    assert sorted(n for n in made_up if n not in RESERVED and not n.startswith(RESERVED_PREFIXES)) == []


def test_the_runtime_header_defines_only_names_under_symgates_prefixes():
    """What the header declares inside its functions is theirs alone; what it defines at file scope
    (functions, macros) every generated file sees, so it all starts with a prefix symgate keeps."""
    header = runtime_header().read_text()
    defined = set(re.findall(r"^#\s*define\s+(\w+)", header, flags=re.M))
    defined |= set(re.findall(r"^static inline [^(]*?\b(\w+)\(", header, flags=re.M))
    assert "sg_sigmoid" in defined and "SG_UNITS_INDEPENDENT" in defined
    assert sorted(n for n in defined if not n.startswith(GENERATED_PREFIXES)) == []
