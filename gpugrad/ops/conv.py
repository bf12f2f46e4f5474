"""Convolutions (conv1d, conv2d) through im2col: strided views and one matrix product.

The input (N, C, *spatial) is zero-padded, then viewed without copying as an array of shape
(N, C, *kernel, *out): element [n, c, k..., o...] is the input value that kernel position k
meets at output position o (`as_strided`: the kernel axes step by dilation, the output axes by
stride). Copying that view into a contiguous (N, groups, C/groups·K, L) buffer ("the columns")
turns the convolution into one batched matrix product with the weight reshaped to
(groups, O/groups, C/groups·K). Groups are nothing more than that extra axis.

Backward:
- the weight's gradient is one product of the output gradient with the columns (summed over
  the batch);
- the input's gradient is col2im of weightᵀ·g: each kernel position's slice of the columns is
  added into a padded buffer through a strided slice. Within one kernel position the slice
  touches every input element at most once, so plain `+=` is exact; overlaps between windows
  are the sum over kernel positions. One loop over the (few) kernel positions, none over pixels
  (on arrays with the batch as the last axis, so each `+=` runs over long rows);
- the bias's gradient is g summed over all axes but the channels.

On arrays (the forward, and a plain backward) the whole batch goes through at once, one
batched product per step, as long as its columns fit COLUMNS_BUDGET_BYTES (else in slices
that do); the forward keeps the columns for the weight's gradient. With `create_graph=True`
the backward runs the formulas above on Tensors: im2col and col2im are each other's adjoint,
so each is a Function whose backward is the other, and second derivatives work.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import _args
from ..autograd import Function, is_grad_enabled
from ..dtypes import is_floating
from ..errors import ArgumentError, DTypeError, ShapeError
from ..tensor import Tensor

__all__ = ["col2im", "conv1d", "conv2d", "im2col"]

IntOrTuple = int | Sequence[int]


@dataclass(frozen=True)
class ConvGeometry:
    """Everything about a convolution's shape but the channels: input (N, C, *spatial),
    kernel, stride, dilation, padding before and after each spatial axis, output size."""

    in_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_before: tuple[int, ...]
    pad_after: tuple[int, ...]
    out: tuple[int, ...]

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """The input's shape once zero-padded."""
        n, c, *size = self.in_shape
        return (n, c, *(s + b + a for s, b, a in zip(size, self.pad_before, self.pad_after)))

    @property
    def padded(self) -> bool:
        return any(self.pad_before) or any(self.pad_after)

    @property
    def interior(self) -> tuple[slice, ...]:
        """Where the input sits inside the padded buffer."""
        size = self.in_shape[2:]
        return (slice(None), slice(None), *(slice(b, b + s) for b, s in zip(self.pad_before, size)))

    @property
    def cols_shape(self) -> tuple[int, ...]:
        """(N, C, *kernel, *out): the shape of the im2col view."""
        return (*self.in_shape[:2], *self.kernel, *self.out)

    def window(self, k: tuple[int, ...]) -> tuple[slice, ...]:
        """The padded-input elements that kernel position `k` meets, one per output position."""
        steps = zip(k, self.dilation, self.stride, self.out)
        return (
            slice(None),
            slice(None),
            *(slice(i * d, i * d + s * (o - 1) + 1, s) for i, d, s, o in steps),
        )


# --- im2col and col2im on arrays --------------------------------------------------------------
def _pad(backend: Any, x: Any, geo: ConvGeometry) -> Any:
    """x with its zero padding (x itself when there is none)."""
    if not geo.padded:
        return x
    padded = backend.zeros(geo.padded_shape, dtype=x.dtype)
    padded[geo.interior] = x
    return padded


def _windows(backend: Any, padded: Any, geo: ConvGeometry) -> Any:
    """The (n, C, *kernel, *out) view of a zero-padded input (or a batch slice of one): memory
    is shared, and overlaps, so it is only ever read."""
    lead, spatial = padded.strides[:2], padded.strides[2:]
    strides = (
        *lead,
        *(s * d for s, d in zip(spatial, geo.dilation)),
        *(s * t for s, t in zip(spatial, geo.stride)),
    )
    shape = (*padded.shape[:2], *geo.kernel, *geo.out)
    # The Backend has no as_strided of its own; NumPy and CuPy both keep it here, in bytes.
    return backend.xp.lib.stride_tricks.as_strided(padded, shape=shape, strides=strides)


