"""erf and erfc on backend arrays, from plain array arithmetic (NumPy has no erf).

float64 results (~1e-16 relative): a = |x| picks one row of a small coefficient table
(erf_table.py, made by tools/erf_table.py with mpmath) from the top bits of its float64
encoding, and the row's polynomial gives erf(a)/a for a < 1/2 or a·erfcx(a) =
a·exp(a²)·erfc(a) above. Then

    erf(x) = x·p                     for |x| < 1/2 (no cancellation, tiny x stay exact)
    erfc(a) = p/a · exp(-a²)         for a >= 1/2 (relative accuracy until it underflows)
    erf(x) = ±(1 - erfc(a)),  erfc(x) = 1 - erf(x) below 1/2,  erfc(-a) = 2 - erfc(a).

exp(-a²) splits a² as hi² + (a - hi)(a + hi) with hi = a rounded down to 1/16, so hi² is
exact: a² rounded to float64 is off by up to 6e-14 near a = 27, and exp would turn that into
as much relative error (W. J. Cody's trick). That is about 40 array operations per element, 12
of them gathers from the table.

float32 and float16 erf is computed in float32 arithmetic, with no table, as

    erf(x) = tanh(u),  u = atanh(erf(c)) = c + c·P(c²)/Q(c²),  c = x clipped to ±5,

P/Q (degrees 3/3, Q monic) the weighted minimax fit of tools/erf_table.py. tanh carries the
saturation that a rational or polynomial alone fits badly (a polynomial in c² would need degree
9), so u varies slowly; beyond ±5, u is 13.9 and tanh rounds to ±1. Where erf is within an ulp
of ±1, u needs little accuracy, and the fit weighs its errors by how much they move erf; the
+c keeps P/Q's rounding (P/Q is 0.13 near 0) out of most of u. Seventeen float32 passes per
element, in place over blocks of SINGLE_BLOCK elements (clip, c², 6 + 5 for P and Q, divide,
multiply, add, tanh). Measured over every float32 in [0, 5] by `python tools/erf_table.py
--sweep` (NumPy's float32 tanh is within 1 ulp; the numbers are from an AVX-512 CPU), every
result is within ERF32_ULPS = 2 ulps of the float64 erf rounded to float32 (91.2% equal, 8.8%
1 ulp away, 0.015% 2 ulps), and erf(-x) = -erf(x) to the bit. float16 goes through the same
float32 math and is rounded once: within 1 ulp.

Φ(x) = (1 + erf(x/√2))/2 (GELU's CDF, `normal_cdf`) has its own rational, the same one rescaled,
so that x/√2 costs no pass: (1 + tanh(c·P'(c²)/Q'(c²)))/2 with c = x clipped to ±5√2, 0 and 1
exactly beyond. Measured over every float32 in [-5√2, 5√2], it is within NORMAL32_ERROR·2^-24
of Φ, absolute (that is 1.5 float32 ulps of Φ in [1/2, 1)), in 19 passes.

erfc for float32 and float16 needs relative accuracy in its tail and keeps float64 arithmetic:
two rationals and a polynomial (same tool) without a table, rounded once, so each result is
within 1 ulp of the exact value rounded to its dtype:

    erfc(a) = exp(-a²)·P'(a)/Q'(a)        for a = |x| >= 1/2 (clipped to 10.5: erfc is 0),
    erfc(x) = 1 - x·P''(x²)               for |x| < 1/2 (1 - erf > 1/2: no cancellation),
    erfc(-a) = 2 - erfc(a).

A float32 x is exact in float64 and so is x², so exp(-x²) needs no split. That is about 45
array operations per element and no gathers.

float64 runs over blocks of BLOCK elements so that the temporaries stay in the CPU caches.
The functions take the backend `ns` and use its array module `ns.xp`, so they would run on
CuPy too, but the CuPy backend uses CuPy's own erf/erfc, and the NumPy backend SciPy's where
SciPy is installed (`scipy_special`).
"""

