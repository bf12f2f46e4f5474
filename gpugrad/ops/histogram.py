"""histogram: counts of values in equal-width bins, as NumPy's (and PyTorch's) histogram.

Follows NumPy, as gpugrad does for functions NumPy has: `bins=10` by default, `weights=`,
counts as int64 unless `density` or `weights` make them real numbers. (PyTorch's default is
100 bins and float counts; pass `bins=100` to get its edges.) No gradient: counting is not
differentiable. The range is found here, not by the array library, so an empty tensor or a
NaN is handled the same way on both backends.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .. import _args
from ..dtypes import default_float
from ..errors import ArgumentError, DeviceError, ShapeError
from ..tensor import Tensor
from ._support import make_tensor


class Histogram(NamedTuple):
    """What histogram returns: the count (or density) per bin and the bins+1 edges."""

    hist: Tensor
    bin_edges: Tensor


def _range(x: Tensor, given: Any) -> tuple[float, float]:
    if given is None:
        if x.size == 0:
            return 0.0, 1.0
        low, high = float(x.data.min()), float(x.data.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ArgumentError(
                f"histogram: the values span [{low}, {high}], which is not finite; pass range="
            )
    else:
        if not isinstance(given, (tuple, list)) or len(given) != 2:
            raise ArgumentError(f"histogram: range must be a (low, high) pair, got {given!r}")
        low = float(_args.number("histogram", "range[0]", given[0], finite=True))
        high = float(_args.number("histogram", "range[1]", given[1], finite=True))
        if low > high:
            raise ArgumentError(f"histogram: range must have low <= high, got {given!r}")
    if low == high:  # one value: a unit-wide range around it, as NumPy
        low, high = low - 0.5, high + 0.5
    return low, high


def histogram(
    x: Tensor,
    bins: int = 10,
    range: tuple[float, float] | None = None,
    weights: Tensor | None = None,
    density: bool = False,
) -> Histogram:
    """Counts of x's values in `bins` equal-width bins over `range` (x's min..max by
    default), and the bin edges, as a named pair `(hist, bin_edges)`."""
    bins = _args.size("histogram", "bins", bins)
    low, high = _range(x, range)
    backend, xp = x._backend, x._backend.xp
    weight_data = None
    if weights is not None:
        if not isinstance(weights, Tensor) or weights.shape != x.shape:
            got = weights.shape if isinstance(weights, Tensor) else type(weights).__name__
            raise ShapeError(f"histogram: weights must be a Tensor of shape {x.shape}, got {got}")
        if weights.device != x.device:
            raise DeviceError(f"histogram: weights are on {weights.device} but x is on {x.device}")
        weight_data = weights.data.ravel()
    real = x.dtype if x.dtype.kind == "f" else xp.dtype(default_float())
    counts, edges = xp.histogram(
        x.data.ravel(), bins=bins, range=(low, high), weights=weight_data, density=bool(density)
    )
    if density or weights is not None:
        counts = counts.astype(real if weights is None else counts.dtype)
    else:
        counts = counts.astype("int64")
    return Histogram(
        make_tensor(counts, backend, None), make_tensor(edges.astype(real), backend, None)
    )
