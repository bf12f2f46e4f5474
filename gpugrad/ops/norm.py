"""Vector norms: linalg.vector_norm and Tensor.norm.

‖x‖_p = (Σ|x|^p)^(1/p) over `axis`, with the special orders inf (max |x|), -inf (min |x|),
0 (the count of non-zeros) and 1 (Σ|x|). Gradients follow PyTorch, including its choices
where the norm is not differentiable: at a zero vector the gradient is 0 (a subgradient);
inf/-inf split the gradient evenly among the elements that tie for the extreme.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ArgumentError, DTypeError
from ..tensor import Tensor
from .reduce import Axis, _Reduction


class VectorNorm(_Reduction):
    def forward(self, x, ord, axis, keepdims):
        xp = self.xp
        axes = self.setup(x, axis)
        self.ord = ord
        a = xp.abs(x)
        if ord == math.inf:
            out = a.max(axis=axes, keepdims=keepdims)
        elif ord == -math.inf:
            out = a.min(axis=axes, keepdims=keepdims)
        elif ord == 0:
            out = (x != 0).sum(axis=axes, keepdims=keepdims).astype(x.dtype)
        elif ord == 1:
            out = a.sum(axis=axes, keepdims=keepdims)
        elif ord == 2:
            out = xp.sqrt((x * x).sum(axis=axes, keepdims=keepdims))
        else:
            out = (a**ord).sum(axis=axes, keepdims=keepdims) ** (1.0 / ord)
        self.save(x, out)
        return out

    def backward(self, xp, g, x, out):
        ord = self.ord
        g = self._expand(g)
        norm = out.reshape(self.kept_shape)
        if ord == 0:
            return xp.zeros_like(x)
        if ord == 1:
            return g * xp.sign(x)
        if ord in (math.inf, -math.inf):
            hit = (xp.abs(x) == norm).astype(x.dtype)
            ties = xp.sum(hit, axis=self.axes, keepdims=True)
            return g * xp.sign(x) * hit / ties
        zero = norm == 0
        if ord == 2:
            return g * x / xp.where(zero, math.inf, norm)  # 0 at a zero vector
        # sign(x)·|x|^(p-1) / ‖x‖^(p-1); |0|^(p-1) is taken as 0 (it is inf for p < 1).
        a = xp.abs(x)
        powered = xp.where(a == 0, 0, xp.where(a == 0, 1, a) ** (ord - 1))
        scale = xp.where(zero, 0, g / xp.where(zero, 1, norm) ** (ord - 1))
        return xp.sign(x) * powered * scale


def vector_norm(x: Tensor, ord: float = 2, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The p-norm of x over `axis` (all of x when None), as PyTorch's linalg.vector_norm:
    ord is any float, inf or -inf; the result has x's dtype (floating point only)."""
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise ArgumentError(f"vector_norm: ord must be a number, inf or -inf, got {ord!r}")
    if x.dtype.kind != "f":
        raise DTypeError(
            f"vector_norm needs a floating-point tensor, got {x.dtype}; cast it first (x.float())"
        )
    return VectorNorm.apply(x, ord=float(ord), axis=axis, keepdims=keepdims)


def norm(
    x: Tensor,
    p: Any = 2,
    axis: Axis = None,
    keepdims: bool = False,
    *,
    ord: float | None = None,
) -> Tensor:
    """Tensor.norm, as PyTorch's: the vector p-norm over `axis` (all elements when None);
    `ord=` is accepted for `p` (NumPy's name), and "fro" means 2."""
    if ord is not None:
        if p not in (2, ord):
            raise ArgumentError(f"norm: give p= or ord=, not both (got p={p!r}, ord={ord!r})")
        p = ord
    if p == "fro":
        p = 2
    return vector_norm(x, p, axis, keepdims)
