"""Reductions along axes: sum, mean, var, std, max, min, prod, logsumexp, cumsum, argmax...

`axis` is an int, a tuple of ints or None (all axes), and `keepdims` keeps reduced axes as
size 1, as in NumPy. Each backward first puts the reduced axes back (`_expand`) and then
spreads the gradient over the elements that produced each result.
"""

from __future__ import annotations

import builtins
import warnings
from typing import Any

from ..autograd import Function
from ..errors import ArgumentError, ArgumentTypeError, ShapeError
from ..tensor import Tensor
from ._support import make_tensor, normalize_axes, normalize_axis

Axis = int | tuple[int, ...] | None


def _single_axis(axis: Any, ndim: int) -> int | None:
    """One axis as a non-negative int (None stays None)."""
    if axis is None:
        return None
    axis = normalize_axis(axis, builtins.max(ndim, 1))
    return None if ndim == 0 else axis


# The dtype sums and products run in, given to the array library explicitly so that its own
# defaults never decide: bool and integers in int64 (PyTorch's rule; NumPy's would make uint8
# sums uint64, a dtype gpugrad does not have), float16 in float32 and rounded back once (NumPy
# adds float16 one way, CuPy another).
_ACCUMULATOR = {**dict.fromkeys("?bhilqBHILQ", "int64"), "e": "float32"}


def _accumulated(x: Any, method: str, **kwargs: Any) -> Any:
    """x.<method>(**kwargs) (sum, mean, prod, cumsum or cumprod) in _ACCUMULATOR's dtype."""
    wide = _ACCUMULATOR.get(x.dtype.char)
    if wide is None or (method == "mean" and wide != "float32"):  # integer means are float64
        return getattr(x, method)(**kwargs)
    out = getattr(x, method)(dtype=wide, **kwargs)
    return out.astype(x.dtype) if wide == "float32" else out


class _Reduction(Function):
    """Shared bookkeeping: the input shape and the shape of the result with keepdims."""

    def setup(self, x: Any, axis: Axis) -> tuple[int, ...] | None:
        axes = self.axes = normalize_axes(axis, x.ndim)
        self.in_shape = x.shape
        if axes is None:
            self.kept_shape = (1,) * x.ndim
        else:
            self.kept_shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        return axes

    def count(self) -> int:
        """How many input elements fed each result."""
        n = 1
        for full, kept in zip(self.in_shape, self.kept_shape):
            if kept == 1:
                n *= full
        return n

    def _reduced_shape(self, keepdims: bool) -> tuple[int, ...]:
        """The result's shape."""
        if keepdims:
            return self.kept_shape
        axes = self.axes if self.axes is not None else range(len(self.in_shape))
        return tuple(n for i, n in enumerate(self.in_shape) if i not in axes)

    def _expand(self, g: Any) -> Any:
        """The output gradient with the reduced axes back as size 1, ready to broadcast."""
        return g.reshape(self.kept_shape)


class Sum(_Reduction):
    def forward(self, x, axis, keepdims):
        axes = self.setup(x, axis)
        return _accumulated(x, "sum", axis=axes, keepdims=keepdims)

    def backward(self, xp, g):
        return xp.broadcast_to(self._expand(g), self.in_shape)


class Mean(_Reduction):
    def forward(self, x, axis, keepdims):
        axes = self.setup(x, axis)
        if self.count() == 0:
            return _undefined(
                "mean", "Mean of empty slice", lambda: x.mean(axis=axes, keepdims=keepdims)
            )
        return _accumulated(x, "mean", axis=axes, keepdims=keepdims)

    def backward(self, xp, g):
        return xp.broadcast_to(self._expand(g) / self.count(), self.in_shape)


class Var(_Reduction):
    """Variance with `ddof` (0 by default, as NumPy): d var/dx = 2(x - mean)/(N - ddof)."""

    def forward(self, x, axis, keepdims, ddof):
        self.setup(x, axis)
        self.ddof = ddof
        self.save(x)
        if self.count() <= ddof:
            return _undefined(
                "var",
                _no_dof(self.count(), ddof),
                lambda: x.var(axis=self.axes, keepdims=keepdims, ddof=ddof),
            )
        return x.var(axis=self.axes, keepdims=keepdims, ddof=ddof)

    def backward(self, xp, g, x):
        centered = x - x.mean(axis=self.axes, keepdims=True)
        return self._expand(g) * centered * (2 / _dof(self.count(), self.ddof))


