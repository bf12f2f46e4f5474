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

inline float float_from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float fmaf(float a, float b, float c) {
#if defined(__FMA__) || defined(__aarch64__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

// e^y in float32 arithmetic for float32 y <= 0 (or NaN), within an ulp (measured 0.93 over
// [-87.3, 0]; NumPy's float32 exp 2.4), twice as many elements per vector as float64 math. y = k·ln2 + r with ln2 in two parts (k·hi exact),
// |r| <= ln2/2, e^r from its Taylor series to r^7, 2^k from the exponent bits. Results below
// the smallest normal float32 (y < -87.3) are flushed to 0, where NumPy gives subnormals:
// an absolute difference under 1.2e-38.
inline float exp_nonpositive_f32(float y) {
  const bool tiny = y < -87.33654f;
  y = tiny ? -87.33654f : y;
  const float shifter = 0x1.8p23f;  // adding it rounds to an integer
  const float t = y * 1.44269504f + shifter;
  const float k = t - shifter;
  const float r = (y - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = fmaf(p, r, 1.0f / 720.0f);
  p = fmaf(p, r, 1.0f / 120.0f);
  p = fmaf(p, r, 1.0f / 24.0f);
  p = fmaf(p, r, 1.0f / 6.0f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  const float scale = float_from_bits(std::uint32_t(int(k) + 127) << 23);
  const float e = p * scale;
  return tiny ? 0.0f : e;
}

}  // namespace gg_cpu
