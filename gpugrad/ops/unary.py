"""Elementwise math of one tensor: exp, log, sqrt, trig, abs, clip.

Each backward is the local derivative times the incoming gradient (the chain rule), written
with the output when that is cheaper (exp, sqrt). Activations (relu, sigmoid, tanh, ...) live
in activation.py, on the backend's fused primitives.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..errors import ArgumentError
from ..tensor import Tensor
from ._support import unbroadcast


class Exp(Function):
    """d exp(x)/dx = exp(x)."""

    def forward(self, x):
        out = self.xp.exp(x)
        self.save(out)
        return out

    def backward(self, xp, g, out):
        return g * out


class Log(Function):
    """d log(x)/dx = 1/x."""

    def forward(self, x):
        self.save(x)
        return self.xp.log(x)

    def backward(self, xp, g, x):
        return g / x


class Log1p(Function):
    """d log(1+x)/dx = 1/(1+x)."""

    def forward(self, x):
        self.save(x)
        return self.xp.log1p(x)

    def backward(self, xp, g, x):
        return g / (x + 1)


class Expm1(Function):
    """d (exp(x)-1)/dx = exp(x) = out + 1."""

    def forward(self, x):
        out = self.xp.expm1(x)
        self.save(out)
        return out

    def backward(self, xp, g, out):
        return g * (out + 1)


class Sqrt(Function):
    """d sqrt(x)/dx = 1/(2·sqrt(x))."""

    def forward(self, x):
        out = self.xp.sqrt(x)
        self.save(out)
        return out

    def backward(self, xp, g, out):
        return g / (out * 2)


class Sin(Function):
    def forward(self, x):
        self.save(x)
        return self.xp.sin(x)

    def backward(self, xp, g, x):
        return g * xp.cos(x)


class Cos(Function):
    def forward(self, x):
        self.save(x)
        return self.xp.cos(x)

    def backward(self, xp, g, x):
        return -g * xp.sin(x)


class Abs(Function):
    """d|x|/dx = sign(x) (0 at 0, as PyTorch)."""

    def forward(self, x):
        self.save(x)
        return self.xp.abs(x)

    def backward(self, xp, g, x):
        return g * xp.sign(x)


class Clip(Function):
    """Clamp into [low, high] (either may be None, a number or an array/Tensor that
    broadcasts with x). x's gradient passes where low <= x <= high; a Tensor bound gets it
    where the bound is the result, as in PyTorch: low where x < low < high, high where
    x > high or high < low (then the result is high everywhere)."""

    def forward(self, x, low, high):
        xp = self.xp
        self.shapes = tuple(getattr(a, "shape", ()) for a in (x, low, high))
        self.inside = (x >= low if low is not None else True) & (
            x <= high if high is not None else True
        )
        # Array bounds may be Tensors that want a gradient: where each one won, kept now
        # (numbers need none).
        self.at_low = self.at_high = None
        if getattr(low, "ndim", None) is not None:
            self.at_low = (x < low) & (low < high) if high is not None else x < low
        if getattr(high, "ndim", None) is not None:
            self.at_high = (x > high) | (high < low) if low is not None else x > high
        return xp.clip(x, low, high)

    def backward(self, xp, g):
        # Bounds may broadcast x to a larger shape: each gradient sums back to its input.
        sx, slow, shigh = self.shapes
        gx = unbroadcast(g * self.inside, sx)
        glow = None if self.at_low is None else unbroadcast(g * self.at_low, slow)
        ghigh = None if self.at_high is None else unbroadcast(g * self.at_high, shigh)
        return gx, glow, ghigh


def exp(x: Tensor) -> Tensor:
    """e to the power x, elementwise."""
    return Exp.apply(x)


def log(x: Tensor) -> Tensor:
    """Natural logarithm, elementwise."""
    return Log.apply(x)


def log1p(x: Tensor) -> Tensor:
    """log(1 + x), accurate for small x."""
    return Log1p.apply(x)


def expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, accurate for small x."""
    return Expm1.apply(x)


def sqrt(x: Tensor) -> Tensor:
    """Square root, elementwise."""
    return Sqrt.apply(x)


def sin(x: Tensor) -> Tensor:
    """Sine, elementwise."""
    return Sin.apply(x)


def cos(x: Tensor) -> Tensor:
    """Cosine, elementwise."""
    return Cos.apply(x)


def abs(x: Tensor) -> Tensor:
    """Absolute value, elementwise."""
    return Abs.apply(x)


def clip(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Clamp into [min, max]: either bound may be None, a number, or a Tensor that broadcasts
    with x (and then gets its gradient where it is the result, as in PyTorch)."""
    if min is None and max is None:
        raise ArgumentError("clip needs at least one of min and max, got min=None and max=None")
    return Clip.apply(x, min, max)


clamp = clip
