"""Compute the coefficient tables of gpugrad/backend/erf_table.py with mpmath, reproducibly.

    python tools/erf_table.py            # rewrite gpugrad/backend/erf_table.py
    python tools/erf_table.py --check    # exit 1 if the committed table differs from a fresh one

The table splits a = |x| in [0, 28) into rows: [0, 1/8), then ROW_BITS bits of mantissa per
binade ([1/8, 9/64), [9/64, 10/64), ..., [26, 28)), so a row's index is the top bits of a's
float64 encoding and its width is at most 1/16 of its centre. Each row holds one polynomial in
s = (a - centre) / half-width, s in [-1, 1]:

* below SMALL_BELOW: erf(a)/a, so erf(x) = x·p(s) keeps full relative accuracy for tiny x;
* from SMALL_BELOW on: a·erfcx(a) = a·exp(a²)·erfc(a), which tends to 1/√π and varies slowly,
  so erfc(a) = p(s)/a·exp(-a²) without cancellation out to where erfc underflows.

The rows hold polynomials of degree DEGREE (~1e-16 relative, for float64 results). Each
interpolates its function at the degree+1 Chebyshev points of the row (close to the best uniform
fit), solved in 50-digit arithmetic and rounded once to float64. The script prints the table's
worst relative error, measured on a grid in each row with the rounded coefficients.

float32 and float16 erf is evaluated in float32 arithmetic, as tanh of a rational:

* ERF32: erf(x) = tanh(u) with u = atanh(erf(x)) = c + c·P(c²)/Q(c²), c = x clipped to ±ERF32_END
  (erf and the tanh round to ±1 there), degrees 3/3, Q monic. P/Q + 1 approximates
  g(z) = atanh(erf(√z))/√z on z in [0, ERF32_END²]. A relative error δ of g moves erf by
  (1 - erf²)·u/erf·δ relative, so the fit minimises that weighted error (Remez exchange on a
  dense grid, all in DIGITS-digit arithmetic): far out, where erf is within a float32 ulp of 1,
  g needs little accuracy, and a 3/3 rational reaches 3e-9 where a polynomial would need degree 9.
  The +c keeps the rounding errors of P/Q (~0.1 of u near 0) out of most of u;
* NORMAL32: the same rational rescaled for Φ(x) = (1 + erf(x/√2))/2 = (1 + tanh(c·P/Q))/2 with
  c = x clipped to ±NORMAL32_END = ERF32_END·√2 (GELU's CDF: one multiplication fewer per element).

Their coefficients are rounded to float32 (what float32 arithmetic uses); the printed worst
errors are those of the rounded coefficients. The errors of the float32 evaluation itself are
measured by `--sweep` over every float32 in [0, ERF32_END] (a few minutes; needs gpugrad).

erfc for float32 and float16 still needs only ~1e-8 relative and comes from rationals evaluated in
float64 without a table (no gathers), each P(z)/Q(z) with q0 = 1 interpolating its function at the
n+m+1 Chebyshev points of its range (rational interpolation: not the best fit, but within a small
factor of it here):

* ERFC32: erfcx(a) = exp(a²)·erfc(a) in z = a on [ERFC32_START, ERFC32_END] (degrees 6/6):
  erfc(a) = exp(-a²)·P/Q; erfc(10.5) ~ 1e-49 is 0 in float32;
* ERFC32_SMALL: erf(x)/x in z = x² on [0, ERFC32_START²], a polynomial (degree 4, Q = 1) for
  erfc(x) = 1 - x·P below ERFC32_START.

The script also checks that each Q stays positive on its range (no pole).
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mpmath as mp

ROW_BITS = 3  # rows per binade: 2**ROW_BITS
FIRST_BINADE = -3  # row 0 is [0, 2**FIRST_BINADE); binades start there
END = 28  # rows stop here: erfc(27.3) is below the smallest float64 subnormal
SMALL_BELOW = 0.5  # erf(a)/a below, a·erfcx(a) from here on (a binade boundary)
DEGREE = 9  # of the rows' polynomials
ERF32_END = 5  # u = atanh(erf(5)) = 13.9: tanh of it is 1 in any float32 libm
ERF32_DEGREES = (3, 3)  # of P and Q
MINIMAX_GRID = 2000  # points of the Remez exchange's grid
ERFC32_START = 0.5
ERFC32_END = 10.5
ERFC32_DEGREES = (6, 6)
ERFC32_SMALL_DEGREES = (4, 0)
GRID = 2000  # points per rational range where its error is measured
DIGITS = 50
TARGET = Path(__file__).resolve().parent.parent / "gpugrad" / "backend" / "erf_table.py"


def row_bounds() -> list[tuple[mp.mpf, mp.mpf]]:
    """(low, high) of every row, in order."""
    rows = [(mp.mpf(0), mp.mpf(2) ** FIRST_BINADE)]
    binade = FIRST_BINADE
    while rows[-1][1] < END:
        step = mp.mpf(2) ** (binade - ROW_BITS)
        start = mp.mpf(2) ** binade
        rows += [(start + i * step, start + (i + 1) * step) for i in range(2**ROW_BITS)]
        binade += 1
    return [(lo, hi) for lo, hi in rows if lo < END]


def target(a: mp.mpf, small: bool) -> mp.mpf:
    """The function a row approximates at a: erf(a)/a (small rows) or a·erfcx(a)."""
    if small:
        return mp.erf(a) / a if a != 0 else 2 / mp.sqrt(mp.pi)
    return a * mp.erfc(a) * mp.exp(a * a)


def fit_row(lo: mp.mpf, hi: mp.mpf, degree: int) -> tuple[list[mp.mpf], mp.mpf]:
    """The row's (centre, 1/half-width, c0..c_degree) and its worst relative error."""
    small = hi <= SMALL_BELOW
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    nodes = [mp.cos(mp.pi * (j + mp.mpf(0.5)) / (degree + 1)) for j in range(degree + 1)]
    vandermonde = mp.matrix([[s**i for i in range(degree + 1)] for s in nodes])
    values = mp.matrix([target(centre + half * s, small) for s in nodes])
    coefficients = list(mp.lu_solve(vandermonde, values))
    worst = mp.mpf(0)
    for j in range(101):
        s = mp.mpf(j) / 50 - 1
        # The polynomial with its float64-rounded coefficients, evaluated exactly.
        p = sum(mp.mpf(float(c)) * s**i for i, c in enumerate(coefficients))
        worst = max(worst, abs(p / target(centre + half * s, small) - 1))
    return [centre, 1 / half, *coefficients], worst


