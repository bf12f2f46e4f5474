"""Parts of matrices: tril, triu (triangles), diagonal, diag, trace.

tril/triu keep a triangle of the last two axes and zero the rest; their gradient is the same
triangle of the output gradient. The diagonal ops read or place elements by position, so they
are indexing (GetItem, IndexScatter) and take those ops' gradients.
"""

from __future__ import annotations

import operator
from typing import Any

from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._support import normalize_axis
from .index import getitem, scatter_to
from .reduce import sum as reduce_sum


class Tril(Function):
    def forward(self, x, k):
        self.k = k
        return self.xp.tril(x, k)

    def backward(self, xp, g):
        return xp.tril(g, self.k)


class Triu(Function):
    def forward(self, x, k):
        self.k = k
        return self.xp.triu(x, k)

    def backward(self, xp, g):
        return xp.triu(g, self.k)


def _offset(k: Any, op: str) -> int:
    """A diagonal offset: any int (beyond the matrix, it simply selects nothing), not a bool
    or float."""
    if isinstance(k, bool) or not hasattr(k, "__index__"):
        raise DTypeError(f"{op}: the diagonal offset must be an int, got {k!r}")
    return operator.index(k)


def _matrices(x: Tensor, op: str) -> None:
    if x.ndim < 2:
        raise ShapeError(f"{op} needs a tensor with at least 2 dimensions, got shape {x.shape}")


def tril(x: Tensor, k: int = 0) -> Tensor:
    """The lower triangle of the last two axes (on and below diagonal k), zeros elsewhere."""
    _matrices(x, "tril")
    return Tril.apply(x, k=_offset(k, "tril"))


def triu(x: Tensor, k: int = 0) -> Tensor:
    """The upper triangle of the last two axes (on and above diagonal k), zeros elsewhere."""
    _matrices(x, "triu")
    return Triu.apply(x, k=_offset(k, "triu"))


def _diagonal_positions(rows: int, cols: int, offset: int, backend: Any) -> tuple[Any, Any]:
    """Row and column positions of diagonal `offset` of a rows×cols matrix."""
    start_row, start_col = max(-offset, 0), max(offset, 0)
    n = max(min(rows - start_row, cols - start_col), 0)
    steps = backend.arange(n)
    return steps + start_row, steps + start_col


def diagonal(x: Tensor, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """Diagonal `offset` of the matrices in axes (axis1, axis2), as a new last axis (NumPy's
    and PyTorch's layout)."""
    _matrices(x, "diagonal")
    offset = _offset(offset, "diagonal")
    a1, a2 = normalize_axis(axis1, x.ndim, x.shape), normalize_axis(axis2, x.ndim, x.shape)
    if a1 == a2:
        raise ShapeError(f"diagonal: axis1 and axis2 must differ, both are {a1} (shape {x.shape})")
    rest = [d for d in range(x.ndim) if d not in (a1, a2)]
    moved = x.transpose((*rest, a1, a2))
    rows, cols = _diagonal_positions(x.shape[a1], x.shape[a2], offset, x._backend)
    return getitem(moved, (Ellipsis, rows, cols), check=False)  # in range by construction


def diag(x: Tensor, k: int = 0) -> Tensor:
    """A vector → the square matrix with it on diagonal k; a matrix → its diagonal k
    (NumPy's and PyTorch's diag)."""
    k = _offset(k, "diag")
    if x.ndim == 2:
        return diagonal(x, k)
    if x.ndim != 1:
        raise ShapeError(f"diag takes a 1-D or 2-D tensor, got shape {x.shape}")
    n = x.shape[0] + abs(k)
    rows, cols = _diagonal_positions(n, n, k, x._backend)
    return scatter_to((n, n), (rows, cols), x, accumulate=False)


def trace(x: Tensor, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """Sum of diagonal `offset` (over axes axis1, axis2 for more than 2 dimensions)."""
    return reduce_sum(diagonal(x, offset, axis1, axis2), axis=-1)
