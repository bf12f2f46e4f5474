"""F.normalize and F.cosine_similarity, with PyTorch's formulas, composed of differentiable
ops (so second derivatives work too).

Norms are clamped from below through their squares (`√max(Σx², eps²)` equals
`max(√Σx², eps)`), so a zero vector gets a zero gradient instead of the NaN that √0's
derivative would give (the same gradients PyTorch gives there). PyTorch's cosine_similarity
clamps its norms where autograd does not see it, so for a nonzero vector shorter than eps its
gradient differs from ours.
"""

from __future__ import annotations

import math

from ..errors import ArgumentError
from ..ops import abs, broadcast_to, maximum, sqrt
from ..ops import max as reduce_max
from ..ops import sum as reduce_sum
from ..ops._support import normalize_axis
from ..tensor import Tensor
from .arguments import broadcast_shape, float_arg, matching


def _clamped_norm(x: Tensor, p: float, axis: int, eps: float) -> Tensor:
    """max(‖x‖_p, eps) along `axis`, kept as a size-1 axis."""
    if p == math.inf:
        return maximum(reduce_max(abs(x), axis=axis, keepdims=True), eps)
    if p == 2:
        return sqrt(maximum(reduce_sum(x * x, axis=axis, keepdims=True), eps * eps))
    powered = reduce_sum(abs(x) ** p, axis=axis, keepdims=True)
    return maximum(powered, eps**p) ** (1.0 / p)


def normalize(x: Tensor, p: float = 2.0, axis: int = 1, eps: float = 1e-12) -> Tensor:
    """x divided by its p-norm along `axis` (at least eps): `x / max(‖x‖_p, eps)`, as
    torch.nn.functional.normalize (whose `dim` is `axis` here); p may be math.inf."""
    float_arg("normalize", "input", x)
    if not p > 0:
        raise ArgumentError(f"normalize: p must be positive, got {p}")
    if eps < 0:
        raise ArgumentError(f"normalize: eps must be >= 0, got {eps}")
    axis = normalize_axis(axis, x.ndim, x.shape)
    return x / _clamped_norm(x, float(p), axis, float(eps))


def cosine_similarity(x1: Tensor, x2: Tensor, axis: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between x1 and x2 along `axis` (they broadcast), as
    torch.nn.functional.cosine_similarity computes it: `Σ (x1/max(‖x1‖, eps))·(x2/max(‖x2‖,
    eps))`, each vector scaled first so the result stays within [−1, 1]."""
    float_arg("cosine_similarity", "x1", x1)
    float_arg("cosine_similarity", "x2", x2)
    matching("cosine_similarity", {"x1": x1, "x2": x2})
    if eps < 0:
        raise ArgumentError(f"cosine_similarity: eps must be >= 0, got {eps}")
    shape = broadcast_shape("cosine_similarity", {"x1": x1.shape, "x2": x2.shape})
    x1, x2 = broadcast_to(x1, shape), broadcast_to(x2, shape)
    axis = normalize_axis(axis, len(shape), shape)
    eps = float(eps)
    unit1 = x1 / _clamped_norm(x1, 2.0, axis, eps)
    unit2 = x2 / _clamped_norm(x2, 2.0, axis, eps)
    return reduce_sum(unit1 * unit2, axis=axis)
