"""A built kernel's calling convention: its functions, and every array argument in order.

The renderer decides it (:mod:`symgate.codegen.render`) and returns it beside the C; the cache
stores it as JSON with the compiled module, and the runtime and the torch module call the kernels
by it. It is plain data: nothing here imports SymPy or Jinja, so loading a cached kernel needs
neither.

The arguments of a pass come in the order of its roles, and within a role in the cell's order of
declaration: :data:`FORWARD_ROLES`, then for the backward pass the forward pass's arrays (read
only), :data:`GIVEN_ROLES` and :data:`RESULT_ROLES`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

FORWARD_ROLES = ("input", "init", "param", "states", "outputs", "tape")
"""The forward pass's arrays: what it reads (inputs, initial states, parameters), then what it writes."""
GIVEN_ROLES = ("grad_states", "grad_outputs")
"""What the backward pass is given after the forward pass's arrays: the loss gradients."""
RESULT_ROLES = ("grad_inputs", "grad_init", "grad_params")
"""What the backward pass writes (``grad_init`` is also read: the gradient of the final states)."""
STEPWISE_ROLES = ("input", "states", "outputs", "tape", "grad_states", "grad_outputs", "grad_inputs")
"""The roles of (T, B, size) arrays; the others are (B, size) or a parameter's shape."""

ROLE_TEXT = {
    "input": "input {} at every step",
    "init": "initial state {}",
    "param": "parameter {}",
    "states": "state {} after every step",
    "outputs": "output {} at every step",
    "tape": "{} at every step, kept for the backward pass",
    "grad_states": "loss gradient with respect to {} at every step (NULL: none)",
    "grad_outputs": "loss gradient with respect to output {} at every step",
    "grad_inputs": "result: gradient with respect to input {}",
    "grad_init": "in: gradient with respect to the final {}; out: with respect to the initial {}",
    "grad_params": "result: gradient with respect to {}",
}


@dataclass(frozen=True)
class Argument:
    """One array argument of a kernel function: which vector it holds and its shape."""

    name: str
    role: str
    c_name: str
    shape: tuple[str, ...]
    writes: bool


@dataclass(frozen=True)
class PassInterface:
    function: str
    work_function: str
    arguments: tuple[Argument, ...]


@dataclass(frozen=True)
class Interface:
    """How to call a built kernel: function names, dimension order and every array argument.

    Argument roles: ``input``, ``init``, ``param``, ``states``, ``outputs``, ``tape`` (forward);
    ``grad_states``, ``grad_outputs`` (given), ``grad_inputs``, ``grad_init`` (carry in, result
    out), ``grad_params`` (results) in the backward pass.
    """

    cell: str
    dtype: str
    dims: tuple[str, ...]
    forward: PassInterface
    backward: PassInterface | None
    """None for a complex dtype: a forward pass only."""
    infer: PassInterface
    """The forward pass for inference, saving nothing: ``forward`` itself when the tape is empty."""
    threads_function: str | None = None
    """``int f(int on)``: whether the kernels may run in several threads at once, each product on
    the calling thread (``symgate_runtime.h``'s ``sg_blas_one_thread``); None when their products
    use no library's threads (the complex kernel)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Interface:
        data = json.loads(text)

        def pass_of(d: dict) -> PassInterface:
            args = tuple(Argument(**{**a, "shape": tuple(a["shape"])}) for a in d["arguments"])
            return PassInterface(d["function"], d["work_function"], args)

        backward = pass_of(data["backward"]) if data["backward"] is not None else None
        forward, infer = pass_of(data["forward"]), pass_of(data["infer"])
        return cls(data["cell"], data["dtype"], tuple(data["dims"]), forward, backward, infer, data["threads_function"])
