"""Transposes and matrix expressions on the left of '@' (issue 18, point 3).

``W.T @ v`` is the transpose product; ``(W - W.T) @ h`` and the Lipschitz RNN's
``((1 - beta)*(M + M.T) + beta*(M - M.T)) @ h`` are expanded by linearity, each distinct product
computed once, and W's gradient collects ``δ ⊗ h`` and ``h ⊗ δ``. The cells are written as their
papers write them and checked against NumPy steps written here, independently of symgate.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import symgate as sg
from symgate.codegen import lower
from symgate.errors import CellError, CellNameError, CellSyntaxError, DimensionError
from symgate.frontend.functions import MatVec, MatVecT, Var
from symgate.jit import toolchain
from symgate.symbolic.derive import MatrixGradient

# Chang, Chen, Haber, Chi, "AntisymmetricRNN: a dynamical system view on recurrent neural networks"
# (ICLR 2019), eq. 5: h_t = h_{t-1} + eps * tanh((W_h - W_h^T - gamma I) h_{t-1} + V_h x_t + b_h).
# The identity is not special in the cell language: gamma I h is written gamma*h.
ANTISYMMETRIC = """\
cell antisymmetric_rnn
input x: D
state h: H
const eps = 0.1
const gamma = 0.01
h' = h + eps*tanh((W - W.T) @ h - gamma*h + V @ x + b)
"""

# Erichson, Azencot, Queiruga, Hodgkinson, Mahoney, "Lipschitz recurrent neural networks"
# (ICLR 2021), eq. 2 discretised by forward Euler: h' = h + eps*A_β h + eps*tanh(W_β h + U x + b),
# with M_β = (1 - β)(M + Mᵀ) + β(M - Mᵀ) - γ I for M = A and M = W.
LIPSCHITZ = """\
cell lipschitz_rnn
input x: D
state h: H
const eps = 0.03
const beta_a = 0.75
const beta_w = 0.65
const gamma_a = 0.001
const gamma_w = 0.002
a = ((1 - beta_a)*(A + A.T) + beta_a*(A - A.T)) @ h - gamma_a*h
z = ((1 - beta_w)*(W + W.T) + beta_w*(W - W.T)) @ h - gamma_w*h + U @ x + b
h' = h + eps*a + eps*tanh(z)
"""

# Tied weights, not square: W (D, H) encodes with W.T and decodes with W. W.T @ x reads an input,
# so its product runs over all steps at once; W @ h' runs at every step.
TIED = """\
cell tied
input x: D
state h: H
h' = tanh(W.T @ x + U @ h + b)
output y = W @ h'
"""

SIZES = {"D": 3, "H": 4}


def _antisymmetric_step(h, x, p):
    eps, gamma = 0.1, 0.01
    matrix = p["W"] - p["W"].T - gamma * np.eye(len(h[0]))
    return h + eps * np.tanh(h @ matrix.T + x @ p["V"].T + p["b"])


def _lipschitz_step(h, x, p):
    eye = np.eye(len(h[0]))

    def m_beta(m, beta, gamma):
        return (1 - beta) * (m + m.T) + beta * (m - m.T) - gamma * eye

    a = h @ m_beta(p["A"], 0.75, 0.001).T
    z = h @ m_beta(p["W"], 0.65, 0.002).T + x @ p["U"].T + p["b"]
    return h + 0.03 * a + 0.03 * np.tanh(z)


def _run_numpy(step, x, h0, params):
    h, states = h0, []
    for x_t in x:
        h = step(h, x_t, params)
        states.append(h)
    return np.stack(states)


@pytest.mark.parametrize(("text", "step"), [(ANTISYMMETRIC, _antisymmetric_step), (LIPSCHITZ, _lipschitz_step)])
def test_cells_from_papers_match_numpy_steps_and_pass_gradcheck(text, step):
    cell = sg.parse(text)
    assert all(p.shape == ("H", "H") for p in cell.params if p.name in ("W", "A"))
    kernel = sg.build(cell)
    rng = np.random.default_rng(3)
    params = kernel.init_params(SIZES, seed=1)
    params = {n: a + 0.3 * rng.standard_normal(a.shape) for n, a in params.items()}  # no symmetry by chance
    x, h0 = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 4))
    run = kernel.forward(x, params, init={"h": h0})
    np.testing.assert_allclose(run.states["h"], _run_numpy(step, x, h0, params), rtol=1e-10, atol=1e-12)
    report = sg.gradcheck(cell, SIZES, complex_step=True)
    assert report.ok, report


def test_tied_weights_of_two_shapes_pass_gradcheck_in_float64_and_float32():
    cell = sg.parse(TIED)
    assert cell.param("W").shape == ("D", "H")
    assert sg.gradcheck(cell, SIZES, complex_step=True).ok
    assert sg.gradcheck(cell, SIZES, float32=True).ok


def test_each_product_is_computed_once_and_w_collects_both_gradients():
    cell = sg.parse(ANTISYMMETRIC)
    W, h = Var("W"), Var("h")
    (eq,) = cell.equations
    assert eq.expr.atoms(MatVec) == {MatVec(W, h), MatVecT(W, h), MatVec(Var("V"), Var("x"))}
    assert cell.operations().products == 3
    derivation = sg.derive(cell)
    outer = [g for g in derivation.gradients if isinstance(g, MatrixGradient) and g.param == "W"]
    assert sorted(g.transposed for g in outer) == [False, True]
    assert {g.outer for g in outer} == {"δh'_pre ⊗ h", "h ⊗ δ(Wᵀ@h)"}
    # the transposed product passes back W @ δ, the plain one Wᵀ @ δ
    δh = next(e.expr for e in derivation.equations if e.target.name == "δh")
    assert δh.has(MatVec(W, Var("δ(Wᵀ@h)"))) and δh.has(MatVecT(W, Var("δh'_pre")))


def test_the_lipschitz_matrix_expression_is_expanded_by_linearity():
    cell = sg.parse(LIPSCHITZ)
    a = next(e for e in cell.equations if e.target.name == "a")
    assert a.expr == MatVec(Var("A"), Var("h")) + (1 - 2 * Var("beta_a")) * MatVecT(Var("A"), Var("h")) - Var(
        "gamma_a"
    ) * Var("h")


def test_text_round_trip_and_latex():
    for text in (ANTISYMMETRIC, LIPSCHITZ, TIED):
        cell = sg.parse(text)
        again = sg.parse(cell.text())
        assert again.text() == cell.text() and again.fingerprint() == cell.fingerprint()
    cell = sg.parse(ANTISYMMETRIC)
    assert cell.text().splitlines()[-1] == "h' = eps*tanh(b - gamma*h + V @ x + W @ h - W.T @ h) + h"
    assert "Wᵀ @ h" in cell.describe()
    assert r"W h - W^{\top} h" in cell.latex()
    backward = sg.derive(cell)
    assert r"\delta W &\;{+}{=}\; h \otimes \delta (W^{\top} h)" in backward.latex()
    assert "δW += h ⊗ δ(Wᵀ@h)" in backward.text()


def test_jacobian_names_the_transposed_path_and_matches_finite_differences():
    cell = sg.parse(ANTISYMMETRIC)
    jacobian = sg.derive(cell).jacobian("h'", "h")
    assert jacobian.structure == "diagonal plus products through W, Wᵀ"
    assert r"\, W^{\top}" in jacobian.latex()
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(4, 4)), "V": rng.normal(size=(4, 3)), "b": rng.normal(size=4)}
    h, x = rng.normal(size=(2, 4)), rng.normal(size=(2, 3))
    block = jacobian.evaluate(params, {"h": h}, {"x": x})
    step = 1e-6
    columns = [
        (_antisymmetric_step(h + step * e, x, params) - _antisymmetric_step(h - step * e, x, params)) / (2 * step)
        for e in np.eye(4)
    ]
    np.testing.assert_allclose(block, np.stack(columns, axis=-1), atol=1e-8)


def test_the_python_route_writes_transposes_with_dot_t():
    W, h, b = sg.symbols("W h b")
    cell = sg.define(
        "antisymmetric", inputs={}, states={"h": "H"}, equations=[(sg.next_state("h"), sg.MatVec(W - W.T, h) + b)]
    )
    assert cell.text().splitlines()[-1] == "h' = b + W @ h - W.T @ h"


ERRORS = [
    (
        "h' = tanh((W @ x) @ h)",
        CellSyntaxError,
        "the left side of '@' is `(W @ x)`, a vector (column 19): it must be a parameter matrix (W), its transpose "
        "(W.T) or a sum of their multiples ((W - W.T)); to multiply elementwise, write (W @ x)*h",
    ),
    (
        "h' = tanh((W + b) @ h + b + x)",
        DimensionError,
        "b is used as a matrix (on the left of '@', line 5) and as a vector: a parameter is one or the other; to add "
        "the vector b to a product, write it beside the product (W @ h + b), else rename one of them",
    ),
    (
        "h' = tanh(W @ h + x.T)",
        DimensionError,
        "h' = `tanh(W @ h + x.T)` is a matrix (`x.T` lays x as a row, and a column beside a row makes a matrix, "
        "their outer product), but state h is declared a vector of size H; declare `state h: ROWS x COLS`",
    ),
    (
        "h' = tanh(x.T @ h)",
        CellNameError,
        "x is an input (a vector of size D); the left side of '@' must be a parameter matrix or a matrix state "
        "(`state S: K x V`, S' or a matrix computed from them)",
    ),
    ("h' = tanh(W.T.T @ h + x)", CellSyntaxError, "W.T.T at column 11 transposes twice, which gives W back: write W"),
    (
        "h' = tanh(W.t @ h + x)",
        CellSyntaxError,
        "expected T after '.' at column 12 (W.T is the transpose of W), found 't' at column 13",
    ),
    ("h' = tanh(W .T @ h + x)", CellSyntaxError, "write W.T without spaces (column 13)"),
    (
        "h' = tanh(h'.T @ h + x)",
        CellNameError,
        "h' is the next value of state h (a vector of size H); the left side of '@' must be a parameter matrix or "
        "a matrix state (`state S: K x V`, S' or a matrix computed from them): declare `state h: H x COLS` to make "
        "h one",
    ),
    (
        "h' = tanh((W - W.T - gamma) @ h + x)",
        CellError,
        "`-gamma` in `(W - gamma - W.T) @ h` is a constant, not a matrix, and the cell language has no identity "
        "matrix: take it out of the product and write `-gamma*h` beside it",
    ),
    (
        "h' = tanh((W - 1) @ h + x)",
        CellError,
        "`-1` in `(W - 1) @ h` is a number, not a matrix, and the cell language has no identity matrix: take it out "
        "of the product and write `-h` beside it",
    ),
    (
        "h' = tanh((a*W) @ h + x)",
        CellError,
        "`W*a` in `(W*a) @ h` multiplies matrices; each term of the left side of '@' is one matrix (W or W.T) times "
        "numbers and constants; if W or a is a number, declare it with `const`",
    ),
    (
        "h' = tanh((tanh(W)) @ h + x)",
        CellError,
        "`tanh(W)` in `(tanh(W)) @ h`: the left side of '@' may only add, subtract and scale parameter matrices by "
        "numbers and constants, as (2*W - W.T)",
    ),
    (
        "h' = tanh(W**2 @ h + x)",
        CellSyntaxError,
        "the left side of '@' must be a parameter matrix name, its transpose (W.T) or a parenthesized sum of their "
        "multiples ((W - W.T) @ h), or a matrix state's name (S, S', S.T), found 'W ** 2' (column 16)",
    ),
    (
        "h' = tanh((W - W.T) @ x + U @ h)",
        DimensionError,
        "h' has size H but `tanh(U @ h + (W - W.T) @ x)` has size D",
    ),
    (
        "h' = tanh(W @ h + W.T @ x)",
        DimensionError,
        "size conflict in `W @ h + W.T @ x`: `W @ h` has size D but `W.T @ x` has size H",
    ),
]


@pytest.mark.parametrize(("line", "kind", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_matrix_expressions_say_what_was_written_and_how_to_fix_it(line, kind, message):
    text = f"cell t\ninput x: D\nstate h: H\nconst gamma = 0.5\n{line}\n"
    with pytest.raises(kind) as info:
        sg.parse(text)
    assert type(info.value) is kind
    first, shown = str(info.value).splitlines()
    assert first == f"<string>:5: {message}"
    assert shown.strip() == line


def test_torch_module_gradients_through_a_transposed_product():
    torch = pytest.importorskip("torch")
    from symgate.torch import from_cell

    module = from_cell(sg.parse(ANTISYMMETRIC), SIZES, dtype=torch.float64, seed=0)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in module.named_parameters()]
    leaves = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def f(x, h0, *params):
        out, _ = torch.func.functional_call(module, dict(zip(names, params, strict=True)), (x, {"h": h0}))
        return out

    assert torch.autograd.gradcheck(f, (x, h0, *leaves))


def test_the_language_page_example_is_the_paper_cell():
    page = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text()
    (block,) = [b for b in re.findall(r"\n  ```\n(.+?)\n  ```\n", page, re.S) if "W.T" in b]
    text = "\n".join(line.removeprefix("  ") for line in block.splitlines()) + "\n"
    assert sg.parse(text).fingerprint() == sg.parse(ANTISYMMETRIC).fingerprint()


@pytest.mark.skipif(not toolchain.blas_flags(), reason="scipy-openblas32 is a dependency of symgate")
@pytest.mark.parametrize("text", [ANTISYMMETRIC, TIED], ids=["antisymmetric", "tied"])
def test_transposed_products_through_openblas(text, monkeypatch, tmp_path):
    """Every product through OpenBLAS, the packing of transposed members by its omatcopy."""
    monkeypatch.setenv("SYMGATE_BLAS", "openblas")
    monkeypatch.setenv("SYMGATE_BLAS_MIN", "0")
    monkeypatch.setenv("SYMGATE_CACHE_DIR", str(tmp_path))
    report = sg.gradcheck(sg.parse(text), SIZES, steps=4, batch=3, float32=True)
    assert report.ok, str(report)


SMALL = {
    # (W + W.T) @ h: both products get one adjoint, which the backward panel holds twice
    "symmetric": "h' = tanh((W + W.T) @ h + U @ x)",
    "alone": "h' = tanh(W.T @ h + U @ x)",
    "lifted": "r = sigmoid(U @ x + W @ h)\nh' = tanh(W.T @ (r*h) + V @ x)\noutput y = 2*(U.T @ r)",
    "output": "h' = tanh(V @ x + (W - 0.5*W.T) @ h)\noutput y = (W.T @ h')*h'",
}


@pytest.mark.parametrize("equations", SMALL.values(), ids=SMALL)
def test_transposed_products_in_every_position_pass_gradcheck(equations):
    cell = sg.parse(f"cell small\ninput x: D\nstate h: H\n{equations}\n")
    assert sg.parse(cell.text()).fingerprint() == cell.fingerprint()
    assert sg.gradcheck(cell, SIZES, complex_step=True).ok


def test_unfused_backward_products_of_both_kinds(monkeypatch):
    """Where no backward sum is fused into a stacked product, each ``W @ δ`` and ``Wᵀ @ δ`` is a
    product of its own (``Product``): the path a sum split by CSE takes."""
    monkeypatch.setattr(lower, "_fuse_transposed_sums", lambda equations, stacks, inputs: (equations, {}, []))
    cell = sg.parse(ANTISYMMETRIC)
    plan = lower.plan_kernel(cell, sg.derive(cell))
    products = [op for op in plan.backward.step if isinstance(op, lower.Product)]
    assert sorted(op.transposed for op in products) == [False, True, True]
    assert sg.gradcheck(cell, SIZES).ok
