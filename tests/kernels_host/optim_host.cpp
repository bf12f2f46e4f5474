// Host build of kernels/optim.cuh for tests/test_kernels.py: array-at-a-time extern "C" wrappers
// that ctypes can call, so the header's update math is compared with the NumPy twins
// (optimizer_math.sgd_step / adam_step / rmsprop_step / adagrad_step) on a CPU. Arguments follow
// the kernels in kernels/optim.cu, and so do the null pointers: a state array that the
// configuration does not use is passed as null and must not be touched. gg_adam_wrong_* puts eps
// inside the square root (sqrt(v/c2 + eps)): it exists only so the test can show that its
// comparison catches a wrong update.
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
void adam(long long n, T* p, const T* g, T* m, T* v, T* vmax, double lr, double beta1,
          double beta2, double eps, double weight_decay, int decoupled, int amsgrad,
          double step_size, double correction2_sqrt) {
  for (long long i = 0; i < n; ++i) {
    gg::adam_update(p[i], g[i], m[i], v[i], amsgrad != 0 ? vmax + i : nullptr, lr, beta1, beta2,
                    eps, weight_decay, decoupled != 0, amsgrad != 0, step_size,
                    correction2_sqrt);
  }
}

template <typename T>
void adam_wrong(long long n, T* p, const T* g, T* m, T* v, T*, double, double beta1,
                double beta2, double eps, double, int, int, double step_size,
                double correction2_sqrt) {
  for (long long i = 0; i < n; ++i) {
    m[i] = m[i] + (g[i] - m[i]) * T(1.0 - beta1);
    v[i] = v[i] * T(beta2) + g[i] * g[i] * T(1.0 - beta2);
    const T denom = gg::rn::sqrt(v[i] / T(correction2_sqrt * correction2_sqrt) + T(eps));
    p[i] = p[i] - m[i] / denom * T(step_size);
  }
}

template <typename T>
void rmsprop(long long n, T* p, const T* g, T* s, T* a, T* buf, double lr, double alpha,
             double eps, double weight_decay, double momentum, int centered) {
  for (long long i = 0; i < n; ++i) {
    gg::rmsprop_update(p[i], g[i], s[i], centered != 0 ? a + i : nullptr,
                       momentum > 0.0 ? buf + i : nullptr, lr, alpha, eps, weight_decay,
                       momentum, centered != 0);
  }
}

template <typename T>
void adagrad(long long n, T* p, const T* g, T* sum, double clr, double weight_decay,
             double eps) {
  for (long long i = 0; i < n; ++i) gg::adagrad_update(p[i], g[i], sum[i], clr, weight_decay, eps);
}

}  // namespace

#define GG_OPTIM_HOST(T, S)                                                                     \
  void gg_sgd_##S(long long n, T* p, const T* g, T* buf, double lr, double momentum,           \
                  double dampening, double weight_decay, int nesterov, int first) {            \
    sgd<T>(n, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first);              \
  }                                                                                             \
  void gg_adam_##S(long long n, T* p, const T* g, T* m, T* v, T* vmax, double lr, double beta1, \
                   double beta2, double eps, double weight_decay, int decoupled, int amsgrad,  \
                   double step_size, double correction2_sqrt) {                                \
    adam<T>(n, p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,      \
            step_size, correction2_sqrt);                                                       \
  }                                                                                             \
  void gg_adam_wrong_##S(long long n, T* p, const T* g, T* m, T* v, T* vmax, double lr,        \
                         double beta1, double beta2, double eps, double weight_decay,          \
                         int decoupled, int amsgrad, double step_size,                         \
                         double correction2_sqrt) {                                            \
    adam_wrong<T>(n, p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, \
                  step_size, correction2_sqrt);                                                 \
  }                                                                                             \
  void gg_rmsprop_##S(long long n, T* p, const T* g, T* s, T* a, T* buf, double lr,            \
                      double alpha, double eps, double weight_decay, double momentum,          \
                      int centered) {                                                           \
    rmsprop<T>(n, p, g, s, a, buf, lr, alpha, eps, weight_decay, momentum, centered);          \
  }                                                                                             \
  void gg_adagrad_##S(long long n, T* p, const T* g, T* sum, double clr, double weight_decay,  \
                      double eps) {                                                             \
    adagrad<T>(n, p, g, sum, clr, weight_decay, eps);                                           \
  }

extern "C" {
GG_OPTIM_HOST(float, f32)
GG_OPTIM_HOST(double, f64)
}
