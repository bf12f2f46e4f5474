// Elementwise math shared by the CPU kernels of this folder, written so that loops calling it
// vectorise (no library calls, no branches): e^y from a polynomial and the exponent bits, and a
// NaN-keeping clip.
#pragma once

#include <cstdint>
#include <cstring>

namespace gg_cpu {

// a·b + c, one rounding where the CPU has FMA (the polynomial below is in float64, far more
// precise than the float32 results need either way).
inline double fma(double a, double b, double c) {
#if defined(__FMA__) || defined(__aarch64__)
  return __builtin_fma(a, b, c);
#else
  return a * b + c;
#endif
}

inline double from_bits(std::uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

inline std::uint64_t to_bits(double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

// e^y for y in [-700, 700] (NaN stays NaN), to ~2e-10 relative (a float32 ulp is 6e-8):
// y = k·ln2 + r, |r| <= ln2/2, e^r from its Taylor series to r^8, 2^k written straight into a
// double's exponent bits.
inline double exp_in_range(double y) {
  const double shifter = 0x1.8p52;  // adding it rounds to an integer held in the low bits
  const double t = y * 0x1.71547652b82fep0 + shifter;
  const double k = t - shifter;
  const double r = (y - k * 0x1.62e42fefa39efp-1) - k * 0x1.abc9e3b39803fp-56;
  double p = 1.0 / 40320.0;
  p = fma(p, r, 1.0 / 5040.0);
  p = fma(p, r, 1.0 / 720.0);
  p = fma(p, r, 1.0 / 120.0);
  p = fma(p, r, 1.0 / 24.0);
  p = fma(p, r, 1.0 / 6.0);
  p = fma(p, r, 0.5);
  p = fma(p, r, 1.0);
  p = fma(p, r, 1.0);
  // The low 12 bits of t's encoding are k (two's complement): k + 1023 is 2^k's exponent field.
  return p * from_bits((to_bits(t) + 1023) << 52);
}

// a clipped to [lo, hi], NaN kept (as np.clip): every comparison with NaN is false.
// Two plain selects, which the compiler turns into vector blends.
template <typename T>
inline T clip(T a, T lo, T hi) {
  a = a < lo ? lo : a;
  return a > hi ? hi : a;
}

// e^y of a float32 value y <= 0 (or NaN), rounded to float32: below -110 it is 0 in float32.
inline float exp_of_nonpositive(float y) {
  return float(exp_in_range(clip(double(y), -110.0, 0.0)));
}

}  // namespace gg_cpu
