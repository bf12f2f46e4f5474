// Fused optimizer kernels: one launch updates a whole flat parameter buffer (a group's
// parameters laid end to end) and its state buffers in place.
//
// Names and arguments (n: 64-bit element count; arrays of the kernel's dtype, C-contiguous,
// n elements each; hyperparameters are double, flags int):
//   sgd_step_<f32|f64>(n, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay,
//                      nesterov, first)
//     momentum_buffer is neither read nor written when momentum == 0 (it may be null then).
//   adam_step_<f32|f64>(n, param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
//                       weight_decay, decoupled, step_size, correction2_sqrt)
//     decoupled != 0 is AdamW; step_size = lr / (1 - beta1**t), correction2_sqrt =
//     sqrt(1 - beta2**t), computed on the host in double as optimizer_math.adam_step does.
// The math is kernels/optim.cuh; grid-stride loops, so any 1-D grid/block covers any n.
#include "optim.cuh"

#define GG_OPTIM_FOR_EACH(i, n)                                                     \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (long long)blockDim.x * gridDim.x)

#define GG_OPTIM_KERNELS(T, S)                                                                  \
  extern "C" __global__ void sgd_step_##S(long long n, T* __restrict__ param,                  \
                                          const T* __restrict__ grad,                           \
                                          T* __restrict__ momentum_buffer, double lr,           \
                                          double momentum, double dampening,                    \
                                          double weight_decay, int nesterov, int first) {       \
    GG_OPTIM_FOR_EACH(i, n) {                                                                   \
      T p = param[i];                                                                           \
      T* buf = momentum != 0.0 ? momentum_buffer + i : nullptr; /* no null + i */             \
      gg::sgd_update(p, grad[i], buf, lr, momentum, dampening, weight_decay, nesterov != 0,    \
                     first != 0);                                                               \
      param[i] = p;                                                                             \
    }                                                                                           \
  }                                                                                             \
  extern "C" __global__ void adam_step_##S(                                                    \
      long long n, T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ exp_avg, \
      T* __restrict__ exp_avg_sq, double lr, double beta1, double beta2, double eps,           \
      double weight_decay, int decoupled, double step_size, double correction2_sqrt) {         \
    GG_OPTIM_FOR_EACH(i, n) {                                                                   \
      T p = param[i], m = exp_avg[i], v = exp_avg_sq[i];                                        \
      gg::adam_update(p, grad[i], m, v, lr, beta1, beta2, eps, weight_decay, decoupled != 0,   \
                      step_size, correction2_sqrt);                                             \
      param[i] = p;                                                                             \
      exp_avg[i] = m;                                                                           \
      exp_avg_sq[i] = v;                                                                        \
    }                                                                                           \
  }

GG_OPTIM_KERNELS(float, f32)
GG_OPTIM_KERNELS(double, f64)
