"""The compiled CPU kernels (native.py) called on NumPy arrays.

Each function returns None where its kernel does not apply (no library, another dtype, an
array that is not C-contiguous), and the caller then runs the NumPy twin: the kernels are a
faster route to the same values, never the only one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import blas_threads, erf_table, native
from .activation_math import INV_SQRT_2PI

_FLOAT32 = np.dtype("float32")
_FLOAT64 = np.dtype("float64")
_SUFFIX = {_FLOAT32: "f32", _FLOAT64: "f64"}
_NORMAL32_P = np.array(erf_table.NORMAL32_P, dtype=np.float32)
_NORMAL32_Q = np.array(erf_table.NORMAL32_Q, dtype=np.float32)
_INV_SQRT_2PI_32 = float(np.float32(INV_SQRT_2PI))


def _address(array: np.ndarray) -> int:
    return array.ctypes.data


def _ready(*arrays: np.ndarray, dtypes: tuple[np.dtype, ...] = (_FLOAT32,)) -> bool:
    """Whether the arrays share one kernel dtype and are all C-contiguous and aligned (a
    misaligned array, say from np.frombuffer with an offset, is undefined behaviour in C)."""
    dtype = arrays[0].dtype
    return dtype in dtypes and all(
        a.dtype == dtype and a.flags.c_contiguous and a.flags.aligned for a in arrays
    )  # fmt: skip


def gelu_and_cdf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(x·Φ(x), Φ(x)) of a float32 array in one pass (special_math.gelu_and_cdf's values to a
    few ulps), or None."""
    if not _ready(x) or (lib := native.library()) is None:
        return None
    out, cdf = np.empty_like(x), np.empty_like(x)
    lib.gg_gelu_forward_f32(
        _address(x), _address(out), _address(cdf), x.size,
        _address(_NORMAL32_P), _address(_NORMAL32_Q), erf_table.NORMAL32_END,
    )  # fmt: skip
    return out, cdf


def gelu_grad_from_cdf(g: np.ndarray, x: np.ndarray, cdf: np.ndarray) -> np.ndarray | None:
    """g·(Φ + x·φ(x)) for float32 arrays of one shape in one pass
    (activation_math.gelu_grad_from_cdf's values to a few ulps), or None."""
    if not (g.shape == x.shape == cdf.shape and _ready(g, x, cdf)):
        return None
    if (lib := native.library()) is None:
        return None
    dx = np.empty_like(x)
    lib.gg_gelu_backward_f32(
        _address(g), _address(x), _address(cdf), _address(dx), x.size, _INV_SQRT_2PI_32
    )
    return dx


