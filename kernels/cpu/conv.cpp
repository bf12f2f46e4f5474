// col2im of a 2-D convolution's input gradient for the CPU, from columns with the batch last
// (small output planes) or first (larger ones): the NumPy backend's compiled path (gpugrad/backend/native.py builds it). The
// NumPy twin is ops/conv.py's _input_grad, which adds each kernel position's columns into a
// zero-padded (C, Hp, Wp, n) buffer and then moves the batch to the front.
//
// Here each input position (c, h, w) sums, for all n samples at once (a contiguous run of the
// columns), the columns of the kernel positions (i, j) that met it, in the twin's row-major
// order of (i, j) and starting from zero: the same additions in the same order, so the same
// bits. The result is written straight into (n, C, H, W): no padded buffer, no transpose.
#include <vector>

#include "parallel.h"

namespace {

struct Geometry {
  long long channels, kh, kw, oh, ow, batch, h, w, pad_h, pad_w, stride_h, stride_w, dil_h,
      dil_w;
};

// dims: C, KH, KW, OH, OW, n, H, W, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w.
Geometry geometry(const long long* d) {
  return {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13]};
}

// Parts of a split loop: whole input rows (batch last) or planes (batch first) of about
// GRAIN output elements; below two of them a call stays on one thread.
constexpr long long GRAIN = 1 << 14;

// Input rows k = c·H + y in [begin, end) of fold_batch_last.
template <typename T>
void fold_batch_last_rows(const T* __restrict cols, T* __restrict out, const Geometry& g,
                          long long begin, long long end) {
  std::vector<T> sums(g.batch);
  T* __restrict acc = sums.data();
  const long long plane = g.h * g.w, sample = g.channels * plane;
  for (long long k = begin; k < end; ++k) {
    const long long c = k / g.h, y = k % g.h;
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

// The same with the batch first: cols (n, C, KH, KW, OH, OW), one sample's plane at a time,
// each kernel position's columns added along whole output rows, in the (i, j) order of the twin
// (ops/conv.py's _fold_into: one `+=` per kernel position into a zeroed buffer).
// Planes s = sample·C + channel in [begin, end) of fold_batch_first.
template <typename T>
void fold_batch_first_planes(const T* __restrict cols, T* __restrict out, const Geometry& g,
                             long long begin, long long end) {
  const long long plane = g.h * g.w, block = g.kh * g.kw * g.oh * g.ow;
  for (long long s = begin; s < end; ++s) {
    T* __restrict dst = out + s * plane;
    for (long long e = 0; e < plane; ++e) dst[e] = T(0);
    for (long long i = 0; i < g.kh; ++i) {
      for (long long j = 0; j < g.kw; ++j) {
        const T* __restrict src = cols + s * block + (i * g.kw + j) * g.oh * g.ow;
        const long long shift = j * g.dil_w - g.pad_w;  // input column of output column 0
        // Output columns whose input column lies inside [0, W).
        long long first = 0;
        while (first < g.ow && first * g.stride_w + shift < 0) ++first;
        long long last = g.ow;
        while (last > first && (last - 1) * g.stride_w + shift >= g.w) --last;
        for (long long r = 0; r < g.oh; ++r) {
          const long long row = r * g.stride_h + i * g.dil_h - g.pad_h;
          if (row < 0 || row >= g.h) continue;
          T* __restrict line = dst + row * g.w + shift;
          const T* __restrict from = src + r * g.ow;
          if (g.stride_w == 1) {
            for (long long c = first; c < last; ++c) line[c] += from[c];
          } else {
            for (long long c = first; c < last; ++c) line[c * g.stride_w] += from[c];
          }
        }
      }
    }
  }
}

template <typename T>
void fold_batch_last(const T* __restrict cols, T* __restrict out, const Geometry& g) {
  // Input rows (c, y) are written by one part each: shared over the CPUs, the same bits.
  const long long rows = g.channels * g.h;
  const long long per_part = gg_cpu::units_per_part(g.w * g.batch, GRAIN);
  gg_cpu::parallel_for(rows, per_part, [&](long long begin, long long end) {
    fold_batch_last_rows(cols, out, g, begin, end);
  });
}

template <typename T>
void fold_batch_first(const T* __restrict cols, T* __restrict out, const Geometry& g) {
  // Planes are written by one part each: shared over the CPUs, the same bits.
  const long long planes = g.batch * g.channels;
  const long long per_part = gg_cpu::units_per_part(g.h * g.w, GRAIN);
  gg_cpu::parallel_for(planes, per_part, [&](long long begin, long long end) {
    fold_batch_first_planes(cols, out, g, begin, end);
  });
}

}  // namespace

extern "C" {

// cols (C, KH, KW, OH, OW, n) -> out (n, C, H, W); dims as `geometry` reads them.
void gg_conv_fold_batch_last_f32(const float* cols, float* out, const long long* dims) {
  fold_batch_last(cols, out, geometry(dims));
}

void gg_conv_fold_batch_last_f64(const double* cols, double* out, const long long* dims) {
  fold_batch_last(cols, out, geometry(dims));
}

// cols (n, C, KH, KW, OH, OW) -> out (n, C, H, W); dims as above.
void gg_conv_fold_batch_first_f32(const float* cols, float* out, const long long* dims) {
  fold_batch_first(cols, out, geometry(dims));
}

void gg_conv_fold_batch_first_f64(const double* cols, double* out, const long long* dims) {
  fold_batch_first(cols, out, geometry(dims));
}

}  // extern "C"
