"""Indexing: x[...] with ints, slices, None, Ellipsis, integer arrays and boolean masks;
take / index_select / take_along_axis / gather; split and chunk; one_hot.

Everything that reads elements by position is one op, GetItem. Its gradient puts the output
gradient back where the elements came from (`scatter_to`), adding up where an integer index
picked the same element twice. That scatter is itself an op (IndexScatter), whose gradient
is GetItem again, so second derivatives work too.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

from .. import _args
from ..autograd import Function, SliceGrad, lazy_slices, share_version
from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor
from ._support import (
    first_outside,
    index_error,
    make_tensor,
    normalize_axis,
    outside_range,
)


def normalize_index(index: Any, x: Tensor, check: bool = True) -> tuple[Any, bool, bool]:
    """The index with Tensors and lists turned into arrays of x's backend, and (unless
    `check` is False, for indices gpugrad made itself) every integer bounds-checked.

    Returns (index, advanced, accumulate): whether it holds arrays (a copy, not a view), and
    whether an element may be picked twice (integer arrays), so gradients must add up.
    """
    backend = x._backend
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    advanced = accumulate = has_int = False
    for part in parts:
        if isinstance(part, Tensor):
            if part._backend is not backend:
                raise DeviceError(
                    f"an index on '{part.device}' cannot index a tensor on '{x.device}'"
                )
            part = part.data
        elif isinstance(part, list) or (
            hasattr(part, "__array_interface__") and not isinstance(part, (int, bool))
        ):
            array = backend.asarray(part)
            # NumPy reads [] as float64; an empty list picks nothing, as in NumPy indexing.
            part = array.astype("int64") if isinstance(part, list) and not array.size else array
        if backend.is_array(part):
            kind = part.dtype.kind
            if kind not in "iub":
                raise DTypeError(f"index arrays must be integer or bool, got {part.dtype}")
            advanced = True
            accumulate = accumulate or kind != "b"
        has_int = has_int or isinstance(part, int) or accumulate
        out.append(part)
    if check and has_int:  # slices, None and Ellipsis are never out of range
        _check_bounds(out, x.shape)
    return (tuple(out) if isinstance(index, tuple) else out[0]), advanced, accumulate


def _axes_taken(part: Any) -> int:
    """How many of the tensor's axes one part of an index uses up."""
    if part is None or part is Ellipsis or isinstance(part, bool):
        return 0  # None and True/False add an axis
    if getattr(part, "dtype", None) is not None and part.dtype.kind == "b":
        return part.ndim  # a mask covers as many axes as it has
    return 1


def _check_bounds(parts: list[Any], shape: tuple[int, ...]) -> None:
    """IndexOutOfRangeError for an integer (or a value of an integer array) outside its
    axis, as NumPy raises and CuPy does not (it wraps around). Python ints are checked on
    the host; the integer arrays with one device reduction each, read back once."""
    used = sum(_axes_taken(p) for p in parts)
    if used > len(shape):
        return  # too many indices: the array library's own IndexError says so
    checks = []
    axis = 0
    for part in parts:
        if part is Ellipsis:
            axis += len(shape) - used
            continue
        if isinstance(part, int) and not isinstance(part, bool):
            n = shape[axis]
            if not -n <= part < n:
                raise index_error("x[index]", part, axis, n, shape, negative=True)
        elif getattr(part, "dtype", None) is not None and part.dtype.kind in "iu":
            checks.append((part, axis))
        axis += _axes_taken(part)
    if not checks:
        return
    flags = [outside_range(array, -shape[a], shape[a]) for array, a in checks]
    if bool(functools.reduce(operator.or_, flags)):
        for (array, a), flag in zip(checks, flags):
            if bool(flag):
                value = first_outside(array, -shape[a], shape[a])
                raise index_error("x[index]", value, a, shape[a], shape, negative=True)


class GetItem(Function):
    is_view = True  # basic indexing returns a view

    def forward(self, x, index, accumulate, element, basic=False):
        self.in_shape = x.shape
        self.index = index
        self.accumulate = accumulate
        self.basic = basic
        if element:  # NumPy gives a new scalar, CuPy a 0-d view: a copy on both
            return self.xp.asarray(x[index], copy=True)
        return x[index]

    def backward(self, xp, g):
        if self.basic and xp is self.xp and lazy_slices():  # the engine writes zeros once
            return SliceGrad(xp, self.in_shape, self.index, g)
        return xp.scatter_to(self.in_shape, self.index, g, self.accumulate)


class IndexScatter(Function):
    """Zeros of `shape` with the input placed (added, if `accumulate`) at `index`."""

    def forward(self, values, shape, index, accumulate):
        self.index = index
        return self.xp.scatter_to(shape, index, values, accumulate)

    def backward(self, xp, g):
        return g[self.index]


def scatter_to(shape: tuple[int, ...], index: Any, values: Tensor, accumulate: bool) -> Tensor:
    """Zeros of `shape` with `values` placed at `index` (summed where it repeats with
    `accumulate`). The Tensor twin of `Backend.scatter_to`, used by second derivatives."""
    return IndexScatter.apply(values, shape=tuple(shape), index=index, accumulate=accumulate)