def max_pool_tiles(x: np.ndarray, kernel: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """For an (N, C, H, W) float array tiled by `kernel` windows: each window's maximum and the
    int32 row-major position of its first maximum (NaN first), or None."""
    if x.ndim != 4 or not _ready(x, dtypes=(_FLOAT32, _FLOAT64)):
        return None
    if (lib := native.library()) is None:
        return None
    (n, c, h, w), (kh, kw) = x.shape, kernel
    out = np.empty((n, c, h // kh, w // kw), dtype=x.dtype)
    where = np.empty(out.shape, dtype=np.int32)
    forward = getattr(lib, f"gg_max_pool_tiled_forward_{_SUFFIX[x.dtype]}")
    forward(_address(x), _address(out), _address(where), n * c, h, w, kh, kw)
    return out, where


def max_pool_tiles_backward(
    g: np.ndarray, where: np.ndarray, kernel: tuple[int, int], shape: tuple[int, ...]
) -> np.ndarray | None:
    """The input's gradient of `max_pool_tiles`: g at each window's recorded position, g·0
    elsewhere (NaN for a non-finite g, as g times a mask), or None."""
    if g.shape != where.shape or not _ready(g, dtypes=(_FLOAT32, _FLOAT64)):
        return None
    if not where.flags.c_contiguous or (lib := native.library()) is None:
        return None
    (n, c, h, w), (kh, kw) = shape, kernel
    gx = np.empty(shape, dtype=g.dtype)
    backward = getattr(lib, f"gg_max_pool_tiled_backward_{_SUFFIX[g.dtype]}")
    backward(_address(g), _address(where), _address(gx), n * c, h, w, kh, kw)
    return gx


def softmax_columns(scores: np.ndarray, causal: bool) -> bool:
    """Softmax down each column of each (S, L) matrix of float32 `scores`, in place (key j
    hidden from query i when j > i if `causal`); False, untouched, where the kernel does not
    apply."""
    if scores.ndim < 2 or not _ready(scores) or (lib := native.library()) is None:
        return False
    rows, cols = scores.shape[-2:]
    lib.gg_softmax_columns_f32(_address(scores), scores.size // max(rows * cols, 1), rows, cols,
                               int(causal))  # fmt: skip
    return True


def softmax_columns_backward(ds: np.ndarray, p: np.ndarray) -> bool:
    """ds ← (ds − Σ_rows ds·p)·p for each column of float32 (…, S, L) arrays, in place; False,
    untouched, where the kernel does not apply."""
    if ds.shape != p.shape or ds.ndim < 2 or not _ready(ds, p):
        return False
    if (lib := native.library()) is None:
        return False
    rows, cols = ds.shape[-2:]
    heads = ds.size // max(rows * cols, 1)
    lib.gg_softmax_columns_backward_f32(_address(ds), _address(p), heads, rows, cols)
    return True


# Products per matrix up to this many multiply-adds (m·n·k) run on one thread in OpenBLAS
# (its GEMM_MULTITHREAD_THRESHOLD of 4 times 65,536): those are shared over the pool by matrix.
# Larger ones OpenBLAS splits itself (over the same pool, blas_threads.py) in NumPy's loop.
_SMALL_PRODUCT = 4 * 65_536


def batched_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """a @ b for stacks of small float matrices of one batch shape (no broadcasting), each
    product the same BLAS call NumPy's loop makes, shared over the CPUs by matrix; None where
    the kernel does not apply (NumPy's matmul then runs)."""
    if a.ndim < 3 or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
        return None
    (m, k), n = a.shape[-2:], b.shape[-1]
    count = a.size // max(m * k, 1)
    # (A 1 among m, n, k is a matrix-vector product or a dot in NumPy's loop, not gemm.)
    if count < 2 or min(m, n, k) < 2 or m * n * k > _SMALL_PRODUCT or b.shape[-2] != k:
        return None
    if a.dtype != b.dtype or a.dtype not in _SUFFIX or not (a.flags.aligned and b.flags.aligned):
        return None
    if np.may_share_memory(a, b):  # NumPy takes a matrix times its own transpose to syrk
        return None
    batch = _batch_walk(a, b)
    layout_a, layout_b = _matrix_layout(a), _matrix_layout(b)
    if batch is None or layout_a is None or layout_b is None:
        return None
    lib = native.library()
    gemm = blas_threads.gemm_address(a.dtype.name) if lib is not None else None
    if gemm is None:
        return None
    (outer, inner), (a_outer, a_inner), (b_outer, b_inner) = batch
    out = np.empty((*a.shape[:-2], m, n), dtype=a.dtype)
    getattr(lib, f"gg_bmm_{_SUFFIX[a.dtype]}")(
        gemm, outer, inner, m, n, k,
        _address(a), a_outer, a_inner, *layout_a,
        _address(b), b_outer, b_inner, *layout_b,
        _address(out),
    )  # fmt: skip
    return out


def _batch_walk(a: np.ndarray, b: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """The shared batch axes of a and b as at most two, (outer, inner) counts and each
    operand's (outer, inner) steps in elements: adjacent axes merge where both operands walk
    them with one stride (attention's (batch, heads) views of a fused projection do not).
    None when more than two remain or a stride is not a whole number of elements."""
    axes: list[list[int]] = []  # [length, a stride, b stride], innermost first
    for length, sa, sb in zip(
        reversed(a.shape[:-2]), reversed(a.strides[:-2]), reversed(b.strides[:-2])
    ):
        if length == 1:
            continue
        if sa % a.itemsize or sb % b.itemsize:
            return None
        sa, sb = sa // a.itemsize, sb // b.itemsize
        if axes and sa == axes[-1][1] * axes[-1][0] and sb == axes[-1][2] * axes[-1][0]:
            axes[-1][0] *= length
        else:
            axes.append([length, sa, sb])
    if len(axes) > 2:
        return None
    while len(axes) < 2:
        axes.append([1, 0, 0])
    (n_in, a_in, b_in), (n_out, a_out, b_out) = axes
    return (n_out, n_in), (a_out, a_in), (b_out, b_in)


def _matrix_layout(x: np.ndarray) -> tuple[int, int] | None:
    """(leading dimension, transposed) in elements of each matrix of x, chosen as NumPy's
    matmul chooses it (rows contiguous: as it is; else columns contiguous: transposed), or
    None for a matrix with neither."""
    size = x.itemsize
    rows, cols = x.shape[-2:]
    row_stride, col_stride = x.strides[-2:]
    if col_stride == size and row_stride % size == 0 and cols <= row_stride // size:
        return row_stride // size, 0
    if row_stride == size and col_stride % size == 0 and rows <= col_stride // size:
        return col_stride // size, 1
    return None


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """a + b for float arrays of one shape and dtype, split over the CPUs (NumPy's bits), or
    None where the kernel does not apply."""
    if a.shape != b.shape or not _ready(a, b, dtypes=(_FLOAT32, _FLOAT64)):
        return None
    if (lib := native.library()) is None:
        return None
    out = np.empty_like(a)
    getattr(lib, f"gg_add_{_SUFFIX[a.dtype]}")(_address(a), _address(b), _address(out), a.size)
    return out


def add_rows(out: np.ndarray, row: np.ndarray) -> bool:
    """out += row on each row of a (rows, cols) float array, in place, split over the CPUs
    (NumPy's bits); False, untouched, where the kernel does not apply."""
    if (
        out.ndim < 2
        or row.shape != out.shape[-1:]
        or not _ready(out, row, dtypes=(_FLOAT32, _FLOAT64))
    ):
        return False
    if not out.flags.writeable or (lib := native.library()) is None:
        return False
    if np.may_share_memory(row, out):
        return False  # row inside out: NumPy's rule for overlapping operands, not this loop's
    cols = out.shape[-1]
    getattr(lib, f"gg_add_rows_{_SUFFIX[out.dtype]}")(
        _address(out), _address(row), out.size // max(cols, 1), cols
    )
    return True


def available() -> bool:
    """Whether the compiled kernels are loaded (built on the first call)."""
    return native.library() is not None


def conv_fold_batch_last(cols: np.ndarray, dims: tuple[int, ...]) -> np.ndarray | None:
    """col2im of a 2-D convolution's input gradient from batch-last columns: `cols` holds
    (C, KH, KW, OH, OW, n) elements, `dims` = (C, KH, KW, OH, OW, n, H, W, pad_h, pad_w,
    stride_h, stride_w, dilation_h, dilation_w); the (n, C, H, W) gradient, or None."""
    return _conv_fold("batch_last", cols, dims)


def conv_fold_batch_first(cols: np.ndarray, dims: tuple[int, ...]) -> np.ndarray | None:
    """The same from batch-first columns, (n, C, KH, KW, OH, OW) elements; `dims` as above."""
    return _conv_fold("batch_first", cols, dims)


def _conv_fold(layout: str, cols: np.ndarray, dims: tuple[int, ...]) -> np.ndarray | None:
    if len(dims) != 14 or cols.size != math.prod(dims[:6]):
        return None
    if not _ready(cols, dtypes=(_FLOAT32, _FLOAT64)) or (lib := native.library()) is None:
        return None
    c, n, h, w = dims[0], dims[5], dims[6], dims[7]
    out = np.empty((n, c, h, w), dtype=cols.dtype)
    fields = np.array(dims, dtype=np.int64)
    fold = getattr(lib, f"gg_conv_fold_{layout}_{_SUFFIX[cols.dtype]}")
    fold(_address(cols), _address(out), _address(fields))
    return out


def _address_or_null(array: np.ndarray | None) -> int | None:
    return None if array is None else array.ctypes.data


def layer_norm(
    rows: np.ndarray, w: np.ndarray | None, b: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Layer norm of the rows of a (rows, size) float array, w and b (size,) or None: (out,
    the normalised rows x̂, 1/√(var + eps) as (rows, 1)), or None."""
    given = [a for a in (w, b) if a is not None]
    if rows.ndim != 2 or not _ready(rows, *given, dtypes=(_FLOAT32, _FLOAT64)):
        return None
    if any(a.shape != rows.shape[1:] for a in given) or (lib := native.library()) is None:
        return None
    out, normalised = np.empty_like(rows), np.empty_like(rows)
    inv_std = np.empty((rows.shape[0], 1), dtype=rows.dtype)
    getattr(lib, f"gg_layer_norm_forward_{_SUFFIX[rows.dtype]}")(
        _address(rows), _address_or_null(w), _address_or_null(b), _address(out),
        _address(normalised), _address(inv_std), rows.shape[0], rows.shape[1], eps,
    )  # fmt: skip
    return out, normalised, inv_std


def layer_norm_backward(
    g: np.ndarray,
    normalised: np.ndarray,
    inv_std: np.ndarray,
    w: np.ndarray | None,
    wanted: tuple[bool, bool, bool],
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None] | None:
    """(dL/dx, dL/dw, dL/db) of `layer_norm` for upstream g (rows, size), each only where
    `wanted` (else None; dL/dw also needs w), or None when the kernel does not apply."""
    given = [a for a in (w,) if a is not None]
    if g.shape != normalised.shape or not _ready(g, normalised, inv_std, *given,
                                                dtypes=(_FLOAT32, _FLOAT64)):  # fmt: skip
        return None
    if (lib := native.library()) is None:
        return None
    rows, size = g.shape
    want_x, want_w, want_b = wanted
    gx = np.empty_like(g) if want_x else None
    gw = np.empty(size, dtype=g.dtype) if want_w and w is not None else None
    gb = np.empty(size, dtype=g.dtype) if want_b else None
    getattr(lib, f"gg_layer_norm_backward_{_SUFFIX[g.dtype]}")(
        _address(g), _address(normalised), _address(inv_std), _address_or_null(w),
        _address_or_null(gx), _address_or_null(gw), _address_or_null(gb), rows, size,
    )  # fmt: skip
    return gx, gw, gb


# --- optimizer updates (optim.cpp): one pass over each gradient piece's stretch of `param` ---
# Pieces smaller than this on average are first gathered into one array (one copy, as the
# twin gathers a bank of small parameters): each kernel call costs a few microseconds.
_GATHER_BELOW = 1 << 14


def _pieces(param: np.ndarray, grad: Any, states: tuple[np.ndarray, ...]) -> list[Any] | None:
    """The gradient as pieces lining up with the flat param, when every array can go to a
    kernel: one float dtype, C-contiguous, aligned, sizes adding up, what is written writable,
    and no gradient sharing memory with what is written (the kernel reads each element once,
    before writing). None otherwise: the twin runs, or raises the error that names it."""
    pieces = list(grad) if isinstance(grad, (list, tuple)) else [grad]
    written = (param, *states)
    if not pieces or not _ready(*written, *pieces, dtypes=(_FLOAT32, _FLOAT64)):
        return None
    if not all(a.flags.writeable for a in written):
        return None
    if any(s.size != param.size for s in states) or sum(p.size for p in pieces) != param.size:
        return None
    if any(np.may_share_memory(a, b) for i, a in enumerate(written) for b in written[i + 1 :]):
        return None
    if len(pieces) > 1 and param.size < _GATHER_BELOW * len(pieces):
        return [np.concatenate([piece.reshape(-1) for piece in pieces])]  # a new array
    if any(np.may_share_memory(piece, a) for piece in pieces for a in written):
        return None
    return pieces


def _stretches(pieces: list[Any], itemsize: int) -> Iterator[tuple[int, Any]]:
    """(byte offset into the flat param and its states, piece) for each gradient piece."""
    start = 0
    for piece in pieces:
        yield start * itemsize, piece
        start += piece.size


def sgd(param: np.ndarray, grad: Any, buf: np.ndarray | None, lr: float, momentum: float,
        dampening: float, nesterov: bool, weight_decay: float, first: bool) -> bool:  # fmt: skip
    """optimizer_math.sgd_step's update in place, bit for bit (NaN signs aside: IEEE leaves
    them open, and NumPy's own loops differ in them); `buf` is the momentum buffer, None
    without momentum. False where the kernel does not apply (the twin runs)."""
    pieces = _pieces(param, grad, (buf,) if buf is not None else ())
    if pieces is None or (lib := native.library()) is None:
        return False
    kernel = getattr(lib, f"gg_sgd_{_SUFFIX[param.dtype]}")
    # The twin's branches, decided as it decides them (on the Python floats, not on their
    # float32 roundings: a weight decay of 1e-50 is still a decay there).
    flags = (weight_decay != 0, dampening != 0, bool(nesterov), bool(first))
    p_at, buf_at = _address(param), _address_or_null(buf)
    for offset, piece in _stretches(pieces, param.itemsize):
        kernel(
            p_at + offset, _address(piece), None if buf_at is None else buf_at + offset,
            piece.size, lr, momentum, 1.0 - dampening, weight_decay, *flags,
        )  # fmt: skip
    return True


def adam(param: np.ndarray, grad: Any, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
         scalars: tuple[float, ...], decoupled: bool) -> bool:  # fmt: skip
    """optimizer_math.adam_step's update without amsgrad, in place, bit for bit (NaN signs
    aside); `scalars` are (1 − lr·weight_decay, weight_decay, 1 − β1, β2, 1 − β2,
    √(1 − β2^t), eps, lr/(1 − β1^t)). False where the kernel does not apply (the twin runs)."""
    pieces = _pieces(param, grad, (exp_avg, exp_avg_sq))
    if pieces is None or (lib := native.library()) is None:
        return False
    kernel = getattr(lib, f"gg_adam_{_SUFFIX[param.dtype]}")
    decay = 0 if scalars[1] == 0 else 2 if decoupled else 1  # none, L2, decoupled (twin's test)
    at = [_address(a) for a in (param, exp_avg, exp_avg_sq)]
    for offset, piece in _stretches(pieces, param.itemsize):
        kernel(
            at[0] + offset, _address(piece), at[1] + offset, at[2] + offset, piece.size,
            *scalars, decay,
        )  # fmt: skip
    return True


__all__ = [
    "adam",
    "add",
    "add_rows",
    "available",
    "batched_matmul",
    "conv_fold_batch_first",
    "conv_fold_batch_last",
    "gelu_and_cdf",
    "gelu_grad_from_cdf",
    "layer_norm",
    "layer_norm_backward",
    "max_pool_tiles",
    "max_pool_tiles_backward",
    "sgd",
    "softmax_columns",
    "softmax_columns_backward",
]
