"""Writing by position (PyTorch's names): scatter, scatter_add, index_add, masked_fill.

Each is built from the indexing ops, so its gradients are theirs: scatter is a SetItem (x's
gradient where it was not overwritten, src's from the written places); scatter_add and
index_add add an IndexScatter (src's gradient read back from the positions it went to).
Every index is bounds-checked here, with one reduction, so CuPy cannot wrap it silently.
"""

from __future__ import annotations

from typing import Any

from ..autograd import bump_version
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._support import (
    as_operand,
    check_index_range,
    index_array,
    normalize_axis,
    refuse_sequence,
)  # fmt: skip
from .compare import where
from .convert import astype
from .index import _along_axis_index, getitem, scatter_to
from .inplace import SetItem, record_inplace, tracking_inplace


def _scatter_positions(
    x: Tensor, axis: int, index: Any, op: str
) -> tuple[tuple[Any, ...], tuple[int, ...]]:
    """The advanced index that sends index[i, j, ...] to its place in x: `index` itself on
    `axis`, and each element's own position on the other axes. `index` may be smaller than
    x on the other axes (PyTorch's rule), never larger."""
    axis = normalize_axis(axis, x.ndim, x.shape)
    index = index_array(index, x, op)
    if index.ndim != x.ndim or any(
        n > m for d, (n, m) in enumerate(zip(index.shape, x.shape)) if d != axis
    ):
        raise ShapeError(
            f"{op}: index of shape {index.shape} does not fit a tensor of shape {x.shape} "
            f"along axis {axis} (same number of dimensions, no larger on the other axes)"
        )
    check_index_range(index, x.shape[axis], op, axis, x.shape)
    return _along_axis_index(x, index, axis, pytorch=True), index.shape  # gather's positions


def _source_block(src: Any, x: Tensor, index_shape: tuple[int, ...], op: str) -> Any:
    """The part of src that index covers (src may be larger), or a scalar src as it is."""
    refuse_sequence(src, op)
    src = as_operand(src, x, op)
    if not isinstance(src, Tensor):
        return src
    if src.dtype != x.dtype:
        raise DTypeError(f"{op}: src has dtype {src.dtype} but the tensor has {x.dtype}")
    if src.ndim != len(index_shape) or any(n > m for n, m in zip(index_shape, src.shape)):
        raise ShapeError(
            f"{op}: src of shape {src.shape} is smaller than the index of shape {index_shape}"
        )
    if src.shape == index_shape:
        return src
    return getitem(src, tuple(slice(0, n) for n in index_shape))


def scatter(x: Tensor, axis: int, index: Any, src: Any) -> Tensor:
    """A copy of x with out[index[i][j]][j] = src[i][j] (for axis 0; likewise for other axes),
    as PyTorch's scatter. `src` may be a scalar. Where an index repeats, which write wins is
    not specified (as in PyTorch)."""
    positions, index_shape = _scatter_positions(x, axis, index, "scatter")
    block = _source_block(src, x, index_shape, "scatter")
    return SetItem.apply(x, block, index=positions)


def scatter_add(x: Tensor, axis: int, index: Any, src: Tensor) -> Tensor:
    """x plus src added at the positions of `index` (as scatter, but summing, so repeated
    indices add up), as PyTorch's scatter_add."""
    positions, index_shape = _scatter_positions(x, axis, index, "scatter_add")
    block = _source_block(src, x, index_shape, "scatter_add")
    if not isinstance(block, Tensor):
        raise DTypeError(f"scatter_add: src must be a Tensor, got {type(src).__name__}")
    return x + scatter_to(x.shape, positions, block, accumulate=True)


def index_add(x: Tensor, axis: int, index: Any, source: Tensor, alpha: float = 1) -> Tensor:
    """x plus alpha·source[i] added at position index[i] along `axis` (repeats add up), as
    PyTorch's index_add."""
    axis = normalize_axis(axis, x.ndim, x.shape)
    index = index_array(index, x, "index_add")
    if index.ndim != 1:
        raise ShapeError(f"index_add: the index must be 1-D, got shape {index.shape}")
    refuse_sequence(source, "index_add")
    if not isinstance(source, Tensor):
        raise DTypeError(f"index_add: source must be a Tensor, got {type(source).__name__}")
    expected = (*x.shape[:axis], index.shape[0], *x.shape[axis + 1 :])
    if source.shape != expected:
        raise ShapeError(
            f"index_add: source has shape {source.shape}, expected {expected} for a tensor "
            f"of shape {x.shape} and {index.shape[0]} indices along axis {axis}"
        )
    if source.dtype != x.dtype:
        raise DTypeError(f"index_add: source has dtype {source.dtype} but the tensor has {x.dtype}")
    check_index_range(index, x.shape[axis], "index_add", axis, x.shape)
    if alpha != 1:
        source = source * alpha
    where_to = (slice(None),) * axis + (index,)
    return x + scatter_to(x.shape, where_to, source, accumulate=True)


def _mask_array(mask: Any, x: Tensor, op: str) -> Any:
    refuse_sequence(mask, op)
    mask = as_operand(mask, x, op)
    data = mask.data if isinstance(mask, Tensor) else None
    if data is None or data.dtype != bool:
        kind = data.dtype if data is not None else type(mask).__name__
        raise DTypeError(f"{op}: the mask must be a bool tensor, got {kind}")
    lead = x.ndim - data.ndim
    if lead < 0 or any(m not in (1, n) for m, n in zip(data.shape, x.shape[lead:])):
        raise ShapeError(
            f"{op}: a mask of shape {data.shape} does not broadcast to the tensor's shape {x.shape}"
        )
    return data


def masked_fill(x: Tensor, mask: Any, value: Any) -> Tensor:
    """A copy of x with `value` where the bool `mask` (broadcast to x's shape) is True, as
    PyTorch's masked_fill. `value` is a number or a 0-d tensor (which gets a gradient too);
    the result keeps x's dtype."""
    data = _mask_array(mask, x, "masked_fill")
    refuse_sequence(value, "masked_fill")
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ShapeError(
            f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}"
        )
    out = where(data, value, x)
    return out if out.dtype == x.dtype else astype(out, x.dtype)


def masked_fill_(x: Tensor, mask: Any, value: Any) -> Tensor:
    """masked_fill in place: x gets `value` where `mask` is True (recorded like the other
    in-place ops when x is part of a graph)."""
    data = _mask_array(mask, x, "masked_fill_")
    refuse_sequence(value, "masked_fill_")
    if tracking_inplace(x, value):
        return record_inplace(x, lambda s: masked_fill(s, data, value), "masked_fill_")
    fill = value.data if isinstance(value, Tensor) else value
    x.data[...] = x._backend.where(data, fill, x.data)
    bump_version(x)
    return x
