"""Every function of the cell language, one case per record of symgate/frontend/vocabulary.py.

A record is all the parser, the C printer, the NumPy reference, the notation printers and the
operation count know of a function. So adding a function to the language is its record (with its
SymPy class if SymPy has none, and its ``sg_`` C helper if libm has none): the cases below are
made from the table, and with no line added here they check the new record's pieces against each
other. For each function ``FN`` of arity n, the cell

    cell f_FN / input x: D / state h: H / h' = FN(a_1, ..., a_n),  a_k = sigmoid(W_k @ x + b_k + h) + 1

(arguments in (1, 2), inside every function's domain: log and sqrt need positive ones; ``+ h``
gives them the size H, which a reduction's argument needs; an argument the record takes as a
constant, ``clip``'s bounds, is a number in (1, 2); a function of a matrix, ``rowsum``, is given
the outer product ``outer(a_1, a_2)``, and one that makes a matrix, ``outer``, is summed along its
rows, ``rowsum(FN(a_1, a_2))``, so that every case is a vector of size H) is

* compiled to a float64 kernel whose forward pass matches the NumPy reference and whose gradients
  pass ``sg.gradcheck``: the C spelling, the NumPy reference and the derivative agree;
* written as cell text that parses back to the same equations, and as LaTeX in the record's name;
* counted by the operation count at the record's cost.

One cell calling every function at once checks the complex-C spellings with the complex step (one
complex kernel for all, to keep this file quick).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgate as sg
from symgate.codegen.cprinter import printer_for
from symgate.frontend.functions import Var, next_state
from symgate.frontend.notation import cell_text, latex
from symgate.frontend.vocabulary import FUNCTIONS, VOCABULARY, Composite, Primitive, RowSum, outer, sigmoid
from symgate.symbolic.opcount import OpCount, count_pass
from symgate.verify import reference

SIZES = {"D": 2, "H": 3}
STEPS, BATCH = 3, 2
RECORDS = pytest.mark.parametrize("record", VOCABULARY, ids=lambda record: record.name)


def _arguments(record: Primitive | Composite) -> list[sympy.Expr]:
    """Different arguments for ``record``, each in (1, 2): vectors, or numbers ascending across
    (1, 2) where the record takes constants (``clip``'s bounds, 4/3 and 5/3)."""
    x, h = Var("x"), Var("h")
    constant = record.constant_arguments
    return [
        sympy.Float(1 + (constant.index(k) + 1) / (len(constant) + 1))
        if k in constant
        else sigmoid(Var(f"W{k}") @ x + Var(f"b{k}") + h) + 1
        for k in range(record.arity)
    ]


def _call(record: Primitive | Composite) -> sympy.Expr:
    """A call of ``record`` whose value is a vector of size H: a function that reduces a matrix is
    given the outer product of its arguments' vectors, one that makes a matrix is summed along its rows."""
    if record.matrices == "argument":
        first, second = _arguments(record)[0], _arguments(_TWO_VECTORS)[1]
        return record.build(outer(first, second))
    call = record.build(*_arguments(record))
    return RowSum(call) if record.matrices == "result" else call


_TWO_VECTORS = FUNCTIONS["max"]


def _cell(name: str, expr: sympy.Expr) -> sg.Cell:
    return sg.define(name, inputs={"x": "D"}, states={"h": "H"}, equations=[(next_state("h"), expr)])


@RECORDS
def test_the_compiled_kernel_agrees_with_the_reference_and_its_gradients_check(record):
    cell = _cell(f"f_{record.name}", _call(record))
    kernel = sg.build(cell, "float64")
    rng = np.random.default_rng(0)
    params = kernel.init_params(SIZES, seed=0)
    inputs = {"x": rng.standard_normal((STEPS, BATCH, SIZES["D"]))}
    init = {"h": rng.uniform(-0.5, 0.5, (BATCH, SIZES["H"]))}
    run = kernel.forward(inputs, params, init)
    states, _ = reference.forward(cell, inputs, params, init)
    np.testing.assert_allclose(run.states["h"], states["h"], rtol=1e-13, atol=1e-15)
    report = sg.gradcheck(cell, SIZES, steps=STEPS, batch=BATCH)
    assert report.ok, str(report)


def test_every_complex_spelling_agrees_with_the_complex_step():
    # the mean of the calls, not their sum: a state of ~40 saturates every argument to 2 exactly, a
    # tie of max's and mod's arguments, where C and NumPy may round to either side of the jump
    cell = _cell("every_function", sympy.Add(*(_call(record) for record in VOCABULARY)) / len(VOCABULARY))
    report = sg.gradcheck(cell, SIZES, steps=STEPS, batch=BATCH, complex_step=True)
    assert report.ok and report.complex_step.ok, str(report)


@RECORDS
def test_the_notation_reads_back(record):
    cell = _cell(f"f_{record.name}", _call(record))
    if record.in_cell_text:
        text = f"cell f_{record.name}\ninput x: D\nstate h: H\nh' = {cell_text(_call(record))}\n"
        assert [(e.target, e.expr) for e in sg.parse(text).equations] == [(e.target, e.expr) for e in cell.equations]
    printed = latex(cell.equations[-1].expr)
    if isinstance(record, Primitive) and record.latex is not None:
        assert printed.startswith(rf"{record.latex}\left(")


@RECORDS
def test_the_operation_count_counts_it(record):
    arguments = _arguments(record)
    call, alone = count_pass([record.build(*arguments)]), count_pass(arguments)
    if isinstance(record, Primitive):
        assert call == alone + OpCount(**{record.cost: 1})
    else:  # counted as what it is built of
        assert call != alone


@pytest.mark.parametrize("record", [r for r in VOCABULARY if isinstance(r, Primitive)], ids=lambda r: r.name)
def test_the_node_takes_the_arity(record):
    assert record.arity in record.node.nargs


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_the_printers_refuse_a_function_outside_the_language(dtype):
    with pytest.raises(TypeError, match="C function for atan"):
        printer_for(dtype, {"a": "a"}).doprint(sympy.atan(Var("a")))
