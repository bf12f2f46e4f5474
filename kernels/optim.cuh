// Fused optimizer update math, per element, for float and double.
//
// These are the CUDA twins of gpugrad/backend/optimizer_math.py (sgd_step, adam_step,
// rmsprop_step, adagrad_step). Each function is the NumPy update transliterated operation by
// operation: the same operations in the same order, every hyperparameter rounded to T the way
// NumPy rounds a Python float next to an array of dtype T (NEP 50), and derived scalars
// (1 - beta1, 1 - alpha, 1 - lr*weight_decay, ...) formed in double first, as Python forms them.
// Hyperparameters therefore arrive as double.
//
// Products go through gg::rn::mul (portable.cuh), never contracted into an FMA, so the device
// rounds every operation like NumPy does (given correctly rounded sqrt and division, nvcc's
// default; -ftz still changes subnormals).
//
// The same header compiles with nvcc, NVRTC (no standard headers) and a host C++ compiler
// (tests/kernels_host/optim_host.cpp compares it with NumPy on a CPU).
#pragma once

#include "portable.cuh"

namespace gg {
// SGD, one element. p: parameter, g: gradient (read only), buf: momentum buffer (touched only
// when momentum != 0). first: this is the buffer's first step (torch seeds it with d, undamped).
//   d = g (+ weight_decay*p); with momentum: buf = d on the first step, else
//   buf = momentum*buf + (1 - dampening)*d; d = d + momentum*buf (nesterov) or buf;
//   p = p - lr*d.
template <typename T>
__host__ __device__ __forceinline__ void sgd_update(T& p, T g, T* buf, double lr, double momentum,
                                                    double dampening, double weight_decay,
                                                    bool nesterov, bool first) {
  T d = g;
  if (weight_decay != 0.0) d = g + rn::mul(p, T(weight_decay));
  if (momentum != 0.0) {
    T b;
    if (first) {
      b = d;
    } else {
      b = rn::mul(*buf, T(momentum));
      if (dampening == 0.0) {
        b = d + b;
      } else {
        b = b + rn::mul(d, T(1.0 - dampening));
      }
    }
    *buf = b;
    d = nesterov ? d + rn::mul(b, T(momentum)) : b;
  }
  p = p - rn::mul(d, T(lr));
}

// max(a, b) as np.maximum: NaN if either is NaN (fmax would drop it).
template <typename T>
__host__ __device__ __forceinline__ T max_nan(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// Adam / AdamW, one element. m, v: first and second moments; vmax: the running maximum of v
// (touched only when amsgrad). step_size = lr / (1 - beta1^t) and correction2_sqrt =
// sqrt(1 - beta2^t) are computed on the host in double (t: this update's step count, 1 for the
// first), as adam_step does.
//   weight decay: decoupled (AdamW): p = p*(1 - lr*weight_decay); else g = g + weight_decay*p;
//   m = m + (g - m)*(1 - beta1); v = v*beta2 + g*g*(1 - beta2);
//   amsgrad: vmax = max(vmax, v), and vmax stands for v below;
//   p = p - m / (sqrt(v) / correction2_sqrt + eps) * step_size.
template <typename T>
__host__ __device__ __forceinline__ void adam_update(T& p, T g, T& m, T& v, T* vmax, double lr,
                                                     double beta1, double beta2, double eps,
                                                     double weight_decay, bool decoupled,
                                                     bool amsgrad, double step_size,
                                                     double correction2_sqrt) {
  if (weight_decay != 0.0) {
    if (decoupled) {
      // 1 - lr*wd in double, as Python computes it; rn::mul keeps it from becoming an FMA.
      p = rn::mul(p, T(1.0 - rn::mul(lr, weight_decay)));
    } else {
      g = g + rn::mul(p, T(weight_decay));
    }
  }
  m = m + rn::mul(g - m, T(1.0 - beta1));
  v = rn::mul(v, T(beta2)) + rn::mul(rn::mul(g, g), T(1.0 - beta2));
  T second = v;
  if (amsgrad) {
    second = max_nan(*vmax, v);
    *vmax = second;
  }
  const T denom = rn::sqrt(second) / T(correction2_sqrt) + T(eps);  // eps outside the sqrt
  p = p - rn::mul(m / denom, T(step_size));
}

// RMSprop, one element. s: running mean of g^2; a: running mean of g (touched only when
// centered); buf: momentum buffer (touched only when momentum > 0).
//   g = g + weight_decay*p (if weight_decay != 0);
//   s = s*alpha + g*g*(1 - alpha);
//   centered: a = a + (g - a)*(1 - alpha), avg = sqrt(s - a*a); else avg = sqrt(s);
//   d = g / (avg + eps); momentum: buf = buf*momentum + d, d = buf; p = p - d*lr.
template <typename T>
__host__ __device__ __forceinline__ void rmsprop_update(T& p, T g, T& s, T* a, T* buf,
                                                        double lr, double alpha, double eps,
                                                        double weight_decay, double momentum,
                                                        bool centered) {
  if (weight_decay != 0.0) g = g + rn::mul(p, T(weight_decay));
  const T one_minus_alpha = T(1.0 - alpha);  // formed in double, as Python forms it
  s = rn::mul(s, T(alpha)) + rn::mul(rn::mul(g, g), one_minus_alpha);
  T avg;
  if (centered) {
    const T mean = *a + rn::mul(g - *a, one_minus_alpha);
    *a = mean;
    avg = rn::sqrt(s - rn::mul(mean, mean));  // NaN wherever s - a^2 < 0, as in NumPy
  } else {
    avg = rn::sqrt(s);
  }
  T d = g / (avg + T(eps));
  if (momentum > 0.0) {
    d = rn::mul(*buf, T(momentum)) + d;
    *buf = d;
  }
  p = p - rn::mul(d, T(lr));
}

// Adagrad, one element. sum: running sum of g^2. clr = lr / (1 + (t - 1)*lr_decay) is computed
// on the host in double (t: this update's step count), as adagrad_step does.
//   g = g + weight_decay*p (if weight_decay != 0); sum = sum + g*g;
//   p = p - g / (sqrt(sum) + eps) * clr.
template <typename T>
__host__ __device__ __forceinline__ void adagrad_update(T& p, T g, T& sum, double clr,
                                                        double weight_decay, double eps) {
  if (weight_decay != 0.0) g = g + rn::mul(p, T(weight_decay));
  sum = sum + rn::mul(g, g);
  p = p - rn::mul(g / (rn::sqrt(sum) + T(eps)), T(clr));
}

}  // namespace gg
