"""Ordering: sort (values, as NumPy), argsort (positions), topk (PyTorch's named pair).

Positions are found on the raw array without a graph; values are then read with
take_along_axis, so their gradient is the indexing op's: each output's gradient goes back to
the element it was read from (and second derivatives come for free).

The sort is always stable, on both backends, so equal values keep their order and results
never depend on the device: `stable=False` permits any order of ties, and this is one.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

from ..errors import DTypeError, IndexOutOfRangeError
from ..tensor import Tensor
from ._support import make_tensor, normalize_axis
from .index import pick_along_axis


class TopK(NamedTuple):
    """What topk returns: the k values and their positions along the axis."""

    values: Tensor
    indices: Tensor


def _order(data: Any, backend: Any, axis: int, descending: bool) -> Any:
    """Stable argsort along `axis`. Descending keeps ties in their original order too: sort
    the reversed array ascending, reverse that, and map positions back (NaN comes first
    descending and last ascending, as in PyTorch: it counts as the largest value)."""
    if not descending:
        return backend.argsort(data, axis=axis, kind="stable")
    n = data.shape[axis]
    flipped = backend.argsort(backend.flip(data, axis), axis=axis, kind="stable")
    return (n - 1) - backend.flip(flipped, axis)


def _as_vector(x: Tensor) -> tuple[Tensor, bool]:
    """A 0-d tensor as a 1-element vector (sorting one value is allowed, as in PyTorch)."""
    return (x.reshape(1), True) if x.ndim == 0 else (x, False)


def argsort(x: Tensor, axis: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """Positions that sort x along `axis` (int64, no gradient); ties keep their order."""
    del stable  # always stable: see the module docstring
    x, scalar = _as_vector(x)
    axis = normalize_axis(axis, x.ndim, x.shape)
    order = _order(x.data, x._backend, axis, descending)
    out = make_tensor(order.astype("int64"), x._backend, None)
    return out.reshape(()) if scalar else out


def sort(x: Tensor, axis: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """x's values sorted along `axis` (values only, as NumPy's sort; argsort gives positions).
    Differentiable: each gradient goes back to where its value came from."""
    x, scalar = _as_vector(x)
    axis = normalize_axis(axis, x.ndim, x.shape)
    out = pick_along_axis(x, _order(x.data, x._backend, axis, descending), axis)
    return out.reshape(()) if scalar else out


def topk(x: Tensor, k: int, axis: int = -1, largest: bool = True, sorted: bool = True) -> TopK:
    """The k largest (or, with largest=False, smallest) values along `axis` and their
    positions, as a named pair `(values, indices)`, largest first (smallest first when
    largest=False). `sorted=False` is accepted; the result is sorted anyway."""
    del sorted
    original = x
    x, scalar = _as_vector(x)
    axis = normalize_axis(axis, x.ndim, x.shape)
    try:
        if isinstance(k, bool):
            raise TypeError
        k = operator.index(k)
    except TypeError:
        raise DTypeError(f"topk: k must be an int, got {k!r}") from None
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise IndexOutOfRangeError(
            f"topk: k={k} is out of range for axis {axis} of size {n} (tensor shape "
            f"{original.shape}; valid: 0..{n})"
        )
    order = _order(x.data, x._backend, axis, descending=largest)
    first_k = order[(slice(None),) * axis + (slice(0, k),)]
    values = pick_along_axis(x, first_k, axis)
    indices = make_tensor(first_k.astype("int64"), x._backend, None)
    if scalar and k == 1:
        values, indices = values.reshape(()), indices.reshape(())
    return TopK(values, indices)
