"""Activations: one Function per activation, each a call to the backend's fused primitives.

Forward is `backend.activation_forward(kind, x, param)` and backward is
`xp.activation_backward(kind, g, x, out, param)`: with a plain backward `xp` is the backend
(one fused kernel on GPU); with `create_graph=True` it is `gpugrad.ops`, whose
`activation_backward` below runs the same formula on Tensors, so it can be differentiated again.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..backend.activation_math import (
    BACKWARD,
    SQRT_HALF,
    TWO_OVER_SQRT_PI,
    USES_INPUT,
    USES_OUTPUT,
    ActivationPrimitives,
)
from ..errors import ArgumentError, ShapeError
from ..tensor import Tensor
from ._support import normalize_axis


class _Activation(Function):
    """Shared body: subclasses name their `kind`; what they save follows from it."""

    kind = ""
    takes_input = takes_output = False

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.takes_input = cls.kind in USES_INPUT
        cls.takes_output = cls.kind in USES_OUTPUT

    def forward(self, x, param=None):
        out = self.xp.activation_forward(self.kind, x, param)
        self.param = param
        if self.takes_input:  # what save() would do, without its call
            self.saved = (x, out) if self.takes_output else (x,)
        else:
            self.saved = (out,)
        return out

    def backward(self, xp, g, *saved):
        x = saved[0] if self.takes_input else None
        out = saved[-1] if self.takes_output else None
        return xp.activation_backward(self.kind, g, x, out, self.param)


class Relu(_Activation):
    """max(x, 0); the gradient passes where the output is positive."""

    kind = "relu"


class LeakyRelu(_Activation):
    """x for x > 0, slope·x otherwise."""

    kind = "leaky_relu"


class Elu(_Activation):
    """x for x > 0, α·(eˣ − 1) otherwise."""

    kind = "elu"


class Gelu(_Activation):
    """x·Φ(x), Φ the standard normal CDF (exact, through erf).

    Where the backend computes activations with the array formulas (the NumPy backend; a GPU
    runs one fused kernel each way instead), erf is most of the cost, so the forward keeps
    Φ(x) for a plain backward rather than computing erf twice. With create_graph the
    backward formula runs on Tensors as for every activation.
    """

    kind = "gelu"
    cdf = None  # Φ(x) from the forward, on the array-formula path

    def forward(self, x, param=None):
        if type(self.xp).activation_forward is not ActivationPrimitives.activation_forward:
            return super().forward(x, param)  # a fused kernel: nothing to share
        self.param = param
        out, self.cdf = self.xp.gelu_and_cdf(x)
        self.save(x)
        return out

    def backward(self, xp, g, x):
        if self.cdf is not None and xp is self.xp:
            return xp.gelu_grad_from_cdf(g, x, self.cdf)
        return super().backward(xp, g, x)


class GeluTanh(_Activation):
    """GELU's tanh approximation: x/2·(1 + tanh(√(2/π)·(x + 0.044715x³)))."""

    kind = "gelu_tanh"


class Silu(_Activation):
    """x·σ(x) (also called swish)."""

    kind = "silu"


class Sigmoid(_Activation):
    """σ(x) = 1/(1+e^-x), overflow-free; dσ/dx = σ(1−σ)."""

    kind = "sigmoid"


class Tanh(_Activation):
    """tanh(x); its derivative is 1 − tanh(x)²."""

    kind = "tanh"


class Softplus(_Activation):
    """log(1 + e^(βx))/β, and x itself where βx exceeds the threshold."""

    kind = "softplus"


class Softmax(_Activation):
    """e^x / Σ e^x along one axis, shifted by the maximum."""

    kind = "softmax"


class LogSoftmax(_Activation):
    """x − log Σ e^x along one axis, shifted by the maximum."""

    kind = "log_softmax"


FUNCTIONS: dict[str, type[_Activation]] = {
    cls.kind: cls
    for cls in (
        Relu, LeakyRelu, Elu, Gelu, GeluTanh, Silu, Sigmoid, Tanh, Softplus, Softmax, LogSoftmax
    )
}  # fmt: skip


