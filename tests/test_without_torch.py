"""Without PyTorch: the interop and torch facades say how to install it, and the tests that need it
skip instead of failing to collect."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import symgate as sg
from symgate.frameworks.interop import FrameworkNotInstalledError, from_torch, to_torch

NEEDS_TORCH = (
    "test_pytorch_parity.py",
    "test_torch_module.py",
    "test_long_range_example.py",
    "test_torch_rnn.py",
    "test_torch_packed.py",
)


def test_a_missing_torch_is_a_clear_error(monkeypatch):
    gru = sg.cells.get("gru_pytorch")
    pair = (gru, sg.build(gru).init_params({"D": 3, "H": 4}))
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(FrameworkNotInstalledError, match=r"pip install 'torch>=2\.4'"):
        from_torch(object())
    with pytest.raises(sg.SymgateError):
        to_torch(pair)


def test_symgate_interop_imports_without_torch():
    code = "import sys, symgate.frameworks.interop; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", NEEDS_TORCH)
def test_the_tests_that_need_torch_skip_without_it(name, monkeypatch):
    """Loading the test file raises pytest's skip, which pytest reports as skipped, not as an error."""
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), Path(__file__).parent / name)
    with pytest.raises(pytest.skip.Exception, match="could not import 'torch'"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
