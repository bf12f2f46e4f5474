// Fused bias + activation forward: the tail of a Linear layer followed by an activation.
//
// Names: bias_activation_forward_<name>_<f32|f64|f16> for relu, sigmoid and tanh, after the
// backend primitive bias_activation_forward(name, z, bias) they replace on the GPU (its NumPy twin
// is in gpugrad/backend/activation_math.py). Arguments: (n, cols, z, bias, out), n and cols long
// long. z is the (n / cols, cols) product x·wᵀ, C-contiguous, only read; bias has cols elements;
// out[i] = f(z[i] + bias[col]). One pass, where an unfused bias add and activation take two
// kernels and two more passes over the array. Only activations whose backward reads just their
// output are here: the others would have to store z + bias as well for their backward.
// For f16 (binary16 bit patterns as unsigned short) the sum and the activation are computed in
// float and rounded to binary16 once; the NumPy twin in float16 rounds the sum first.
#include "activations.cuh"

// Grid-stride loop that also tracks the column: one modulo per thread at the start, then the
// column advances by stride % cols per step (a 64-bit modulo per element would cost more than
// the memory traffic on a fast GPU).
#define GG_BIAS_LOOP(M, BODY)                                                \
  const long long stride = (long long)blockDim.x * gridDim.x;                \
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;            \
  if (cols <= 0) return;                                                     \
  long long col = i % cols;                                                  \
  const long long col_step = stride % cols;                                  \
  for (; i < n; i += stride) {                                               \
    const M v = gg::load(z[i]) + gg::load(bias[col]);                        \
    gg::store(out[i], BODY);                                                 \
    col += col_step;                                                         \
    if (col >= cols) col -= cols;                                            \
  }

#define GG_BIAS_PARAMS(T) \
  long long n, long long cols, const T* __restrict__ z, const T* __restrict__ bias, T* __restrict__ out

// Spelled out per activation (not pasted together) so each name reads in full here. T is the
// array element type, M the math type (as in activations.cu), S the name suffix.
#define GG_BIAS_ACTIVATION_KERNELS(T, M, S)                                               \
  extern "C" __global__ void bias_activation_forward_relu_##S(GG_BIAS_PARAMS(T)) {        \
    GG_BIAS_LOOP(M, gg::relu_fwd(v))                                                      \
  }                                                                                       \
  extern "C" __global__ void bias_activation_forward_sigmoid_##S(GG_BIAS_PARAMS(T)) {     \
    GG_BIAS_LOOP(M, gg::sigmoid_fwd(v))                                                   \
  }                                                                                       \
  extern "C" __global__ void bias_activation_forward_tanh_##S(GG_BIAS_PARAMS(T)) {        \
    GG_BIAS_LOOP(M, gg::tanh_fwd(v))                                                      \
  }

GG_BIAS_ACTIVATION_KERNELS(float, float, f32)
GG_BIAS_ACTIVATION_KERNELS(double, double, f64)
GG_BIAS_ACTIVATION_KERNELS(unsigned short, float, f16)
