"""erf and erfc on backend arrays: ~1e-16 relative in float64, from plain array arithmetic.

NumPy has no erf. Here a = |x| picks one row of a small coefficient table (erf_table.py, made
by tools/erf_table.py with mpmath) from the top bits of its float64 encoding, and the row's
polynomial gives erf(a)/a for a < 1/2 or a·erfcx(a) = a·exp(a²)·erfc(a) above. Then

    erf(x) = x·p                     for |x| < 1/2 (no cancellation, tiny x stay exact)
    erfc(a) = p/a · exp(-a²)         for a >= 1/2 (relative accuracy until it underflows)
    erf(x) = ±(1 - erfc(a)),  erfc(x) = 1 - erf(x) below 1/2,  erfc(-a) = 2 - erfc(a).

exp(-a²) in float64 splits a² as hi² + (a - hi)(a + hi) with hi = a rounded down to 1/16, so
hi² is exact: a² rounded to float64 is off by up to 6e-14 near a = 27, and exp would turn that
into as much relative error (W. J. Cody's trick). float32 and float16 compute in float64 and
round once, with the table of degree-5 polynomials (~1e-10) instead of degree 9 and exp(-a·a)
unsplit: both errors are far below half a float32 ulp, so results are within 1 ulp of exact.

That is about 40 array operations per element (12 of them gathers from the table), run over
blocks of BLOCK elements so that the temporaries stay in the CPU caches. The functions take the
backend `ns` and use its array module `ns.xp`, so they would run on CuPy too, but the CuPy backend
uses CuPy's own erf/erfc, and the NumPy backend SciPy's where SciPy is installed
(`scipy_special`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import erf_table

FLOAT_DTYPES = ("float16", "float32", "float64")
# a beyond this is treated as this: erfc(a) is below the smallest subnormal from 27.3 on, and
# the last row (up to 28) stays valid; inf then gives exp(-a²) = 0, not inf - inf.
LARGEST = 27.5
MANTISSA_BITS = 52
# Row k of the table is the float64 encoding of a shifted right by SHIFT, minus FIRST_ROW: row 1
# starts at 2**FIRST_BINADE, and everything below (row 0) clips to 0.
SHIFT = MANTISSA_BITS - erf_table.ROW_BITS
EXPONENT_BIAS = 1023
FIRST_ROW = ((EXPONENT_BIAS + erf_table.FIRST_BINADE) << erf_table.ROW_BITS) - 1
# Elements per block: the dozens of temporaries of one block stay in the CPU caches, which
# halves the time on large arrays; the per-block Python overhead is small next to it.
BLOCK = 1 << 14
SPLIT = 16.0  # hi = floor(a·16)/16 has at most 9 significant bits below 32: hi² is exact


@functools.cache
def scipy_special() -> ModuleType | None:
    """`scipy.special` when SciPy is installed, else None (looked up once, on first use)."""
    try:
        import scipy.special
    except ImportError:
        return None
    return scipy.special


def via_library(ns: Any, function: Callable[[Any], Any], x: Any) -> Any:
    """A library's elementwise `function` (SciPy's or CuPy's erf/erfc) of backend array `x`,
    with the dtypes of this module's own functions: float32 and float64 computed as they are,
    anything else in float64, and the result an array of x's float dtype (float64 for others)."""
    dtype = _result_dtype(x)
    computed = x if str(x.dtype) in ("float32", "float64") else x.astype("float64")
    return ns.xp.asarray(function(computed)).astype(dtype, copy=False)


@functools.cache
def _columns(xp: ModuleType, precise: bool) -> tuple[Any, ...]:
    """A table as one array per column (centre, 1/half-width, c0, c1, ...) in `xp`'s memory:
    the float64 one when `precise`, else the float32 one."""
    rows = erf_table.ROWS_FLOAT64 if precise else erf_table.ROWS_FLOAT32
    return tuple(xp.asarray(column, dtype="float64") for column in zip(*rows))


def _result_dtype(x: Any) -> str:
    """The dtype of the result: x's own when it is a float dtype, else float64."""
    name = str(x.dtype)
    return name if name in FLOAT_DTYPES else "float64"


