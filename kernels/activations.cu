// Fused activation kernels: one forward and one fused backward per activation and dtype.
//
// Names: activation_forward_<name>_<f32|f64> and activation_backward_<name>_<f32|f64>, after the
// backend primitives activation_forward / activation_backward they replace on the GPU.
// Arguments (n is a 64-bit element count; scalars have the kernel's dtype):
//   forward:  (n, x, out [, param...])
//   backward: (n, g, saved..., dx [, param...]) where saved is what the NumPy backward reads:
//     out      relu, sigmoid, tanh
//     x        leaky_relu(slope), gelu, gelu_tanh, silu, softplus(beta, threshold)
//     x, out   elu(alpha)
// Each backward is one pass: read g and the saved array(s), write dx. Every kernel is a
// grid-stride loop, so any grid/block shape covers any n (tests/test_kernels.py runs these
// bodies on the host under AddressSanitizer to check exactly that).
#include "activations.cuh"

// 64-bit index: blockIdx.x * blockDim.x in 32 bits would wrap past 2^32 elements.
#define GG_FOR_EACH(i, n)                                                           \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (long long)blockDim.x * gridDim.x)

// One macro instantiates every kernel for a dtype T with suffix S, so float and double cannot
// drift apart.
#define GG_ACTIVATION_KERNELS(T, S)                                                              \
  extern "C" __global__ void activation_forward_relu_##S(long long n, const T* __restrict__ x, \
                                                          T* __restrict__ out) {                 \
    GG_FOR_EACH(i, n) out[i] = gg::relu_fwd(x[i]);                                              \
  }                                                                                              \
  extern "C" __global__ void activation_forward_leaky_relu_##S(                                 \
      long long n, const T* __restrict__ x, T* __restrict__ out, T slope) {                    \
    GG_FOR_EACH(i, n) out[i] = gg::leaky_relu_fwd(x[i], slope);                                 \
  }                                                                                              \
  extern "C" __global__ void activation_forward_elu_##S(long long n, const T* __restrict__ x,  \
                                                         T* __restrict__ out, T alpha) {        \
    GG_FOR_EACH(i, n) out[i] = gg::elu_fwd(x[i], alpha);                                        \
  }                                                                                              \
  extern "C" __global__ void activation_forward_gelu_##S(long long n, const T* __restrict__ x, \
                                                          T* __restrict__ out) {                 \
    GG_FOR_EACH(i, n) out[i] = gg::gelu_fwd(x[i]);                                              \
  }                                                                                              \
  extern "C" __global__ void activation_forward_gelu_tanh_##S(                                  \
      long long n, const T* __restrict__ x, T* __restrict__ out) {                              \
    GG_FOR_EACH(i, n) out[i] = gg::gelu_tanh_fwd(x[i]);                                         \
  }                                                                                              \
  extern "C" __global__ void activation_forward_silu_##S(long long n, const T* __restrict__ x, \
                                                          T* __restrict__ out) {                 \
    GG_FOR_EACH(i, n) out[i] = gg::silu_fwd(x[i]);                                              \
  }                                                                                              \
  extern "C" __global__ void activation_forward_sigmoid_##S(                                    \
      long long n, const T* __restrict__ x, T* __restrict__ out) {                              \
    GG_FOR_EACH(i, n) out[i] = gg::sigmoid_fwd(x[i]);                                           \
  }                                                                                              \
  extern "C" __global__ void activation_forward_tanh_##S(long long n, const T* __restrict__ x, \
                                                          T* __restrict__ out) {                 \
    GG_FOR_EACH(i, n) out[i] = gg::tanh_fwd(x[i]);                                              \
  }                                                                                              \
  extern "C" __global__ void activation_forward_softplus_##S(                                   \
      long long n, const T* __restrict__ x, T* __restrict__ out, T beta, T threshold) {        \
    GG_FOR_EACH(i, n) out[i] = gg::softplus_fwd(x[i], beta, threshold);                         \
  }                                                                                              \
  extern "C" __global__ void activation_backward_relu_##S(                                      \
      long long n, const T* __restrict__ g, const T* __restrict__ out, T* __restrict__ dx) {   \
    GG_FOR_EACH(i, n) dx[i] = gg::relu_bwd(g[i], out[i]);                                       \
  }                                                                                              \
  extern "C" __global__ void activation_backward_leaky_relu_##S(                                \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx,       \
      T slope) {                                                                                 \
    GG_FOR_EACH(i, n) dx[i] = gg::leaky_relu_bwd(g[i], x[i], slope);                            \
  }                                                                                              \
  extern "C" __global__ void activation_backward_elu_##S(                                       \
      long long n, const T* __restrict__ g, const T* __restrict__ x,                            \
      const T* __restrict__ out, T* __restrict__ dx, T alpha) {                                 \
    GG_FOR_EACH(i, n) dx[i] = gg::elu_bwd(g[i], x[i], out[i], alpha);                           \
  }                                                                                              \
  extern "C" __global__ void activation_backward_gelu_##S(                                      \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx) {     \
    GG_FOR_EACH(i, n) dx[i] = gg::gelu_bwd(g[i], x[i]);                                         \
  }                                                                                              \
  extern "C" __global__ void activation_backward_gelu_tanh_##S(                                 \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx) {     \
    GG_FOR_EACH(i, n) dx[i] = gg::gelu_tanh_bwd(g[i], x[i]);                                    \
  }                                                                                              \
  extern "C" __global__ void activation_backward_silu_##S(                                      \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx) {     \
    GG_FOR_EACH(i, n) dx[i] = gg::silu_bwd(g[i], x[i]);                                         \
  }                                                                                              \
  extern "C" __global__ void activation_backward_sigmoid_##S(                                   \
      long long n, const T* __restrict__ g, const T* __restrict__ out, T* __restrict__ dx) {   \
    GG_FOR_EACH(i, n) dx[i] = gg::sigmoid_bwd(g[i], out[i]);                                    \
  }                                                                                              \
  extern "C" __global__ void activation_backward_tanh_##S(                                      \
      long long n, const T* __restrict__ g, const T* __restrict__ out, T* __restrict__ dx) {   \
    GG_FOR_EACH(i, n) dx[i] = gg::tanh_bwd(g[i], out[i]);                                       \
  }                                                                                              \
  extern "C" __global__ void activation_backward_softplus_##S(                                  \
      long long n, const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx,       \
      T beta, T threshold) {                                                                     \
    GG_FOR_EACH(i, n) dx[i] = gg::softplus_bwd(g[i], x[i], beta, threshold);                    \
  }

GG_ACTIVATION_KERNELS(float, f32)
GG_ACTIVATION_KERNELS(double, f64)
