// Host build of kernels/activations.cuh for tests/test_kernels.py: array-at-a-time extern "C"
// wrappers that ctypes can call, so the header's math is compared with the NumPy twins on a CPU.
//
// name: an activation name as in activation_math.FORWARD; p0, p1: its param (slope, alpha,
// or beta and threshold for softplus). Returns 0, or -1 for an unknown name.
// Two deliberately wrong variants ("wrong_sigmoid": sigmoid' = s(1+s), "wrong_gelu_tanh": cubic
// 0.0447) exist only so the test can show that its comparison catches a wrong formula.
#include <cstring>

#include "activations.cuh"

namespace {

template <typename T>
int forward(const char* name, long long n, const T* x, T* out, T p0, T p1) {
  auto map = [&](auto f) {
    for (long long i = 0; i < n; ++i) out[i] = f(x[i]);
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
template <typename T>
int backward(const char* name, long long n, const T* g, const T* x, const T* out, T* dx, T p0,
             T p1) {
  auto map = [&](auto f) {
    for (long long i = 0; i < n; ++i) dx[i] = f(g[i], x[i], out[i]);
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
}
