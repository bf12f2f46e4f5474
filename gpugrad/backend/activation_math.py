"""Activation primitives: forward and backward of each activation on raw arrays.

These are the NumPy twins of the fused CUDA kernels: the CuPy backend overrides them with one
kernel each, and tests compare the two. They are mixed into `Backend`, so `self.xp` is the
array module.

Every formula takes a namespace `ns` as its first argument and uses only names that both the
backend and `gpugrad.ops` provide (`exp`, `where`, `tanh`, `normal_cdf`, `activation_forward`, ...)
plus the `.sum(axis=..., keepdims=...)` method. Given the backend it computes on arrays (the
primitive); given `gpugrad.ops` it records differentiable ops on Tensors, which is how
`create_graph=True` gets second derivatives from the very same formula.

`param` is the activation's one setting: the slope (leaky_relu), alpha (elu), the pair
(beta, threshold) (softplus) or the axis (softmax, log_softmax); None for the others.
Python-float constants keep float32 arrays float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import special_math

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
GELU_TANH_SCALE = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715


# --- forward formulas: f(ns, x, param) -------------------------------------------------------
def _sigmoid(ns: Any, x: Any, param: Any) -> Any:
    # For x < 0 use e^x/(1+e^x) so that e^-x never overflows.
    z = ns.exp(-ns.abs(x))
    return ns.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _softplus(ns: Any, x: Any, param: Any) -> Any:
    beta, threshold = param
    bx = x * beta
    # log(1 + e^bx) = max(bx, 0) + log(1 + e^-|bx|): no overflow for any bx.
    smooth = (ns.maximum(bx, 0) + ns.log1p(ns.exp(-ns.abs(bx)))) / beta
    return ns.where(bx > threshold, x, smooth)


def _softmax(ns: Any, x: Any, axis: int) -> Any:
    e = ns.exp(x - x.max(axis=axis, keepdims=True))  # shifted: the largest exponent is 0
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(ns: Any, x: Any, axis: int) -> Any:
    z = x - x.max(axis=axis, keepdims=True)
    return z - ns.log(ns.exp(z).sum(axis=axis, keepdims=True))


def _gelu_tanh_inner(x: Any) -> Any:
    return (x + GELU_TANH_CUBIC * x * x * x) * GELU_TANH_SCALE


FORWARD: dict[str, Callable[..., Any]] = {
    "relu": lambda ns, x, p: ns.maximum(x, 0),
    "leaky_relu": lambda ns, x, p: ns.where(x > 0, x, x * p),
    # expm1 of min(x, 0): the branch not taken must not overflow.
    "elu": lambda ns, x, p: ns.where(x > 0, x, ns.expm1(ns.minimum(x, 0)) * p),
    "gelu": lambda ns, x, p: x * ns.normal_cdf(x),
    "gelu_tanh": lambda ns, x, p: x * (ns.tanh(_gelu_tanh_inner(x)) + 1) * 0.5,
    "silu": lambda ns, x, p: x * _sigmoid(ns, x, p),
    "sigmoid": _sigmoid,
    "tanh": lambda ns, x, p: ns.tanh(x),
    "softplus": _softplus,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
}


# --- backward formulas: dL/dx from g = dL/dout, f(ns, g, x, out, param) ----------------------
def gelu_grad_from_cdf(xp: Any, g: Any, x: Any, cdf: Any) -> Any:
    """GELU's dL/dx = g·(Φ(x) + x·φ(x)) on arrays, given the forward's Φ(x): no second erf.
    Seven passes in place over blocks that stay in the CPU caches when g, x and Φ share one
    shape and dtype (as the backward of a plain forward has them), else over the whole array."""
    if not (g.shape == x.shape == cdf.shape and g.dtype == x.dtype == cdf.dtype and x.ndim):
        return _gelu_grad_in_place(xp, g, x, cdf, xp.asarray(xp.multiply(x, x)))
    out = xp.empty(x.shape, dtype=x.dtype)
    flat = [a.reshape(-1) for a in (g, x, cdf, out)]
    work = xp.empty(min(x.size, special_math.SINGLE_BLOCK), dtype=x.dtype)
    for start in range(0, x.size, special_math.SINGLE_BLOCK):
        g_part, x_part, cdf_part, out_part = (
            a[start : start + special_math.SINGLE_BLOCK] for a in flat
        )
        part_work = work[: x_part.size]
        xp.multiply(x_part, x_part, out=part_work)
        _gelu_grad_in_place(xp, g_part, x_part, cdf_part, part_work, out=out_part)
    return out


def _gelu_grad_in_place(xp: Any, g: Any, x: Any, cdf: Any, work: Any, out: Any = None) -> Any:
    """g·(Φ + x·φ(x)) from work = x² (overwritten), the last step into `out` (default: work)."""
    xp.multiply(work, -0.5, out=work)
    xp.exp(work, out=work)
    xp.multiply(work, x, out=work)
    xp.multiply(work, INV_SQRT_2PI, out=work)
    xp.add(work, cdf, out=work)
    return xp.multiply(work, g, out=work if out is None else out)


def _gelu_grad(ns: Any, g: Any, x: Any, out: Any, p: Any) -> Any:
    # d/dx x·Φ(x) = Φ(x) + x·φ(x)
    return g * (ns.normal_cdf(x) + x * ns.exp(x * x * -0.5) * INV_SQRT_2PI)


def _gelu_tanh_grad(ns: Any, g: Any, x: Any, out: Any, p: Any) -> Any:
    t = ns.tanh(_gelu_tanh_inner(x))
    inner_grad = (x * x * (3 * GELU_TANH_CUBIC) + 1) * GELU_TANH_SCALE
    return g * ((t + 1) * 0.5 + x * (1 - t * t) * inner_grad * 0.5)


def _silu_grad(ns: Any, g: Any, x: Any, out: Any, p: Any) -> Any:
    s = ns.activation_forward("sigmoid", x)
    return g * (s * (x * (1 - s) + 1))


def _softplus_grad(ns: Any, g: Any, x: Any, out: Any, p: Any) -> Any:
    beta, threshold = p
    bx = x * beta
    return ns.where(bx > threshold, g, g * ns.activation_forward("sigmoid", bx))


def _softmax_grad(ns: Any, g: Any, x: Any, out: Any, axis: int) -> Any:
    return out * (g - (g * out).sum(axis=axis, keepdims=True))


def _log_softmax_grad(ns: Any, g: Any, x: Any, out: Any, axis: int) -> Any:
    return g - ns.exp(out) * g.sum(axis=axis, keepdims=True)


BACKWARD: dict[str, Callable[..., Any]] = {
    "relu": lambda ns, g, x, out, p: g * (out > 0),
    "leaky_relu": lambda ns, g, x, out, p: ns.where(x > 0, g, g * p),
    "elu": lambda ns, g, x, out, p: ns.where(x > 0, g, g * (out + p)),  # α·eˣ = out + α
    "gelu": _gelu_grad,
    "gelu_tanh": _gelu_tanh_grad,
    "silu": _silu_grad,
    "sigmoid": lambda ns, g, x, out, p: g * out * (1 - out),
    "tanh": lambda ns, g, x, out, p: g * (1 - out * out),
    "softplus": _softplus_grad,
    "softmax": _softmax_grad,
    "log_softmax": _log_softmax_grad,
}


# --- softmax and log_softmax on arrays, in one work array --------------------------------
# The formulas above allocate a temporary per operation (three full-size arrays for softmax).
# On arrays, the primitive writes every step into a single new array instead: one allocation
# and passes that stay in cache for the rows of a transformer's attention or logits. The row
# reductions go through the backend's max_along / sum_along (quicker forms on NumPy).
def _softmax_arrays(backend: Any, x: Any, axis: int) -> Any:
    xp = backend.xp
    work = xp.subtract(x, backend.max_along(x, axis))  # shifted: the largest exponent is 0
    xp.exp(work, out=work)
    return xp.divide(work, backend.sum_along(work, axis), out=work)


def _log_softmax_arrays(backend: Any, x: Any, axis: int) -> Any:
    xp = backend.xp
    work = xp.subtract(x, backend.max_along(x, axis))
    return xp.subtract(work, xp.log(backend.sum_along(xp.exp(work), axis)), out=work)


def _softmax_grad_arrays(backend: Any, g: Any, out: Any, axis: int) -> Any:
    xp = backend.xp
    work = xp.multiply(g, out)
    dot = backend.sum_along(work, axis)  # Σ g·y along the axis
    xp.subtract(g, dot, out=work)
    return xp.multiply(work, out, out=work)


def _log_softmax_grad_arrays(backend: Any, g: Any, out: Any, axis: int) -> Any:
    xp = backend.xp
    work = xp.exp(out)  # the softmax
    xp.multiply(work, backend.sum_along(g, axis), out=work)
    return xp.subtract(g, work, out=work)


ARRAY_FORWARD: dict[str, Callable[..., Any]] = {
    "softmax": _softmax_arrays,
    "log_softmax": _log_softmax_arrays,
}
ARRAY_BACKWARD: dict[str, Callable[..., Any]] = {
    "softmax": _softmax_grad_arrays,
    "log_softmax": _log_softmax_grad_arrays,
}

# Which of (x, out) each backward reads, so a Function saves only those.
USES_INPUT = frozenset({"leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "softplus"})
USES_OUTPUT = frozenset({"relu", "elu", "sigmoid", "tanh", "softmax", "log_softmax"})


def written_into(result: Any, into: Any) -> Any:
    """`result`, or `into` holding its values when an output array was given."""
    if into is None:
        return result
    into[...] = result
    return into


class ActivationPrimitives:
    """Fused activation forward/backward, written with `self.xp` (NumPy or CuPy)."""

    ACTIVATIONS = tuple(FORWARD)

    def activation_forward(self, name: str, x: Any, param: Any = None, *, into: Any = None) -> Any:
        """The activation `name` of array `x` (one fused kernel on GPU), written into `into`
        when given."""
        in_one_array = ARRAY_FORWARD.get(name)
        if in_one_array is not None and x.dtype.kind == "f":
            result = in_one_array(self, x, param)
        else:
            result = FORWARD[name](self, x, param)
        return result if into is None else written_into(result, into)

    def activation_backward(
        self, name: str, g: Any, x: Any, out: Any, param: Any = None, *, into: Any = None
    ) -> Any:
        """dL/dx of activation `name` from g = dL/dout and the forward's input and/or output
        (`x` or `out` may be None when the formula does not read it; see USES_INPUT), written
        into `into` when given."""
        in_one_array = ARRAY_BACKWARD.get(name)
        if in_one_array is not None and g.shape == out.shape and g.dtype == out.dtype:
            result = in_one_array(self, g, out, param)
        else:
            result = BACKWARD[name](self, g, x, out, param)
        return result if into is None else written_into(result, into)

    def bias_activation_forward(self, name: str, z: Any, bias: Any, param: Any = None) -> Any:
        """Activation `name` of z + bias, bias running along z's last axis (a Linear layer's
        product and bias). `z` is the caller's own scratch array: the twin adds the bias into
        it in place and, for relu and tanh, applies the activation in place too (returning z);
        the GPU kernel (relu, sigmoid, tanh) only reads it and returns a new array."""
        xp = self.xp
        xp.add(z, bias, out=z)
        if name == "relu":
            return xp.maximum(z, 0, out=z)
        if name == "tanh":
            return xp.tanh(z, out=z)
        return FORWARD[name](self, z, param)

    def normal_cdf(self, x: Any) -> Any:
        """Φ(x) = (1 + erf(x/√2))/2, the standard normal CDF (GELU is x·Φ(x)), elementwise, in
        x's float dtype, through this backend's erf (the NumPy backend has a faster route)."""
        return (self.erf(x * SQRT_HALF) + 1) * 0.5

    def gelu_and_cdf(self, x: Any) -> tuple[Any, Any]:
        """(x·Φ(x), Φ(x)): exact GELU of array `x` and the CDF that its backward reuses."""
        cdf = self.normal_cdf(x)
        return x * cdf, cdf

    def gelu_grad_from_cdf(self, g: Any, x: Any, cdf: Any) -> Any:
        """GELU's dL/dx = g·(Φ(x) + x·φ(x)) given the forward's Φ(x) (`gelu_and_cdf`)."""
        return gelu_grad_from_cdf(self.xp, g, x, cdf)

    def erf(self, x: Any) -> Any:
        """The error function, elementwise, in x's float dtype (special_math.py)."""
        return special_math.erf(self, x)

    def erfc(self, x: Any) -> Any:
        """The complementary error function 1 - erf(x), elementwise, in x's float dtype,
        accurate relative to its own size where it is tiny (special_math.py)."""
        return special_math.erfc(self, x)