from __future__ import annotations

import functools
import math
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
# Elements per float32 block: four float32 scratch arrays and the block's input and output
# stay in the L2 cache.
SINGLE_BLOCK = 1 << 15
SQRT_HALF = math.sqrt(0.5)
# Bounds of the float32 results, measured over every float32 (tools/erf_table.py --sweep) and
# tested: erf in ulps of the exact value rounded, Φ absolute in units of 2^-24.
ERF32_ULPS = 2
NORMAL32_ERROR = 1.5
SPLIT = 16.0  # hi = floor(a·16)/16 has at most 9 significant bits below 32: hi² is exact
# A block's erf or erfc, (ns, flat float64 part) -> values.
BlockFunction = Callable[[Any, Any], Any]


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
def _columns(xp: ModuleType) -> tuple[Any, ...]:
    """The float64 table as one array per column (centre, 1/half-width, c0, c1, ...) in `xp`'s
    memory."""
    return tuple(xp.asarray(column, dtype="float64") for column in zip(*erf_table.ROWS_FLOAT64))


def _result_dtype(x: Any) -> str:
    """The dtype of the result: x's own when it is a float dtype, else float64."""
    name = str(x.dtype)
    return name if name in FLOAT_DTYPES else "float64"


def _blockwise(ns: Any, x: Any, precise: BlockFunction, single: BlockFunction) -> Any:
    """`precise(ns, part)` (float64 results) or `single(ns, part)` (float32 and float16 ones)
    over float64 blocks of `x`, gathered into an array of x's shape and result dtype (each
    element rounded once)."""
    dtype = _result_dtype(x)
    block_function = precise if dtype == "float64" else single
    flat = x.reshape(-1)
    out = ns.xp.empty(flat.shape, dtype=dtype)
    for start in range(0, flat.size, BLOCK):
        part = flat[start : start + BLOCK].astype("float64", copy=False)
        out[start : start + BLOCK] = block_function(ns, part)
    return out.reshape(x.shape)


def _exp_minus_square(ns: Any, a: Any) -> Any:
    """exp(-a²) of float64 `a` in [0, LARGEST] (or NaN), with a² split."""
    hi = ns.xp.floor(a * SPLIT) * (1 / SPLIT)
    return ns.exp((a - hi) * -(a + hi)) * ns.exp(hi * -hi)


def _erf_parts(ns: Any, x: Any) -> tuple[Any, Any, Any]:
    """(a, small, p) for flat float64 `x`: a = |x| clipped to LARGEST (NaN stays NaN), the mask
    a < SMALL_BELOW, and each element's row polynomial at a (erf(a)/a or a·erfcx(a))."""
    a = ns.minimum(ns.abs(x), LARGEST)
    centre, inverse_half, *coefficients = _columns(ns.xp)
    rows = ns.clip((a.view("int64") >> SHIFT) - FIRST_ROW, 0, len(centre) - 1)
    s = (a - centre[rows]) * inverse_half[rows]  # exact but in row 0: a power-of-two scale
    p = coefficients[-1][rows] * s
    for c in reversed(coefficients[1:-1]):
        p += c[rows]
        p *= s
    p += coefficients[0][rows]
    return a, a < erf_table.SMALL_BELOW, p


def _erfc_of_magnitude(ns: Any, a: Any, p: Any) -> Any:
    """erfc(a) from a row polynomial p = a·erfcx(a), for a >= SMALL_BELOW (elements below it,
    whose p is erf(a)/a, give a finite value that the caller discards)."""
    # Scaled first, while still a normal number: one rounding if the product is subnormal.
    return p / ns.maximum(a, erf_table.SMALL_BELOW) * _exp_minus_square(ns, a)


def _erf_block(ns: Any, x: Any) -> Any:
    a, small, p = _erf_parts(ns, x)
    tail = 1 - _erfc_of_magnitude(ns, a, p)
    return ns.where(small, x * p, ns.xp.copysign(tail, x))


