// Elementwise activation math: forward and fused backward, for float and double.
//
// These are the CUDA twins of gpugrad/backend/activation_math.py (FORWARD / BACKWARD). Each
// function is the NumPy formula transliterated operation by operation (same stable forms, same
// order, same constants), so the two agree to a few ulps and give NaN in the same places.
// Backward functions read what the NumPy backward reads: the saved input x, the saved output
// `out`, or both (elu), plus g = dL/dout.
//
// The same header compiles three ways: nvcc (kernels/activations.cu), NVRTC (what CuPy uses at
// run time; it has no standard headers) and a plain host C++ compiler (tests/kernels_host/, which
// checks this math against NumPy on a CPU). Half precision (math in float) is for later.
#pragma once

#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
// Host compiler: the CUDA qualifiers mean nothing here, and the math comes from libm.
#include <cmath>
#define __host__
#define __device__
#define __forceinline__ inline
#endif

namespace gg {

// Constants as Python's repr of the activation_math values, so float64 matches bit for bit and
// T(c) rounds to float32 the way NumPy casts a Python float next to a float32 array.
constexpr double SQRT_HALF = 0.7071067811865476;        // sqrt(0.5)
constexpr double INV_SQRT_2PI = 0.3989422804014327;     // 1/sqrt(2*pi)
constexpr double GELU_TANH_SCALE = 0.7978845608028654;  // sqrt(2/pi)
constexpr double GELU_TANH_CUBIC = 0.044715;
constexpr double GELU_TANH_CUBIC_3 = 0.134145;  // 3 * GELU_TANH_CUBIC, as Python computes it

// Overloads that pick the float function for float: on the host an unqualified exp(float)
// could resolve to the C double exp and silently compute in double.
namespace fn {
__host__ __device__ __forceinline__ float exp(float x) { return ::expf(x); }
__host__ __device__ __forceinline__ double exp(double x) { return ::exp(x); }
__host__ __device__ __forceinline__ float expm1(float x) { return ::expm1f(x); }
__host__ __device__ __forceinline__ double expm1(double x) { return ::expm1(x); }
__host__ __device__ __forceinline__ float log1p(float x) { return ::log1pf(x); }
__host__ __device__ __forceinline__ double log1p(double x) { return ::log1p(x); }
__host__ __device__ __forceinline__ float erf(float x) { return ::erff(x); }
__host__ __device__ __forceinline__ double erf(double x) { return ::erf(x); }
__host__ __device__ __forceinline__ float tanh(float x) { return ::tanhf(x); }
__host__ __device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
__host__ __device__ __forceinline__ float abs(float x) { return ::fabsf(x); }
__host__ __device__ __forceinline__ double abs(double x) { return ::fabs(x); }

// max(v, 0) that keeps NaN, like np.maximum (fmax would drop it).
template <typename T>
__host__ __device__ __forceinline__ T max0(T v) { return v < T(0) ? T(0) : v; }
}  // namespace fn

// --- forward: out = f(x, param) ------------------------------------------------------------

template <typename T>
__host__ __device__ __forceinline__ T relu_fwd(T x) { return fn::max0(x); }

template <typename T>
__host__ __device__ __forceinline__ T leaky_relu_fwd(T x, T slope) {
  return x > T(0) ? x : x * slope;
}

template <typename T>
__host__ __device__ __forceinline__ T elu_fwd(T x, T alpha) {
  // Only the taken branch runs, so expm1 never sees a large positive x.
  return x > T(0) ? x : fn::expm1(x) * alpha;
}

template <typename T>
__host__ __device__ __forceinline__ T sigmoid_fwd(T x) {
  // For x < 0 use e^x/(1+e^x) so that e^-x never overflows.
  const T z = fn::exp(-fn::abs(x));
  return x >= T(0) ? T(1) / (T(1) + z) : z / (T(1) + z);
}

template <typename T>
__host__ __device__ __forceinline__ T tanh_fwd(T x) { return fn::tanh(x); }

template <typename T>
__host__ __device__ __forceinline__ T silu_fwd(T x) { return x * sigmoid_fwd(x); }

template <typename T>
__host__ __device__ __forceinline__ T gelu_fwd(T x) {
  return x * (fn::erf(x * T(SQRT_HALF)) + T(1)) * T(0.5);
}

template <typename T>
__host__ __device__ __forceinline__ T gelu_tanh_inner(T x) {
  return (x + T(GELU_TANH_CUBIC) * x * x * x) * T(GELU_TANH_SCALE);
}

template <typename T>
__host__ __device__ __forceinline__ T gelu_tanh_fwd(T x) {
  return x * (fn::tanh(gelu_tanh_inner(x)) + T(1)) * T(0.5);
}

template <typename T>
__host__ __device__ __forceinline__ T softplus_fwd(T x, T beta, T threshold) {
  const T bx = x * beta;
  if (bx > threshold) return x;  // linear region: also where e^bx would overflow
  // log(1 + e^bx) = max(bx, 0) + log1p(e^-|bx|): no overflow for any bx.
  return (fn::max0(bx) + fn::log1p(fn::exp(-fn::abs(bx)))) / beta;
}

// --- fused backward: dx = g * f'(...) from the saved x and/or out ----------------------------

template <typename T>
__host__ __device__ __forceinline__ T relu_bwd(T g, T out) {
  // g * (out > 0), not a select: an inf/NaN g where out <= 0 gives NaN as in NumPy.
  return g * (out > T(0) ? T(1) : T(0));
}

template <typename T>
__host__ __device__ __forceinline__ T leaky_relu_bwd(T g, T x, T slope) {
  return x > T(0) ? g : g * slope;
}

template <typename T>
__host__ __device__ __forceinline__ T elu_bwd(T g, T x, T out, T alpha) {
  return x > T(0) ? g : g * (out + alpha);  // alpha * e^x = out + alpha
}

template <typename T>
__host__ __device__ __forceinline__ T sigmoid_bwd(T g, T out) { return g * out * (T(1) - out); }

template <typename T>
__host__ __device__ __forceinline__ T tanh_bwd(T g, T out) { return g * (T(1) - out * out); }

template <typename T>
__host__ __device__ __forceinline__ T silu_bwd(T g, T x) {
  const T s = sigmoid_fwd(x);
  return g * (s * (x * (T(1) - s) + T(1)));
}

template <typename T>
__host__ __device__ __forceinline__ T gelu_bwd(T g, T x) {
  // d/dx x·Φ(x) = Φ(x) + x·φ(x)
  const T cdf = (fn::erf(x * T(SQRT_HALF)) + T(1)) * T(0.5);
  return g * (cdf + x * fn::exp(x * x * T(-0.5)) * T(INV_SQRT_2PI));
}

template <typename T>
__host__ __device__ __forceinline__ T gelu_tanh_bwd(T g, T x) {
  const T t = fn::tanh(gelu_tanh_inner(x));
  const T inner_grad = (x * x * T(GELU_TANH_CUBIC_3) + T(1)) * T(GELU_TANH_SCALE);
  return g * ((t + T(1)) * T(0.5) + x * (T(1) - t * t) * inner_grad * T(0.5));
}

template <typename T>
__host__ __device__ __forceinline__ T softplus_bwd(T g, T x, T beta, T threshold) {
  const T bx = x * beta;
  return bx > threshold ? g : g * sigmoid_fwd(bx);
}

}  // namespace gg
