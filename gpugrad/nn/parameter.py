"""Parameter: a Tensor that a Module learns (registered automatically, requires grad)."""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that is a learnable weight of a Module.

    Assigning one to a Module attribute registers it, so `module.parameters()` finds it.
    Made from a Tensor it shares that tensor's data (as `torch.nn.Parameter` does).
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            self._data = data._data
            self._backend = data._backend
            self.grad_fn = None
            self._grad = None
            self._version = [0, 0]
            self.requires_grad = False
        else:
            super().__init__(data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
