"""Comparisons, logical ops, sign and where. Comparisons return bool tensors without grad."""

from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..autograd import _explain_failure as explain_failure
from ..dtypes import default_float, is_floating
from ..errors import DTypeError
from ..tensor import Tensor
from ._support import as_operand, as_tensor_like, make_tensor, tensor_among, unbroadcast
from .convert import astype
from .special import Sign


def _no_grad_op(name: str, a: Any, b: Any = None, unary: bool = False) -> Tensor:
    like = tensor_among(name, a) if unary else tensor_among(name, a, b)
    backend = like._backend
    fn = getattr(backend, name) if hasattr(backend, name) else getattr(backend.xp, name)
    if unary:
        return make_tensor(backend.xp.asarray(fn(a.data)), backend, None)
    a, b = as_operand(a, like, name), as_operand(b, like, name)
    av = a.data if isinstance(a, Tensor) else a
    bv = b.data if isinstance(b, Tensor) else b
    try:
        out = fn(av, bv)
    except (ValueError, TypeError, OverflowError) as exc:  # shapes that do not broadcast, ...
        raise explain_failure(name, (a, b), exc) from exc
    return make_tensor(backend.xp.asarray(out), backend, None)


def eq(a: Any, b: Any) -> Tensor:
    """a == b, elementwise (bool, no gradient)."""
    return _no_grad_op("equal", a, b)


def ne(a: Any, b: Any) -> Tensor:
    """a != b, elementwise (bool, no gradient)."""
    return _no_grad_op("not_equal", a, b)


def lt(a: Any, b: Any) -> Tensor:
    """a < b, elementwise (bool, no gradient)."""
    return _no_grad_op("less", a, b)


def le(a: Any, b: Any) -> Tensor:
    """a <= b, elementwise (bool, no gradient)."""
    return _no_grad_op("less_equal", a, b)


def gt(a: Any, b: Any) -> Tensor:
    """a > b, elementwise (bool, no gradient)."""
    return _no_grad_op("greater", a, b)


def ge(a: Any, b: Any) -> Tensor:
    """a >= b, elementwise (bool, no gradient)."""
    return _no_grad_op("greater_equal", a, b)


def logical_and(a: Any, b: Any) -> Tensor:
    """Elementwise and (bool, no gradient)."""
    return _no_grad_op("logical_and", a, b)


def logical_or(a: Any, b: Any) -> Tensor:
    """Elementwise or (bool, no gradient)."""
    return _no_grad_op("logical_or", a, b)


def logical_xor(a: Any, b: Any) -> Tensor:
    """Elementwise exclusive or (bool, no gradient)."""
    return _no_grad_op("logical_xor", a, b)


def logical_not(x: Tensor) -> Tensor:
    """Elementwise not (bool, no gradient)."""
    return _no_grad_op("logical_not", x, unary=True)


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of each element; its gradient is zero (it is flat almost
    everywhere), as in PyTorch."""
    return Sign.apply(x)


def isfinite(x: Tensor) -> Tensor:
    """True where an element is neither inf nor NaN."""
    return _no_grad_op("isfinite", x, unary=True)


def isnan(x: Tensor) -> Tensor:
    """True where an element is NaN."""
    return _no_grad_op("isnan", x, unary=True)


def isclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Tensor:
    """|a - b| <= atol + rtol·|b|, elementwise (bool, no gradient), as NumPy and PyTorch."""
    like = tensor_among("isclose", a, b)
    backend = like._backend
    a, b = as_operand(a, like, "isclose"), as_operand(b, like, "isclose")
    av = a.data if isinstance(a, Tensor) else a
    bv = b.data if isinstance(b, Tensor) else b
    try:
        close = backend.isclose(av, bv, rtol=rtol, atol=atol, equal_nan=equal_nan)
    except (ValueError, TypeError, OverflowError) as exc:
        raise explain_failure("isclose", (a, b), exc) from exc
    return make_tensor(backend.xp.asarray(close), backend, None)


def allclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> bool:
    """True when isclose holds everywhere (a Python bool: one host sync on cuda)."""
    return bool(isclose(a, b, rtol, atol, equal_nan).data.all())


class Where(Function):
    """cond ? a : b; the gradient goes to a where cond holds and to b elsewhere."""

    def forward(self, a, b, cond):
        self.cond = cond
        self.shapes = a.shape, b.shape
        return self.xp.where(cond, a, b)

    def backward(self, xp, g):
        sa, sb = self.shapes
        # A constant side (attention's -inf fill, say) needs no gradient: skip its pass.
        ga = unbroadcast(xp.where(self.cond, g, 0), sa) if self.needs_grad(0) else None
        gb = unbroadcast(xp.where(self.cond, 0, g), sb) if self.needs_grad(1) else None
        return ga, gb


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise choice: a where `cond` is true, else b (all three broadcast)."""
    like = next((t for t in (a, b, cond) if isinstance(t, Tensor)), None)
    if like is None:
        raise DTypeError("where() needs at least one Tensor argument, got none")
    a, b = as_operand(a, like, "where"), as_operand(b, like, "where")
    cond_t = as_operand(cond, like, "where")
    cond_arr = cond_t.data if isinstance(cond_t, Tensor) else like._backend.xp.asarray(cond_t)
    if cond_arr.dtype != bool:
        cond_arr = cond_arr.astype(bool)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        # Two Python scalars: their dtype is the one gg.tensor gives them (float32, int64).
        a, b = as_tensor_like(a, like), as_tensor_like(b, like)
        return make_tensor(like._backend.xp.where(cond_arr, a.data, b.data), like._backend, None)
    dtype = _result_dtype(a, b, like)
    a, b = (_as_dtype(v, dtype, like) for v in (a, b))
    return Where.apply(a, b, cond=cond_arr)


def _result_dtype(a: Any, b: Any, like: Tensor) -> Any:
    """The dtype of where(c, a, b): NumPy's promotion between tensors; a Python float next
    to an integer or bool tensor gives float32 (PyTorch's default), not float64."""
    xp = like._backend.xp
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return xp.result_type(a.dtype, b.dtype)
    tensor, scalar = (a, b) if isinstance(a, Tensor) else (b, a)
    if isinstance(scalar, float) and not is_floating(tensor.dtype):
        return default_float()
    if isinstance(scalar, int) and not isinstance(scalar, bool) and tensor.dtype == bool:
        return xp.dtype("int64")
    return tensor.dtype


def _as_dtype(v: Any, dtype: Any, like: Tensor) -> Tensor:
    if isinstance(v, Tensor):
        return astype(v, dtype)
    return make_tensor(like._backend.xp.asarray(v, dtype=dtype), like._backend, None)
