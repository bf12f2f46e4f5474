// Max pooling over windows that tile a contiguous (N, C, H, W) input (kernel == stride, no
// padding, H and W multiples of the kernel) for the CPU: the NumPy backend's compiled path
// (gpugrad/backend/native.py builds it). The NumPy twin is ops/pool.py's TiledMaxPool.
//
// The forward writes each window's maximum and the position (row-major, within the window) of
// its first maximum; NaN wins, and the first NaN is the one taken, as in max and argmax. The
// maximum written is the value at that position: where -0.0 and 0.0 tie, the first of them
// (the twin's np.maximum may give the other zero; they compare equal). The
// backward writes g·1 at that position and g·0 at the others: the twin's g times its mask, bit
// for bit (a non-finite g also reaches the other positions, as NaN; a negative g leaves -0.0).
#include <cstdint>
#include <vector>

#include "parallel.h"

namespace {

// Rows of windows are handled in chunks of this many (the two scratch rows stay in L1/L2).
constexpr long long CHUNK = 32;

// Whether v takes over from the running maximum m: a larger value, or the first NaN (a NaN
// already held is kept).
template <typename T>
inline bool takes_over(T v, T m) {
  return (v > m || v != v) && m == m;
}

// One row of windows: kh kernel rows of w input elements from `group`, ow windows side by
// side. Plain scalar code, for any kernel size and any values, NaN included.
template <typename T>
void windows_exact(const T* group, long long w, long long ow, long long kh, long long kw,
                   T* best, std::int32_t* at) {
  for (long long j = 0; j < ow; ++j) {
    T m = group[j * kw];
    std::int32_t k = 0;
    for (long long q = 1; q < kh * kw; ++q) {
      const T v = group[(q / kw) * w + j * kw + q % kw];
      if (takes_over(v, m)) {
        m = v;
        k = std::int32_t(q);
      }
    }
    best[j] = m;
    at[j] = k;
  }
}

// Step 1, down the kernel rows: for `rows` rows of windows (kh input rows of w each), each
// column's maximum (the first of equals) and the kernel row holding it. Whole input rows at a
// time, so the loops are long and vectorise. Returns whether any input was NaN (a strict >
// never takes a NaN: such rows are redone by windows_exact).
template <typename T>
bool columns_down(const T* __restrict x, T* __restrict top, std::int32_t* __restrict row_of,
                  long long rows, long long w, long long kh) {
  long long nans = 0;
  for (long long r = 0; r < rows; ++r) {
    const T* __restrict in = x + r * kh * w;
    T* __restrict m = top + r * w;
    std::int32_t* __restrict a_of = row_of + r * w;
    for (long long c = 0; c < w; ++c) {
      m[c] = in[c];
      a_of[c] = 0;
      nans += in[c] != in[c];
    }
    for (long long a = 1; a < kh; ++a) {
      const T* __restrict next = in + a * w;
      for (long long c = 0; c < w; ++c) {
        const T e = next[c];
        const bool larger = e > m[c];
        m[c] = larger ? e : m[c];
        a_of[c] = larger ? std::int32_t(a) : a_of[c];
        nans += e != e;
      }
    }
  }
  return nans != 0;
}

// Among equal maxima the first in row-major order wins: the lower kernel row, then the lower
// column. Positions are row-major within the window.
template <typename T>
inline void consider(T e, std::int32_t position, T& m, std::int32_t& k) {
  const bool take = (e > m) | ((e == m) & (position < k));
  m = take ? e : m;
  k = take ? position : k;
}

// Step 2, across each window's KW columns: the column maxima of a chunk are (windows, KW)
// row-major, so this is one long loop over the windows.
template <typename T, int KW>
void windows_across(const T* __restrict top, const std::int32_t* __restrict row_of,
                    T* __restrict best, std::int32_t* __restrict at, long long windows) {
  static_assert(KW == 2 || KW == 3, "compiled for widths 2 and 3");
  for (long long i = 0; i < windows; ++i) {
    T m = top[i * KW];
    std::int32_t k = row_of[i * KW] * KW;
    consider(top[i * KW + 1], row_of[i * KW + 1] * KW + 1, m, k);
    if constexpr (KW == 3) consider(top[i * KW + 2], row_of[i * KW + 2] * KW + 2, m, k);
    best[i] = m;
    at[i] = k;
  }
}

template <typename T, int KW>
void forward_two_steps(const T* x, T* out, std::int32_t* where, long long rows, long long w,
                       long long kh) {
  const long long ow = w / KW;
  std::vector<T> top(CHUNK * w);
  std::vector<std::int32_t> row_of(CHUNK * w);
  for (long long r0 = 0; r0 < rows; r0 += CHUNK) {
    const long long count = rows - r0 < CHUNK ? rows - r0 : CHUNK;
    const T* in = x + r0 * kh * w;
    if (columns_down(in, top.data(), row_of.data(), count, w, kh)) {
      for (long long r = 0; r < count; ++r) {
        windows_exact(in + r * kh * w, w, ow, kh, (long long)KW, out + (r0 + r) * ow,
                      where + (r0 + r) * ow);
      }
    } else {
      windows_across<T, KW>(top.data(), row_of.data(), out + r0 * ow, where + r0 * ow,
                            count * ow);
    }
  }
}

// `rows` rows of windows (kh input rows of w each) from x.
template <typename T>
void forward_rows(const T* x, T* out, std::int32_t* where, long long rows, long long w,
                  long long kh, long long kw) {
  const long long ow = w / kw;
  if (kw == 2) return forward_two_steps<T, 2>(x, out, where, rows, w, kh);
  if (kw == 3) return forward_two_steps<T, 3>(x, out, where, rows, w, kh);
  for (long long r = 0; r < rows; ++r) {
    windows_exact(x + r * kh * w, w, ow, kh, kw, out + r * ow, where + r * ow);
  }
}

// g·1 at each window's recorded position, g·0 at the others; one input row (kernel row a of a
// row of windows) at a time, a long loop over its columns.
template <typename T, int KW>
void backward_rows(const T* __restrict g, const std::int32_t* __restrict where,
                   T* __restrict gx, long long rows, long long w, long long kh) {
  const long long ow = w / KW;
  for (long long r = 0; r < rows; ++r) {
    const T* __restrict gr = g + r * ow;
    const std::int32_t* __restrict at = where + r * ow;
    for (int a = 0; a < int(kh); ++a) {
      T* __restrict row = gx + (r * kh + a) * w;
      for (long long c = 0; c < w; ++c) {
        const long long j = c / KW;
        const int b = int(c % KW);
        row[c] = gr[j] * (at[j] == a * KW + b ? T(1) : T(0));
      }
    }
  }
}

// `rows` rows of windows of gx (kh input rows of w each) from their g and where.
template <typename T>
void backward_rows_any(const T* g, const std::int32_t* where, T* gx, long long rows,
                       long long w, long long kh, long long kw) {
  const long long ow = w / kw;
  if (kw == 2) return backward_rows<T, 2>(g, where, gx, rows, w, kh);
  if (kw == 3) return backward_rows<T, 3>(g, where, gx, rows, w, kh);
  for (long long r = 0; r < rows; ++r) {
    for (long long q = 0; q < kh * kw; ++q) {
      T* row = gx + (r * kh + q / kw) * w + q % kw;
      for (long long j = 0; j < ow; ++j) {
        row[j * kw] = g[r * ow + j] * (where[r * ow + j] == q ? T(1) : T(0));
      }
    }
  }
}

// Rows of windows per part of a split loop: about GRAIN input elements, below two of which a
// call stays on one thread.
constexpr long long GRAIN = 1 << 14;

// Rows of windows are independent: shared over the CPUs (parallel.h), the same bits on any
// number of threads.
template <typename T>
void forward(const T* x, T* out, std::int32_t* where, long long planes, long long h,
             long long w, long long kh, long long kw) {
  const long long rows = planes * (h / kh), ow = w / kw;
  const long long per_part = gg_cpu::units_per_part(kh * w, GRAIN);
  gg_cpu::parallel_for(rows, per_part, [&](long long begin, long long end) {
    forward_rows(x + begin * kh * w, out + begin * ow, where + begin * ow, end - begin, w, kh,
                 kw);
  });
}

template <typename T>
void backward(const T* g, const std::int32_t* where, T* gx, long long planes, long long h,
              long long w, long long kh, long long kw) {
  const long long rows = planes * (h / kh), ow = w / kw;
  const long long per_part = gg_cpu::units_per_part(kh * w, GRAIN);
  gg_cpu::parallel_for(rows, per_part, [&](long long begin, long long end) {
    backward_rows_any(g + begin * ow, where + begin * ow, gx + begin * kh * w, end - begin, w,
                      kh, kw);
  });
}

}  // namespace

extern "C" {

// x (planes, h, w) -> out and where (planes, h/kh, w/kw): each window's maximum and the
// row-major position of its first maximum.
void gg_max_pool_tiled_forward_f32(const float* x, float* out, std::int32_t* where,
                                   long long planes, long long h, long long w, long long kh,
                                   long long kw) {
  forward(x, out, where, planes, h, w, kh, kw);
}

void gg_max_pool_tiled_forward_f64(const double* x, double* out, std::int32_t* where,
                                   long long planes, long long h, long long w, long long kh,
                                   long long kw) {
  forward(x, out, where, planes, h, w, kh, kw);
}

// g and where (planes, h/kh, w/kw) -> gx (planes, h, w).
void gg_max_pool_tiled_backward_f32(const float* g, const std::int32_t* where, float* gx,
                                    long long planes, long long h, long long w, long long kh,
                                    long long kw) {
  backward(g, where, gx, planes, h, w, kh, kw);
}

void gg_max_pool_tiled_backward_f64(const double* g, const std::int32_t* where, double* gx,
                                    long long planes, long long h, long long w, long long kh,
                                    long long kw) {
  backward(g, where, gx, planes, h, w, kh, kw);
}

}  // extern "C"
