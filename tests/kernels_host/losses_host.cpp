// Host build of kernels/losses.cuh for tests/test_kernels.py: whole-array extern "C" wrappers
// that ctypes can call, so the header's row functions are compared with the NumPy twins
// (loss_math.softmax_cross_entropy_forward / _backward) on a CPU. Arguments follow the kernels
// in kernels/losses.cu.
//
// Two deliberately wrong variants exist only so the test can show that its comparison catches
// a wrong formula: gg_xent_forward_noshift_* sums exp(x) without subtracting the row's max
// (overflows for large logits), gg_xent_backward_nosmooth_* subtracts a one-hot target even
// when label smoothing asks for the smoothed one.
#include "losses.cuh"

namespace {

template <typename T>
void forward(long long rows, long long classes, const T* logits, const long long* labels,
             T* loss, long long ignore_index, double label_smoothing) {
  for (long long r = 0; r < rows; ++r) {
    loss[r] = gg::softmax_xent_forward_row(classes, logits + r * classes, labels[r],
                                           ignore_index, label_smoothing);
  }
}

template <typename T>
void backward(long long rows, long long classes, const T* g, const T* logits,
              const long long* labels, T* dlogits, long long ignore_index,
              double label_smoothing) {
  for (long long r = 0; r < rows; ++r) {
    gg::softmax_xent_backward_row(classes, g[r], logits + r * classes, labels[r], ignore_index,
                                  label_smoothing, dlogits + r * classes);
  }
}

template <typename T>
void forward_noshift(long long rows, long long classes, const T* logits, const long long* labels,
                     T* loss, long long ignore_index, double label_smoothing) {
  for (long long r = 0; r < rows; ++r) {
    const T* x = logits + r * classes;
    T s = T(0), sum = T(0);
    for (long long j = 0; j < classes; ++j) {
      s = s + gg::xent::exp(x[j]);
      sum = sum + x[j];
    }
    const T log_norm = gg::xent::log(s);
    const T spread = log_norm - sum / T(classes);
    const T picked = log_norm - x[labels[r] == ignore_index ? 0 : labels[r]];
    loss[r] = labels[r] == ignore_index ? T(0)
                                        : picked * T(1.0 - label_smoothing) +
                                              spread * T(label_smoothing);
  }
}

template <typename T>
void backward_nosmooth(long long rows, long long classes, const T* g, const T* logits,
                       const long long* labels, T* dlogits, long long ignore_index, double) {
  backward(rows, classes, g, logits, labels, dlogits, ignore_index, 0.0);
}

}  // namespace

#define GG_LOSS_HOST(T, S)                                                                      \
  void gg_xent_forward_##S(long long rows, long long classes, const T* logits,                 \
                           const long long* labels, T* loss, long long ignore_index,           \
                           double label_smoothing) {                                           \
    forward<T>(rows, classes, logits, labels, loss, ignore_index, label_smoothing);            \
  }                                                                                             \
  void gg_xent_backward_##S(long long rows, long long classes, const T* g, const T* logits,    \
                            const long long* labels, T* dlogits, long long ignore_index,       \
                            double label_smoothing) {                                          \
    backward<T>(rows, classes, g, logits, labels, dlogits, ignore_index, label_smoothing);     \
  }                                                                                             \
  void gg_xent_forward_noshift_##S(long long rows, long long classes, const T* logits,         \
                                   const long long* labels, T* loss, long long ignore_index,   \
                                   double label_smoothing) {                                   \
    forward_noshift<T>(rows, classes, logits, labels, loss, ignore_index, label_smoothing);    \
  }                                                                                             \
  void gg_xent_backward_nosmooth_##S(long long rows, long long classes, const T* g,            \
                                     const T* logits, const long long* labels, T* dlogits,     \
                                     long long ignore_index, double label_smoothing) {         \
    backward_nosmooth<T>(rows, classes, g, logits, labels, dlogits, ignore_index,              \
                         label_smoothing);                                                      \
  }

extern "C" {
GG_LOSS_HOST(float, f32)
GG_LOSS_HOST(double, f64)
}