class Std(_Reduction):
    """Standard deviation: d std/dx = (x - mean)/((N - ddof)·std), taken as 0 where std is 0
    (a constant slice), as PyTorch does, instead of 0/0."""

    def forward(self, x, axis, keepdims, ddof):
        self.setup(x, axis)
        self.ddof = ddof
        if self.count() <= ddof:
            out = _undefined(
                "std",
                _no_dof(self.count(), ddof),
                lambda: x.std(axis=self.axes, keepdims=keepdims, ddof=ddof),
            )
        else:
            out = x.std(axis=self.axes, keepdims=keepdims, ddof=ddof)
        self.save(x, out)
        return out

    def backward(self, xp, g, x, out):
        std = out.reshape(self.kept_shape)
        flat = std == 0
        centered = x - x.mean(axis=self.axes, keepdims=True)
        scaled = centered / (xp.where(flat, 1, std) * _dof(self.count(), self.ddof))
        return self._expand(g) * xp.where(flat, 0, scaled)


def _no_dof(count: int, ddof: int) -> str:
    return f"Degrees of freedom <= 0 for slice ({count} elements per result, ddof={ddof})"


def _undefined(op: str, why: str, compute: Any) -> Any:
    """A reduction with nothing to divide by: gpugrad's one RuntimeWarning and a NaN result
    on every device. NumPy warns (two or three times, and var gives inf when ddof > N) where
    CuPy stays silent, so the library's own warnings are muted and its result replaced."""
    warnings.warn(f"{op}: {why}; the result is NaN", RuntimeWarning, stacklevel=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = compute()
    return out + float("nan")


def _dof(count: int, ddof: int) -> float:
    """N - ddof as a float; NaN when nothing is left (the variance is undefined there)."""
    return float(count - ddof) if count > ddof else float("nan")


class _Extreme(_Reduction):
    """max/min: the gradient goes to the elements equal to the result, split evenly on ties."""

    def forward(self, x, axis, keepdims):
        axes = self.setup(x, axis)
        out = self.pick(x, axes, keepdims)
        self.save(x, out)
        return out

    def backward(self, xp, g, x, out):
        # The mask in x's dtype: an integer tie count would promote float32 gradients to float64.
        hit = (x == out.reshape(self.kept_shape)).astype(x.dtype)
        ties = xp.sum(hit, axis=self.axes, keepdims=True)
        return self._expand(g) * hit / ties


class Max(_Extreme):
    def pick(self, x, axes, keepdims):
        return x.max(axis=axes, keepdims=keepdims)


class Min(_Extreme):
    def pick(self, x, axes, keepdims):
        return x.min(axis=axes, keepdims=keepdims)


class Prod(_Reduction):
    """Product; d/dx_i is the product of the others, computed so that zeros are handled."""

    def forward(self, x, axis, keepdims):
        self.setup(x, axis)
        out = _accumulated(x, "prod", axis=self.axes, keepdims=keepdims)
        self.save(x)
        return out

    def backward(self, xp, g, x):
        axes = self.axes
        zero = x == 0
        zeros = xp.sum(zero, axis=axes, keepdims=True)
        x_safe = xp.where(zero, 1, x)
        quotient = xp.prod(x_safe, axis=axes, keepdims=True) / x_safe  # others, zeros skipped
        # `zsum` (the sum of the zero elements) is 0, but carries their derivative, so the
        # gradient stays right to second order. One zero: it gets the product of the others,
        # the rest get 0·(…). Two: each zero gets (the other zero)·(…). More: all 0.
        zsum = xp.sum(xp.where(zero, x, 0), axis=axes, keepdims=True)
        one, two = xp.where(zero, 1, zsum), xp.where(zero, zsum - x, 0)
        factor = xp.where(zeros == 0, 1, xp.where(zeros == 1, one, xp.where(zeros == 2, two, 0)))
        return self._expand(g) * quotient * factor


class LogSumExp(_Reduction):
    """log Σ exp(x), shifted by the max so it never overflows; d/dx = softmax(x)."""

    def forward(self, x, axis, keepdims):
        xp = self.xp
        axes = self.setup(x, axis)
        if self.count() == 0:  # the log of an empty sum: -inf, as in PyTorch
            out = xp.full(self.kept_shape, -float("inf"), dtype=x.dtype)
            out = out if keepdims else out.reshape(self._reduced_shape(keepdims))
            self.save(x, out)
            return out
        shift = x.max(axis=axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)
        out = xp.log(xp.exp(x - shift).sum(axis=axes, keepdims=True)) + shift
        if not keepdims:
            out = out.reshape(
                tuple(n for i, n in enumerate(x.shape) if axes is not None and i not in axes)
            )
        self.save(x, out)
        return out

    def backward(self, xp, g, x, out):
        return self._expand(g) * xp.exp(x - out.reshape(self.kept_shape))


class CumSum(Function):
    """Running sum along an axis (over the flattened tensor when axis is None);
    its gradient is the running sum of the gradient taken from the other end."""

    def forward(self, x, axis):
        self.in_shape = x.shape
        self.axis = axis
        return _accumulated(x, "cumsum", axis=axis)

    def backward(self, xp, g):
        axis = 0 if self.axis is None else self.axis
        running = _accumulated(xp.flip(g, axis), "cumsum", axis=axis)
        return xp.flip(running, axis).reshape(self.in_shape)


class CumProd(Function):
    """Running product along an axis. d out_j/d x_i (j >= i) is the product of x_0..x_j
    without x_i. Before the first zero z that is out_j / x_i. At z it is Q_j, the running
    product with x_z taken as 1. After z it is 0, written as x_z·Q_j/x_i so that it keeps
    its derivative with respect to x_z (second derivatives are then exact with up to one
    zero per slice). Which element is which is decided in the forward, so the backward
    needs no host sync."""

    def forward(self, x, axis):
        self.in_shape = x.shape
        flat = x.reshape(-1) if axis is None else x
        axis = self.axis = 0 if axis is None else axis
        zero = flat == 0
        zeros_so_far = _accumulated(zero, "cumsum", axis=axis)  # int64 on both libraries
        self.before_zero = zeros_so_far == 0
        self.first_zero = zero & (zeros_so_far == 1)
        self.later_nonzero = ~zero & (zeros_so_far > 0)
        out = _accumulated(flat, "cumprod", axis=axis)
        self.save(x, out)  # the input itself, not the flattened view: saved arrays must be
        return out  # the op's inputs or output

    def backward(self, xp, g, x, out):
        axis = self.axis
        x = x.reshape(out.shape)
        g = g.reshape(out.shape)

        def from_the_end(v):  # Σ_{j >= i} v_j
            return xp.flip(xp.cumsum(xp.flip(v, axis), axis=axis), axis)

        no_zero_yet = from_the_end(g * out) / xp.where(self.before_zero, x, 1)
        tail = from_the_end(g * xp.cumprod(xp.where(self.first_zero, 1, x), axis=axis))
        first_zero_value = xp.sum(xp.where(self.first_zero, x, 0), axis=axis, keepdims=True)
        after_zero = first_zero_value * tail / xp.where(self.later_nonzero, x, 1)
        grad = xp.where(
            self.before_zero,
            no_zero_yet,
            xp.where(self.first_zero, tail, xp.where(self.later_nonzero, after_zero, 0)),
        )
        return grad.reshape(self.in_shape)


# --- the public functions ---------------------------------------------------------------------
def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (all axes when None)."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over `axis`."""
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def _ddof(ddof: Any, correction: Any, unbiased: Any, op: str) -> Any:
    """One divisor offset from NumPy's `ddof` or PyTorch's `correction` / `unbiased`; giving
    more than one of them is refused, since they could disagree."""
    given = {
        name: value
        for name, value in (("ddof", ddof), ("correction", correction), ("unbiased", unbiased))
        if value is not None and not (name == "ddof" and value == 0)  # 0: ddof's default
    }
    if len(given) > 1:
        got = ", ".join(f"{name}={value!r}" for name, value in given.items())
        raise ArgumentError(f"{op}: give only one of ddof=, correction= and unbiased=, got {got}")
    if unbiased is not None:
        if not isinstance(unbiased, bool):
            raise ArgumentTypeError(f"{op}: unbiased must be True or False, got {unbiased!r}")
        return 1 if unbiased else 0
    name, value = next(iter(given.items()), ("ddof", 0))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ArgumentError(f"{op}: {name} must be a number >= 0, got {value!r}")
    return value


def var(
    x: Tensor,
    axis: Axis = None,
    keepdims: bool = False,
    ddof: int = 0,
    *,
    correction: int | None = None,
    unbiased: bool | None = None,
) -> Tensor:
    """Variance over `axis`, dividing by N - ddof (ddof=0 as NumPy; PyTorch's default is 1).
    PyTorch's `correction=` (the same as ddof) and `unbiased=` (ddof 1 or 0) work too."""
    ddof = _ddof(ddof, correction, unbiased, "var")
    return Var.apply(x, axis=axis, keepdims=keepdims, ddof=ddof)


def std(
    x: Tensor,
    axis: Axis = None,
    keepdims: bool = False,
    ddof: int = 0,
    *,
    correction: int | None = None,
    unbiased: bool | None = None,
) -> Tensor:
    """Standard deviation over `axis`, dividing by N - ddof (ddof=0 as NumPy); also takes
    PyTorch's `correction=` and `unbiased=`, as var does."""
    ddof = _ddof(ddof, correction, unbiased, "std")
    return Std.apply(x, axis=axis, keepdims=keepdims, ddof=ddof)


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Largest value over `axis` (values only; use argmax for positions)."""
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Smallest value over `axis` (values only; use argmin for positions)."""
    return Min.apply(x, axis=axis, keepdims=keepdims)


def prod(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Product over `axis`."""
    return Prod.apply(x, axis=axis, keepdims=keepdims)


def logsumexp(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over `axis`, computed stably."""
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


def cumsum(x: Tensor, axis: int | None = None) -> Tensor:
    """Running sum along `axis` (over the flattened tensor when None, as NumPy)."""
    return CumSum.apply(x, axis=_single_axis(axis, x.ndim))


def cumprod(x: Tensor, axis: int | None = None) -> Tensor:
    """Running product along `axis` (over the flattened tensor when None, as NumPy);
    differentiable also where x has zeros."""
    return CumProd.apply(x, axis=_single_axis(axis, x.ndim))


def amax(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Largest value over `axis`; the gradient is split evenly among ties (PyTorch's amax
    rule, which gpugrad's `max` follows too: PyTorch's max(dim=) instead sends all of it to
    the one index it returns)."""
    return Max.apply(x, axis=axis, keepdims=keepdims)


def amin(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Smallest value over `axis`; the gradient is split evenly among ties (as amax)."""
    return Min.apply(x, axis=axis, keepdims=keepdims)


def _refuse_empty(x: Tensor, axis: int | None, op: str) -> None:
    """An empty axis (or tensor, for axis None) has no position to return."""
    if x.data.size == 0 and (axis is None or x.shape[axis] == 0):
        where = "tensor" if axis is None else f"axis {axis}"
        raise ShapeError(f"{op} of an empty {where}: shape {x.shape} has no elements to pick")


def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the largest value (in the flattened tensor when axis is None); int64."""
    return _position(x, axis, keepdims, "argmax")


def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the smallest value (in the flattened tensor when axis is None); int64."""
    return _position(x, axis, keepdims, "argmin")


def _position(x: Tensor, axis: Any, keepdims: bool, op: str) -> Tensor:
    """argmax/argmin with NumPy's answer on both libraries: the first of equal values, and
    the first NaN where there is one. CuPy's reduction returns *a* NaN, whichever its tree
    meets first, so for floats the first NaN is looked up separately (a bool argmax, which
    keeps the first of equal values on both)."""
    axis = _single_axis(axis, x.ndim)
    _refuse_empty(x, axis, op)
    backend, data = x._backend, x.data
    out = getattr(backend, op)(data, axis=axis, keepdims=keepdims)
    if data.dtype.kind == "f":
        nan = backend.isnan(data)
        first_nan = backend.argmax(nan, axis=axis, keepdims=keepdims)
        out = backend.where(nan.any(axis=axis, keepdims=keepdims), first_nan, out)
    return make_tensor(out, backend, None)


def any(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """True where any element over `axis` is non-zero (no gradient)."""
    axes = normalize_axes(axis, x.ndim)
    return make_tensor(
        x._backend.xp.asarray(x.data.any(axis=axes, keepdims=keepdims)), x._backend, None
    )


def all(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """True where every element over `axis` is non-zero (no gradient)."""
    axes = normalize_axes(axis, x.ndim)
    return make_tensor(
        x._backend.xp.asarray(x.data.all(axis=axes, keepdims=keepdims)), x._backend, None
    )
