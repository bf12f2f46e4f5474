"""Pooling over the last two axes: max, average and adaptive average (and their 1-D forms).

Pooling takes its windows the way convolution does, with `conv`'s machinery: the input
(N, C, H, W) is padded, then read through one strided view of shape (N, C, KH, KW, OH, OW)
(`conv._windows`; element [n, c, i, j, oh, ow] is what kernel position (i, j) meets at output
position (oh, ow)). Reductions over the kernel axes give the pooled output. Max pooling pads
with -inf, so padding never wins; average pooling pads with zeros. An unbatched (C, H, W)
input goes through as a batch of one.

The gradients go back through conv's col2im, the adjoint of taking windows (one strided `+=`
per kernel position, the padding cut away at the end). With `create_graph=True` that is conv's
`Col2Im`, whose gradient is `Im2Col`, so second derivatives work too.

When the windows tile the input (kernel == stride, no padding, sizes divisible: the common
2x2 pooling), TiledMaxPool / TiledAvgPool take over: one elementwise `maximum` / `add` per
kernel position over strided slices, and a backward that writes each slice once (no argmax,
no col2im).

Max pooling sends each output's gradient to the first maximal element of its window in
row-major order (what `argmax` returns, and what PyTorch does), so ties are deterministic;
a window holding NaN has NaN as its maximum, and its first NaN gets the gradient. Both paths
keep this rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .. import _args
from ..autograd import Function
from ..errors import ArgumentError, DTypeError, GpugradError, ShapeError
from ..tensor import Tensor
from ._support import make_tensor
from .conv import ConvGeometry, _col2im, _pad, _windows

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "max_pool1d",
    "max_pool2d",
]

IntPair = int | Sequence[int]


# --- array helpers (raw backend arrays) ------------------------------------------------------
def _padded(backend: Any, x: Any, geo: ConvGeometry, fill: float) -> Any:
    """x padded with `fill` as `geo` says (x itself when there is no padding)."""
    if fill == 0 or not geo.padded:
        return _pad(backend, x, geo)
    padded = backend.full(geo.padded_shape, fill, dtype=x.dtype)
    padded[geo.interior] = x
    return padded


def _kernel_axes(geo: ConvGeometry) -> tuple[int, ...]:
    """The kernel axes of the (N, C, *kernel, *out) windows."""
    return tuple(range(2, 2 + len(geo.kernel)))


# --- ops --------------------------------------------------------------------------------------
class MaxPool(Function):
    """The largest value of each window; padding is -inf, so it never wins."""

    def forward(self, x, geo):
        self.geo = geo
        xp = self.xp
        win = _windows(xp, _padded(xp, x, geo, float("-inf")), geo)
        # (N, C, K, *out), the window flattened in row-major order: a copy, as the windows
        # overlap or skip. The window size is spelled out: -1 is ambiguous for an empty batch.
        flat = win.reshape(*win.shape[:2], math.prod(geo.kernel), *geo.out)
        self.first = flat.argmax(axis=2)[:, :, None]  # the first maximum on ties
        return xp.take_along_axis(flat, self.first, axis=2)[:, :, 0]

    def backward(self, xp, g):
        geo, size = self.geo, math.prod(self.geo.kernel)
        positions = self.xp.arange(size).reshape(size, *(1,) * len(geo.out))
        hit = positions == self.first  # a constant: where each max came from
        cols = xp.where(hit, g.reshape(*g.shape[:2], 1, *geo.out), 0)
        return _col2im(self.xp, cols.reshape(geo.cols_shape), geo)


class AvgPool(Function):
    """The sum of each window times `scale` (1/divisor: a number, or one per output)."""

    def forward(self, x, geo, scale):
        self.geo = geo
        self.scale = scale
        xp = self.xp
        return _windows(xp, _pad(xp, x, geo), geo).sum(axis=_kernel_axes(geo)) * scale

    def backward(self, xp, g):
        geo = self.geo
        per_window = (g * self.scale).reshape(*g.shape[:2], *(1,) * len(geo.kernel), *geo.out)
        return _col2im(self.xp, xp.broadcast_to(per_window, geo.cols_shape), geo)


# --- windows that tile the input ---------------------------------------------------------------
# The common case (kernel == stride, no padding, sizes divisible: LeNet's 2x2 pooling): every
# element is in exactly one window, and each kernel position's elements form one strided slice
# of the input. Pooling is then one elementwise `maximum` / `add` per kernel position (max
# pooling goes over the kernel rows first: see `_tiled_max`), and the backward writes each
# slice once; nothing overlaps, so nothing is scattered or folded.
def _tiles(geo: ConvGeometry) -> bool:
    """Whether the windows tile the input exactly."""
    size = geo.in_shape[2:]
    return (
        geo.kernel == geo.stride
        and not geo.padded
        and all(o * k == n for o, k, n in zip(geo.out, geo.kernel, size))
    )


def _tile_slices(geo: ConvGeometry) -> list[tuple[slice, ...]]:
    """Per kernel position, in row-major order: the input elements it holds, one per window
    (an (N, C, *out) strided slice of the input)."""
    positions = itertools.product(*(range(k) for k in geo.kernel))
    lead = (slice(None), slice(None))
    return [lead + tuple(slice(i, None, k) for i, k in zip(p, geo.kernel)) for p in positions]


def _window_shapes(geo: ConvGeometry) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The input as (N, C, OH, KH, OW, KW), and an output broadcast against it: (N, C, OH, 1,
    OW, 1) (each window's own axes next to its output axis; a reshape, no copy)."""
    lead = geo.in_shape[:2]
    pairs = [(o, k) for o, k in zip(geo.out, geo.kernel)]
    return (
        (*lead, *itertools.chain.from_iterable(pairs)),
        (*lead, *itertools.chain.from_iterable((o, 1) for o, _ in pairs)),
    )


