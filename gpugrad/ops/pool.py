"""Pooling over the last two axes: max, average and adaptive average (and their 1-D forms).

Every window of a pooling op is read through one strided view of the (padded) input: an
array of shape (..., OH, OW, KH, KW) whose last two axes walk a window, made with the array
library's `as_strided` and never copied element by element in Python. Reductions over those
axes give the pooled output.

The gradients go back through `fold`, the adjoint of taking windows: each kernel position
(i, j) adds its slice of the window gradient into a padded gradient through a strided slice,
so overlapping windows accumulate exactly, and the padding is cut away at the end. `Fold` and
`Unfold` are ops whose gradients are each other, so second derivatives work too.

Max pooling sends each output's gradient to the first maximal element of its window in
row-major order (what `argmax` returns, and what PyTorch does), so ties are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._support import make_tensor

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "max_pool1d",
    "max_pool2d",
]

IntPair = int | Sequence[int]


class Window(NamedTuple):
    """Where the windows of a pooling op lie in an input's last two axes."""

    size: tuple[int, int]  # H, W of the input, before padding
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    out: tuple[int, int]  # OH, OW


# --- array helpers (raw backend arrays) ------------------------------------------------------
def _windows(backend: Any, x: Any, w: Window, fill: float) -> Any:
    """A read-only strided view (..., OH, OW, KH, KW) of the windows of x padded with `fill`."""
    (ph, pw), (sh, sw) = w.padding, w.stride
    if ph or pw:
        widths = ((0, 0),) * (x.ndim - 2) + ((ph, ph), (pw, pw))
        x = backend.pad(x, widths, mode="constant", constant_values=fill)
    *lead, row, col = x.strides
    shape = (*x.shape[:-2], *w.out, *w.kernel)
    strides = (*lead, row * sh, col * sw, row, col)
    # Read-only by convention: nothing writes through it (CuPy's as_strided has no flag).
    return backend.xp.lib.stride_tricks.as_strided(x, shape, strides)


