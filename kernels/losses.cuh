// Fused softmax cross-entropy math, one row at a time, for float and double.
//
// These are the CUDA twins of gpugrad/backend/loss_math.py (softmax_cross_entropy_forward /
// _backward). A row is `classes` logits x; the row's loss is
//   -log softmax(x)[label] = log_norm - (x[label] - max),  log_norm = log sum_j exp(x_j - max),
// and with label smoothing ls (target (1 - ls)*one_hot + ls/classes)
//   loss*(1 - ls) + (log_norm - mean_j(x_j - max))*ls.
// The gradient of the loss with respect to x is (softmax(x) - target)*g.
//
// The twin makes several passes over a (rows, classes) array; a kernel thread owns a row and
// reads it once (forward) or twice (backward): the max and sum of exp are kept together, the sum
// rescaled whenever the max grows (push_logit below). So the sum is formed in a different order
// from NumPy's pairwise sum, and the results agree to a bound, not bit for bit; each element's
// exp(x_j - max) and the final steps are the twin's operations, in the twin's order (except the
// smoothing term, formed in double: see the forward), with scalars rounded to T as NumPy rounds
// a Python float next to a T array and derived scalars (1 - ls, ls/classes) formed in double as
// Python forms them.
//
// Non-finite logits give what the twin gives: a row holding NaN or +inf, or only -inf, has a NaN
// loss and gradient; a -inf logit elsewhere is a zero probability (an infinite loss if it is the
// label's). Rows labelled ignore_index have loss 0 and a zero gradient without their logits
// being read (so a NaN in an ignored row stays out of the gradient; the twin multiplies such a
// row by 0 and gets NaN there). A label outside [0, classes) that is not ignore_index makes the
// twin raise (negative labels down to -classes wrap around there, as NumPy indexing does); a
// kernel cannot raise, so that row's loss and whole gradient row are NaN, which keeps the error
// visible (gpugrad.nn.functional checks the labels before it gets here).
//
// The same header compiles with nvcc, NVRTC (no standard headers) and a host C++ compiler
// (tests/kernels_host/losses_host.cpp compares it with NumPy on a CPU).
#pragma once

#include "portable.cuh"

namespace gg {
// Own names, so that this header can sit in one translation unit with the other kernel headers
// and still be used alone (each .cu includes only its own header).
namespace xent {
// The float function for float (an unqualified exp(float) on the host could be the C double one).
__host__ __device__ __forceinline__ float exp(float x) { return ::expf(x); }
__host__ __device__ __forceinline__ double exp(double x) { return ::exp(x); }
__host__ __device__ __forceinline__ float log(float x) { return ::logf(x); }
__host__ __device__ __forceinline__ double log(double x) { return ::log(x); }
__host__ __device__ __forceinline__ void set_nan(float& x) { x = ::nanf(""); }
__host__ __device__ __forceinline__ void set_nan(double& x) { x = ::nan(""); }
// x == -inf, written with the largest finite value (no <limits>/INFINITY under NVRTC).
__host__ __device__ __forceinline__ bool is_neg_inf(float x) { return x < -3.40282347e38f; }
__host__ __device__ __forceinline__ bool is_neg_inf(double x) {
  return x < -1.7976931348623157e308;
}
}  // namespace xent

// The label is one the twin would pick: not ignore_index, in [0, classes).
__host__ __device__ __forceinline__ bool xent_label_in_range(long long label, long long classes) {
  return label >= 0 && label < classes;
}

// One logit into the running max m and sum s = sum of exp(x_j - m) over the logits so far.
// Start with m = the row's first logit and s = 0 (then pushing the first logit gives s = 1).
// When the max grows the sum is rescaled to it. A -inf logit adds exp(-inf - m) = 0 and is
// skipped, so that -inf before the max (where m is still -inf) does not add exp(-inf + inf) =
// NaN; a row of only -inf keeps m = -inf, and x - m = NaN later gives NaN, as in the twin.
// NaN never becomes m (comparisons with NaN are false) but makes s NaN; +inf becomes m and adds
// exp(inf - inf) = NaN: both as the twin, whose max is NaN or +inf there.
template <typename T>
__host__ __device__ __forceinline__ void push_logit(T& m, T& s, T x) {
  if (x > m) {
    s = rn::mul(s, xent::exp(m - x));
    m = x;
  }
  if (!xent::is_neg_inf(x)) s = s + xent::exp(x - m);
}

// Loss of one row. x: the row's `classes` logits (read once, front to back).
template <typename T>
__host__ __device__ __forceinline__ T softmax_xent_forward_row(long long classes, const T* x,
                                                               long long label,
                                                               long long ignore_index,
                                                               double label_smoothing) {
  if (label == ignore_index) return T(0);
  if (!xent_label_in_range(label, classes)) {
    T nan;
    xent::set_nan(nan);
    return nan;
  }
  const bool smooth = label_smoothing != 0.0;
  const T first = x[0];
  T m = first, s = T(0), picked = T(0);
  // For the smoothing term, the sum of (x_j - x[0]) in double: relative to a logit of the row,
  // so logits far from 0 (1e4 + small differences) lose nothing to cancellation, and in double,
  // so float logits near +-3e38 cannot overflow it.
  double spread_sum = 0.0;
  for (long long j = 0; j < classes; ++j) {
    const T v = x[j];
    push_logit(m, s, v);
    if (j == label) picked = v;
    if (smooth) spread_sum += double(v) - double(first);
  }
  const T log_norm = xent::log(s);
  T loss = log_norm - (picked - m);
  if (smooth) {
    // The smoothing part ls*(log_norm - mean_j(x_j - max)), with mean_j(x_j - max) =
    // mean_j(x_j - x[0]) - (max - x[0]), formed in double and rounded once to T: for float
    // logits near +-3e38 the mean and log_norm - mean can exceed the float range where ls times
    // it does not (the twin's float32 result is inf there). With x[0] = -inf the sum is NaN, but
    // the mean is -inf (some x_j - max is -inf), unless the max is -inf too and the loss is NaN
    // anyway.
    double mean_shifted = double(first);
    if (!xent::is_neg_inf(first)) {
      mean_shifted = spread_sum / double(classes) - (double(m) - double(first));
    }
    const T smoothing = T(rn::mul(double(log_norm) - mean_shifted, label_smoothing));
    loss = rn::mul(loss, T(1.0 - label_smoothing)) + smoothing;
  }
  return loss;
}

// Gradient of one row: dx_j = (exp(x_j - max)/sum - target_j)*g, target_j = ls/classes
// (if ls != 0) + (1 - ls) at the label, subtracted in that order as the twin does.
template <typename T>
__host__ __device__ __forceinline__ void softmax_xent_backward_row(long long classes, T g,
                                                                   const T* x, long long label,
                                                                   long long ignore_index,
                                                                   double label_smoothing, T* dx) {
  if (label == ignore_index || !xent_label_in_range(label, classes)) {
    T fill = T(0);
    if (label != ignore_index) xent::set_nan(fill);
    for (long long j = 0; j < classes; ++j) dx[j] = fill;
    return;
  }
  T m = x[0], s = T(0);
  for (long long j = 0; j < classes; ++j) push_logit(m, s, x[j]);
  const bool smooth = label_smoothing != 0.0;
  const T off = T(label_smoothing / double(classes));
  const T on = T(1.0 - label_smoothing);
  for (long long j = 0; j < classes; ++j) {
    T p = xent::exp(x[j] - m) / s;
    if (smooth) p = p - off;
    if (j == label) p = p - on;
    dx[j] = p * g;
  }
}

}  // namespace gg
