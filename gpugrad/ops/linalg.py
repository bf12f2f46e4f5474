"""Matrix products with NumPy's semantics: matmul (1-D, 2-D, batched broadcasting), dot, outer."""

from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..errors import ShapeError
from ..tensor import Tensor
from ._support import as_tensor_like, tensor_among, unbroadcast


class MatMul(Function):
    """a @ b. For matrices: dL/da = g @ bᵀ and dL/db = aᵀ @ g.

    1-D operands are treated as a row (a) or a column (b) vector, as NumPy does, and batch
    axes broadcast, so their gradients are summed back with `unbroadcast`.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs tensors with at least one dimension (use * for scalars)")
        self.save(a, b)
        return self.xp.matmul(a, b)

    def backward(self, xp, g, a, b):
        a2 = a.reshape((1, a.shape[0])) if a.ndim == 1 else a
        b2 = b.reshape((b.shape[0], 1)) if b.ndim == 1 else b
        # Put back the axes 1-D operands dropped from the result; b's first, so that the
        # 0-d result of 1-D @ 1-D becomes (1, 1).
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        ga = gb = None
        if a2.ndim > 2 and b2.ndim == 2:
            # A stack of rows times one matrix (x @ W): both gradients as single 2-D
            # products over all rows, rather than one per matrix of the stack and, for W,
            # a stack of products summed afterwards.
            rows = g.reshape(-1, g.shape[-1])
            if self.needs_grad(0):
                ga = xp.matmul(rows, xp.swapaxes(b2, -1, -2)).reshape(a.shape)
            if self.needs_grad(1):
                gb = xp.matmul(xp.swapaxes(a2.reshape(-1, a2.shape[-1]), -1, -2), rows)
                gb = gb.reshape(b.shape) if b.ndim == 1 else gb
            return ga, gb
        if self.needs_grad(0):
            ga = unbroadcast(xp.matmul(g, xp.swapaxes(b2, -1, -2)), a2.shape)
            ga = ga.reshape(a.shape) if a.ndim == 1 else ga
        if self.needs_grad(1):
            gb = unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), g), b2.shape)
            gb = gb.reshape(b.shape) if b.ndim == 1 else gb
        return ga, gb


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules (also the `@` operator)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        # Python scalars become 0-d tensors too, so they meet matmul's ShapeError.
        like = tensor_among("matmul", a, b)
        a, b = as_tensor_like(a, like), as_tensor_like(b, like)
    return MatMul.apply(a, b)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Inner product of two 1-D tensors; for 2-D operands the matrix product (as NumPy)."""
    if a.ndim > 2 or b.ndim > 2:
        raise ShapeError(
            f"dot takes 1-D or 2-D tensors, got shapes {a.shape} and {b.shape}; use matmul"
        )
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return matmul(a, b)


def outer(a: Tensor, b: Tensor) -> Tensor:
    """Outer product of two vectors: out[i, j] = a[i]·b[j] (inputs are flattened)."""
    return a.reshape(-1, 1) * b.reshape(1, -1)