def _fold_into(padded: Any, cols: Any, geo: ConvGeometry) -> None:
    """col2im: add cols (n, C, *kernel, *out) onto the padded input positions they came from.
    One kernel position's window meets each position at most once, so `+=` on its strided
    slice is exact; windows that overlap are summed over the kernel positions."""
    lead = (slice(None), slice(None))
    for k in itertools.product(*(range(n) for n in geo.kernel)):
        padded[geo.window(k)] += cols[lead + k]


def _fold_array(backend: Any, cols: Any, geo: ConvGeometry) -> Any:
    """col2im of a whole batch: an input-shaped array."""
    out = backend.zeros(geo.padded_shape, dtype=cols.dtype)
    _fold_into(out, cols, geo)
    return out[geo.interior] if geo.padded else out


class Im2Col(Function):
    """x (N, C, *spatial) → its columns (N, C, *kernel, *out), a contiguous copy."""

    def forward(self, x, geo):
        self.geo = geo
        return _im2col(self.xp, x, geo)

    def backward(self, xp, g):
        return _col2im(xp, g, self.geo)


class Col2Im(Function):
    """Columns (N, C, *kernel, *out) → (N, C, *spatial), overlapping windows summed."""

    def forward(self, cols, geo):
        self.geo = geo
        return _fold_array(self.xp, cols, geo)

    def backward(self, xp, g):
        return _im2col(xp, g, self.geo)


def _im2col(xp: Any, x: Any, geo: ConvGeometry) -> Any:
    """im2col of an array (xp a backend) or, recorded, of a Tensor (xp = gpugrad.ops)."""
    if isinstance(x, Tensor):
        return Im2Col.apply(x, geo=geo)
    return xp.xp.ascontiguousarray(_windows(xp, _pad(xp, x, geo), geo))


def _col2im(xp: Any, cols: Any, geo: ConvGeometry) -> Any:
    """col2im of an array (xp a backend) or, recorded, of a Tensor."""
    if isinstance(cols, Tensor):
        return Col2Im.apply(cols, geo=geo)
    return _fold_array(xp, cols, geo)


# --- the batch, whole or in slices ------------------------------------------------------------
# The columns of a whole batch take kernel-size times the input's memory. Up to this many bytes
# they are made once, for the whole batch (and kept for the weight's gradient); beyond it the
# batch goes through in slices of about this size, the columns rebuilt per slice in backward.
# No thread pool of our own: the products go to BLAS as they are. The pool this replaced
# (2 MiB slices shared out among threads) spent LeNet-5's profile waiting on its locks, and its
# threads competed with BLAS's own on this 2-core machine; per sample, the batched products
# are small enough that OpenBLAS runs each on one core (measured faster than one large product
# over the whole batch for LeNet's shapes), the input-gradient product is large and threaded.
COLUMNS_BUDGET_BYTES = 64 << 20


