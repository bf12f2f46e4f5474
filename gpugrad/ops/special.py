"""More elementwise math of one tensor: erfc, log2, log10, square, rsqrt, reciprocal, and the
rounding family floor, ceil, round, trunc.

The rounding ops are flat almost everywhere, so, as in PyTorch, their gradient is zero (not
missing): `floor(x).sum().backward()` leaves `x.grad` filled with zeros.
"""

from __future__ import annotations

import math

from ..autograd import Function
from ..backend.activation_math import TWO_OVER_SQRT_PI
from ..errors import DTypeError
from ..tensor import Tensor

LN2 = math.log(2.0)
LN10 = math.log(10.0)


class Erfc(Function):
    """1 - erf(x); d erfc(x)/dx = -2/√π·e^(−x²)."""

    def forward(self, x):
        self.save(x)
        return self.xp.erfc(x)

    def backward(self, xp, g, x):
        return g * xp.exp(-(x * x)) * -TWO_OVER_SQRT_PI


class Log2(Function):
    """d log2(x)/dx = 1/(x·ln 2)."""

    def forward(self, x):
        self.save(x)
        return self.xp.log2(x)

    def backward(self, xp, g, x):
        return g / (x * LN2)


class Log10(Function):
    """d log10(x)/dx = 1/(x·ln 10)."""

    def forward(self, x):
        self.save(x)
        return self.xp.log10(x)

    def backward(self, xp, g, x):
        return g / (x * LN10)


class Square(Function):
    """d x²/dx = 2x."""

    def forward(self, x):
        self.save(x)
        return x * x

    def backward(self, xp, g, x):
        return g * x * 2


class Rsqrt(Function):
    """1/√x; its derivative -1/(2·x^(3/2)) is -out³/2."""

    def forward(self, x):
        out = 1 / self.xp.sqrt(x)
        self.save(out)
        return out

    def backward(self, xp, g, out):
        return g * (out * out * out) * -0.5


class Reciprocal(Function):
    """1/x; its derivative -1/x² is -out²."""

    def forward(self, x):
        out = 1 / x
        self.save(out)
        return out

    def backward(self, xp, g, out):
        return -g * (out * out)


class _Flat(Function):
    """An op that is piecewise constant: the gradient is zero everywhere (PyTorch's rule;
    at the jumps it does not exist, and zero is the useful choice)."""

    def forward(self, x, **params):
        return self.compute(x, **params)

    def backward(self, xp, g):
        return xp.zeros_like(g)


class Floor(_Flat):
    def compute(self, x):
        return self.xp.floor(x)


class Ceil(_Flat):
    def compute(self, x):
        return self.xp.ceil(x)


class Round(_Flat):
    """Halves go to the even neighbour (2.5 → 2), as in both NumPy and PyTorch."""

    def compute(self, x, decimals):
        return self.xp.round(x, decimals)


class Trunc(_Flat):
    def compute(self, x):
        return self.xp.trunc(x)


class Sign(_Flat):
    def compute(self, x):
        return self.xp.sign(x)


# --- the public functions ---------------------------------------------------------------------
def erfc(x: Tensor) -> Tensor:
    """The complementary error function 1 - erf(x), accurate where erf(x) is near 1."""
    return Erfc.apply(x)


def log2(x: Tensor) -> Tensor:
    """Base-2 logarithm, elementwise."""
    return Log2.apply(x)


def log10(x: Tensor) -> Tensor:
    """Base-10 logarithm, elementwise."""
    return Log10.apply(x)


def square(x: Tensor) -> Tensor:
    """x², elementwise."""
    return Square.apply(x)


def rsqrt(x: Tensor) -> Tensor:
    """1/√x, elementwise."""
    return Rsqrt.apply(x)


def reciprocal(x: Tensor) -> Tensor:
    """1/x, elementwise (float results for integer tensors, as in NumPy's true division)."""
    return Reciprocal.apply(x)


def floor(x: Tensor) -> Tensor:
    """The largest integer-valued number <= x, elementwise (zero gradient)."""
    return Floor.apply(x)


def ceil(x: Tensor) -> Tensor:
    """The smallest integer-valued number >= x, elementwise (zero gradient)."""
    return Ceil.apply(x)


def round(x: Tensor, decimals: int = 0) -> Tensor:
    """Round to `decimals` decimal places, halves to even (zero gradient)."""
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise DTypeError(f"round: decimals must be an int, got {decimals!r}")
    return Round.apply(x, decimals=decimals)


def trunc(x: Tensor) -> Tensor:
    """Round towards zero, elementwise (zero gradient)."""
    return Trunc.apply(x)
