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

float32 and float16 results need ~1e-8 relative, not 1e-16, and come from two rationals without
a table (no gathers), each P(z)/Q(z) with q0 = 1 interpolating its function at the n+m+1
Chebyshev points of its range (rational interpolation: not the best fit, but within a small factor
of it here):

* ERF32: erf(x)/x in z = x² on [0, ERF32_END²] (degrees 7/7): erf(x) = x·P/Q, odd and exact at 0;
  at x = ERF32_END = 4, erf is 1 - 1.5e-8, which rounds to 1 in float32 and float16;
* ERFC32: erfcx(a) = exp(a²)·erfc(a) in z = a on [ERFC32_START, ERFC32_END] (degrees 6/6):
  erfc(a) = exp(-a²)·P/Q; erfc(10.5) ~ 1e-49 is 0 in float32;
* ERFC32_SMALL: erf(x)/x in z = x² on [0, ERFC32_START²], a polynomial (degree 4, Q = 1) for
  erfc(x) = 1 - x·P below ERFC32_START, cheaper than ERF32 over the whole range.

The script also checks that each Q stays positive on its range (no pole).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import mpmath as mp

ROW_BITS = 3  # rows per binade: 2**ROW_BITS
FIRST_BINADE = -3  # row 0 is [0, 2**FIRST_BINADE); binades start there
END = 28  # rows stop here: erfc(27.3) is below the smallest float64 subnormal
SMALL_BELOW = 0.5  # erf(a)/a below, a·erfcx(a) from here on (a binade boundary)
DEGREE = 9  # of the rows' polynomials
ERF32_END = 4
ERF32_DEGREES = (7, 7)  # of P and Q
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
    """erf(x)/x at z = x² (2/√π at 0): the function ERF32 approximates."""
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
    """The float32 rationals (and polynomial) by name: (P, Q, worst relative error)."""
    return {
        "ERF32": fit_rational(erf_over_x, mp.mpf(0), mp.mpf(ERF32_END) ** 2, ERF32_DEGREES),
        "ERFC32": fit_rational(erfcx, mp.mpf(ERFC32_START), mp.mpf(ERFC32_END), ERFC32_DEGREES),
        "ERFC32_SMALL": fit_rational(
            erf_over_x, mp.mpf(0), mp.mpf(ERFC32_START) ** 2, ERFC32_SMALL_DEGREES
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
        "accurate to ~1e-16 relative. <NAME>_P and <NAME>_Q = (c0, c1, ...) of the float32",
        "rationals P(z)/Q(z): ERF32 is erf(x)/x at z = x² for |x| <= ERF32_END, ERFC32 is",
        "exp(a²)·erfc(a) at z = a in [ERFC32_START, ERFC32_END], ERFC32_SMALL (P only) is",
        "erf(x)/x at z = x² for |x| <= ERFC32_START; all within ~1e-8 relative.",
        '"""',
        "",
        f"ROW_BITS = {ROW_BITS}",
        f"FIRST_BINADE = {FIRST_BINADE}",
        f"END = {float(END)!r}",
        f"SMALL_BELOW = {float(SMALL_BELOW)!r}",
        f"ERF32_END = {float(ERF32_END)!r}",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed table")
    args = parser.parse_args(argv)
    mp.mp.dps = DIGITS
    rows, worst = [], mp.mpf(0)
    for lo, hi in row_bounds():
        row, error = fit_row(lo, hi, DEGREE)
        rows.append(row)
        worst = max(worst, error)
    print(f"ROWS_FLOAT64: {len(rows)} rows of degree {DEGREE}, worst relative error", end=" ")
    print(mp.nstr(worst, 3))
    fitted = rationals()
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