def _row_blocks(x: Any, geo: ConvGeometry) -> Any:
    """x (N, C, H, W) as (N, C, OH, KH, W), a view: [:, :, :, i] holds kernel row i of every
    window (whole input rows, so reading it runs over W contiguous elements)."""
    (oh, _), (kh, _) = geo.out, geo.kernel
    return x.reshape(*x.shape[:2], oh, kh, x.shape[-1])


def _tiled_max(xp: Any, x: Any, geo: ConvGeometry) -> Any:
    """The maximum of each tile: first over the kernel rows (whole input rows, contiguous
    runs), then over the columns of the half-size (or smaller) result, so the slow strided
    reads with a step of KW touch only 1/KH of the input. NaN wins, as in max and argmax."""
    (kh, kw), rows = geo.kernel, _row_blocks(x, geo)
    widest = _largest(xp, [rows[:, :, :, i] for i in range(kh)])
    return _largest(xp, [widest[..., j::kw] for j in range(kw)])


def _largest(xp: Any, parts: list[Any]) -> Any:
    """The elementwise maximum of same-shape arrays, as a new array (a copy of just one)."""
    if len(parts) == 1:
        return parts[0].copy()
    out = xp.maximum(parts[0], parts[1])  # one pass, not a copy and then a maximum
    for part in parts[2:]:
        xp.maximum(out, part, out=out)
    return out


# The backward's strided passes over the input and the gradient (one per kernel position) go
# faster when a slice of the batch fits the CPU's cache across them: on LeNet-5's first pool
# (1.2 MB of input), 526 -> 445 µs in slices of 16 or 32 samples, 495 µs in slices of 8.
POOL_SLICE_BYTES = 512 << 10


