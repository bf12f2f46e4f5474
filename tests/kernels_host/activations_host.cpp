// Host build of kernels/activations.cuh for tests/test_kernels.py: array-at-a-time extern "C"
// wrappers that ctypes can call, so the header's math is compared with the NumPy twins on a CPU.
//
// name: an activation name as in activation_math.FORWARD; p0, p1: its param (slope, alpha,
// or beta and threshold for softplus). Returns 0, or -1 for an unknown name.
// Two deliberately wrong variants ("wrong_sigmoid": sigmoid' = s(1+s), "wrong_gelu_tanh": cubic
// 0.0447) exist only so the test can show that its comparison catches a wrong formula.
//
// Half precision: gg_forward_f16 / gg_backward_f16 take binary16 arrays (unsigned short bits)
// and float params, and run each element as the f16 kernels do (gg::load, the float math,
// gg::store); gg_half_to_float / gg_float_to_half convert whole arrays, and two wrong
// conversions (truncation; ties rounded away from zero) show that the test catches them.
#include <cstring>

#include "activations.cuh"

namespace {

// E is the array element type, T the math type (E itself, or float for binary16).
template <typename T, typename E>
int forward(const char* name, long long n, const E* x, E* out, T p0, T p1) {
  auto map = [&](auto f) {
    for (long long i = 0; i < n; ++i) gg::store(out[i], f(gg::load(x[i])));
    return 0;
  };
  if (!std::strcmp(name, "relu")) return map([](T v) { return gg::relu_fwd(v); });
  if (!std::strcmp(name, "leaky_relu")) return map([&](T v) { return gg::leaky_relu_fwd(v, p0); });
  if (!std::strcmp(name, "elu")) return map([&](T v) { return gg::elu_fwd(v, p0); });
  if (!std::strcmp(name, "gelu")) return map([](T v) { return gg::gelu_fwd(v); });
  if (!std::strcmp(name, "gelu_tanh")) return map([](T v) { return gg::gelu_tanh_fwd(v); });
  if (!std::strcmp(name, "silu")) return map([](T v) { return gg::silu_fwd(v); });
  if (!std::strcmp(name, "sigmoid")) return map([](T v) { return gg::sigmoid_fwd(v); });
  if (!std::strcmp(name, "tanh")) return map([](T v) { return gg::tanh_fwd(v); });
  if (!std::strcmp(name, "softplus")) return map([&](T v) { return gg::softplus_fwd(v, p0, p1); });
  if (!std::strcmp(name, "wrong_gelu_tanh")) {
    return map([](T v) { return v * (gg::fn::tanh((v + T(0.0447) * v * v * v) *
                                                  T(gg::GELU_TANH_SCALE)) + T(1)) * T(0.5); });
  }
  return -1;
}

// g: dL/dout; x, out: the forward's input and output (each backward reads what it needs).
template <typename T, typename E>
int backward(const char* name, long long n, const E* g, const E* x, const E* out, E* dx, T p0,
             T p1) {
  auto map = [&](auto f) {
    for (long long i = 0; i < n; ++i) {
      gg::store(dx[i], f(gg::load(g[i]), gg::load(x[i]), gg::load(out[i])));
    }
    return 0;
  };
  if (!std::strcmp(name, "relu")) return map([](T gi, T, T o) { return gg::relu_bwd(gi, o); });
  if (!std::strcmp(name, "leaky_relu")) {
    return map([&](T gi, T xi, T) { return gg::leaky_relu_bwd(gi, xi, p0); });
  }
  if (!std::strcmp(name, "elu")) {
    return map([&](T gi, T xi, T o) { return gg::elu_bwd(gi, xi, o, p0); });
  }
  if (!std::strcmp(name, "gelu")) return map([](T gi, T xi, T) { return gg::gelu_bwd(gi, xi); });
  if (!std::strcmp(name, "gelu_tanh")) {
    return map([](T gi, T xi, T) { return gg::gelu_tanh_bwd(gi, xi); });
  }
  if (!std::strcmp(name, "silu")) return map([](T gi, T xi, T) { return gg::silu_bwd(gi, xi); });
  if (!std::strcmp(name, "sigmoid")) {
    return map([](T gi, T, T o) { return gg::sigmoid_bwd(gi, o); });
  }
  if (!std::strcmp(name, "tanh")) return map([](T gi, T, T o) { return gg::tanh_bwd(gi, o); });
  if (!std::strcmp(name, "softplus")) {
    return map([&](T gi, T xi, T) { return gg::softplus_bwd(gi, xi, p0, p1); });
  }
  if (!std::strcmp(name, "wrong_sigmoid")) {
    return map([](T gi, T, T o) { return gi * o * (T(1) + o); });
  }
  return -1;
}

float from_bits(unsigned int u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Wrong on purpose: drops the 13 low mantissa bits of a normal-range float before rounding, so
// normal halves are truncated toward zero instead of rounded to nearest.
unsigned short float_to_half_truncating(float f) {
  const unsigned int u = gg::float_bits(f);
  const unsigned int a = u & 0x7fffffffu;
  if (a >= 0x38800000u && a < 0x7f800000u) return gg::float_to_half(from_bits(u & ~0x1fffu));
  return gg::float_to_half(f);
}

// Wrong on purpose, and subtler: an exact tie between two normal halves rounds away from zero
// (as C's round()), not to even; nothing else changes.
unsigned short float_to_half_ties_away(float f) {
  const unsigned int u = gg::float_bits(f);
  const unsigned int a = u & 0x7fffffffu;
  if (a >= 0x38800000u && a < 0x7f800000u && (u & 0x1fffu) == 0x1000u) {
    return gg::float_to_half(from_bits(u + 1));  // just past the tie: rounds away
  }
  return gg::float_to_half(f);
}

}  // namespace

extern "C" {
int gg_forward_f64(const char* name, long long n, const double* x, double* out, double p0,
                   double p1) {
  return forward<double>(name, n, x, out, p0, p1);
}
int gg_forward_f32(const char* name, long long n, const float* x, float* out, float p0,
                   float p1) {
  return forward<float>(name, n, x, out, p0, p1);
}
int gg_backward_f64(const char* name, long long n, const double* g, const double* x,
                    const double* out, double* dx, double p0, double p1) {
  return backward<double>(name, n, g, x, out, dx, p0, p1);
}
int gg_backward_f32(const char* name, long long n, const float* g, const float* x,
                    const float* out, float* dx, float p0, float p1) {
  return backward<float>(name, n, g, x, out, dx, p0, p1);
}
int gg_forward_f16(const char* name, long long n, const unsigned short* x, unsigned short* out,
                   float p0, float p1) {
  return forward<float>(name, n, x, out, p0, p1);
}
int gg_backward_f16(const char* name, long long n, const unsigned short* g,
                    const unsigned short* x, const unsigned short* out, unsigned short* dx,
                    float p0, float p1) {
  return backward<float>(name, n, g, x, out, dx, p0, p1);
}

void gg_half_to_float(long long n, const unsigned short* h, float* f) {
  for (long long i = 0; i < n; ++i) f[i] = gg::half_to_float(h[i]);
}
// variant: 0 the header's conversion, 1 truncating, 2 ties away from zero (both wrong).
void gg_float_to_half(long long n, const float* f, unsigned short* h, int variant) {
  for (long long i = 0; i < n; ++i) {
    h[i] = variant == 1   ? float_to_half_truncating(f[i])
           : variant == 2 ? float_to_half_ties_away(f[i])
                          : gg::float_to_half(f[i]);
  }
}
}
