// Exact GELU on float32 arrays for the CPU, one pass each way: the NumPy backend's compiled path
// (gpugrad/backend/native.py builds this file with the host's C++ compiler on first use).
//
// Each function is its NumPy twin operation by operation, in one loop the compiler vectorises
// instead of a score of array passes:
//   forward  = special_math._gelu_single: c = x clipped to ±end, u = c·P(c²)/Q(c²) (float32,
//              the twin's Horner order, Q monic), Φ = (tanh(u) + 1)·0.5, gelu = x·Φ;
//   backward = activation_math._gelu_grad_in_place: g·(Φ + x·e^(-x²/2)·(1/√(2π))).
// The functions NumPy calls, tanh and exp, are fast_math.h's, which vectorise: tanh(u) as the
// float64 quotient (e - 1)/(e + 1) of e = e^2u, rounded once to float32, and the
// backward's e^(-x²/2) in float32 arithmetic (within an ulp; NumPy's float32 tanh and exp are
// within one and two). So results agree with the twin's to a few ulps (tests/test_native.py checks
// it), and Φ is still exactly 0 and 1 in the tails. Built with -ffp-contract=off: no float32
// product is fused into a following add, as in NumPy (the float64 polynomial asks for FMAs).
#include "fast_math.h"
#include "parallel.h"

namespace {

using gg_cpu::clip;
using gg_cpu::exp_in_range;
using gg_cpu::exp_nonpositive_f32;

// tanh of a float32 value, rounded once to float32: (e - 1)/(e + 1) with e = e^2u, all in
// float64 (~1e-15 absolute). Rounding e or the quotient to float32 first was measured to put
// Φ 1.67·2^-24 from the exact value at x = 0.738247, past the twin's 1.5. Beyond |u| = 20
// tanh is ±1 in float32, and e stays finite.
inline float tanh_rounded(float u) {
  const double e = exp_in_range(2.0 * clip(double(u), -20.0, 20.0));
  return float((e - 1.0) / (e + 1.0));
}


// Elements per part of a split loop: below two of them a call stays on one thread.
constexpr long long GRAIN = 1 << 15;

struct Rational {  // the twin's NORMAL32 P and Q (c0..c3, q3 = 1) and clipping bound
  float p0, p1, p2, p3, q0, q1, q2, end;
};

void forward_range(const float* __restrict x, float* __restrict out, float* __restrict cdf,
                   long long begin, long long end, const Rational& r) {
  const float p0 = r.p0, p1 = r.p1, p2 = r.p2, p3 = r.p3, q0 = r.q0, q1 = r.q1, q2 = r.q2;
  const float bound = r.end;
  for (long long i = begin; i < end; ++i) {
    const float c = clip(x[i], -bound, bound);
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

void backward_range(const float* __restrict g, const float* __restrict x,
                    const float* __restrict cdf, float* __restrict dx, long long begin,
                    long long end, float inv_sqrt_2pi) {
  for (long long i = begin; i < end; ++i) {
    float w = x[i] * x[i];
    w = w * -0.5f;
    w = exp_nonpositive_f32(w);
    w = w * x[i];
    w = w * inv_sqrt_2pi;
    w = w + cdf[i];
    dx[i] = w * g[i];
  }
}

}  // namespace

extern "C" {

// out[i] = gelu(x[i]) = x·Φ(x), cdf[i] = Φ(x[i]), i < n. p and q: the twin's NORMAL32 rational
// (c0..c3, q3 = 1), end its clipping bound.
void gg_gelu_forward_f32(const float* x, float* out, float* cdf, long long n, const float* p,
                         const float* q, float end) {
  const Rational r{p[0], p[1], p[2], p[3], q[0], q[1], q[2], end};
  gg_cpu::parallel_for(n, GRAIN, [&](long long begin, long long stop) {
    forward_range(x, out, cdf, begin, stop, r);
  });
}

// dx[i] = g[i]·(Φ(x) + x·φ(x)) from the forward's cdf[i] = Φ(x[i]), i < n; inv_sqrt_2pi is
// 1/√(2π) rounded to float32.
void gg_gelu_backward_f32(const float* g, const float* x, const float* cdf, float* dx,
                          long long n, float inv_sqrt_2pi) {
  gg_cpu::parallel_for(n, GRAIN, [&](long long begin, long long stop) {
    backward_range(g, x, cdf, dx, begin, stop, inv_sqrt_2pi);
  });
}

}  // extern "C"
