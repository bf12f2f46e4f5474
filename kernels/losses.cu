// Fused softmax cross-entropy kernels: per-row losses, and the gradient with respect to the
// logits, for logits of shape (rows, classes).
//
// Names and arguments (rows, classes: 64-bit counts; logits C-contiguous (rows, classes) of the
// kernel's dtype; labels int64 (rows,); ignore_index int64; label_smoothing double):
//   softmax_cross_entropy_forward_<f32|f64>(rows, classes, logits, labels, loss, ignore_index,
//                                           label_smoothing)
//     loss: rows elements.
//   softmax_cross_entropy_backward_<f32|f64>(rows, classes, g, logits, labels, dlogits,
//                                            ignore_index, label_smoothing)
//     g: rows elements (dL/d of each row's loss); dlogits: (rows, classes).
// Rows labelled ignore_index get loss 0 and a zero gradient row; a label outside [0, classes)
// that is not ignore_index gets a NaN loss and a NaN gradient row (see kernels/losses.cuh).
//
// One thread per row, grid-stride over rows, so any 1-D grid/block covers any number of rows
// and no shared memory or warp intrinsics are needed (tests/test_kernels.py runs these bodies on
// the host). Forward reads each row once; backward reads it twice (max and sum, then the
// gradient). Threads of a warp read rows `classes` elements apart, so for many classes a
// block-per-row kernel would read memory better: for later, measured on a GPU.
#include "losses.cuh"

// 64-bit row index: blockIdx.x * blockDim.x in 32 bits would wrap past 2^32 rows.
#define GG_ROWS_FOR_EACH(r, rows)                                                   \
  for (long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; r < (rows); \
       r += (long long)blockDim.x * gridDim.x)

#define GG_LOSS_KERNELS(T, S)                                                                   \
  extern "C" __global__ void softmax_cross_entropy_forward_##S(                                 \
      long long rows, long long classes, const T* __restrict__ logits,                         \
      const long long* __restrict__ labels, T* __restrict__ loss, long long ignore_index,      \
      double label_smoothing) {                                                                 \
    GG_ROWS_FOR_EACH(r, rows) {                                                                 \
      loss[r] = gg::softmax_xent_forward_row(classes, logits + r * classes, labels[r],          \
                                             ignore_index, label_smoothing);                    \
    }                                                                                           \
  }                                                                                             \
  extern "C" __global__ void softmax_cross_entropy_backward_##S(                                \
      long long rows, long long classes, const T* __restrict__ g, const T* __restrict__ logits, \
      const long long* __restrict__ labels, T* __restrict__ dlogits, long long ignore_index,   \
      double label_smoothing) {                                                                 \
    GG_ROWS_FOR_EACH(r, rows) {                                                                 \
      gg::softmax_xent_backward_row(classes, g[r], logits + r * classes, labels[r],             \
                                    ignore_index, label_smoothing, dlogits + r * classes);      \
    }                                                                                           \
  }

GG_LOSS_KERNELS(float, f32)
GG_LOSS_KERNELS(double, f64)
