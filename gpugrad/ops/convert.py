"""Casting, copying and moving between devices, all differentiable."""

from __future__ import annotations

from typing import Any

from ..autograd import Function, _sequence, is_grad_enabled
from ..backend import Device, get_backend
from ..dtypes import is_floating, to_dtype
from ..errors import DTypeError
from ..tensor import Tensor
from ._support import make_tensor


class Cast(Function):
    """Change dtype; the gradient is cast back to the input's dtype."""

    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, xp, g):
        return g.astype(self.in_dtype)


class Copy(Function):
    """A copy with its own memory; the gradient passes through."""

    def forward(self, x):
        return x.copy()

    def backward(self, xp, g):
        return g


class ToDevice(Function):
    """Move data to another device; the gradient moves back.

    Made by `to_device` rather than `apply`, since its output lives on another backend;
    like every node, its `xp` is the backend of its output.
    """

    def backward(self, xp, g):
        if isinstance(g, Tensor):
            return to_device(g, self.source.device)
        return _move(g, self.xp, self.source)


def _move(array: Any, source: Any, target: Any) -> Any:
    # to_numpy is a device-to-host copy on GPUs; asarray a host-to-device copy there.
    return target.asarray(source.to_numpy(array))


def astype(x: Tensor, dtype: Any) -> Tensor:
    """x cast to `dtype` (a copy; x itself when the dtype already matches)."""
    dt = to_dtype(dtype)
    if dt == x.data.dtype:
        return x
    if x.requires_grad and not is_floating(dt):
        # A cast to integers has no useful gradient; PyTorch detaches too.
        return make_tensor(x.data.astype(dt), x._backend, None)
    if x.requires_grad and not is_floating(x.data.dtype):
        raise DTypeError(f"cannot differentiate a cast from {x.dtype}")
    return Cast.apply(x, dtype=dt)


def clone(x: Tensor) -> Tensor:
    """A copy of x with its own memory, still connected to the graph."""
    return Copy.apply(x)


def to_device(x: Tensor, device: str | Device) -> Tensor:
    """x on `device` (x itself when already there); differentiable."""
    target = get_backend(device)
    source = x._backend
    if target is source:
        return x
    data = _move(x.data, source, target)
    if not (x.requires_grad and is_grad_enabled()):
        return make_tensor(data, target, None)
    node = ToDevice.__new__(ToDevice)
    node.xp, node.source = target, source
    node.edges = (x.grad_fn or x,)
    node.out_shape = data.shape
    node.seq = next(_sequence)
    return make_tensor(data, target, node)