def erf_over_x(z: mp.mpf) -> mp.mpf:
    """erf(x)/x at z = x² (2/√π at 0): the function ERFC32_SMALL approximates."""
    x = mp.sqrt(z)
    return mp.erf(x) / x if z != 0 else 2 / mp.sqrt(mp.pi)


def erfcx(a: mp.mpf) -> mp.mpf:
    """exp(a²)·erfc(a): the function ERFC32 approximates."""
    return mp.erfc(a) * mp.exp(a * a)


def _value(coefficients: list[mp.mpf], z: mp.mpf) -> mp.mpf:
    """Σ c_i·z^i with the coefficients rounded to float64, evaluated exactly."""
    return sum(mp.mpf(float(c)) * z**i for i, c in enumerate(coefficients))


def fit_rational(
    function: Callable[[mp.mpf], mp.mpf], lo: mp.mpf, hi: mp.mpf, degrees: tuple[int, int]
) -> tuple[list[mp.mpf], list[mp.mpf], mp.mpf]:
    """(P, Q, worst relative error) of the rational P/Q (q0 = 1) interpolating `function` at
    the Chebyshev points of [lo, hi], the error measured on GRID + 1 points with the rounded
    coefficients. Raises ValueError if Q is not positive on the range (a pole)."""
    n, m = degrees
    count = n + m + 1
    nodes = [
        (lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (j + mp.mpf(0.5)) / count)
        for j in range(count)
    ]
    # P(z) - f(z)·(Q(z) - 1) = f(z): linear in p0..pn, q1..qm.
    matrix = mp.matrix(count, count)
    values = mp.matrix(count, 1)
    for r, z in enumerate(nodes):
        f = function(z)
        for i in range(n + 1):
            matrix[r, i] = z**i
        for j in range(1, m + 1):
            matrix[r, n + j] = -f * z**j
        values[r] = f
    solution = mp.lu_solve(matrix, values)
    p = [solution[i] for i in range(n + 1)]
    q = [mp.mpf(1)] + [solution[n + j] for j in range(1, m + 1)]
    worst = mp.mpf(0)
    for j in range(GRID + 1):
        z = lo + (hi - lo) * j / GRID
        denominator = _value(q, z)
        if denominator <= 0:
            raise ValueError(f"Q has a pole in [{lo}, {hi}]: Q({z}) = {denominator}")
        worst = max(worst, abs(_value(p, z) / denominator / function(z) - 1))
    return p, q, worst


