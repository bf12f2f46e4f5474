// col2im of a 2-D convolution's input gradient for the CPU, with the batch as the last axis of
// the columns: the NumPy backend's compiled path (gpugrad/backend/native.py builds it). The
// NumPy twin is ops/conv.py's _input_grad, which adds each kernel position's columns into a
// zero-padded (C, Hp, Wp, n) buffer and then moves the batch to the front.
//
// Here each input position (c, h, w) sums, for all n samples at once (a contiguous run of the
// columns), the columns of the kernel positions (i, j) that met it, in the twin's row-major
// order of (i, j) and starting from zero: the same additions in the same order, so the same
// bits. The result is written straight into (n, C, H, W): no padded buffer, no transpose.
#include <vector>

namespace {

struct Geometry {
  long long channels, kh, kw, oh, ow, batch, h, w, pad_h, pad_w, stride_h, stride_w, dil_h,
      dil_w;
};

template <typename T>
void fold_batch_last(const T* __restrict cols, T* __restrict out, const Geometry& g) {
  std::vector<T> sums(g.batch);
  T* __restrict acc = sums.data();
  const long long plane = g.h * g.w, sample = g.channels * plane;
  for (long long c = 0; c < g.channels; ++c) {
    for (long long y = 0; y < g.h; ++y) {
      for (long long x = 0; x < g.w; ++x) {
        for (long long b = 0; b < g.batch; ++b) acc[b] = T(0);
        for (long long i = 0; i < g.kh; ++i) {
          const long long row = y + g.pad_h - i * g.dil_h;  // in the padded input's frame
          if (row < 0 || row % g.stride_h != 0 || row / g.stride_h >= g.oh) continue;
          for (long long j = 0; j < g.kw; ++j) {
            const long long col = x + g.pad_w - j * g.dil_w;
            if (col < 0 || col % g.stride_w != 0 || col / g.stride_w >= g.ow) continue;
            const T* __restrict src =
                cols + ((((c * g.kh + i) * g.kw + j) * g.oh + row / g.stride_h) * g.ow +
                        col / g.stride_w) * g.batch;
            for (long long b = 0; b < g.batch; ++b) acc[b] += src[b];
          }
        }
        T* dst = out + c * plane + y * g.w + x;
        for (long long b = 0; b < g.batch; ++b) dst[b * sample] = acc[b];
      }
    }
  }
}

}  // namespace

extern "C" {

// cols (C, KH, KW, OH, OW, n) -> out (n, C, H, W). dims: C, KH, KW, OH, OW, n, H, W, pad_h,
// pad_w, stride_h, stride_w, dilation_h, dilation_w.
void gg_conv_fold_batch_last_f32(const float* cols, float* out, const long long* dims) {
  const Geometry g{dims[0], dims[1], dims[2],  dims[3],  dims[4],  dims[5],  dims[6],
                   dims[7], dims[8], dims[9], dims[10], dims[11], dims[12], dims[13]};
  fold_batch_last(cols, out, g);
}

void gg_conv_fold_batch_last_f64(const double* cols, double* out, const long long* dims) {
  const Geometry g{dims[0], dims[1], dims[2],  dims[3],  dims[4],  dims[5],  dims[6],
                   dims[7], dims[8], dims[9], dims[10], dims[11], dims[12], dims[13]};
  fold_batch_last(cols, out, g);
}

}  // extern "C"