class Erf(Function):
    """The error function; d erf(x)/dx = 2/√π·e^(−x²)."""

    def forward(self, x):
        self.save(x)
        return self.xp.erf(x)

    def backward(self, xp, g, x):
        return g * xp.exp(-(x * x)) * TWO_OVER_SQRT_PI


# --- the namespace side: what backward formulas call with create_graph=True ---------------
def activation_forward(name: str, x: Tensor, param: Any = None) -> Tensor:
    """The activation `name` as a differentiable op (the Tensor twin of the primitive)."""
    return FUNCTIONS[name].apply(x, param=param)


def activation_backward(name: str, g: Tensor, x: Any, out: Any, param: Any = None) -> Tensor:
    """dL/dx of activation `name`, built from differentiable ops on Tensors: the formula the
    backend primitive runs on arrays, recorded so it can be differentiated again."""
    from .. import ops  # the namespace the formula calls into; imported here to avoid a cycle

    return BACKWARD[name](ops, g, x, out, param)


def normal_cdf(x: Tensor) -> Tensor:
    """Φ(x) = (1 + erf(x/√2))/2 as differentiable ops (the Tensor twin of the backend's
    normal_cdf, which GELU's backward formula calls)."""
    return (erf(x * SQRT_HALF) + 1) * 0.5


def erf(x: Tensor) -> Tensor:
    """The error function 2/√π ∫₀ˣ e^(−t²) dt, elementwise."""
    return Erf.apply(x)


# --- the public functions ------------------------------------------------------------------
def _axis(x: Tensor, axis: int, name: str) -> int:
    try:
        return normalize_axis(axis, x.ndim, x.shape)
    except ShapeError as exc:
        raise ShapeError(f"{name}: {exc}") from None


def relu(x: Tensor) -> Tensor:
    """max(x, 0), elementwise."""
    return Relu.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, negative_slope·x elsewhere."""
    return LeakyRelu.apply(x, param=float(negative_slope))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x where x > 0, alpha·(eˣ − 1) elsewhere."""
    return Elu.apply(x, param=float(alpha))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit x·Φ(x): exact ("none", through erf) or its "tanh"
    approximation, as PyTorch."""
    if approximate == "none":
        return Gelu.apply(x)
    if approximate == "tanh":
        return GeluTanh.apply(x)
    raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: Tensor) -> Tensor:
    """x·σ(x), elementwise (swish)."""
    return Silu.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """Logistic sigmoid 1/(1+e^-x), elementwise and overflow-free."""
    return Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent, elementwise."""
    return Tanh.apply(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta·x))/beta, smooth ReLU; x itself where beta·x > threshold (as PyTorch)."""
    if beta == 0:
        raise ArgumentError(f"softplus: beta must be non-zero, got {beta!r}")
    return Softplus.apply(x, param=(float(beta), float(threshold)))


def _normalize_along(op: type[_Activation], x: Tensor, axis: int, name: str) -> Tensor:
    """softmax/log_softmax with PyTorch's edge cases: a 0-d tensor is one value along axis 0
    or -1 (softmax 1, log_softmax 0); an empty tensor gives an empty result."""
    if x.ndim == 0:
        if axis not in (0, -1):
            raise ShapeError(f"{name}: axis {axis} is out of range for a 0-d tensor (use 0 or -1)")
        return op.apply(x.reshape(1), param=0).reshape(())
    axis = _axis(x, axis, name)
    if x.data.size == 0:  # nothing to normalise (and the max below would have no identity)
        return x.clone()
    return op.apply(x, param=axis)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^x / Σ e^x along `axis`: non-negative, sums to 1; stable for any finite logits."""
    return _normalize_along(Softmax, x, axis, "softmax")


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along `axis`, computed as x − logsumexp(x) so it never takes log 0."""
    return _normalize_along(LogSoftmax, x, axis, "log_softmax")


__all__ = [
    "activation_backward", "activation_forward", "elu", "erf", "gelu", "leaky_relu",
    "log_softmax", "relu", "sigmoid", "silu", "softmax", "softplus", "tanh",
]  # fmt: skip