def _blockwise(ns: Any, x: Any, block_function: Callable[[Any, Any, bool], Any]) -> Any:
    """`block_function(ns, part, precise)` over float64 blocks of `x`, gathered into an array of
    x's shape and result dtype (each element rounded once)."""
    dtype = _result_dtype(x)
    flat = x.reshape(-1)
    out = ns.xp.empty(flat.shape, dtype=dtype)
    for start in range(0, flat.size, BLOCK):
        part = flat[start : start + BLOCK].astype("float64", copy=False)
        out[start : start + BLOCK] = block_function(ns, part, dtype == "float64")
    return out.reshape(x.shape)


def _exp_minus_square(ns: Any, a: Any, precise: bool) -> Any:
    """exp(-a²) of float64 `a` in [0, LARGEST] (or NaN), with a² split when `precise`."""
    if not precise:
        return ns.exp(a * -a)
    hi = ns.xp.floor(a * SPLIT) * (1 / SPLIT)
    return ns.exp((a - hi) * -(a + hi)) * ns.exp(hi * -hi)


def _erf_parts(ns: Any, x: Any, precise: bool) -> tuple[Any, Any, Any]:
    """(a, small, p) for flat float64 `x`: a = |x| clipped to LARGEST (NaN stays NaN), the mask
    a < SMALL_BELOW, and each element's row polynomial at a (erf(a)/a or a·erfcx(a))."""
    a = ns.minimum(ns.abs(x), LARGEST)
    centre, inverse_half, *coefficients = _columns(ns.xp, precise)
    rows = ns.clip((a.view("int64") >> SHIFT) - FIRST_ROW, 0, len(centre) - 1)
    s = (a - centre[rows]) * inverse_half[rows]  # exact but in row 0: a power-of-two scale
    p = coefficients[-1][rows] * s
    for c in reversed(coefficients[1:-1]):
        p += c[rows]
        p *= s
    p += coefficients[0][rows]
    return a, a < erf_table.SMALL_BELOW, p


def _erfc_of_magnitude(ns: Any, a: Any, p: Any, precise: bool) -> Any:
    """erfc(a) from a row polynomial p = a·erfcx(a), for a >= SMALL_BELOW (elements below it,
    whose p is erf(a)/a, give a finite value that the caller discards)."""
    # Scaled first, while still a normal number: one rounding if the product is subnormal.
    return p / ns.maximum(a, erf_table.SMALL_BELOW) * _exp_minus_square(ns, a, precise)


def _erf_block(ns: Any, x: Any, precise: bool) -> Any:
    a, small, p = _erf_parts(ns, x, precise)
    tail = 1 - _erfc_of_magnitude(ns, a, p, precise)
    return ns.where(small, x * p, ns.xp.copysign(tail, x))


def _erfc_block(ns: Any, x: Any, precise: bool) -> Any:
    a, small, p = _erf_parts(ns, x, precise)
    right = ns.where(small, 1 - x * p, _erfc_of_magnitude(ns, a, p, precise))
    # For x < 0 below 1/2, 1 - x·p is already erfc(x); further out erfc(x) = 2 - erfc(|x|).
    return ns.where(small | (x >= 0), right, 2 - right)


def erf(ns: Any, x: Any) -> Any:
    """The error function of backend array `x`, elementwise, in x's float dtype (float64 for
    other dtypes). float64: within ~1e-16 relative everywhere; float32 and float16: the float64
    result rounded once. erf(±0) = ±0, erf(±inf) = ±1, NaN stays NaN."""
    return _blockwise(ns, x, _erf_block)


def erfc(ns: Any, x: Any) -> Any:
    """The complementary error function 1 - erf(x) of backend array `x`, elementwise, in x's
    float dtype (float64 for other dtypes), without cancellation for large x: float64 keeps
    ~1e-15 relative accuracy until erfc underflows near x = 27.3. erfc(-inf) = 2,
    erfc(inf) = 0, NaN stays NaN."""
    return _blockwise(ns, x, _erfc_block)