def rationals() -> dict[str, tuple[list[mp.mpf], list[mp.mpf], mp.mpf]]:
    """The float64-evaluated rationals of float32 erfc (and its polynomial) by name: (P, Q,
    worst relative error)."""
    return {
        "ERFC32": fit_rational(erfcx, mp.mpf(ERFC32_START), mp.mpf(ERFC32_END), ERFC32_DEGREES),
        "ERFC32_SMALL": fit_rational(
            erf_over_x, mp.mpf(0), mp.mpf(ERFC32_START) ** 2, ERFC32_SMALL_DEGREES
        ),
    }


def atanh_erf_over_x(z: mp.mpf) -> mp.mpf:
    """g(z) = atanh(erf(x))/x at z = x² (2/√π at 0): u/x of ERF32."""
    x = mp.sqrt(z)
    return mp.atanh(mp.erf(x)) / x if z != 0 else 2 / mp.sqrt(mp.pi)


def erf_sensitivity(z: mp.mpf) -> mp.mpf:
    """How much a relative error of g(z) moves erf(x) = tanh(x·g(z)), relative: (1 - t²)·u/t
    with t = erf(x), u = atanh(t) (1 at 0, ~1e-8 at x = 4)."""
    if z == 0:
        return mp.mpf(1)
    t = mp.erf(mp.sqrt(z))
    return (1 - t * t) * mp.atanh(t) / t


def _alternating_extrema(errors: list[mp.mpf]) -> list[int]:
    """The index of the largest |error| in each run of one sign, in order."""
    extrema, k = [], 0
    while k < len(errors):
        sign, best = errors[k] >= 0, k
        while k < len(errors) and (errors[k] >= 0) == sign:
            best = k if abs(errors[k]) > abs(errors[best]) else best
            k += 1
        extrema.append(best)
    return extrema


def fit_minimax(
    function: Callable[[mp.mpf], mp.mpf],
    weight: Callable[[mp.mpf], mp.mpf],
    lo: mp.mpf,
    hi: mp.mpf,
    degrees: tuple[int, int],
) -> tuple[list[mp.mpf], list[mp.mpf], mp.mpf]:
    """(P, Q, worst weighted error) of the rational P/Q (q0 = 1) that minimises the largest
    weight(z)·|P/Q - f|/|f| over [lo, hi], by Remez exchange on a grid of MINIMAX_GRID + 1
    Chebyshev-spaced points. Each step solves P(z_i) - f_i·Q(z_i) = ±E·Q'(z_i)·f_i/weight_i at
    n + m + 2 reference points, Q' the previous step's Q (repeated so Q' settles), then moves the
    reference to the error's alternating extrema, until no error exceeds |E| by 1e-6."""
    n, m = degrees
    count = n + m + 2
    grid = [
        lo + (hi - lo) * (1 - mp.cos(mp.pi * k / MINIMAX_GRID)) / 2 for k in range(MINIMAX_GRID + 1)
    ]
    values = [function(z) for z in grid]
    scales = [weight(z) / f for z, f in zip(grid, values)]  # weight of the error of P/Q itself
    reference = [
        int(mp.nint(MINIMAX_GRID * (1 - mp.cos(mp.pi * (i + mp.mpf(0.5)) / count)) / 2))
        for i in range(count)
    ]
    previous_q = [mp.mpf(1)] * count
    for _ in range(50):
        for _ in range(6):
            matrix, rhs = mp.matrix(count, count), mp.matrix(count, 1)
            for r, k in enumerate(reference):
                z = grid[k]
                for i in range(n + 1):
                    matrix[r, i] = z**i
                for j in range(1, m + 1):
                    matrix[r, n + j] = -values[k] * z**j
                matrix[r, count - 1] = (-1) ** (r + 1) * previous_q[r] / scales[k]
                rhs[r] = values[k]
            solution = mp.lu_solve(matrix, rhs)
            p = [solution[i] for i in range(n + 1)]
            q = [mp.mpf(1)] + [solution[n + j] for j in range(1, m + 1)]
            level = abs(solution[count - 1])
            previous_q = [_exact(q, grid[k]) for k in reference]
        errors = [s * (_exact(p, z) / _exact(q, z) - f) for z, f, s in zip(grid, values, scales)]
        worst = max(abs(e) for e in errors)
        extrema = _alternating_extrema(errors)
        if worst <= level * (1 + mp.mpf("1e-6")) or len(extrema) < count:
            break
        while len(extrema) > count:  # drop the smaller end until n + m + 2 remain
            extrema.pop(0 if abs(errors[extrema[0]]) < abs(errors[extrema[-1]]) else -1)
        reference = extrema
    if min(_exact(q, z) for z in grid) <= 0:
        raise ValueError(f"Q has a pole in [{lo}, {hi}]")
    return p, q, worst


