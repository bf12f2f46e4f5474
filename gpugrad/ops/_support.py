"""What every op module shares: undoing broadcasting (the engine's `unbroadcast`), and turning
operands into Tensors."""

from __future__ import annotations

import operator
from typing import Any

from ..autograd import _device_mismatch, _not_a_tensor, unbroadcast
from ..errors import DeviceError, DTypeError, IndexOutOfRangeError, ShapeError
from ..tensor import Tensor, to_array
from ..tensor import _make as make_tensor

__all__ = [
    "PY_SCALARS",
    "as_operand",
    "as_tensor_like",
    "check_index_range",
    "first_outside",
    "index_array",
    "index_error",
    "integer_limits",
    "make_tensor",
    "normalize_axes",
    "normalize_axis",
    "outside_range",
    "refuse_sequence",
    "tensor_among",
    "unbroadcast",
]

PY_SCALARS = (int, float, bool)


def as_tensor_like(x: Any, like: Tensor) -> Tensor:
    """A constant Tensor from array-like `x` on `like`'s device (never moving data silently)."""
    if isinstance(x, Tensor):
        return x
    backend = like._backend
    if hasattr(x, "__cuda_array_interface__") and backend.device.type != "cuda":
        raise DeviceError(
            f"cannot mix a GPU array ({type(x).__name__}) with a tensor on '{like.device}'"
        )
    if (
        backend.device.type == "cuda"
        and not backend.is_array(x)
        and hasattr(x, "__array_interface__")
        and getattr(x, "ndim", 0) > 0
    ):
        raise DeviceError(
            f"cannot mix a host array ({type(x).__name__}) with a tensor on '{like.device}'; "
            "make it a tensor on that device first"
        )
    return make_tensor(to_array(x, backend), backend, None)


def as_operand(x: Any, like: Tensor, op: str = "this operation") -> Any:
    """Python scalars pass through (they act as weak-typed constants); NumPy scalars become
    Python scalars; Tensors must be on `like`'s device (DeviceError naming `op` otherwise);
    everything else becomes a Tensor on `like`'s device."""
    if isinstance(x, Tensor):
        if x._backend is not like._backend:
            raise _device_mismatch(op, (like, x))
        return x
    if type(x) in PY_SCALARS:
        return x
    refuse_sequence(x, op)
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0 and not isinstance(x, Tensor):
        return x.item()
    return as_tensor_like(x, like)


def normalize_axis(axis: Any, ndim: int, shape: tuple[int, ...] | None = None) -> int:
    """One axis as a non-negative int below `ndim`, or ShapeError naming `shape` when given
    (NumPy ints welcome)."""
    try:
        if isinstance(axis, bool):  # True would silently mean axis 1
            raise TypeError
        a = operator.index(axis)
    except TypeError:
        raise ShapeError(f"expected a single int axis, got {axis!r}") from None
    if not -ndim <= a < ndim:
        where = f"shape {shape}" if shape is not None else f"a tensor with {ndim} dimensions"
        raise ShapeError(f"axis {axis} is out of range for {where} (valid: {-ndim}..{ndim - 1})")
    return a % ndim


def normalize_axes(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """Axes (an int or a tuple; None for all) as a sorted tuple of non-negative ints.

    A 0-d tensor accepts axis 0 and -1 as "all of it", as PyTorch does.
    """
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    result = [normalize_axis(a, max(ndim, 1)) for a in axes]
    if len(set(result)) != len(result):
        raise ShapeError(f"repeated axis in {axis}")
    return None if ndim == 0 else tuple(sorted(result))


def index_array(index: Any, like: Tensor, op: str) -> Any:
    """An index argument (a Tensor or array of integers) as an integer array of like's
    backend: DeviceError for an index on another device, DTypeError for a non-integer one
    or a Python list."""
    refuse_sequence(index, op)
    backend = like._backend
    if isinstance(index, Tensor):
        if index._backend is not backend:
            raise DeviceError(
                f"{op}: the index is on '{index.device}' but the tensor is on '{like.device}'"
            )
        index = index.data
    index = backend.asarray(index)
    if index.dtype.kind not in "iu":
        raise DTypeError(f"{op}: indices must be integers, got dtype {index.dtype}")
    return index


def outside_range(values: Any, low: int, high: int, skip: int | None = None) -> Any:
    """A 0-d bool array on values' device: whether any integer in `values` lies outside
    [low, high) (values equal to `skip` excepted). One pass and one reduction, no host read,
    so several checks can be joined with `|` and read back once. A bound the dtype cannot
    reach is left out (it excludes nothing, and NumPy and CuPy differ on comparing, say,
    uint8 values with 1000)."""
    least, most = integer_limits(values.dtype)
    outside = None
    if low > least:
        outside = values < low
    if high <= most:
        above = values >= high
        outside = above if outside is None else outside | above
    if outside is None:  # no value of this dtype can be out of range
        return values.reshape(-1)[:0].any()
    if skip is not None and least <= skip <= most:
        outside &= values != skip
    return outside.any()


def integer_limits(dtype: Any) -> tuple[int, int]:
    """The least and greatest values of an integer dtype."""
    bits = 8 * dtype.itemsize
    if dtype.kind == "u":
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def first_outside(values: Any, low: int, high: int, skip: int | None = None) -> int:
    """The first value of `values` outside [low, high) (other than `skip`), for an error
    message once `outside_range` found one (this reads back to the host)."""
    for value in values.ravel().tolist():
        if not low <= value < high and value != skip:
            return value
    raise AssertionError("first_outside called on values that are all in range")


def check_index_range(
    index: Any, size: int, op: str, axis: int, shape: tuple[int, ...], negative: bool = False
) -> None:
    """IndexOutOfRangeError unless every value of the integer array `index` lies in
    [0, size) (in [-size, size) with `negative`, as NumPy's indexing allows). One reduction
    on the device; CuPy would otherwise wrap or write out of bounds silently."""
    low = -size if negative else 0
    if bool(outside_range(index, low, size)):
        raise index_error(op, first_outside(index, low, size), axis, size, shape, negative)


def index_error(
    op: str, value: int, axis: int, size: int, shape: tuple[int, ...], negative: bool = False
) -> IndexOutOfRangeError:
    """The error for index `value` outside axis `axis` (of `size`) of a tensor of `shape`."""
    valid = f"{-size}..{size - 1}" if negative else f"0..{size - 1}"
    return IndexOutOfRangeError(
        f"{op}: index {value} is out of range for axis {axis} of size {size} "
        f"(tensor shape {shape}; valid: {valid})"
    )


def tensor_among(op: str, *operands: Any) -> Tensor:
    """The first Tensor among a binary op's operands (the other may be a number): the one
    whose device and dtype the op follows. DTypeError when there is none."""
    for x in operands:
        if isinstance(x, Tensor):
            return x
    got = " and ".join(f"{type(x).__name__} {x!r}"[:60] for x in operands)
    raise DTypeError(f"{op} needs a Tensor operand, got {got}; make one with gg.tensor(...)")


def refuse_sequence(x: Any, op: str) -> None:
    """PyTorch's rule, kept for every op: a Python list or tuple is not a tensor argument
    (it would be silently converted one way here and another there)."""
    if isinstance(x, (list, tuple)):
        raise _not_a_tensor(op, x)
