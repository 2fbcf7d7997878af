"""``symgate.torch`` (``sg.torch``): any cell as a trainable ``torch.nn.Module``.

The public name of :mod:`symgate.frameworks.torch_module`, which says what the module does; this
name is kept short because users write it (``from symgate.torch import CellModule``). Importing it
imports PyTorch, so ``import symgate`` does not.
"""

from .frameworks.torch_module import CellModule, Sequences, default_output, from_cell, kernel_for

__all__ = ["CellModule", "Sequences", "default_output", "from_cell", "kernel_for"]