def _exact(coefficients: list[mp.mpf], z: mp.mpf) -> mp.mpf:
    """Σ c_i·z^i, exactly as given (Horner in mpmath)."""
    total = mp.mpf(0)
    for c in reversed(coefficients):
        total = total * z + c
    return total


def to_float32(value: mp.mpf) -> mp.mpf:
    """`value` rounded to the nearest float32 (via float64: the double rounding cannot matter
    for coefficients, which are not near a float32 tie)."""
    return mp.mpf(struct.unpack("f", struct.pack("f", float(value)))[0])


def _monic_float32(p: list[mp.mpf], q: list[mp.mpf]) -> tuple[list[mp.mpf], list[mp.mpf]]:
    """P and Q divided by Q's leading coefficient (so Horner starts with z + q_{m-1}), rounded
    to float32."""
    lead = q[-1]
    return [to_float32(c / lead) for c in p], [to_float32(c / lead) for c in q]


def float32_rationals() -> dict[str, tuple[list[mp.mpf], list[mp.mpf], mp.mpf]]:
    """ERF32 and NORMAL32 by name: (P, Q, worst weighted relative error of erf resp. of
    2Φ - 1 = erf(x/√2)) with the float32 coefficients, measured on the fit's grid."""
    hi = mp.mpf(ERF32_END) ** 2
    p, q, _ = fit_minimax(atanh_erf_over_x, erf_sensitivity, mp.mpf(0), hi, ERF32_DEGREES)
    # erf: u = c + c·(P - Q)/Q. Φ: u(x) = x/√2·g(x²/2) = c·P(z/2)/(√2·Q(z/2)) with z = c².
    erf_p, erf_q = _monic_float32([a - b for a, b in zip(p, q)], q)
    halves = [mp.mpf(2) ** -i for i in range(len(p))]
    normal_p, normal_q = _monic_float32(
        [c * h / mp.sqrt(2) for c, h in zip(p, halves)], [c * h for c, h in zip(q, halves)]
    )
    grid = [hi * k / GRID for k in range(GRID + 1)]

    def worst(g_approximation: Callable[[mp.mpf], mp.mpf]) -> mp.mpf:
        return max(
            erf_sensitivity(z) * abs(g_approximation(z) / atanh_erf_over_x(z) - 1) for z in grid
        )

    root2 = mp.sqrt(2)
    return {
        "ERF32": (erf_p, erf_q, worst(lambda z: 1 + _exact(erf_p, z) / _exact(erf_q, z))),
        "NORMAL32": (
            normal_p,
            normal_q,
            worst(lambda z: root2 * _exact(normal_p, 2 * z) / _exact(normal_q, 2 * z)),
        ),
    }


def _numbers(values: list[mp.mpf], indent: str) -> list[str]:
    """Lines of float64 reprs, three per line."""
    numbers = [repr(float(v)) for v in values]
    return [f"{indent}{', '.join(numbers[i : i + 3])}," for i in range(0, len(numbers), 3)]


