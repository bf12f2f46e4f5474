// Fused optimizer kernels: one launch updates a whole flat parameter buffer (a group's
// parameters laid end to end) and its state buffers in place.
//
// Names and arguments (n: 64-bit element count; arrays of the kernel's dtype, C-contiguous,
// n elements each; hyperparameters are double, flags int):
//   sgd_step_<f32|f64>(n, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay,
//                      nesterov, first)
//     momentum_buffer is neither read nor written when momentum == 0 (it may be null then).
//   adam_step_<f32|f64>(n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2,
//                       eps, weight_decay, decoupled, amsgrad, step_size, correction2_sqrt)
//     decoupled != 0 is AdamW; step_size = lr / (1 - beta1**t), correction2_sqrt =
//     sqrt(1 - beta2**t), computed on the host in double as optimizer_math.adam_step does.
//     max_exp_avg_sq is neither read nor written when amsgrad == 0 (it may be null then).
//   rmsprop_step_<f32|f64>(n, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha,
//                          eps, weight_decay, momentum, centered)
//     grad_avg is touched only when centered != 0, momentum_buffer only when momentum > 0
//     (each may be null otherwise).
//   adagrad_step_<f32|f64>(n, param, grad, state_sum, clr, weight_decay, eps)
//     clr = float(lr) / (1.0 + (t - 1) * float(lr_decay)), computed on the host in double as
//     optimizer_math.adagrad_step does (t: this update's step count, 1 for the first).
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
      T* __restrict__ exp_avg_sq, T* __restrict__ max_exp_avg_sq, double lr, double beta1,     \
      double beta2, double eps, double weight_decay, int decoupled, int amsgrad,               \
      double step_size, double correction2_sqrt) {                                             \
    GG_OPTIM_FOR_EACH(i, n) {                                                                   \
      T p = param[i], m = exp_avg[i], v = exp_avg_sq[i];                                        \
      T* vmax = amsgrad != 0 ? max_exp_avg_sq + i : nullptr;                                    \
      gg::adam_update(p, grad[i], m, v, vmax, lr, beta1, beta2, eps, weight_decay,              \
                      decoupled != 0, amsgrad != 0, step_size, correction2_sqrt);               \
      param[i] = p;                                                                             \
      exp_avg[i] = m;                                                                           \
      exp_avg_sq[i] = v;                                                                        \
    }                                                                                           \
  }                                                                                             \
  extern "C" __global__ void rmsprop_step_##S(                                                 \
      long long n, T* __restrict__ param, const T* __restrict__ grad,                          \
      T* __restrict__ square_avg, T* __restrict__ grad_avg, T* __restrict__ momentum_buffer,   \
      double lr, double alpha, double eps, double weight_decay, double momentum,               \
      int centered) {                                                                           \
    GG_OPTIM_FOR_EACH(i, n) {                                                                   \
      T p = param[i], s = square_avg[i];                                                        \
      T* a = centered != 0 ? grad_avg + i : nullptr;                                            \
      T* buf = momentum > 0.0 ? momentum_buffer + i : nullptr;                                  \
      gg::rmsprop_update(p, grad[i], s, a, buf, lr, alpha, eps, weight_decay, momentum,         \
                         centered != 0);                                                        \
      param[i] = p;                                                                             \
      square_avg[i] = s;                                                                        \
    }                                                                                           \
  }                                                                                             \
  extern "C" __global__ void adagrad_step_##S(long long n, T* __restrict__ param,              \
                                              const T* __restrict__ grad,                       \
                                              T* __restrict__ state_sum, double clr,            \
                                              double weight_decay, double eps) {                \
    GG_OPTIM_FOR_EACH(i, n) {                                                                   \
      T p = param[i], sum = state_sum[i];                                                       \
      gg::adagrad_update(p, grad[i], sum, clr, weight_decay, eps);                              \
      param[i] = p;                                                                             \
      state_sum[i] = sum;                                                                       \
    }                                                                                           \
  }

GG_OPTIM_KERNELS(float, f32)
GG_OPTIM_KERNELS(double, f64)
