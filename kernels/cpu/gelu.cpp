// Exact GELU on float32 arrays for the CPU, one pass each way: the NumPy backend's compiled path
// (gpugrad/backend/native.py builds this file with the host's C++ compiler on first use).
//
// Each function is its NumPy twin operation by operation, in one loop the compiler vectorises
// instead of a score of array passes:
//   forward  = special_math._gelu_single: c = x clipped to ±end, u = c·P(c²)/Q(c²) (float32,
//              the twin's Horner order, Q monic), Φ = (tanh(u) + 1)·0.5, gelu = x·Φ;
//   backward = activation_math._gelu_grad_in_place: g·(Φ + x·e^(-x²/2)·(1/√(2π))).
// The functions NumPy calls, tanh and exp, are written here so that they vectorise: e^y in
// float64 (a polynomial for e^r, 2^k from the exponent bits) rounded once to float32, and tanh(u)
// as the float32 quotient (e - 1)/(e + 1) of e = e^2u, where NumPy's float32 tanh and exp are
// within an ulp. So results agree with the twin's to a few ulps (tests/test_native.py checks
// it), and Φ is still exactly 0 and 1 in the tails. Built with -ffp-contract=off: no float32
// product is fused into a following add, as in NumPy (the float64 polynomial asks for FMAs).
#include <cstdint>
#include <cstring>

namespace {

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

// tanh of a float32 value: (e - 1)/(e + 1) in float32 with e = e^2u rounded once; its error is
// a fraction of a float32 ulp of 1, which is what it is added to next. Beyond |u| = 20 tanh is
// ±1 in float32, and e stays finite.
inline float tanh_rounded(float u) {
  const float e = float(exp_in_range(2.0 * clip(double(u), -20.0, 20.0)));
  return (e - 1.0f) / (e + 1.0f);
}

// e^w for float32 w <= 0 (or NaN), rounded to float32: below -110 it is 0 in float32.
inline float exp_rounded(float w) { return float(exp_in_range(clip(double(w), -110.0, 0.0))); }

}  // namespace

extern "C" {

// out[i] = gelu(x[i]) = x·Φ(x), cdf[i] = Φ(x[i]), i < n. p and q: the twin's NORMAL32 rational
// (c0..c3, q3 = 1), end its clipping bound.
void gg_gelu_forward_f32(const float* __restrict x, float* __restrict out,
                         float* __restrict cdf, long long n, const float* __restrict p,
                         const float* __restrict q, float end) {
  const float p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
  const float q0 = q[0], q1 = q[1], q2 = q[2];
  for (long long i = 0; i < n; ++i) {
    const float c = clip(x[i], -end, end);
    const float z = c * c;
    float top = z * p3;
    top = top + p2;
    top = top * z;
    top = top + p1;
    top = top * z;
    top = top + p0;
    float bottom = z + q2;
    bottom = bottom * z;
    bottom = bottom + q1;
    bottom = bottom * z;
    bottom = bottom + q0;
    const float u = (top / bottom) * c;
    const float phi = (tanh_rounded(u) + 1.0f) * 0.5f;
    cdf[i] = phi;
    out[i] = x[i] * phi;
  }
}

// dx[i] = g[i]·(Φ(x) + x·φ(x)) from the forward's cdf[i] = Φ(x[i]), i < n; inv_sqrt_2pi is
// 1/√(2π) rounded to float32.
void gg_gelu_backward_f32(const float* __restrict g, const float* __restrict x,
                          const float* __restrict cdf, float* __restrict dx, long long n,
                          float inv_sqrt_2pi) {
  for (long long i = 0; i < n; ++i) {
    float w = x[i] * x[i];
    w = w * -0.5f;
    w = exp_rounded(w);
    w = w * x[i];
    w = w * inv_sqrt_2pi;
    w = w + cdf[i];
    dx[i] = w * g[i];
  }
}

}  // extern "C"