def render(rows: list[list[mp.mpf]], fitted: dict[str, tuple]) -> str:
    """The text of erf_table.py."""
    lines = [
        '"""Coefficient tables of gpugrad/backend/special_math.py, generated by',
        "tools/erf_table.py (mpmath; see that script for the method). Do not edit: rerun it.",
        "",
        "ROWS_FLOAT64[k] = (centre, 1/half-width, c0, c1, ...) of row k: p(s) = Σ c_i·s^i with",
        "s = (a - centre)/half-width, erf(a)/a below SMALL_BELOW and a·erfcx(a) from there on,",
        "accurate to ~1e-16 relative. <NAME>_P and <NAME>_Q = (c0, c1, ...) of rationals",
        "P(z)/Q(z). Evaluated in float32 (float32 coefficients, Q monic), with c = x clipped:",
        "ERF32 is atanh(erf(c))/c - 1 at z = c² for |c| <= ERF32_END, NORMAL32 is",
        "atanh(2Φ(c) - 1)/c at z = c² for |c| <= NORMAL32_END. Evaluated in float64: ERFC32 is",
        "exp(a²)·erfc(a) at z = a in [ERFC32_START, ERFC32_END], ERFC32_SMALL (P only) is",
        "erf(x)/x at z = x² for |x| <= ERFC32_START; within ~1e-8 relative.",
        '"""',
        "",
        f"ROW_BITS = {ROW_BITS}",
        f"FIRST_BINADE = {FIRST_BINADE}",
        f"END = {float(END)!r}",
        f"SMALL_BELOW = {float(SMALL_BELOW)!r}",
        f"ERF32_END = {float(ERF32_END)!r}",
        f"NORMAL32_END = {float(to_float32(ERF32_END * mp.sqrt(2)))!r}",
        f"ERFC32_START = {float(ERFC32_START)!r}",
        f"ERFC32_END = {float(ERFC32_END)!r}",
        "",
        "# fmt: off",
    ]
    for name, (p, q, _) in fitted.items():
        parts = (("P", p), ("Q", q)) if len(q) > 1 else (("P", p),)  # a polynomial: no Q
        for part, coefficients in parts:
            lines += [f"{name}_{part} = (", *_numbers(coefficients, "    "), ")"]
    lines.append("ROWS_FLOAT64 = (")
    for row in rows:
        numbers = [repr(float(v)) for v in row]
        lines.append(f"    ({', '.join(numbers[:2])},")
        lines += _numbers(row[2:], "     ")
        lines[-1] = lines[-1][:-1] + "),"
    lines += [")", "# fmt: on", ""]
    return "\n".join(lines)


def sweep() -> int:
    """Print how far gpugrad's float32 erf (the NumPy backend's own code, not SciPy) is from the
    float64 one rounded to float32, in ulps, over every float32 in [0, ERF32_END] (erf is odd),
    and how far its float32 Φ (GELU's CDF) is from the float64 Φ, in units of 2^-24 (half an
    ulp of 1: Φ = (1 + erf)/2 is as exact as that at best), over every float32 in
    [-NORMAL32_END, NORMAL32_END] (beyond, both are 0 resp. 1)."""
    sys.path.insert(0, str(TARGET.parents[2]))
    import numpy as np

    from gpugrad.backend import get_backend, special_math

    special_math.scipy_special = lambda: None
    cpu = get_backend("cpu")

    def chunks(end: float):
        last = int(np.float32(end).view(np.int32))
        for first in range(0, last + 1, 1 << 24):
            yield np.arange(first, min(first + (1 << 24), last + 1), dtype=np.int32).view(
                np.float32
            )

    start, counts = time.perf_counter(), np.zeros(8, np.int64)
    for x in chunks(ERF32_END):
        want = cpu.erf(x.astype(np.float64)).astype(np.float32)
        distance = np.abs(cpu.erf(x).view(np.int32).astype(np.int64) - want.view(np.int32))
        counts += np.bincount(np.minimum(distance, 7), minlength=8)
    share = ", ".join(f"{k}: {c}" for k, c in enumerate(counts) if c)
    print(f"erf float32, values k ulps from the rounded float64 erf: {share}", end=" ")
    print(f"[{time.perf_counter() - start:.0f} s]")
    start, worst = time.perf_counter(), 0.0
    for x in chunks(float(to_float32(ERF32_END * mp.sqrt(2)))):
        for signed in (x, -x):
            error = np.abs(cpu.normal_cdf(signed) - cpu.normal_cdf(signed.astype(np.float64)))
            worst = max(worst, float(error.max()) * 2**24)
    print(f"normal_cdf float32: largest error {worst:.3g} x 2^-24", end=" ")
    print(f"[{time.perf_counter() - start:.0f} s]")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed table")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="measure gpugrad's float32 erf and Φ on every float32",
    )
    args = parser.parse_args(argv)
    if args.sweep:
        return sweep()
    mp.mp.dps = DIGITS
    rows, worst = [], mp.mpf(0)
    for lo, hi in row_bounds():
        row, error = fit_row(lo, hi, DEGREE)
        rows.append(row)
        worst = max(worst, error)
    print(f"ROWS_FLOAT64: {len(rows)} rows of degree {DEGREE}, worst relative error", end=" ")
    print(mp.nstr(worst, 3))
    fitted = {**float32_rationals(), **rationals()}
    for name, (p, q, error) in fitted.items():
        degrees = f"{len(p) - 1}/{len(q) - 1}"
        print(f"{name}: P/Q of degrees {degrees}, worst relative error {mp.nstr(error, 3)}")
    text = render(rows, fitted)
    if args.check:
        same = TARGET.read_text() == text
        print("the committed table matches" if same else f"{TARGET} differs from a fresh table")
        return 0 if same else 1
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
