"""The name mangler: every name a kernel uses reaches C as a valid identifier, unique, and never one
that C, libm, the headers or symgate's own generated names could clash with."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symgate.codegen.cnames import C_KEYWORDS, LIBM, RESERVED, RESERVED_PREFIXES, CNames, c_spelling

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
PATTERNS = {"param": "{}", "row": "{}_row", "grad_params": "grad_{}", "init": "{}_init"}
"""Kinds of names with the patterns the renderer gives them."""


@pytest.mark.parametrize("name", ["int", "for", "double", "restrict", "bool", "I", "NULL", "main", "size_t"])
def test_c_keywords_and_standard_names_are_mangled(name):
    assert name in C_KEYWORDS
    assert CNames()("param", name) == name + "_"


@pytest.mark.parametrize("name", ["exp", "tanh", "sqrt", "expf", "tanhf", "cexp", "ctanh", "conj", "memcpy", "NAN"])
def test_libm_names_in_every_precision_are_mangled(name):
    assert CNames()("param", name) == name + "_"


def test_libm_table_holds_the_functions_a_cell_can_call():
    assert {"exp", "log", "tanh", "sqrt", "pow", "fabs"} <= LIBM


@pytest.mark.parametrize("prefix", ["sg_", "SG_", "SYMGATE_", "example_", "M_"])
def test_names_with_a_reserved_prefix_are_mangled(prefix):
    assert prefix in RESERVED_PREFIXES
    assert CNames()("param", prefix + "x") == prefix + "x_"


def test_a_pattern_that_makes_a_reserved_prefix_is_mangled_too():
    assert CNames()("row", "x", "_{}") == "_x_"
    assert CNames()("row", "x", "sg_{}") == "sg_x_"


def test_no_user_name_starts_with_an_underscore():
    assert "_" in RESERVED_PREFIXES
    names = CNames()
    assert names("param", "_x") == "x" and names("param", "__y__") == "y"


def test_ordinary_names_are_kept():
    names = CNames()
    assert [names("param", n) for n in ("W_f", "h", "x1")] == ["W_f", "h", "x1"]


def test_one_name_of_two_kinds_gets_two_identifiers():
    names = CNames()
    assert names("param", "W") == "W"
    assert names("row", "W") == "W_"
    assert names("param", "W") == "W"  # asked again: the same identifier


def test_names_that_spell_alike_get_different_identifiers():
    names = CNames()
    assert names("param", "h'") == "h_next"
    assert names("param", "h_next") == "h_next_"


def test_the_same_requests_give_the_same_identifiers():
    requests = [("param", "int"), ("row", "h'"), ("param", "h_next"), ("row", "int"), ("grad_params", "δW")]
    first, second = CNames(), CNames()
    assert [first(*r) for r in requests] == [second(*r) for r in requests]


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("h'", "h_next"),
        ("δh", "d_h"),
        ("τ1", "tmp1"),
        ("δh'_pre", "d_h_next_pre"),
        ("δ(W@x)", "d_W_x"),
        ("Wᵀ@δm", "WT_d_m"),
        ("mean(u)", "mean_u"),
        ("1a", "v_1a"),
        ("αβ", "v_"),
    ],
)
def test_c_spelling_is_readable(name, spelled):
    assert c_spelling(name) == spelled


NAMES = st.text(alphabet=st.sampled_from("abxyzWUHT_019'δτᵀ@()αé"), min_size=1, max_size=10)
REQUESTS = st.lists(st.tuples(st.sampled_from(sorted(PATTERNS)), NAMES), max_size=20)


@given(REQUESTS)
def test_any_name_gets_a_valid_unique_unreserved_identifier(requests):
    names = CNames()
    given_out = {(kind, name): names(kind, name, PATTERNS[kind]) for kind, name in requests}
    for identifier in given_out.values():
        assert IDENTIFIER.fullmatch(identifier), identifier
        assert identifier not in RESERVED
        assert not identifier.startswith(RESERVED_PREFIXES) or identifier.endswith("_"), identifier
    assert len(set(given_out.values())) == len(given_out)  # unique across names and kinds
    assert [names(kind, name, PATTERNS[kind]) for kind, name in requests] == [given_out[r] for r in requests]
    again = CNames()
    assert {key: again(key[0], key[1], PATTERNS[key[0]]) for key in given_out} == given_out