def _erfc_block(ns: Any, x: Any) -> Any:
    a, small, p = _erf_parts(ns, x)
    right = ns.where(small, 1 - x * p, _erfc_of_magnitude(ns, a, p))
    # For x < 0 below 1/2, 1 - x·p is already erfc(x); further out erfc(x) = 2 - erfc(|x|).
    return ns.where(small | (x >= 0), right, 2 - right)


def _polynomial(coefficients: tuple[float, ...], z: Any) -> Any:
    """Σ c_i·z^i (Horner, in place on one new array) of float64 `z`; at least degree 1."""
    p = z * coefficients[-1]
    for c in reversed(coefficients[1:-1]):
        p += c
        p *= z
    p += coefficients[0]
    return p


def _horner_into(xp: ModuleType, coefficients: tuple[float, ...], z: Any, out: Any) -> Any:
    """out = Σ c_i·z^i (Horner, in place in `out`); a leading coefficient of 1 (a monic Q)
    starts with z + c_{n-1}, one multiplication fewer. float32 `z` and `out`: the Python-float
    coefficients (float32 values) keep the arithmetic in float32."""
    *lower, top = coefficients
    if top == 1.0:
        xp.add(z, lower.pop(), out=out)
    else:
        xp.multiply(z, top, out=out)
        xp.add(out, lower.pop(), out=out)
    for c in reversed(lower):
        xp.multiply(out, z, out=out)
        xp.add(out, c, out=out)
    return out


def _argument_of_tanh(xp: ModuleType, x: Any, end: float, p: Any, q: Any, scratch: list) -> Any:
    """u = c·P(c²)/Q(c²) in float32, c = x clipped to ±end (NaN stays NaN), in scratch[2];
    scratch[0] keeps c. Sixteen passes over the block, all in place."""
    c, z, u, q_of_z = scratch
    xp.clip(x, -end, end, out=c)
    xp.multiply(c, c, out=z)
    _horner_into(xp, p, z, u)
    xp.divide(u, _horner_into(xp, q, z, q_of_z), out=u)
    return xp.multiply(u, c, out=u)


def _erf_single(xp: ModuleType, x: Any, outs: tuple, scratch: list) -> None:
    # u = c + c·P/Q: P/Q is ~0.13 near 0, so its rounding errors touch a seventh of u.
    u = _argument_of_tanh(xp, x, erf_table.ERF32_END, erf_table.ERF32_P, erf_table.ERF32_Q, scratch)
    xp.add(u, scratch[0], out=u)
    xp.tanh(u, out=outs[0])


def _normal_cdf_single(xp: ModuleType, x: Any, outs: tuple, scratch: list) -> None:
    end, p, q = erf_table.NORMAL32_END, erf_table.NORMAL32_P, erf_table.NORMAL32_Q
    u = _argument_of_tanh(xp, x, end, p, q, scratch)
    xp.tanh(u, out=u)
    xp.add(u, 1.0, out=u)
    xp.multiply(u, 0.5, out=outs[0])


def _gelu_single(xp: ModuleType, x: Any, outs: tuple, scratch: list) -> None:
    # x·Φ from Φ as stored (rounded to x's dtype): the same bits as x * normal_cdf(x).
    cdf, gelu = outs
    _normal_cdf_single(xp, x, (cdf,), scratch)
    xp.multiply(x, cdf, out=gelu)


