// Fused activation kernels: one forward and one fused backward per activation and dtype.
//
// Names: activation_forward_<name>_<f32|f64|f16> and activation_backward_<name>_<f32|f64|f16>,
// after the backend primitives activation_forward / activation_backward they replace on the GPU.
// Arguments (n is a 64-bit element count; scalars have the kernel's math type: float for f32 and
// f16, double for f64):
//   forward:  (n, x, out [, param...])
//   backward: (n, g, saved..., dx [, param...]) where saved is what the NumPy backward reads:
//     out      relu, sigmoid, tanh
//     x        leaky_relu(slope), gelu, gelu_tanh, silu, softplus(beta, threshold)
//     x, out   elu(alpha)
// f16 arrays are IEEE binary16 bit patterns (unsigned short): each element is converted to
// float, computed with the float math, and rounded to binary16 once. Each backward is one pass:
// read g and the saved array(s), write dx. Every kernel is a grid-stride loop, so any grid/block
// shape covers any n (tests/test_kernels.py runs these bodies on the host under
// AddressSanitizer to check exactly that).
#include "activations.cuh"

// 64-bit index: blockIdx.x * blockDim.x in 32 bits would wrap past 2^32 elements.
#define GG_FOR_EACH(i, n)                                                           \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (long long)blockDim.x * gridDim.x)

// One macro instantiates every kernel for array element type T, math type M (that of the header
// functions and of the scalar params) and name suffix S, so the float, double and half kernels
// cannot drift apart: every element goes through gg::load (T -> M) and gg::store (M -> T, the
// one rounding for half; a plain copy for float and double).
#define GG_ACTIVATION_KERNELS(T, M, S)                                                            \
  extern "C" __global__ void activation_forward_relu_##S(long long n, const T* __restrict__ x,    \
                                                          T* __restrict__ out) {                  \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::relu_fwd(gg::load(x[i])));                            \
  }                                                                                               \
  extern "C" __global__ void activation_forward_leaky_relu_##S(                                   \
      long long n, const T* __restrict__ x, T* __restrict__ out, M slope) {                       \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::leaky_relu_fwd(gg::load(x[i]), slope));               \
  }                                                                                               \
  extern "C" __global__ void activation_forward_elu_##S(long long n, const T* __restrict__ x,     \
                                                         T* __restrict__ out, M alpha) {          \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::elu_fwd(gg::load(x[i]), alpha));                      \
  }                                                                                               \
  extern "C" __global__ void activation_forward_gelu_##S(long long n, const T* __restrict__ x,    \
                                                          T* __restrict__ out) {                  \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::gelu_fwd(gg::load(x[i])));                            \
  }                                                                                               \
  extern "C" __global__ void activation_forward_gelu_tanh_##S(                                    \
      long long n, const T* __restrict__ x, T* __restrict__ out) {                                \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::gelu_tanh_fwd(gg::load(x[i])));                       \
  }                                                                                               \
  extern "C" __global__ void activation_forward_silu_##S(long long n, const T* __restrict__ x,    \
                                                          T* __restrict__ out) {                  \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::silu_fwd(gg::load(x[i])));                            \
  }                                                                                               \
  extern "C" __global__ void activation_forward_sigmoid_##S(                                      \
      long long n, const T* __restrict__ x, T* __restrict__ out) {                                \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::sigmoid_fwd(gg::load(x[i])));                         \
  }                                                                                               \
  extern "C" __global__ void activation_forward_tanh_##S(long long n, const T* __restrict__ x,    \
                                                          T* __restrict__ out) {                  \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::tanh_fwd(gg::load(x[i])));                            \
  }                                                                                               \
  extern "C" __global__ void activation_forward_softplus_##S(                                     \
      long long n, const T* __restrict__ x, T* __restrict__ out, M beta, M threshold) {           \
    GG_FOR_EACH(i, n) gg::store(out[i], gg::softplus_fwd(gg::load(x[i]), beta, threshold));       \
  }                                                                                               \
  extern "C" __global__ void activation_backward_relu_##S(                                        \
      long long n, const T* __restrict__ g, const T* __restrict__ out, T* __restrict__ dx) {      \
    GG_FOR_EACH(i, n) gg::store(dx[i], gg::relu_bwd(gg::load(g[i]), gg::load(out[i])));           \
  }                                                                                               \
  extern "C" __global__ void activation_backward_leaky_relu_##S(                                  \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx,          \
      M slope) {                                                                                  \
    GG_FOR_EACH(i, n) {                                                                           \
      gg::store(dx[i], gg::leaky_relu_bwd(gg::load(g[i]), gg::load(x[i]), slope));                \
    }                                                                                             \
  }                                                                                               \
  extern "C" __global__ void activation_backward_elu_##S(                                         \
      long long n, const T* __restrict__ g, const T* __restrict__ x,                              \
      const T* __restrict__ out, T* __restrict__ dx, M alpha) {                                   \
    GG_FOR_EACH(i, n) {                                                                           \
      gg::store(dx[i], gg::elu_bwd(gg::load(g[i]), gg::load(x[i]), gg::load(out[i]), alpha));     \
    }                                                                                             \
  }                                                                                               \
  extern "C" __global__ void activation_backward_gelu_##S(                                        \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx) {        \
    GG_FOR_EACH(i, n) gg::store(dx[i], gg::gelu_bwd(gg::load(g[i]), gg::load(x[i])));             \
  }                                                                                               \
  extern "C" __global__ void activation_backward_gelu_tanh_##S(                                   \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx) {        \
    GG_FOR_EACH(i, n) gg::store(dx[i], gg::gelu_tanh_bwd(gg::load(g[i]), gg::load(x[i])));        \
  }                                                                                               \
  extern "C" __global__ void activation_backward_silu_##S(                                        \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx) {        \
    GG_FOR_EACH(i, n) gg::store(dx[i], gg::silu_bwd(gg::load(g[i]), gg::load(x[i])));             \
  }                                                                                               \
  extern "C" __global__ void activation_backward_sigmoid_##S(                                     \
      long long n, const T* __restrict__ g, const T* __restrict__ out, T* __restrict__ dx) {      \
    GG_FOR_EACH(i, n) gg::store(dx[i], gg::sigmoid_bwd(gg::load(g[i]), gg::load(out[i])));        \
  }                                                                                               \
  extern "C" __global__ void activation_backward_tanh_##S(                                        \
      long long n, const T* __restrict__ g, const T* __restrict__ out, T* __restrict__ dx) {      \
    GG_FOR_EACH(i, n) gg::store(dx[i], gg::tanh_bwd(gg::load(g[i]), gg::load(out[i])));           \
  }                                                                                               \
  extern "C" __global__ void activation_backward_softplus_##S(                                    \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx,          \
      M beta, M threshold) {                                                                      \
    GG_FOR_EACH(i, n) {                                                                           \
      gg::store(dx[i], gg::softplus_bwd(gg::load(g[i]), gg::load(x[i]), beta, threshold));        \
    }                                                                                             \
  }

GG_ACTIVATION_KERNELS(float, float, f32)
GG_ACTIVATION_KERNELS(double, double, f64)
GG_ACTIVATION_KERNELS(unsigned short, float, f16)