def _batch_parts(xp: Any, x: Any) -> list[slice]:
    """The batch of x in slices of about POOL_SLICE_BYTES on the CPU; elsewhere, and for an
    empty batch, the whole batch at once."""
    n = x.shape[0]
    if xp.device.type != "cpu" or n == 0:
        return [slice(None)]
    step = max(1, POOL_SLICE_BYTES * n // max(x.nbytes, 1))
    return [slice(i, i + step) for i in range(0, n, step)]


class TiledMaxPool(Function):
    """max pooling over windows that tile the input. The gradient goes to each window's first
    maximum in row-major order (the rule of MaxPool). Where the backend has a compiled kernel
    (the CPU, 2-D, float32/float64) the forward records each window's winning position and the
    backward writes g there; elsewhere the backward finds the winners by comparing each kernel
    position's slice with the maximum: no argmax, no scatter."""

    def forward(self, x, geo):
        self.geo = geo
        self.save(x)
        tiles = self.xp.max_pool_tiles(x, geo.kernel) if len(geo.kernel) == 2 else None
        if tiles is not None:
            out, self.positions = tiles
            return out
        self.positions = None
        out = _tiled_max(self.xp, x, geo)
        # Backward compares against a copy: the output may be changed in place (a ReLU).
        self.best = out.copy()
        return out

    def _first_maxima(self, x, best, has_nan):
        """Per kernel position (row-major): its slice, and the windows whose first maximum it
        holds, for x and its maxima `best` (the whole batch or a slice of it). A NaN is a
        window's maximum (max propagates it), so when `has_nan` the first NaN gets it."""
        xp, taken = self.xp, None
        slices = _tile_slices(self.geo)
        for i, where in enumerate(slices):
            part = x[where]
            hit = part == best
            if has_nan:
                hit |= xp.isnan(part)
            if taken is not None:  # a tie: an earlier position had it first
                hit &= ~taken
            if i + 1 < len(slices):
                taken = hit if taken is None else taken | hit
            yield where, hit

    def _winners(self):
        """The recorded positions as a mask over the windows, (N, C, OH, KH, OW, KW)."""
        (kh, kw), at = self.geo.kernel, self.positions
        grid = self.xp.xp.arange(kh * kw, dtype=at.dtype).reshape(kh, 1, kw)
        return at[:, :, :, None, :, None] == grid

    def backward(self, xp, g, x):
        on_arrays = not isinstance(g, Tensor)
        if self.positions is not None:
            if on_arrays:
                gx = self.xp.max_pool_tiles_backward(g, self.positions, self.geo.kernel, x.shape)
                if gx is not None:
                    return gx
            # g times the mask, as the kernel does: a non-finite g also reaches the losers.
            per_window = _window_shapes(self.geo)[1]
            if on_arrays:
                return (g.reshape(per_window) * self._winners()).reshape(x.shape)
            return xp.where(self._winners(), g.reshape(per_window), 0).reshape(x.shape)
        # Strided reads of x are the cost here: look for NaN in every slice only when some
        # window's maximum is NaN (one pass over the output first). On a GPU the passes are
        # cheap and reading the answer back would wait for the device: always look there.
        on_host = self.xp.device.type == "cpu"
        has_nan = bool(self.xp.isnan(self.best).any()) if on_host else True
        if not on_arrays:  # differentiable again: where() on a constant mask
            x = x.data
            mask = self.xp.empty(x.shape, dtype=bool)
            for where, hit in self._first_maxima(x, self.best, has_nan):
                mask[where] = hit
            windows, per_window = _window_shapes(self.geo)
            gx = xp.where(mask.reshape(windows), g.reshape(per_window), 0)
            return gx.reshape(x.shape)
        gx = xp.empty(x.shape, dtype=g.dtype)
        for part in _batch_parts(self.xp, x):
            g_part, gx_part = g[part], gx[part]
            for where, hit in self._first_maxima(x[part], self.best[part], has_nan):
                # g times the mask, as ReLU's backward: a non-finite g also reaches the losers.
                xp.xp.multiply(g_part, hit, out=gx_part[where])
        return gx


class TiledAvgPool(Function):
    """Average pooling over windows that tile the input: the sum of the kernel positions'
    slices times `scale`; the backward writes g·scale into each slice."""

    def forward(self, x, geo, scale):
        self.geo, self.scale = geo, scale
        slices = _tile_slices(geo)
        out = x[slices[0]].copy()
        for where in slices[1:]:
            out += x[where]
        out *= scale
        return out

    def backward(self, xp, g):
        scaled = g * self.scale
        if isinstance(g, Tensor):
            windows, per_window = _window_shapes(self.geo)
            spread = xp.broadcast_to(scaled.reshape(per_window), windows)
            return spread.reshape(self.geo.in_shape)
        gx = xp.empty(self.geo.in_shape, dtype=g.dtype)
        for where in _tile_slices(self.geo):
            gx[where] = scaled
        return gx


_TILED = {MaxPool: TiledMaxPool, AvgPool: TiledAvgPool}


def _pool(op: type[Function], x: Tensor, geo: ConvGeometry, **kwargs: Any) -> Tensor:
    """Apply a pooling op (its tiled form where the windows tile the input), an unbatched
    input as a batch of one."""
    if _tiles(geo):
        op = _TILED[op]
    if x.ndim < len(geo.in_shape):
        return op.apply(x.unsqueeze(0), geo=geo, **kwargs).squeeze(0)
    return op.apply(x, geo=geo, **kwargs)


# --- argument checks --------------------------------------------------------------------------
def _pair(value: IntPair, what: str, name: str, minimum: int = 1) -> tuple[int, int]:
    return _args.sizes(name, what, value, 2, minimum=minimum)  # type: ignore[return-value]


def _window(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, name: str
) -> ConvGeometry:
    """Check a pooling call and work out its window geometry (errors name the shapes); an
    unbatched (C, H, W) input is described as a batch of one."""
    if x.ndim not in (3, 4):
        raise ShapeError(f"{name} expects an (N, C, H, W) or (C, H, W) input, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise DTypeError(f"{name} needs a floating-point input, got {x.dtype}")
    kernel = _pair(kernel_size, "kernel_size", name)
    step = kernel if stride is None else _pair(stride, "stride", name)
    pad = _pair(padding, "padding", name, minimum=0)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ArgumentError(f"{name}: padding {pad} must be at most half of kernel_size {kernel}")
    size = x.shape[-2:]
    padded = tuple(n + 2 * p for n, p in zip(size, pad))
    if any(k > n for k, n in zip(kernel, padded)):
        raise ShapeError(
            f"{name}: kernel_size {kernel} is larger than the padded input {padded} "
            f"(input shape {x.shape}, padding {pad})"
        )
    out = tuple((n - k) // s + 1 for n, k, s in zip(padded, kernel, step))
    batched = x.shape if x.ndim == 4 else (1, *x.shape)
    return ConvGeometry(batched, kernel, step, (1, 1), pad, pad, out)  # type: ignore[arg-type]


# --- public functions -------------------------------------------------------------------------
def max_pool2d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Tensor:
    """The maximum of each kernel_size window of an (N, C, H, W) or (C, H, W) input, stepping
    by `stride` (kernel_size by default) over the input padded with -inf. The gradient goes to
    the first maximal element of each window in row-major order."""
    return _pool(MaxPool, x, _window(x, kernel_size, stride, padding, "max_pool2d"))


def avg_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """The mean of each window of an (N, C, H, W) or (C, H, W) input padded with zeros. The
    padded zeros count in the mean unless `count_include_pad` is False (as PyTorch)."""
    return _avg_pool(x, _window(x, kernel_size, stride, padding, "avg_pool2d"), count_include_pad)


def _avg_pool(x: Tensor, geo: ConvGeometry, count_include_pad: bool) -> Tensor:
    kh, kw = geo.kernel
    if count_include_pad or not geo.padded:
        scale: Any = 1.0 / (kh * kw)
    else:  # how many real (unpadded) elements each window holds: (1, 1, OH, OW)
        backend, one = x._backend, replace(geo, in_shape=(1, 1, *geo.in_shape[2:]))
        ones = _pad(backend, backend.ones(one.in_shape, dtype=x.dtype), one)
        scale = 1.0 / _windows(backend, ones, one).sum(axis=_kernel_axes(one))
    return _pool(AvgPool, x, geo, scale=scale)


def _averaging_matrix(backend: Any, n: int, out: int, dtype: Any) -> Any:
    """(out, n): row i averages input positions floor(i·n/out) ..< ceil((i+1)·n/out)."""
    i = backend.arange(out)
    start = (i * n) // out
    end = -((-(i + 1) * n) // out)
    j = backend.arange(n)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return inside.astype(dtype) / (end - start)[:, None].astype(dtype)


def adaptive_avg_pool2d(x: Tensor, output_size: int | Sequence[int | None]) -> Tensor:
    """Average pooling to a fixed (OH, OW) output whatever the input's (H, W), with PyTorch's
    windows: output row i averages rows floor(i·H/OH) to ceil((i+1)·H/OH) (likewise for
    columns). `output_size` is an int or a pair; None in the pair keeps that input size."""
    name = "adaptive_avg_pool2d"
    if x.ndim not in (3, 4):
        raise ShapeError(f"{name} expects an (N, C, H, W) or (C, H, W) input, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise DTypeError(f"{name} needs a floating-point input, got {x.dtype}")
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2:
        raise ShapeError(f"{name}: output_size must be an int or a pair, got {output_size!r}")
    h, w = x.shape[-2:]
    oh, ow = (n if s is None else s for s, n in zip(sizes, (h, w)))
    if oh < 1 or ow < 1:
        raise ShapeError(f"{name}: output_size {(oh, ow)} must be at least 1x1 (input {x.shape})")
    if h == 0 or w == 0:
        raise ShapeError(f"{name}: cannot pool an empty input of shape {x.shape}")
    if (oh, ow) == (1, 1):
        return x.mean(axis=(-2, -1), keepdims=True)
    if h % oh == 0 and w % ow == 0:  # equal, non-overlapping windows: plain average pooling
        return avg_pool2d(x, (h // oh, w // ow))
    backend = x._backend
    rows = make_tensor(_averaging_matrix(backend, h, oh, x.dtype), backend, None)
    cols = make_tensor(_averaging_matrix(backend, w, ow, x.dtype).T, backend, None)
    return rows @ x @ cols


def _as_2d(x: Tensor, name: str) -> Tensor:
    if x.ndim not in (2, 3):
        raise ShapeError(f"{name} expects an (N, C, L) or (C, L) input, got shape {x.shape}")
    return x.unsqueeze(-2)


def _int(value: IntPair, what: str, name: str, minimum: int = 1) -> int:
    return _args.sizes(name, what, value, 1, minimum=minimum)[0]


def _window_1d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, name: str
) -> tuple[Tensor, ConvGeometry]:
    """A 1-D pooling call as its 2-D form: x with a height-1 axis, and the window geometry."""
    k = _int(kernel_size, "kernel_size", name)
    s = k if stride is None else _int(stride, "stride", name)
    p = _int(padding, "padding", name, minimum=0)
    x2 = _as_2d(x, name)
    return x2, _window(x2, (1, k), (1, s), (0, p), name)


def max_pool1d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Tensor:
    """max_pool2d along the last axis of an (N, C, L) or (C, L) input."""
    x2, w = _window_1d(x, kernel_size, stride, padding, "max_pool1d")
    return _pool(MaxPool, x2, w).squeeze(-2)


def max_pooling_tiles(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, dims: int
) -> bool:
    """Whether max_pool{dims}d of x with these settings takes the tiled path (windows that
    tile the input: TiledMaxPool). False also for settings the pooling call would refuse;
    that call then raises its own error."""
    try:
        if dims == 1:
            geo = _window_1d(x, kernel_size, stride, padding, "max_pool1d")[1]
        else:
            geo = _window(x, kernel_size, stride, padding, "max_pool2d")
    except GpugradError:
        return False
    return _tiles(geo)


def avg_pool1d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """avg_pool2d along the last axis of an (N, C, L) or (C, L) input."""
    x2, w = _window_1d(x, kernel_size, stride, padding, "avg_pool1d")
    return _avg_pool(x2, w, count_include_pad).squeeze(-2)