def _erfc_single_block(ns: Any, x: Any) -> Any:
    a = ns.minimum(ns.abs(x), erf_table.ERFC32_END)  # inf -> exp(-a²) = 0, not inf·0
    tail = ns.exp(a * -a)
    tail *= _polynomial(erf_table.ERFC32_P, a)
    tail /= _polynomial(erf_table.ERFC32_Q, a)
    # erfc(-a) = 2 - erfc(a). The two choices below are blends, not `where`: NumPy's where
    # branches per element and costs ~5 passes on random signs (a third of this function).
    signed = ns.xp.copysign(tail, x)
    signed += (x < 0) * 2.0
    # Clipped, so that the discarded side stays finite (inf·0 would be NaN).
    start = erf_table.ERFC32_START
    near = ns.clip(x, -start, start)
    small = _polynomial(erf_table.ERFC32_SMALL_P, near * near)
    small *= -near
    small += 1
    small -= signed
    small *= a < start
    small += signed  # exactly `signed` where a >= start, `small` to ~1e-16 below
    return small


def _single_blocks(ns: Any, x: Any, block_function: Callable[..., None], count: int = 1) -> list:
    """`block_function(xp, part, out_parts, scratch)` over blocks of SINGLE_BLOCK elements of
    float32 or float16 `x`, with four float32 scratch arrays of the block's length shared by all
    blocks; returns its `count` results (x's dtype and shape), each rounded once to float16.
    (Splitting the blocks over two threads was measured: no faster on a loaded 2-core CPU.)"""
    xp = ns.xp
    flat = x.reshape(-1)
    outs = [xp.empty(flat.shape, dtype=x.dtype) for _ in range(count)]
    scratch = [xp.empty(min(flat.size, SINGLE_BLOCK), dtype="float32") for _ in range(4)]
    for start in range(0, flat.size, SINGLE_BLOCK):
        part = flat[start : start + SINGLE_BLOCK]
        size = part.size
        parts = tuple(out[start : start + size] for out in outs)
        block_function(xp, part, parts, [s[:size] for s in scratch])
    return [out.reshape(x.shape) for out in outs]


def erf(ns: Any, x: Any) -> Any:
    """The error function of backend array `x`, elementwise, in x's float dtype (float64 for
    other dtypes). float64: within ~1e-16 relative everywhere; float32: within ERF32_ULPS ulps of
    the exact value rounded, float16: within 1 ulp. erf(±0) = ±0, erf(±inf) = ±1, NaN stays NaN."""
    if _result_dtype(x) == "float64":
        return _blockwise(ns, x, _erf_block, _erf_block)
    return _single_blocks(ns, x, _erf_single)[0]


def normal_cdf(ns: Any, x: Any) -> Any:
    """Φ(x) = (1 + erf(x/√2))/2, the standard normal CDF (GELU is x·Φ(x)), elementwise, in x's
    float dtype (float64 for other dtypes). float64 through erf; float32 and float16 from their
    own rational (NORMAL32), within NORMAL32_ERROR of the exact value, absolute (what
    (1 + erf)/2 is at best in float32); 0 and 1 exactly beyond ±NORMAL32_END."""
    if _result_dtype(x) == "float64":
        cdf = erf(ns, x * SQRT_HALF)
        cdf += 1
        cdf *= 0.5
        return cdf
    return _single_blocks(ns, x, _normal_cdf_single)[0]


def gelu_and_cdf(ns: Any, x: Any) -> tuple[Any, Any]:
    """(x·Φ(x), Φ(x)): GELU and the CDF its backward reuses, as `x * normal_cdf(ns, x)` and
    `normal_cdf(ns, x)` (the same values), the product taken in the same cached blocks."""
    if _result_dtype(x) == "float64":
        cdf = normal_cdf(ns, x)
        return x * cdf, cdf
    cdf, gelu = _single_blocks(ns, x, _gelu_single, count=2)
    return gelu, cdf


def erfc(ns: Any, x: Any) -> Any:
    """The complementary error function 1 - erf(x) of backend array `x`, elementwise, in x's
    float dtype (float64 for other dtypes), without cancellation for large x: float64 keeps
    ~1e-15 relative accuracy until erfc underflows near x = 27.3; float32 and float16 are within
    1 ulp of the exact value rounded. erfc(-inf) = 2, erfc(inf) = 0, NaN stays NaN."""
    return _blockwise(ns, x, _erfc_block, _erfc_single_block)
