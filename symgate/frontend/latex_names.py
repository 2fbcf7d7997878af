r"""How a name reads in LaTeX: ``W_f`` -> ``W_{f}``, ``δs_tilde_pre`` -> ``\delta \tilde{s}_{\mathrm{pre}}``.

Names come from three places: the cell's author (``W_hr``, ``s_tilde``, ``forget_bias``), the
checker (``U_arg``, the argument of a product it named) and the derivation, which builds names
out of others: adjoints (``δh``), word suffixes (``δc'_tot``, ``δf_pre``, ``δmean(u)_parts_H``),
the adjoint of a product's or a reduction's result (``δ(Wᵀ@h)``, ``δmean(u)``) and trailing
underscores where a name was taken. The grammar, one rule a function below::

    name  := ["δ"] core suffix* "_"*
    core  := "(" name ["ᵀ"] "@" name ")" | word "(" name ")" | plain
    plain := base ["'"...] ("_" part)*

A one-letter base or subscript reads as a mathematical symbol (``W_{f}``, ``b_{ih}``); a longer
word is upright text (``\mathrm{scale}_{x}``, ``U_{h,\mathrm{arg}}``), so that it does not read
as a product of letters; Greek letter names are Greek (``\beta``, ``\tau_{1}``), and an accent
word is the accent (``x_tilde`` -> ``\tilde{x}``). Every result is valid LaTeX and also parses as
matplotlib's mathtext, which is what a notebook without a TeX installation renders with.
"""

from __future__ import annotations

import re

import sympy
from sympy.printing.latex import greek_letters_set

from .vocabulary import FUNCTIONS, Primitive

ADJOINT_MARK = "δ"
TEMPORARY_MARK = "τ"
ACCENTS = ("tilde", "hat", "bar", "check", "dot", "ddot", "vec")
"""Subscript words read as accents on the base: ``c_tilde`` is ``\\tilde{c}``, as papers write it."""
SHORT_INDEX = 2
"""A subscript of at most this many characters is an index in italics (``W_{ih}``); a longer one is a word."""

_IDENTIFIER = re.compile(r"[A-Za-z0-9τ_']+")
_PRODUCT = re.compile(r"\((?P<matrix>[^()@]+?)(?P<mark>ᵀ?)@(?P<vector>[^()@]+)\)(?P<rest>.*)")
_CALL = re.compile(r"(?P<word>[A-Za-z]+)\((?P<inner>[^()]+)\)(?P<rest>.*)")


def latex_name(name: str) -> str:
    r"""``name`` (``h'``, ``δc'_tot``, ``δ(Wᵀ@h)``, ``δmean(u)_parts``) as LaTeX."""
    trimmed = name.rstrip("_")
    fresh = r"\_" * (len(name) - len(trimmed))  # the derivation's mark of a name already taken
    prefix = ""
    if trimmed.startswith(ADJOINT_MARK):
        prefix, trimmed = r"\delta ", trimmed.removeprefix(ADJOINT_MARK)
    product, call = _PRODUCT.fullmatch(trimmed), _CALL.fullmatch(trimmed)
    if product:
        mark = r"^{\top}" if product["mark"] else ""
        core = rf"({latex_name(product['matrix'])}{mark} {latex_name(product['vector'])})"
        return prefix + core + _suffix(product["rest"]) + fresh
    if call:
        core = rf"{_function_latex(call['word'])}\left({latex_name(call['inner'])}\right)"
        return prefix + core + _suffix(call["rest"]) + fresh
    if not _IDENTIFIER.fullmatch(trimmed):
        return prefix + sympy.latex(sympy.Symbol(trimmed)) + fresh  # an extent, |H|
    return prefix + _plain(trimmed) + fresh


def _plain(name: str) -> str:
    r"""``h_tilde'`` -> ``\tilde{h}'``, ``c'_tot`` -> ``c'{}_{\mathrm{tot}}``, ``τ1`` -> ``\tau_{1}``.

    Primes go on the base, before the subscript (``c'{}_{tot}``: the ``{}`` makes the subscript
    belong to ``c'``, not to the prime).
    """
    primes = "'" * name.count("'")
    base, *parts = name.replace("'", "").split("_")
    numbered = re.fullmatch(r"(\D+?)(\d+)", base)
    if numbered:
        base, parts = numbered[1], [numbered[2], *parts]
    text = _word(base, subscript=False)
    for accent in (p for p in parts if p in ACCENTS):
        text = rf"\{accent}{{{text}}}"
    indices = [_word(p, subscript=True) for p in parts if p and p not in ACCENTS]
    glue = "{}" if primes and indices else ""
    return text + primes + (glue + "_{" + ",".join(indices) + "}" if indices else "")


def _suffix(rest: str) -> str:
    r"""The word suffixes after a product or a call: ``_parts_H`` -> ``{}_{\mathrm{parts},H}``."""
    parts = [p for p in rest.split("_") if p]
    return "{}_{" + ",".join(_word(p, subscript=True) for p in parts) + "}" if parts else ""


def _word(word: str, subscript: bool) -> str:
    """One base or subscript: Greek, a symbol in italics, or a word upright."""
    if word == TEMPORARY_MARK or word.lower() in greek_letters_set:
        return sympy.latex(sympy.Symbol(word.replace(TEMPORARY_MARK, "tau")))
    if len(word) == 1 or word.isdigit() or (subscript and len(word) <= SHORT_INDEX):
        return word
    return rf"\mathrm{{{word}}}"


def _function_latex(word: str) -> str:
    """A reduction's (or any call's) LaTeX name, as its record of the cell language gives it."""
    record = FUNCTIONS.get(word)
    if isinstance(record, Primitive) and record.latex is not None:
        return record.latex
    return rf"\operatorname{{{word}}}"
