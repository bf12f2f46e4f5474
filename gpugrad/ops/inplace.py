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

from .. import _args
from ..autograd import Function, alias_info, bump_version, is_grad_enabled
from ..errors import DTypeError, IndexOutOfRangeError, InplaceError, ShapeError
from ..tensor import Tensor
from ._support import as_operand, make_tensor, unbroadcast
from .arithmetic import add, div, mul, sub
from .convert import astype, clone, to_device
from .index import getitem, normalize_index


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


def _record(
    x: Tensor, compute: Callable[[Tensor], Tensor], what: str, writer: Any = None
) -> Tensor:
    """Record an in-place change: compute the new value out of place from a snapshot of x,
    write it into x's array, and make x the output of that op.

    A slice of another tensor (`v = y[1:]`) is changed through its base instead, so the
    base's history records it too. Any other live tensor sharing x's memory (a view or a
    base other than `writer`) would be left with a history that no longer matches its
    values, so that raises.
    """
    others, base, index = alias_info(x)
    if base is not None:
        if index is None:
            raise InplaceError(
                f"{what} on a reshaped or transposed view while recording the graph: change "
                "the base tensor, or a .clone() of the view"
            )
        return _write_through_slice(x, base, index, compute)
    others = [t for t in others if t is not writer]
    if others:
        shapes = ", ".join(str(t.shape) for t in others)
        raise InplaceError(
            f"{what} while recording the graph, on a tensor (shape {x.shape}) that shares "
            f"its memory with {len(others)} other live tensor(s) (views or bases, shapes "
            f"{shapes}): their recorded history would no longer match their values; change "
            "a .clone() instead, or use out-of-place ops"
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


# The names other modules' in-place ops (masked_fill_) record themselves with.
tracking_inplace, record_inplace = _tracking, _record


def _write_through_slice(
    x: Tensor, base: Tensor, index: Any, compute: Callable[[Tensor], Tensor]
) -> Tensor:
    """Change the slice x = base[index] by setting base[index] (recorded on the base), then
    describe x anew as that slice of the changed base."""
    setitem(base, index, compute(clone(x)), writer=x)
    rebuilt = getitem(base, index)
    x.grad_fn, x.requires_grad = rebuilt.grad_fn, rebuilt.requires_grad
    return x


def _raw(x: Tensor, other: Any, ufunc: str, what: str) -> Tensor:
    value = other.data if isinstance(other, Tensor) else other
    try:
        getattr(x._backend.xp, ufunc)(x.data, value, out=x.data, casting="same_kind")
    except (TypeError, OverflowError) as exc:  # (a Python int too big for the dtype)
        dtype = getattr(value, "dtype", type(value).__name__)
        raise DTypeError(
            f"{what}: cannot store a {dtype} result in a {x.dtype} tensor in place"
        ) from exc
    except ValueError as exc:
        raise ShapeError(f"{what}: {exc} (tensor shape {x.shape})") from exc
    bump_version(x)
    return x


def _arith(x: Tensor, other: Any, op: Callable, ufunc: str, what: str) -> Tensor:
    other = as_operand(other, x, what)
    if _tracking(x, other):
        return _record(x, lambda s: op(s, other), what)
    return _raw(x, other, ufunc, what)


def add_(x: Tensor, other: Any, alpha: float = 1) -> Tensor:
    """x += alpha * other, in place."""
    if _args.number("add_", "alpha", alpha) != 1:
        other = other * alpha
    return _arith(x, other, add, "add", "add_")


def sub_(x: Tensor, other: Any, alpha: float = 1) -> Tensor:
    """x -= alpha * other, in place."""
    if _args.number("sub_", "alpha", alpha) != 1:
        other = other * alpha
    return _arith(x, other, sub, "subtract", "sub_")


def mul_(x: Tensor, other: Any) -> Tensor:
    """x *= other, in place."""
    return _arith(x, other, mul, "multiply", "mul_")


def div_(x: Tensor, other: Any) -> Tensor:
    """x /= other, in place."""
    return _arith(x, other, div, "true_divide", "div_")


iadd, isub, imul, itruediv = add_, sub_, mul_, div_  # x op= y changes x in place


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


def setitem(x: Tensor, index: Any, value: Any, writer: Any = None) -> None:
    """x[index] = value, in place (recorded when x or value is part of a graph)."""
    index, advanced, _ = normalize_index(index, x)
    value = as_operand(value, x, "setitem")
    if not advanced and _is_slice_of(value, x, index):
        return  # `x[i] op= y` already changed x[i] through the slice: nothing left to write
    if _tracking(x, value):
        record = lambda s: SetItem.apply(s, value, index=index)  # noqa: E731
        _record(x, record, "x[index] = value", writer=writer)
        return
    try:
        x.data[index] = value.data if isinstance(value, Tensor) else value
    except (ValueError, IndexError) as exc:
        kind = IndexOutOfRangeError if isinstance(exc, IndexError) else ShapeError
        raise kind(f"x[index] = value: {exc} (tensor shape {x.shape})") from exc
    bump_version(x)


def _is_slice_of(value: Any, x: Tensor, index: Any) -> bool:
    """True when `value` is the slice x[index] itself (same memory, same index)."""
    if not isinstance(value, Tensor) or value._version is not x._version:
        return False
    _, base, value_index = alias_info(value)
    return base is x and value_index is not None and value_index == index


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