def _batch_slices(n: int, per_sample: int) -> list[slice]:
    """The batch in slices whose columns fit the budget: one slice when the whole batch does
    (an empty batch is one empty slice, so shapes come out as usual)."""
    step = max(1, COLUMNS_BUDGET_BYTES // max(per_sample, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)] or [slice(0, 0)]


# --- reused work buffers ----------------------------------------------------------------------
# A fresh multi-megabyte array costs page faults on every step: the C allocator hands large
# freed blocks back to the OS, and the next step faults them in again (on LeNet-5 at one
# thread, about a third of the step). The columns are work buffers no caller ever sees, so
# they come from, and go back to, a few spare arrays keyed by shape and dtype. A spare is
# popped (atomic), so two threads never share one. Host memory only: CuPy's memory pool
# already recycles device memory, and knows about streams, which these spares would not.
SPARE_BUFFERS = 8
_spares: dict[tuple[Any, ...], Any] = {}


def _take(xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised work array: a spare of this shape when there is one (`dtype` an array's
    dtype object: it is the key, without the microseconds of `str`)."""
    spare = _spares.pop((shape, dtype), None) if xp.device.type == "cpu" else None
    return xp.empty(shape, dtype=dtype) if spare is None else spare


def _give_back(xp: Any, array: Any) -> None:
    """Keep a work array that nothing refers to any more, for the next `_take`."""
    if xp.device.type == "cpu" and len(_spares) < SPARE_BUFFERS:
        _spares[(array.shape, array.dtype)] = array


def _columns(
    xp: Any, padded: Any, geo: ConvGeometry, groups: int, batch_inner: bool = False
) -> Any:
    """im2col of a zero-padded batch (or a slice of one) as (n, G, C/G·K, L): for each group,
    the matrix that one product with the weight turns into the output; (G, C/G·K, n, L) when
    `batch_inner` (see `_batch_inner`). A work array: give it back when done."""
    n, c = padded.shape[:2]
    depth, length = c // groups * math.prod(geo.kernel), math.prod(geo.out)
    shape = (groups, depth, n, length) if batch_inner else (n, groups, depth, length)
    cols = _take(xp, shape, padded.dtype)
    if _by_column_shifts(xp, geo):
        target = _as_windows(xp, cols, n, c, geo, (length,), batch_inner)
        _fill_by_column_shifts(xp, target, padded, geo)
    else:
        _as_windows(xp, cols, n, c, geo, geo.out, batch_inner)[...] = _windows(xp, padded, geo)
    return cols


def _as_windows(
    xp: Any, cols: Any, n: int, c: int, geo: ConvGeometry, out: Any, batch_inner: bool
) -> Any:
    """The columns (`_columns`' layouts) as an (n, C, *kernel, *out) view; `out` is the output
    axes: geo.out, or their product."""
    if not batch_inner:  # (n, G, C/G·K, L)
        return cols.reshape(n, c, *geo.kernel, *out)
    return xp.moveaxis(cols.reshape(c, *geo.kernel, n, *out), 1 + len(geo.kernel), 0)


# With the batch inside the columns, (G, C/G·K, n, L), the forward is one product per group
# over the whole slice (then one copy into the (n, O, L) output, runs of L), and the weight's
# gradient is one product with g laid out (G, O/G, n, L) instead of one per sample summed.
# That pays on the CPU for small output planes: LeNet-5's conv2 (L = 100), forward and backward
# 2645 -> 2549 and 2617 -> 2504 µs (its weight-gradient product alone 473 -> 310 µs, filling
# the columns 325 -> 383 µs); the whole step ~50 µs faster. On conv1 (L = 784) the per-sample
# products were faster (forward 274 vs 470 µs, weight gradient 340 vs 699 µs).
BATCH_INNER_BELOW = 256


def _batch_inner(xp: Any, geo: ConvGeometry) -> bool:
    """Whether the columns put the batch inside (see above)."""
    return math.prod(geo.out) < BATCH_INNER_BELOW and xp.device.type == "cpu"


def _product_batch_inner(xp: Any, wm: Any, cols: Any, out: Any) -> None:
    """out (n, G, O/G, L) = wm (G, O/G, C/G·K) @ the batch-inner columns (G, C/G·K, n, L)."""
    groups, depth, n, length = cols.shape
    products = _take(xp, (groups, wm.shape[1], n * length), cols.dtype)
    xp.matmul(wm, cols.reshape(groups, depth, n * length), out=products)
    out[...] = xp.moveaxis(products.reshape(groups, wm.shape[1], n, length), 2, 0)
    _give_back(xp, products)


# Copying the windows straight into the columns runs over one output row at a time: on the CPU
# a short output row (conv2 of LeNet-5: 10 wide) makes that copy mostly loop overhead. With
# stride 1 down the rows, the copy can go in two steps: first each kernel column's shifted
# input (n, C, KW, H_padded, OW), short rows but only KW times the input; then every (kernel
# row, kernel column) block of the columns is OH·OW contiguous elements of that, one long run.
SHORT_OUTPUT_ROW = 16  # LeNet-5, 64 samples: 10 wide 444 -> 315 µs; 28 wide, 273 -> 302 µs


def _by_column_shifts(xp: Any, geo: ConvGeometry) -> bool:
    """Whether `_columns` copies in two steps (see above): 2-D, stride 1 down the rows, a
    short output row, on the CPU."""
    return (
        len(geo.kernel) == 2
        and geo.stride[0] == 1
        and geo.out[1] < SHORT_OUTPUT_ROW
        and xp.device.type == "cpu"
    )


def _fill_by_column_shifts(xp: Any, target: Any, padded: Any, geo: ConvGeometry) -> None:
    """Write the columns of `padded` (n, C, Hp, Wp) into `target`, an (n, C, KH, KW, OH·OW)
    view of them, through the column-shifted input: shifted[n, c, j, h, ow] =
    padded[n, c, h, j·dilation + ow·stride]."""
    n, c, hp = padded.shape[:3]
    (kh, kw), (dh, dw), (oh, ow) = geo.kernel, geo.dilation, geo.out
    sn, sc, sh, sw = padded.strides
    strided = xp.xp.lib.stride_tricks.as_strided
    shifted = _take(xp, (n, c, kw, hp, ow), padded.dtype)
    shifted[...] = strided(padded, (n, c, kw, hp, ow), (sn, sc, sw * dw, sh, sw * geo.stride[1]))
    tn, tc, tj, th, _ = shifted.strides
    # Kernel row i starts at shifted row i·dilation; the OH rows below it are contiguous.
    blocks = strided(shifted, (n, c, kh, kw, oh * ow), (tn, tc, th * dh, tj, shifted.itemsize))
    target[...] = blocks
    _give_back(xp, shifted)


def _weight_grad(xp: Any, cols: Any, g: Any, batch_inner: bool) -> Any:
    """Σ over a slice of the batch of cols·gᵀ, (G, C/G·K, O/G), for g (n, G, O/G, L) and
    columns (n, G, C/G·K, L), or (G, C/G·K, n, L) when `batch_inner`."""
    if not batch_inner:
        # This order measured ~1.7x faster than g @ colsᵀ (OpenBLAS, LeNet's shapes).
        return (cols @ xp.swapaxes(g, -1, -2)).sum(axis=0)
    groups, depth, n, length = cols.shape
    g_inner = xp.xp.ascontiguousarray(xp.moveaxis(g, 0, 2))  # (G, O/G, n, L)
    flat = g_inner.reshape(groups, g.shape[2], n * length)
    return cols.reshape(groups, depth, n * length) @ xp.swapaxes(flat, -1, -2)


@functools.lru_cache(maxsize=256)
def _batch_last_fold(geo: ConvGeometry) -> tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...]:
    """Per kernel position: where its columns go in the batch-last padded buffer (C, *spatial,
    n), and which columns (C, *kernel, *out, n) they are. Worked out once per geometry: the
    Python of building them was ~30 µs of LeNet-5's conv2 backward."""
    return tuple(
        ((slice(None), *geo.window(k)[2:], slice(None)), (slice(None), *k))
        for k in itertools.product(*(range(size) for size in geo.kernel))
    )


def _input_grad(xp: Any, wt: Any, g: Any, geo: ConvGeometry) -> Any:
    """The input's gradient for a slice of the batch: col2im of wᵀ·g, with g (n, G, O/G, L)
    and wt (G, C/G·K, O/G).

    Worked with the batch as the last axis: the product is one per group for the whole
    slice, and each kernel position's `+=` into the padded buffer then runs over long
    contiguous rows (out-width × n) rather than rows of one output width, which is what made
    the fold slow on small images."""
    n, c = g.shape[0], geo.in_shape[1]
    groups, per_group, length = g.shape[1:]
    two_d = len(geo.kernel) == 2
    dims = (c, *geo.kernel, *geo.out, n, *geo.in_shape[2:], *geo.pad_before, *geo.stride,
            *geo.dilation)  # fmt: skip
    if two_d and xp.compiled_kernels and not _batch_inner(xp, geo):
        # Larger planes with a compiled fold (the CPU): products per sample, batch first, so
        # g needs no transposed copy and the fold runs along whole rows of each plane.
        products = _take(xp, (n, groups, wt.shape[1], length), g.dtype)
        xp.matmul(wt, g, out=products)
        folded = xp.conv_fold_batch_first(products, dims)
        _give_back(xp, products)
        if folded is not None:
            return folded
    g_last = xp.xp.ascontiguousarray(xp.moveaxis(g, 0, -1))  # (G, O/G, L, n)
    products = _take(xp, (groups, wt.shape[1], length * n), g.dtype)
    xp.matmul(wt, g_last.reshape(groups, per_group, length * n), out=products)
    if two_d:  # one compiled pass where the backend has one (the CPU)
        folded = xp.conv_fold_batch_last(products, dims)
        if folded is not None:
            _give_back(xp, products)
            return folded
    gcols = products.reshape(c, *geo.kernel, *geo.out, n)
    padded = xp.zeros((c, *geo.padded_shape[2:], n), dtype=g.dtype)
    for into, part in _batch_last_fold(geo):
        padded[into] += gcols[part]
    _give_back(xp, products)
    inside = padded[(slice(None), *geo.interior[2:], slice(None))]
    return xp.xp.ascontiguousarray(xp.moveaxis(inside, -1, 0))


def _bias_grad(g: Any) -> Any:
    """g (n, O, *spatial) summed over all axes but the channels: over the batch first (whole
    contiguous planes added), then over each plane; one reduction over the strided axes
    together took 2.4x as long (NumPy, LeNet-5's conv1: 60 -> 25 µs)."""
    return g.sum(axis=0).sum(axis=tuple(range(1, g.ndim - 1)))


# --- the convolution --------------------------------------------------------------------------
class _Conv(Function):
    """out[n, o] = Σ_{c, k} w[o, c, k] · x_padded[n, c_g, o·stride + k·dilation] + b[o].

    Arrays: per slice of the batch (the whole batch when its columns fit the budget), im2col
    and one batched product (G, O/G, C/G·K) @ (n, G, C/G·K, L); the bias is added in place.
    The columns are kept for the weight's gradient when `keep_columns` and the batch went in
    one slice. Tensors (`create_graph=True`) take the same formulas over the whole batch
    through the differentiable Im2Col / Col2Im, so that second derivatives exist.
    """

    def forward(self, x, w, b, geo, groups, keep_columns):
        self.geo, self.groups = geo, groups
        self.save(x, w)
        xp, n, o = self.xp, x.shape[0], w.shape[0]
        wm = w.reshape(groups, o // groups, -1)  # (G, O/G, C/G·K)
        length = math.prod(geo.out)  # not -1: that is ambiguous for an empty batch
        parts = _batch_slices(n, wm.shape[-1] * groups * length * x.itemsize)
        out = xp.empty((n, groups, o // groups, length), dtype=x.dtype)
        padded = _pad(xp, x, geo)
        inner = _batch_inner(xp, geo)
        for part in parts:
            cols = _columns(xp, padded[part], geo, groups, inner)
            if inner:
                _product_batch_inner(xp, wm, cols, out[part])
            else:
                xp.matmul(wm, cols, out=out[part])
            if not (keep_columns and len(parts) == 1):
                _give_back(xp, cols)
        self.columns = cols if keep_columns and len(parts) == 1 else None
        if b is not None:
            out += b.reshape(groups, o // groups, 1)
        return out.reshape(n, o, *geo.out)

    def backward(self, xp, g, x, w):
        columns, self.columns = self.columns, None  # a retained graph rebuilds them
        if isinstance(g, Tensor):
            return self._backward_tensors(xp, g, x, w)
        geo, groups = self.geo, self.groups
        n, o = g.shape[0], g.shape[1]
        wm = w.reshape(groups, o // groups, -1)
        length = math.prod(geo.out)
        gm = g.reshape(n, groups, o // groups, length)
        gx = gw = gb = None
        if self.needs_grad(2):
            gb = _bias_grad(g)
        if not (self.needs_grad(0) or self.needs_grad(1)):
            return gx, gw, gb
        parts = _batch_slices(n, wm.shape[-1] * groups * length * g.itemsize)
        inner = _batch_inner(xp, geo)
        if self.needs_grad(1):  # (G, C/G·K, O/G): see below
            gw = xp.zeros(xp.swapaxes(wm, -1, -2).shape, dtype=g.dtype)
            padded = _pad(xp, x, geo) if columns is None else None
        if self.needs_grad(0):
            gx = xp.empty(x.shape, dtype=g.dtype) if len(parts) > 1 else None
            wt = xp.swapaxes(wm, -1, -2)
        for part in parts:
            g_part = gm[part]
            if gw is not None:  # Σ over the batch of (cols·gᵀ)ᵀ = g·colsᵀ
                if columns is None:
                    cols = _columns(xp, padded[part], geo, groups, inner)
                else:
                    cols = columns
                gw += _weight_grad(xp, cols, g_part, inner)
                _give_back(xp, cols)
            if self.needs_grad(0):
                gx_part = _input_grad(xp, wt, g_part, geo)
                if gx is None:
                    gx = gx_part
                else:
                    gx[part] = gx_part
        if gw is not None:
            gw = xp.swapaxes(gw, -1, -2).reshape(w.shape)
        return gx, gw, gb

    def _backward_tensors(self, ops, g, x, w):
        """The same gradients as Tensor ops over the whole batch, differentiable again."""
        geo, groups = self.geo, self.groups
        n, o = g.shape[0], g.shape[1]
        length, depth = math.prod(geo.out), math.prod(w.shape[1:])  # -1: ambiguous if empty
        gm = g.reshape(n, groups, o // groups, length)
        wm = w.reshape(groups, o // groups, depth)
        gx = gw = gb = None
        if self.needs_grad(0):
            gx = Col2Im.apply((ops.swapaxes(wm, -1, -2) @ gm).reshape(geo.cols_shape), geo=geo)
        if self.needs_grad(1):
            cols = Im2Col.apply(x, geo=geo).reshape((n, groups, depth, length))
            gw = (gm @ ops.swapaxes(cols, -1, -2)).sum(axis=0).reshape(w.shape)
        if self.needs_grad(2):
            gb = g.sum(axis=(0, *range(2, g.ndim)))
        return gx, gw, gb


# --- argument checks --------------------------------------------------------------------------
def _tuple(name: str, op: str, value: IntOrTuple, dims: int, minimum: int = 1) -> tuple[int, ...]:
    """An int or a sequence of `dims` ints, each at least `minimum`, as a tuple."""
    return _args.sizes(op, name, value, dims, minimum=minimum)


def _padding(
    op: str, padding: IntOrTuple | str, kernel: tuple[int, ...], stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[int, ...]]:  # fmt: skip
    """(before, after) per spatial axis, from an int, ints, 'valid' or 'same' (as PyTorch)."""
    dims = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * dims, (0,) * dims
        if padding != "same":
            raise ArgumentError(
                f"{op}: padding must be an int, ints, 'valid' or 'same', got {padding!r}"
            )
        if any(s != 1 for s in stride):
            raise ArgumentError(f"{op}: padding='same' needs stride 1, got stride {stride}")
        total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        before = tuple(t // 2 for t in total)  # an odd total puts the extra zero after
        return before, tuple(t - b for t, b in zip(total, before))
    pad = _tuple("padding", op, padding, dims, minimum=0)
    return pad, pad


def _convolution(
    op: str, dims: int, x: Tensor, weight: Tensor, bias: Tensor | None,
    stride: IntOrTuple, padding: IntOrTuple | str, dilation: IntOrTuple, groups: int,
) -> Tensor:  # fmt: skip
    """Check the arguments of conv{dims}d, then run the convolution."""
    for name, t in (("input", x), ("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    layout = "(N, C, L)" if dims == 1 else "(N, C, H, W)"
    if weight.ndim != dims + 2:
        raise ShapeError(
            f"{op}: weight must have {dims + 2} dimensions (out_channels, in_channels/groups, "
            f"*kernel), got shape {weight.shape}"
        )
    if x.ndim == dims + 1:  # one unbatched sample, as PyTorch allows
        out = _convolution(op, dims, x.unsqueeze(0), weight, bias, stride, padding, dilation,
                           groups)  # fmt: skip
        return out.squeeze(0)
    if x.ndim != dims + 2:
        raise ShapeError(
            f"{op}: input must be {layout} or unbatched ({dims + 1} dimensions), "
            f"got shape {x.shape}"
        )
    if not (is_floating(x.dtype) and x.dtype == weight.dtype):
        raise DTypeError(
            f"{op}: input ({x.dtype}) and weight ({weight.dtype}) must share one floating "
            "dtype; cast with .to(weight.dtype), or model.float() / model.double()"
        )
    if bias is not None and bias.dtype != weight.dtype:
        raise DTypeError(f"{op}: bias is {bias.dtype} but the weight is {weight.dtype}")
    _args.size(op, "groups", groups)
    c = x.shape[1]
    o, c_per_group = weight.shape[:2]
    if c % groups or o % groups:
        raise ShapeError(
            f"{op}: groups={groups} must divide both the input's {c} channels (input shape "
            f"{x.shape}) and the weight's {o} output channels (weight shape {weight.shape})"
        )
    if c_per_group * groups != c:
        raise ShapeError(
            f"{op}: input of shape {x.shape} has {c} channels, but the weight of shape "
            f"{weight.shape} with groups={groups} expects {c_per_group * groups}"
        )
    if bias is not None and bias.shape != (o,):
        raise ShapeError(
            f"{op}: bias of shape {bias.shape} does not fit weight of shape {weight.shape} "
            f"(expected ({o},))"
        )
    kernel = tuple(weight.shape[2:])
    stride_ = _tuple("stride", op, stride, dims)
    dilation_ = _tuple("dilation", op, dilation, dims)
    before, after = _padding(op, padding, kernel, stride_, dilation_)
    size = x.shape[2:]
    padded = tuple(s + b + a for s, b, a in zip(size, before, after))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation_))
    if any(r > p for r, p in zip(reach, padded)) or 0 in kernel:
        raise ShapeError(
            f"{op}: kernel {kernel} (dilation {dilation_}, spanning {reach}) is larger than the "
            f"padded input {padded} (input shape {x.shape}, padding {padding})"
        )
    out = tuple((p - r) // s + 1 for p, r, s in zip(padded, reach, stride_))
    geo = ConvGeometry(tuple(x.shape), kernel, stride_, dilation_, before, after, out)
    # The columns are worth keeping only for a weight gradient that will be asked for.
    keep = weight.requires_grad and is_grad_enabled()
    return _Conv.apply(x, weight, bias, geo=geo, groups=groups, keep_columns=keep)


# --- public functions -------------------------------------------------------------------------
def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch) of x (N, C, H, W) with weight
    (O, C/groups, kH, kW), plus bias (O,); stride/padding/dilation an int or a pair, padding
    also 'valid' or 'same'. Returns (N, O, H_out, W_out). A (C, H, W) input gives (O, H, W)."""
    return _convolution("conv2d", 2, x, weight, bias, stride, padding, dilation, groups)


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution of x (N, C, L) with weight (O, C/groups, k), plus bias (O,);
    returns (N, O, L_out). A (C, L) input gives (O, L_out)."""
    return _convolution("conv1d", 1, x, weight, bias, stride, padding, dilation, groups)


def _geometry(
    x: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple, padding: IntOrTuple,
    dilation: IntOrTuple,
) -> ConvGeometry:  # fmt: skip
    dims = x.ndim - 2
    if dims < 1:
        raise ShapeError(f"im2col/col2im need an (N, C, *spatial) shape, got {x.shape}")
    kernel = _tuple("kernel_size", "im2col", kernel_size, dims)
    stride_ = _tuple("stride", "im2col", stride, dims)
    dilation_ = _tuple("dilation", "im2col", dilation, dims)
    before, after = _padding("im2col", padding, kernel, stride_, dilation_)
    padded = tuple(s + b + a for s, b, a in zip(x.shape[2:], before, after))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation_))
    if any(r > p for r, p in zip(reach, padded)):
        raise ShapeError(f"im2col: kernel {kernel} spans {reach}, more than padded input {padded}")
    out = tuple((p - r) // s + 1 for p, r, s in zip(padded, reach, stride_))
    return ConvGeometry(tuple(x.shape), kernel, stride_, dilation_, before, after, out)


def im2col(
    x: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple = 1, padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> Tensor:  # fmt: skip
    """The sliding windows of x (N, C, *spatial) as (N, C, *kernel, *out): element
    [n, c, k, o] is the (zero-padded) input under kernel position k at output position o."""
    return Im2Col.apply(x, geo=_geometry(x, kernel_size, stride, padding, dilation))


def col2im(
    cols: Tensor, input_shape: Sequence[int], kernel_size: IntOrTuple, stride: IntOrTuple = 1,
    padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
) -> Tensor:  # fmt: skip
    """The adjoint of `im2col`: columns (N, C, *kernel, *out) summed back into an input of
    `input_shape` (N, C, *spatial), overlapping windows adding up."""
    shape = tuple(int(s) for s in input_shape)
    like = _ShapeOnly(shape)
    geo = _geometry(like, kernel_size, stride, padding, dilation)  # type: ignore[arg-type]
    if cols.shape != geo.cols_shape:
        raise ShapeError(
            f"col2im: columns of shape {cols.shape} do not fit input shape {shape} with kernel "
            f"{geo.kernel}: expected {geo.cols_shape}"
        )
    return Col2Im.apply(cols, geo=geo)


@dataclass(frozen=True)
class _ShapeOnly:
    """Stands in for a tensor where only its shape is needed."""

    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)
