// Elementwise activation math: forward and fused backward, for float and double, and the
// binary16 (half) conversions that let the same math serve half arrays.
//
// These are the CUDA twins of gpugrad/backend/activation_math.py (FORWARD / BACKWARD). Each
// function is the NumPy formula transliterated operation by operation (same stable forms, same
// order, same constants), so the two agree to a few ulps and give NaN in the same places.
// Backward functions read what the NumPy backward reads: the saved input x, the saved output
// `out`, or both (elu), plus g = dL/dout.
//
// The same header compiles three ways: nvcc (kernels/activations.cu), NVRTC (what CuPy uses at
// run time; it has no standard headers) and a plain host C++ compiler (tests/kernels_host/, which
// checks this math against NumPy on a CPU). Half arrays compute in float: see load / store below.
#pragma once

#include "portable.cuh"
#if !defined(__CUDACC_RTC__)
// memcpy for the host's bit casts (nvcc's host pass too); NVRTC compiles only device code.
#include <cstring>
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

// --- binary16 storage: half arrays, math in float ------------------------------------------
//
// A half array holds IEEE binary16 bit patterns as unsigned short. Not __half from cuda_fp16.h:
// NVRTC under CuPy has no include path to it, and the host build that checks this code has no
// half type at all. The conversions are integer bit manipulation, exact for every input, and
// independent of -ftz=true (which CuPy passes): they do no float arithmetic on a subnormal (a
// subnormal float to convert is only read as bits), so nothing can be flushed.

// Bit casts: intrinsics on the device, memcpy on the host (a union or pointer cast would be
// undefined behaviour in C++).
__host__ __device__ __forceinline__ unsigned int float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  unsigned int u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

__host__ __device__ __forceinline__ float bits_float(unsigned int u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Exact (every binary16 value is a float). A NaN keeps its payload, shifted up, as NumPy's
// astype(np.float32) does.
__host__ __device__ __forceinline__ float half_to_float(unsigned short h) {
  const unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
  const unsigned int exponent = (h >> 10) & 0x1fu;
  const unsigned int mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  // ±0 and subnormals, mantissa · 2^-24: exact in float, and a normal float (never flushed).
  return bits_float(sign | float_bits((float)mantissa * 5.9604644775390625e-8f));
}

// Round to nearest, ties to even, as NumPy's astype(np.float16): overflow (|f| >= 65520, the
// midpoint between 65504 and 2^16) gives ±inf, |f| <= 2^-25 gives ±0 (2^-25 itself is a tie
// with 0, which is even), values between become binary16 subnormals. A NaN stays NaN: the top
// 10 bits of its payload (the quiet bit among them), never the all-zero pattern of inf.
__host__ __device__ __forceinline__ unsigned short float_to_half(float f) {
  const unsigned int u = float_bits(f);
  const unsigned int sign = (u >> 16) & 0x8000u;
  const unsigned int a = u & 0x7fffffffu;  // |f|
  if (a == 0x7f800000u) return (unsigned short)(sign | 0x7c00u);  // ±inf
  if (a > 0x7f800000u) {
    const unsigned int payload = (a >> 13) & 0x3ffu;
    return (unsigned short)(sign | 0x7c00u | (payload != 0 ? payload : 1u));  // NaN
  }
  if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
  if (a >= 0x38800000u) {
    // A normal half (|f| >= 2^-14): rebias the exponent (127 -> 15) and drop 13 mantissa bits,
    // adding just under half of the dropped unit, plus one when the kept part is odd (ties to
    // even). A carry out of the mantissa steps the exponent up, which is the right result.
    const unsigned int rounded = a + 0xfffu + ((a >> 13) & 1u);
    return (unsigned short)(sign | ((rounded - 0x38000000u) >> 13));
  }
  if (a > 0x33000000u) {
    // A subnormal half k · 2^-24 (or 2^-14 when k rounds up to 1024): the 24-bit significand
    // m · 2^(e-150) shifted right by 126 - e, which is 14..24 here; rounded to nearest even.
    const unsigned int shift = 126u - (a >> 23);
    const unsigned int m = (a & 0x7fffffu) | 0x800000u;
    const unsigned int k = m >> shift;
    const unsigned int rest = m & ((1u << shift) - 1u);
    const unsigned int halfway = 1u << (shift - 1u);
    const unsigned int up = rest > halfway || (rest == halfway && (k & 1u)) ? 1u : 0u;
    return (unsigned short)(sign | (k + up));
  }
  return (unsigned short)sign;  // ±0
}

// Array element -> math type, and math type -> array element. float and double arrays compute
// in their own type (no conversion); half arrays in float, rounded once on the store. Kernels
// go through these for every element, so one kernel body serves all three storage types.
__host__ __device__ __forceinline__ float load(float v) { return v; }
__host__ __device__ __forceinline__ double load(double v) { return v; }
__host__ __device__ __forceinline__ float load(unsigned short h) { return half_to_float(h); }
__host__ __device__ __forceinline__ void store(float& dst, float v) { dst = v; }
__host__ __device__ __forceinline__ void store(double& dst, double v) { dst = v; }
__host__ __device__ __forceinline__ void store(unsigned short& dst, float v) {
  dst = float_to_half(v);
}
// Any other pairing (a double result into a float array, an int element) is a compile error
// rather than a silent conversion: these templates match exactly, so they win overload
// resolution over an overload above that would need a conversion.
template <typename V>
void load(V) = delete;
template <typename D, typename V>
void store(D&, V) = delete;

}  // namespace gg