def _fold_array(backend: Any, cols: Any, w: Window) -> Any:
    """Add window values (..., OH, OW, KH, KW) back onto the input grid (..., H, W)."""
    (h, wd), (kh, kw), (sh, sw), (ph, pw), (oh, ow) = w
    lead = cols.shape[:-4]
    out = backend.zeros((*lead, h + 2 * ph, wd + 2 * pw), dtype=cols.dtype)
    for i in range(kh):  # one strided slice per kernel position, never per pixel
        rows = slice(i, i + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            out[..., rows, j : j + sw * (ow - 1) + 1 : sw] += cols[..., i, j]
    return out[..., ph : ph + h, pw : pw + wd] if ph or pw else out


def _fold_any(backend: Any, cols: Any, w: Window) -> Any:
    """fold for a raw array (plain backward) or a Tensor (create_graph backward)."""
    if isinstance(cols, Tensor):
        return Fold.apply(cols, window=w)
    return _fold_array(backend, cols, w)


# --- ops --------------------------------------------------------------------------------------
class Unfold(Function):
    """The windows of x, copied out: (..., H, W) -> (..., OH, OW, KH, KW), zero padding."""

    def forward(self, x, window):
        self.window = window
        return _windows(self.xp, x, window, 0).copy()

    def backward(self, xp, g):
        return _fold_any(self.xp, g, self.window)


class Fold(Function):
    """The adjoint of Unfold: window values summed back onto the (unpadded) input grid."""

    def forward(self, cols, window):
        self.window = window
        return _fold_array(self.xp, cols, window)

    def backward(self, xp, g):
        if isinstance(g, Tensor):
            return Unfold.apply(g, window=self.window)
        return _windows(self.xp, g, self.window, 0).copy()


class MaxPool(Function):
    """The largest value of each window; padding is -inf, so it never wins."""

    def forward(self, x, window):
        self.window = window
        win = _windows(self.xp, x, window, float("-inf"))
        flat = win.reshape(*win.shape[:-2], -1)  # a copy: the windows overlap or skip
        self.first = flat.argmax(axis=-1)[..., None]  # the first maximum on ties
        return self.xp.take_along_axis(flat, self.first, axis=-1)[..., 0]

    def backward(self, xp, g):
        kh, kw = self.window.kernel
        hit = self.xp.arange(kh * kw) == self.first  # a constant: where each max came from
        cols = xp.where(hit, g[..., None], 0)
        return _fold_any(self.xp, cols.reshape(*cols.shape[:-1], kh, kw), self.window)


class AvgPool(Function):
    """The sum of each window times `scale` (1/divisor: a number, or one per output)."""

    def forward(self, x, window, scale):
        self.window = window
        self.scale = scale
        return _windows(self.xp, x, window, 0).sum(axis=(-2, -1)) * scale

    def backward(self, xp, g):
        per_window = (g * self.scale)[..., None, None]
        return _fold_any(self.xp, xp.broadcast_to(per_window, (*g.shape, *self.window.kernel)),
                         self.window)  # fmt: skip


# --- argument checks --------------------------------------------------------------------------
def _pair(value: IntPair, what: str, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ShapeError(f"{name}: {what} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _window(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, name: str
) -> Window:
    """Check a pooling call and work out its window geometry (errors name the shapes)."""
    if x.ndim not in (3, 4):
        raise ShapeError(f"{name} expects an (N, C, H, W) or (C, H, W) input, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise DTypeError(f"{name} needs a floating-point input, got {x.dtype}")
    kernel = _pair(kernel_size, "kernel_size", name)
    step = kernel if stride is None else _pair(stride, "stride", name)
    pad = _pair(padding, "padding", name)
    if min(kernel) <= 0 or min(step) <= 0:
        raise ShapeError(f"{name}: kernel_size {kernel} and stride {step} must be positive")
    if min(pad) < 0 or any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ShapeError(
            f"{name}: padding {pad} must be non-negative and at most half of kernel_size {kernel}"
        )
    size = x.shape[-2:]
    padded = tuple(n + 2 * p for n, p in zip(size, pad))
    if any(k > n for k, n in zip(kernel, padded)):
        raise ShapeError(
            f"{name}: kernel_size {kernel} is larger than the padded input {padded} "
            f"(input shape {x.shape}, padding {pad})"
        )
    out = tuple((n - k) // s + 1 for n, k, s in zip(padded, kernel, step))
    return Window(size, kernel, step, pad, out)  # type: ignore[arg-type]


# --- public functions -------------------------------------------------------------------------
def max_pool2d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Tensor:
    """The maximum of each kernel_size window of an (N, C, H, W) or (C, H, W) input, stepping
    by `stride` (kernel_size by default) over the input padded with -inf. The gradient goes to
    the first maximal element of each window in row-major order."""
    return MaxPool.apply(x, window=_window(x, kernel_size, stride, padding, "max_pool2d"))


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


def _avg_pool(x: Tensor, w: Window, count_include_pad: bool) -> Tensor:
    kh, kw = w.kernel
    if count_include_pad or not any(w.padding):
        scale: Any = 1.0 / (kh * kw)
    else:  # how many real (unpadded) elements each window holds
        backend = x._backend
        counts = _windows(backend, backend.ones(w.size, dtype=x.dtype), w, 0).sum(axis=(-2, -1))
        scale = 1.0 / counts
    return AvgPool.apply(x, window=w, scale=scale)


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


def _int(value: IntPair, what: str, name: str) -> int:
    if isinstance(value, int):
        return value
    one = tuple(value)
    if len(one) != 1 or not isinstance(one[0], int):
        raise ShapeError(f"{name}: {what} must be an int, got {value!r}")
    return one[0]


def max_pool1d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Tensor:
    """max_pool2d along the last axis of an (N, C, L) or (C, L) input."""
    name = "max_pool1d"
    k = _int(kernel_size, "kernel_size", name)
    s = k if stride is None else _int(stride, "stride", name)
    x2 = _as_2d(x, name)
    w = _window(x2, (1, k), (1, s), (0, _int(padding, "padding", name)), name)
    return MaxPool.apply(x2, window=w).squeeze(-2)


def avg_pool1d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """avg_pool2d along the last axis of an (N, C, L) or (C, L) input."""
    name = "avg_pool1d"
    k = _int(kernel_size, "kernel_size", name)
    s = k if stride is None else _int(stride, "stride", name)
    p = _int(padding, "padding", name)
    x2 = _as_2d(x, name)
    return _avg_pool(x2, _window(x2, (1, k), (1, s), (0, p), name), count_include_pad).squeeze(-2)
