"""Unflatten: the inverse of Flatten, splitting one axis into several."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import ArgumentError, ShapeError
from ..ops._support import normalize_axis
from ..tensor import Tensor
from .module import Module


class Unflatten(Module):
    """Split axis `axis` into `unflattened_size` (whose product must be that axis's length;
    one entry may be -1, inferred), as torch.nn.Unflatten(dim, unflattened_size)."""

    def __init__(self, axis: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(unflattened_size, Sequence) or isinstance(unflattened_size, str):
            raise ArgumentError(
                f"Unflatten: unflattened_size must be a sequence of ints, got {unflattened_size!r}"
            )
        sizes = tuple(unflattened_size)
        if (
            not sizes
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in sizes)
            or any(n < -1 for n in sizes)
            or sizes.count(-1) > 1
        ):
            raise ArgumentError(
                f"Unflatten: unflattened_size must be non-negative ints (one may be -1), "
                f"got {unflattened_size!r}"
            )
        self.axis = axis
        self.unflattened_size = sizes

    def forward(self, x: Tensor) -> Tensor:
        """x with axis `axis` split into `unflattened_size`."""
        axis = normalize_axis(self.axis, x.ndim, x.shape)
        n, sizes = x.shape[axis], self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:  # inferred: the known sizes must divide the axis
            fits = known > 0 and n % known == 0
        else:
            fits = n == known
        if not fits:
            raise ShapeError(
                f"Unflatten: axis {self.axis} of size {n} (input shape {x.shape}) cannot be "
                f"split into {sizes}"
            )
        return x.reshape(*x.shape[:axis], *sizes, *x.shape[axis + 1 :])

    def extra_repr(self) -> str:
        return f"axis={self.axis}, unflattened_size={self.unflattened_size}"
