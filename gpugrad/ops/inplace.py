"""In-place ops: +=, -=, *=, /=, x[i] = v, add_, mul_, zero_, fill_, copy_ ...

They change the tensor's array itself and bump its version, so a backward through a graph
that saved the old value raises instead of returning a wrong gradient. While autograd is
recording, in-place on a leaf that requires grad is refused (change parameters under
`gg.no_grad()`, as optimizers do); on other tensors the change is recorded like its
out-of-place twin and the tensor takes the new op as its `grad_fn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..autograd import Function, bump_version, is_grad_enabled
from ..errors import DTypeError, InplaceError
from ..tensor import Tensor
from ._support import as_operand, make_tensor, unbroadcast
from .arithmetic import add, div, mul, sub
from .convert import astype, clone, to_device
from .index import normalize_index


def _is_view(x: Tensor) -> bool:
    """True for a tensor recorded as a view of another (basic indexing, reshape, transpose)."""
    fn = x.grad_fn
    inputs = fn.inputs if fn is not None else None
    return bool(inputs) and isinstance(inputs[0], Tensor) and inputs[0]._version is x._version


def _tracking(x: Tensor, other: Any) -> bool:
    if not is_grad_enabled():
        return False
    if x.requires_grad and x.grad_fn is None:
        raise InplaceError(
            f"in-place change of a leaf tensor that requires grad (shape {x.shape}): autograd "
            "needs its value; change it under `with gg.no_grad():` (as optimizers do), or "
            "work on x.detach() or x.clone()"
        )
    return x.requires_grad or (isinstance(other, Tensor) and other.requires_grad)


def _record(x: Tensor, compute: Callable[[Tensor], Tensor], what: str) -> Tensor:
    """Record an in-place change: compute the new value out of place from a snapshot of x,
    write it into x's array, and make x the output of that op."""
    if _is_view(x):
        raise InplaceError(
            f"{what} on a view of another tensor while recording the graph would hide the "
            "change from the base tensor's history; use an out-of-place op, or index the "
            "base tensor (base[i] = value)"
        )
    snapshot = make_tensor(x.data.copy(), x._backend, x.grad_fn)
    snapshot.requires_grad = x.requires_grad
    new = compute(snapshot)
    if new.data.dtype != x.data.dtype:
        new = astype(new, x.data.dtype)
    x.data[...] = new.data
    bump_version(x)
    x.grad_fn = new.grad_fn
    x.requires_grad = new.requires_grad
    return x


def _raw(x: Tensor, other: Any, ufunc: str, what: str) -> Tensor:
    value = other.data if isinstance(other, Tensor) else other
    try:
        getattr(x._backend.xp, ufunc)(x.data, value, out=x.data, casting="same_kind")
    except TypeError as exc:
        dtype = getattr(value, "dtype", type(value).__name__)
        raise DTypeError(
            f"{what}: cannot store a {dtype} result in a {x.dtype} tensor in place"
        ) from exc
    except ValueError as exc:
        from ..errors import ShapeError

        raise ShapeError(f"{what}: {exc} (tensor shape {x.shape})") from exc
    bump_version(x)
    return x


def _arith(x: Tensor, other: Any, op: Callable, ufunc: str, what: str) -> Tensor:
    other = as_operand(other, x)
    if isinstance(other, Tensor) and other._backend is not x._backend:
        from ..autograd import _device_mismatch

        raise _device_mismatch(what, (x, other))
    if _tracking(x, other):
        return _record(x, lambda s: op(s, other), what)
    return _raw(x, other, ufunc, what)


def add_(x: Tensor, other: Any, alpha: float = 1) -> Tensor:
    """x += alpha * other, in place."""
    if alpha != 1:
        other = other * alpha
    return _arith(x, other, add, "add", "add_")


def sub_(x: Tensor, other: Any, alpha: float = 1) -> Tensor:
    """x -= alpha * other, in place."""
    if alpha != 1:
        other = other * alpha
    return _arith(x, other, sub, "subtract", "sub_")


def mul_(x: Tensor, other: Any) -> Tensor:
    """x *= other, in place."""
    return _arith(x, other, mul, "multiply", "mul_")


def div_(x: Tensor, other: Any) -> Tensor:
    """x /= other, in place."""
    return _arith(x, other, div, "true_divide", "div_")


def _operator(in_place: Callable, out_of_place: Callable, name: str) -> Callable:
    """`x op= y`: in place, except on a recorded view. There Python's `base[i] op= y` computes
    the new value out of place and __setitem__ writes it into the base, recording it there."""

    def method(x: Tensor, other: Any) -> Tensor:
        if is_grad_enabled() and x.grad_fn is not None and _is_view(x):
            # On a copy: the write into the base changes the view's memory, which the op
            # (x * y, x / y) may have saved for backward.
            return out_of_place(clone(x), other)
        return in_place(x, other)

    method.__name__ = name
    return method


iadd = _operator(add_, add, "__iadd__")
isub = _operator(sub_, sub, "__isub__")
imul = _operator(mul_, mul, "__imul__")
itruediv = _operator(div_, div, "__itruediv__")


class SetItem(Function):
    """out = x with out[index] = value. The gradient reaches x where it was not overwritten,
    and `value` from the overwritten places."""

    def forward(self, x, value, index):
        out = x.copy()
        out[index] = value
        keep = self.xp.ones(x.shape, dtype=bool)
        keep[index] = False
        self.keep = keep
        self.index = index
        self.value_shape = getattr(value, "shape", ())
        return out

    def backward(self, xp, g):
        if not self.needs_grad(1):
            return g * self.keep, None
        gv = g[self.index]
        lead = (1,) * (len(self.value_shape) - gv.ndim)  # NumPy lets value add leading 1-axes
        return g * self.keep, unbroadcast(gv.reshape(lead + gv.shape), self.value_shape)


def setitem(x: Tensor, index: Any, value: Any) -> None:
    """x[index] = value, in place (recorded when x or value is part of a graph)."""
    index, _, _ = normalize_index(index, x)
    value = as_operand(value, x)
    if isinstance(value, Tensor) and value._backend is not x._backend:
        from ..autograd import _device_mismatch

        raise _device_mismatch("setitem", (x, value))
    if _tracking(x, value):
        _record(x, lambda s: SetItem.apply(s, value, index=index), "x[index] = value")
        return
    try:
        x.data[index] = value.data if isinstance(value, Tensor) else value
    except (ValueError, IndexError) as exc:
        from ..errors import IndexOutOfRangeError, ShapeError

        kind = IndexOutOfRangeError if isinstance(exc, IndexError) else ShapeError
        raise kind(f"x[index] = value: {exc} (tensor shape {x.shape})") from exc
    bump_version(x)


def fill_(x: Tensor, value: Any) -> Tensor:
    """Set every element to `value`, in place."""
    setitem(x, Ellipsis, value)
    return x


def zero_(x: Tensor) -> Tensor:
    """Set every element to 0, in place."""
    return fill_(x, 0)


def copy_(x: Tensor, src: Any) -> Tensor:
    """Copy `src` (broadcast to x's shape, cast to x's dtype, from any device) into x."""
    if isinstance(src, Tensor) and src._backend is not x._backend:
        src = to_device(src, x.device)  # an explicit copy, so moving is what was asked
    setitem(x, Ellipsis, src)
    return x
