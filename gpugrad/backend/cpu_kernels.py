"""The compiled CPU kernels (native.py) called on NumPy arrays.

Each function returns None where its kernel does not apply (no library, another dtype, an
array that is not C-contiguous), and the caller then runs the NumPy twin: the kernels are a
faster route to the same values, never the only one.
"""

from __future__ import annotations

import numpy as np

from . import erf_table, native
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
    """Whether the arrays share one kernel dtype and are all C-contiguous."""
    dtype = arrays[0].dtype
    return dtype in dtypes and all(
        a.dtype == dtype and a.flags.c_contiguous for a in arrays
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


__all__ = ["gelu_and_cdf", "gelu_grad_from_cdf", "max_pool_tiles", "max_pool_tiles_backward"]
