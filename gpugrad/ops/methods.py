"""PyTorch's convenience methods on Tensor, each a thin spelling of an existing op or creation
function: contiguous, view_as, reshape_as, expand_as, type_as, new_zeros/new_ones/new_full/
new_tensor, t, mT, numel, dim.
"""

from __future__ import annotations

from typing import Any

from .. import creation
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from .convert import astype, clone
from .shape import _shape_arg, broadcast_to, reshape, swapaxes, transpose


def _other(other: Any, op: str) -> Tensor:
    if not isinstance(other, Tensor):
        raise DTypeError(f"{op} expects a Tensor, got {type(other).__name__}")
    return other


def contiguous(x: Tensor) -> Tensor:
    """x itself when its memory is in C order, else a C-ordered copy (differentiable)."""
    return x if x.data.flags.c_contiguous else clone(x)


def view_as(x: Tensor, other: Tensor) -> Tensor:
    """x reshaped to other's shape."""
    return reshape(x, _other(other, "view_as").shape)


reshape_as = view_as


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    """x broadcast to other's shape."""
    return broadcast_to(x, _other(other, "expand_as").shape)


def type_as(x: Tensor, other: Tensor) -> Tensor:
    """x cast to other's dtype."""
    return astype(x, _other(other, "type_as").dtype)


def new_zeros(x: Tensor, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros of `size` with x's dtype (unless given) on x's device."""
    return creation.zeros(
        _shape_arg(size),
        dtype=x.dtype if dtype is None else dtype,
        device=x.device,
        requires_grad=requires_grad,
    )


def new_ones(x: Tensor, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones of `size` with x's dtype (unless given) on x's device."""
    return creation.ones(
        _shape_arg(size),
        dtype=x.dtype if dtype is None else dtype,
        device=x.device,
        requires_grad=requires_grad,
    )


def new_full(
    x: Tensor, size: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """`fill_value` everywhere, of `size`, with x's dtype (unless given) on x's device."""
    return creation.full(
        _shape_arg((size,)), fill_value, dtype=x.dtype if dtype is None else dtype, device=x.device,
        requires_grad=requires_grad,
    )  # fmt: skip


def new_tensor(x: Tensor, data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor from `data` with x's dtype (unless given) on x's device (a copy)."""
    return creation.tensor(
        data,
        dtype=x.dtype if dtype is None else dtype,
        device=x.device,
        requires_grad=requires_grad,
    )


def t(x: Tensor) -> Tensor:
    """Transpose of a matrix; 0-d and 1-D tensors come back as they are (PyTorch's t())."""
    if x.ndim > 2:
        raise ShapeError(
            f"t() takes a tensor of at most 2 dimensions, got shape {x.shape}; "
            "use transpose(a, b) or mT"
        )
    return transpose(x) if x.ndim == 2 else x


def matrix_transpose(x: Tensor) -> Tensor:
    """The last two axes swapped (PyTorch's x.mT)."""
    if x.ndim < 2:
        raise ShapeError(f"mT needs at least 2 dimensions, got shape {x.shape}")
    return swapaxes(x, -1, -2)


def numel(x: Tensor) -> int:
    """The number of elements."""
    return x.data.size


def dim(x: Tensor) -> int:
    """The number of axes (PyTorch's name for ndim)."""
    return x.data.ndim
