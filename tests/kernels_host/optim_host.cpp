// Host build of kernels/optim.cuh for tests/test_kernels.py: array-at-a-time extern "C" wrappers
// that ctypes can call, so the header's update math is compared with the NumPy twins
// (optimizer_math.sgd_step / adam_step) on a CPU. Arguments follow the kernels in
// kernels/optim.cu. gg_adam_wrong_* puts eps inside the square root (sqrt(v/c2 + eps)): it
// exists only so the test can show that its comparison catches a wrong update.
#include "optim.cuh"

namespace {

template <typename T>
void sgd(long long n, T* p, const T* g, T* buf, double lr, double momentum, double dampening,
         double weight_decay, int nesterov, int first) {
  for (long long i = 0; i < n; ++i) {
    gg::sgd_update(p[i], g[i], momentum != 0.0 ? buf + i : nullptr, lr, momentum, dampening,
                   weight_decay, nesterov != 0, first != 0);
  }
}

template <typename T>
void adam(long long n, T* p, const T* g, T* m, T* v, double lr, double beta1, double beta2,
          double eps, double weight_decay, int decoupled, double step_size,
          double correction2_sqrt) {
  for (long long i = 0; i < n; ++i) {
    gg::adam_update(p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, weight_decay, decoupled != 0,
                    step_size, correction2_sqrt);
  }
}

template <typename T>
void adam_wrong(long long n, T* p, const T* g, T* m, T* v, double, double beta1, double beta2,
                double eps, double, int, double step_size, double correction2_sqrt) {
  for (long long i = 0; i < n; ++i) {
    m[i] = m[i] + (g[i] - m[i]) * T(1.0 - beta1);
    v[i] = v[i] * T(beta2) + g[i] * g[i] * T(1.0 - beta2);
    const T denom = gg::rn::sqrt(v[i] / T(correction2_sqrt * correction2_sqrt) + T(eps));
    p[i] = p[i] - m[i] / denom * T(step_size);
  }
}

}  // namespace

#define GG_OPTIM_HOST(T, S)                                                                     \
  void gg_sgd_##S(long long n, T* p, const T* g, T* buf, double lr, double momentum,           \
                  double dampening, double weight_decay, int nesterov, int first) {            \
    sgd<T>(n, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first);              \
  }                                                                                             \
  void gg_adam_##S(long long n, T* p, const T* g, T* m, T* v, double lr, double beta1,         \
                   double beta2, double eps, double weight_decay, int decoupled,               \
                   double step_size, double correction2_sqrt) {                                \
    adam<T>(n, p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step_size,          \
            correction2_sqrt);                                                                  \
  }                                                                                             \
  void gg_adam_wrong_##S(long long n, T* p, const T* g, T* m, T* v, double lr, double beta1,   \
                         double beta2, double eps, double weight_decay, int decoupled,         \
                         double step_size, double correction2_sqrt) {                          \
    adam_wrong<T>(n, p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step_size,    \
                  correction2_sqrt);                                                            \
  }

extern "C" {
GG_OPTIM_HOST(float, f32)
GG_OPTIM_HOST(double, f64)
}
