// SGD and Adam/AdamW updates for the CPU, one pass over the parameters: the NumPy backend's
// compiled path (gpugrad/backend/native.py builds this file with the host's C++ compiler).
//
// Each loop is its NumPy twin (backend/optimizer_math.py, sgd_step and adam_step) operation by
// operation and in the same order, on each element: the twin's array passes, cache-blocked,
// become one loop that keeps every intermediate in a register. The scalars arrive already
// rounded to the array's type, as NumPy rounds a Python float in `array * 0.9`; with
// -ffp-contract=off no product is fused into a following add and sqrt and / are correctly
// rounded, so the results are the twin's bit for bit (tests/test_native.py checks them), but
// for the sign and payload of a NaN made from two NaNs, which IEEE leaves open (the compiler
// may swap an addition's operands; NumPy's own scalar and vector loops differ there too).
// A parameter's elements are independent, so a long array is split over the CPUs
// (parallel.h) with the same bits on any number of threads.
#include <cmath>

#include "parallel.h"

namespace {

// Elements per part of a split loop: below two of them an update stays on one thread.
constexpr long long GRAIN = 1 << 16;

// d = g (+ weight_decay·p); with momentum, buf = momentum·buf + (1 − dampening)·d (buf = d on
// the first step) and d = buf, or d + momentum·buf with nesterov; then p −= lr·d.
template <typename T>
struct Sgd {
  T lr, momentum, undamped, weight_decay;  // undamped = 1 − dampening (1 skips the product)
  bool with_momentum, damped, nesterov, first, decay;

  void operator()(T* __restrict p, const T* __restrict g, T* __restrict buf, long long begin,
                  long long end) const {
    for (long long i = begin; i < end; ++i) {
      T d = g[i];
      if (decay) d = d + p[i] * weight_decay;
      if (with_momentum) {
        T b;
        if (first) {
          b = d;
        } else {
          b = buf[i] * momentum;
          b = damped ? b + d * undamped : b + d;
        }
        buf[i] = b;
        d = nesterov ? d + b * momentum : b;
      }
      p[i] = p[i] - d * lr;
    }
  }
};

// Adam (L2 decay into the gradient) or AdamW (p ·= 1 − lr·weight_decay first):
// m += (1 − β1)(g − m); v = β2·v + (1 − β2)·g²; p −= step_size · m / (√v / √(1 − β2^t) + eps).
// The kind of decay is a template argument: a branch in the loop keeps it from vectorising.
enum Decay { NO_DECAY, L2, DECOUPLED };

template <typename T>
struct AdamScalars {
  T keep, weight_decay, one_minus_beta1, beta2, one_minus_beta2, correction2_sqrt, eps,
      step_size;  // keep = 1 − lr·weight_decay (decoupled)
};

template <typename T, Decay decay>
void adam_range(T* __restrict p, const T* __restrict g_in, T* __restrict m, T* __restrict v,
                long long begin, long long end, const AdamScalars<T>& s) {
  for (long long i = begin; i < end; ++i) {
    T g = g_in[i];
    T x = p[i];
    if (decay == DECOUPLED) x = x * s.keep;
    if (decay == L2) g = g + x * s.weight_decay;
    const T mi = m[i] + (g - m[i]) * s.one_minus_beta1;
    T vi = v[i] * s.beta2;
    vi = vi + (g * g) * s.one_minus_beta2;
    m[i] = mi;
    v[i] = vi;
    T w = std::sqrt(vi);
    w = w / s.correction2_sqrt;
    w = w + s.eps;
    w = mi / w;
    w = w * s.step_size;
    p[i] = x - w;
  }
}

template <typename T>
void sgd(T* p, const T* g, T* buf, long long n, T lr, T momentum, T undamped, T weight_decay,
         int decay, int damped, int nesterov, int first) {
  const Sgd<T> step{lr, momentum, undamped, weight_decay, buf != nullptr, damped != 0,
                    nesterov != 0, first != 0, decay != 0};
  gg_cpu::parallel_for(n, GRAIN, [&](long long begin, long long end) {
    step(p, g, buf, begin, end);
  });
}

template <typename T>
void adam(T* p, const T* g, T* m, T* v, long long n, const AdamScalars<T>& s, int decay_kind) {
  const Decay decay = static_cast<Decay>(decay_kind);
  gg_cpu::parallel_for(n, GRAIN, [&](long long begin, long long end) {
    if (decay == NO_DECAY) adam_range<T, NO_DECAY>(p, g, m, v, begin, end, s);
    if (decay == L2) adam_range<T, L2>(p, g, m, v, begin, end, s);
    if (decay == DECOUPLED) adam_range<T, DECOUPLED>(p, g, m, v, begin, end, s);
  });
}

}  // namespace

extern "C" {

// buf is null without momentum. The branch flags are the twin's tests, made by the caller on
// the unrounded values: decay (weight_decay != 0), damped (dampening != 0), nesterov, first.
void gg_sgd_f32(float* p, const float* g, float* buf, long long n, float lr, float momentum,
                float undamped, float weight_decay, int decay, int damped, int nesterov,
                int first) {
  sgd(p, g, buf, n, lr, momentum, undamped, weight_decay, decay, damped, nesterov, first);
}

void gg_sgd_f64(double* p, const double* g, double* buf, long long n, double lr,
                double momentum, double undamped, double weight_decay, int decay, int damped,
                int nesterov, int first) {
  sgd(p, g, buf, n, lr, momentum, undamped, weight_decay, decay, damped, nesterov, first);
}

// decay: 0 none, 1 L2 (into the gradient), 2 decoupled (AdamW), decided by the caller as the
// twin decides (weight_decay != 0 on the unrounded value).

void gg_adam_f32(float* p, const float* g, float* m, float* v, long long n, float keep,
                 float weight_decay, float one_minus_beta1, float beta2, float one_minus_beta2,
                 float correction2_sqrt, float eps, float step_size, int decay) {
  adam(p, g, m, v, n,
       AdamScalars<float>{keep, weight_decay, one_minus_beta1, beta2, one_minus_beta2,
                          correction2_sqrt, eps, step_size},
       decay);
}

void gg_adam_f64(double* p, const double* g, double* m, double* v, long long n, double keep,
                 double weight_decay, double one_minus_beta1, double beta2,
                 double one_minus_beta2, double correction2_sqrt, double eps, double step_size,
                 int decay) {
  adam(p, g, m, v, n,
       AdamScalars<double>{keep, weight_decay, one_minus_beta1, beta2, one_minus_beta2,
                           correction2_sqrt, eps, step_size},
       decay);
}

}  // extern "C"
