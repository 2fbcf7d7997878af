"""Shared fixtures: a private kernel cache for the test session, the same products through the
generated loops on every machine, and the LSTM text."""

from __future__ import annotations

import os

import pytest

LSTM = """\
cell lstm
input x: D
state h: H, c: H
f = sigmoid(W_f @ x + U_f @ h + b_f)
i = sigmoid(W_i @ x + U_i @ h + b_i)
g = tanh(W_g @ x + U_g @ h + b_g)
o = sigmoid(W_o @ x + U_o @ h + b_o)
c' = f*c + i*g
h' = o*tanh(c')
"""


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every test builds into one fresh cache, so the suite never touches the user's. Products
    under 16384 multiply-adds run in the generated loops, whatever this machine's default, so the
    suite checks both paths everywhere (tests/test_blas.py sends every product to BLAS).

    Under pytest-xdist the workers share the one cache (beside their own temporary directories),
    so a kernel is compiled once for the whole run: the cache is made for concurrent builds."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "symgate-cache"
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("symgate-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYMGATE_CACHE_DIR", str(path))
        patch.setenv("SYMGATE_BLAS_MIN", "16384")
        yield path
