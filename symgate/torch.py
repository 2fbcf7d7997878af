"""``symgate.torch`` (``sg.torch``): any cell as a trainable ``torch.nn.Module``.

* :class:`CellModule` (and :func:`from_cell`): one cell, one layer in one direction, every state
  and output within reach (:mod:`symgate.frameworks.torch_module`).
* :class:`RNN`: layers of a cell, stacked and optionally bidirectional, with dropout between
  them, called and returning as ``nn.LSTM`` / ``nn.GRU`` do; ``RNN.from_torch(nn.LSTM(...))``
  takes a PyTorch module's weights (:mod:`symgate.frameworks.torch_rnn`).

The public name of those modules, which says what they do; this name is kept short because users
write it (``from symgate.torch import CellModule``). Importing it imports PyTorch, so
``import symgate`` does not.
"""

from .frameworks.torch_module import CellModule, Sequences, default_output, from_cell, kernel_for
from .frameworks.torch_rnn import RNN

__all__ = ["RNN", "CellModule", "Sequences", "default_output", "from_cell", "kernel_for"]
