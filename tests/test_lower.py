"""Lowering, piece by piece: product names, stacks, levels and fused loops, what lives in arrays.

tests/test_kernel_structure.py checks the products of whole plans of built-in cells; these check the
rest of what :mod:`symgate.codegen.lower` decides."""

from __future__ import annotations

import pytest

import symgate as sg
from symgate.codegen.lower import (
    Loop,
    Reduce,
    StackProduct,
    forward_stacks,
    plan_forward,
    plan_kernel,
    product_name,
)
from symgate.frontend.functions import SCALAR, MatVec, MatVecT, ReduceMean, ReduceSum, Var

LSTM_GATES = ("i", "f", "g", "o")


@pytest.mark.parametrize(
    ("node", "name"),
    [
        (MatVec(Var("W"), Var("x")), "W@x"),
        (MatVecT(Var("W"), Var("δm")), "Wᵀ@δm"),
        (ReduceMean(Var("u")), "mean(u)"),
        (ReduceSum(Var("u")), "sum(u)"),
    ],
)
def test_products_and_reductions_are_named_as_written(node, name):
    assert product_name(node) == name


def test_the_matrices_that_multiply_one_vector_form_one_stack():
    h_stack, x_stack = forward_stacks(sg.cells.get("lstm"))  # in order of first use
    assert (x_stack.vector, x_stack.cols, x_stack.hoisted) == ("x", "D", True)  # an input: all steps at once
    assert (h_stack.vector, h_stack.cols, h_stack.hoisted) == ("h", "H", False)
    assert h_stack.matrices == "U_i, U_f, U_g, U_o"
    assert h_stack.panel == ("U_i@h", "U_f@h", "U_g@h", "U_o@h")
    assert {m.rows for m in h_stack.members} == {"H"}
    assert h_stack.transposed_name == "δh_matmul"


def test_a_step_of_the_lstm_is_one_product_then_one_fused_loop():
    product, loop = plan_forward(sg.cells.get("lstm")).step
    assert isinstance(product, StackProduct) and product.stack.vector == "h"
    assert isinstance(loop, Loop) and (loop.dim, loop.level) == ("H", 1)
    assert [eq.target.name for eq in loop.equations] == [*LSTM_GATES, "c'", "h'"]
    assert "c" in loop.loads and "U_f@h" in loop.loads and "W_f@x" in loop.loads


def test_the_forward_pass_saves_what_the_backward_pass_reads_and_inference_saves_nothing():
    cell = sg.cells.get("lstm")
    plan = plan_kernel(cell, sg.derive(cell))
    assert plan.tape == LSTM_GATES
    assert set(LSTM_GATES) <= set(plan.forward.arrays)
    assert set(plan.forward.step[-1].stores) == {*LSTM_GATES, "c'", "h'"}
    assert not set(LSTM_GATES) & set(plan.infer.arrays)  # the gates stay in registers
    assert set(plan.infer.step[-1].stores) == {"c'", "h'"}


def test_a_cell_with_no_tape_infers_with_its_forward_pass():
    cell = sg.cells.get("elman_rnn")
    plan = plan_kernel(cell, sg.derive(cell))
    assert plan.tape == () and plan.infer is plan.forward


def test_a_reduction_runs_beside_the_product_and_its_scalar_loop_first():
    cell = sg.parse("cell r\ninput x: D\nstate h: H\nm = mean(h)\nh' = tanh(W @ x + U @ h) - m\n")
    reduce, product, scalar_loop, vector_loop = plan_forward(cell).step
    assert reduce == Reduce("mean(h)", "h", "H", mean=True)
    assert isinstance(product, StackProduct) and product.stack.vector == "h"
    assert (scalar_loop.dim, scalar_loop.level) == (SCALAR, 1)  # per-sample scalars before the vectors that read them
    assert [eq.target.name for eq in scalar_loop.equations] == ["m"]
    assert (vector_loop.dim, vector_loop.level) == ("H", 1)
