"""Argument checks shared by the attention, padding and similarity functions: each raises a
typed error that names the function, the argument and the offending type, dtype, shape or
device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..dtypes import is_floating
from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor


def tensor_arg(fn: str, name: str, x: Any) -> Tensor:
    """`x` itself when it is a Tensor; DTypeError (a TypeError) otherwise."""
    if not isinstance(x, Tensor):
        raise DTypeError(f"{fn}: {name} must be a Tensor, got {type(x).__name__}")
    return x


def float_arg(fn: str, name: str, x: Any) -> Tensor:
    """`x` itself when it is a floating-point Tensor; TypeError or DTypeError otherwise."""
    tensor_arg(fn, name, x)
    if not is_floating(x.dtype):
        raise DTypeError(f"{fn}: {name} must be a floating-point tensor, got {x.dtype}")
    return x


def matching(fn: str, named: dict[str, Tensor]) -> None:
    """Raise DeviceError / DTypeError unless the tensors share the first one's device and
    dtype."""
    (first_name, first), *rest = named.items()
    for name, t in rest:
        if t.device != first.device:
            raise DeviceError(
                f"{fn}: {name} is on '{t.device}' but {first_name} is on '{first.device}'"
            )
        if t.dtype != first.dtype:
            raise DTypeError(f"{fn}: {name} is {t.dtype} but {first_name} is {first.dtype}")


def broadcast_shape(fn: str, shapes: dict[str, Sequence[int]]) -> tuple[int, ...]:
    """The shape the named shapes broadcast to; ShapeError naming them when they don't."""
    ndim = max(len(s) for s in shapes.values())
    out = []
    for axis in range(-ndim, 0):
        sizes = {s[axis] for s in shapes.values() if len(s) >= -axis} - {1}
        if len(sizes) > 1:
            listed = ", ".join(f"{name} {tuple(s)}" for name, s in shapes.items())
            raise ShapeError(f"{fn}: shapes do not broadcast together: {listed}")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)