def getitem(x: Tensor, index: Any, check: bool = True) -> Tensor:
    """x[index] with NumPy's rules; basic indexing gives a view sharing x's version, and an
    index that picks one element (an int on every axis) a copy. Integers out of range raise
    IndexOutOfRangeError on every device; `check=False` skips that for indices gpugrad built
    itself and knows to be in range."""
    index, advanced, accumulate = normalize_index(index, x, check)
    element = not advanced and _picks_one_element(index, x.ndim)
    out = GetItem.apply(x, index=index, accumulate=accumulate, element=element, basic=not advanced)
    if not advanced and not element and out.data.base is not None:
        share_version(out, x, index)
    return out


def _picks_one_element(index: Any, ndim: int) -> bool:
    """True for an index of plain ints, one per axis (x[1, 2] of a 2-D x)."""
    parts = index if isinstance(index, tuple) else (index,)
    return len(parts) == ndim and all(isinstance(p, int) and not isinstance(p, bool) for p in parts)


def take(x: Tensor, index: Any, axis: int | None = None) -> Tensor:
    """Elements at positions `index` along `axis`, or of the flattened tensor when axis is
    None (as NumPy's take)."""
    if axis is None:
        return getitem(x.reshape(-1), index)
    axis = normalize_axis(axis, x.ndim, x.shape)
    return getitem(x, (slice(None),) * axis + (index,))


def index_select(x: Tensor, axis: int, index: Any) -> Tensor:
    """PyTorch's index_select(input, dim, index): `take` along `axis`."""
    return take(x, index, axis)


def _along_axis_index(x: Tensor, indices: Any, axis: int, pytorch: bool) -> tuple[Any, ...]:
    backend = x._backend
    if isinstance(indices, Tensor):
        indices = indices.data
    indices = backend.asarray(indices)
    if indices.ndim != x.ndim:
        raise ShapeError(
            f"indices must have as many dimensions as the tensor: {indices.shape} vs {x.shape}"
        )
    axis = normalize_axis(axis, x.ndim, x.shape)
    parts = []
    for d in range(x.ndim):
        if d == axis:
            parts.append(indices)
        else:
            n = indices.shape[d] if pytorch else x.shape[d]
            shape = [1] * x.ndim
            shape[d] = n
            parts.append(backend.arange(n).reshape(shape))
    return tuple(parts)


def take_along_axis(x: Tensor, indices: Any, axis: int) -> Tensor:
    """NumPy's take_along_axis: out[..., i, ...] = x[..., indices[..., i, ...], ...]."""
    return getitem(x, _along_axis_index(x, indices, axis, pytorch=False))


def pick_along_axis(x: Tensor, indices: Any, axis: int) -> Tensor:
    """take_along_axis for indices gpugrad computed itself and knows to be in range (sort
    orders, checked labels): no bounds check, so no host read on a GPU."""
    return getitem(x, _along_axis_index(x, indices, axis, pytorch=False), check=False)


def gather(x: Tensor, axis: int, index: Any) -> Tensor:
    """PyTorch's gather(input, dim, index): like take_along_axis, and `index` may be smaller
    than x along the other axes (it then reads that sub-block)."""
    return getitem(x, _along_axis_index(x, index, axis, pytorch=True))


def split(x: Tensor, sizes: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Cut x along `axis` into pieces of `sizes` (a list), or of one size (an int; the last
    piece may be smaller), as PyTorch's split."""
    axis = normalize_axis(axis, x.ndim, x.shape)
    n = x.shape[axis]
    if isinstance(sizes, Sequence) and not isinstance(sizes, str):
        sizes = [_args.size("split", "sizes", s, minimum=0) for s in sizes]
    else:
        sizes = _args.integer("split", "split_size", sizes)
    if isinstance(sizes, int):
        if sizes <= 0:
            raise ShapeError(f"split size must be positive, got {sizes}")
        sizes = [min(sizes, n - start) for start in range(0, n, sizes)]
    elif sum(sizes) != n:
        raise ShapeError(
            f"split sizes {list(sizes)} do not add up to {n} (axis {axis} of {x.shape})"
        )
    pieces, start = [], 0
    lead = (slice(None),) * axis
    if n == 0:  # an empty axis still splits into one (empty) piece, as in PyTorch
        sizes = [0]
    for size in sizes:
        pieces.append(getitem(x, (*lead, slice(start, start + size))))
        start += size
    return pieces


def chunk(x: Tensor, chunks: int, axis: int = 0) -> list[Tensor]:
    """Split into `chunks` pieces of equal size (the last may be smaller, and there may be
    fewer pieces when x is short), as PyTorch's chunk."""
    if _args.integer("chunk", "chunks", chunks) <= 0:
        raise ShapeError(f"chunks must be positive, got {chunks}")
    n = x.shape[normalize_axis(axis, x.ndim, x.shape)]
    return split(x, max(-(-n // chunks), 1), axis)


def one_hot(labels: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding: a new last axis of `num_classes` (max label + 1 when -1)."""
    if labels.data.dtype.kind not in "iu":
        raise DTypeError(f"one_hot needs integer labels, got {labels.dtype}")
    backend = labels._backend
    data = labels.data
    num_classes = _args.integer("one_hot", "num_classes", num_classes)
    if num_classes < 0:
        num_classes = int(data.max()) + 1 if data.size else 0
    if data.size and (int(data.min()) < 0 or int(data.max()) >= num_classes):
        raise ShapeError(
            f"labels must lie in [0, {num_classes}), got [{int(data.min())}, {int(data.max())}]"
        )
    out = (data[..., None] == backend.arange(num_classes)).astype("int64")
    return make_tensor(out, backend, None)
