// Layer normalisation of the rows of a contiguous (rows, size) array for the CPU, forward and
// backward: the NumPy backend's compiled path (gpugrad/backend/native.py builds it). The NumPy
// twin is nn/layers.py's _LayerNorm (forward, _backward_arrays).
//
// Forward, per row: mean, the biased variance of the centred row, r = 1/√(var + eps),
// x̂ = (x − mean)·r (kept for backward), out = x̂·w + b. Backward, with ĝ = g·w:
// dL/dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dL/dw = Σ_rows g·x̂, dL/db = Σ_rows g.
// Row sums accumulate in float64 (the twin's BLAS sums in the array's dtype), so float32
// results agree with the twin's to a few ulps, not bit for bit; and where a float32 row's sum
// of squares passes 3.4e38 the twin's variance is inf (its outputs 0) while these stay finite.
// Rows are shared over the CPUs (parallel.h); dL/dw and dL/db sum blocks of BLOCK_ROWS rows
// each, then the blocks in order, so the bits do not depend on the number of threads.
#include <cmath>
#include <vector>

#include "parallel.h"

namespace {

// Σ term(c) over c < n in float64, in 16 running sums (one vector's worth of lanes) added at
// the end: a fixed order the compiler may vectorise, where one running sum would be a chain of
// dependent adds (no -ffast-math here to reorder it).
template <typename Term>
inline double lane_sum(long long n, Term term) {
  constexpr int LANES = 16;
  double lanes[LANES] = {};
  long long c = 0;
  for (; c + LANES <= n; c += LANES) {
#pragma GCC unroll 16
    for (int l = 0; l < LANES; ++l) lanes[l] += term(c + l);
  }
  for (; c < n; ++c) lanes[c % LANES] += term(c);
  double total = 0;
  for (int l = 0; l < LANES; ++l) total += lanes[l];
  return total;
}

// Rows per block of the weight and bias gradients' sums (fixed: the bits must not depend on
// the threads), and elements per part of a split loop.
constexpr long long BLOCK_ROWS = 32;
constexpr long long GRAIN = 1 << 14;

template <typename T>
void forward_rows(const T* __restrict x, const T* __restrict w, const T* __restrict b,
                  T* __restrict out, T* __restrict normalised, T* __restrict inv_std,
                  long long first, long long last, long long size, double eps) {
  for (long long r = first; r < last; ++r) {
    const T* __restrict in = x + r * size;
    T* __restrict xh = normalised + r * size;
    T* __restrict o = out + r * size;
    const double total = lane_sum(size, [&](long long c) { return double(in[c]); });
    const T mean = T(total / double(size));
    for (long long c = 0; c < size; ++c) xh[c] = in[c] - mean;
    const double squares = lane_sum(size, [&](long long c) {
      const double centred = double(xh[c]);
      return centred * centred;
    });
    const T scale = T(1.0 / std::sqrt(squares / double(size) + eps));
    inv_std[r] = scale;
    for (long long c = 0; c < size; ++c) {
      const T v = xh[c] * scale;
      xh[c] = v;
      T y = w ? v * w[c] : v;
      o[c] = b ? y + b[c] : y;
    }
  }
}

template <typename T>
void forward(const T* x, const T* w, const T* b, T* out, T* normalised, T* inv_std,
             long long rows, long long size, double eps) {
  const long long per_part = gg_cpu::units_per_part(size, GRAIN);
  gg_cpu::parallel_for(rows, per_part, [&](long long first, long long last) {
    forward_rows(x, w, b, out, normalised, inv_std, first, last, size, eps);
  });
}

// Rows [first, last) of the backward: gx's rows when wanted, and the rows' Σ g·x̂ and Σ g
// added into sum_w and sum_b (size each) when wanted (null pointers skip them).
template <typename T>
void backward_rows(const T* __restrict g, const T* __restrict normalised,
                   const T* __restrict inv_std, const T* __restrict w, T* __restrict gx,
                   double* __restrict sum_w, double* __restrict sum_b, long long first,
                   long long last, long long size) {
  std::vector<T> scaled_row(gx ? size : 0);
  for (long long r = first; r < last; ++r) {
    const T* __restrict gr = g + r * size;
    const T* __restrict xh = normalised + r * size;
    if (sum_w) {
      for (long long c = 0; c < size; ++c) sum_w[c] += double(gr[c] * xh[c]);
    }
    if (sum_b) {
      for (long long c = 0; c < size; ++c) sum_b[c] += double(gr[c]);
    }
    if (!gx) continue;
    T* __restrict scaled = scaled_row.data();  // ĝ = g·w
    if (w) {
      for (long long c = 0; c < size; ++c) scaled[c] = gr[c] * w[c];
    } else {
      for (long long c = 0; c < size; ++c) scaled[c] = gr[c];
    }
    const double dot = lane_sum(size, [&](long long c) { return double(scaled[c]) * double(xh[c]); });
    const double mean = lane_sum(size, [&](long long c) { return double(scaled[c]); });
    const T dot_mean = T(dot / double(size)), g_mean = T(mean / double(size));
    const T scale = inv_std[r];
    T* __restrict out = gx + r * size;
    for (long long c = 0; c < size; ++c) {
      out[c] = ((scaled[c] - xh[c] * dot_mean) - g_mean) * scale;
    }
  }
}

// gx (rows, size) when wanted, gw and gb (size) when wanted (null pointers skip them).
template <typename T>
void backward(const T* g, const T* normalised, const T* inv_std, const T* w, T* gx, T* gw,
              T* gb, long long rows, long long size) {
  const long long blocks = (rows + BLOCK_ROWS - 1) / BLOCK_ROWS;
  std::vector<double> block_w(gw ? blocks * size : 0, 0.0);
  std::vector<double> block_b(gb ? blocks * size : 0, 0.0);
  const long long rows_per_part = gg_cpu::units_per_part(size, GRAIN);
  const long long per_part = (rows_per_part + BLOCK_ROWS - 1) / BLOCK_ROWS;
  gg_cpu::parallel_for(blocks, per_part, [&](long long begin, long long end) {
    for (long long k = begin; k < end; ++k) {
      const long long first = k * BLOCK_ROWS;
      const long long last = first + BLOCK_ROWS < rows ? first + BLOCK_ROWS : rows;
      backward_rows(g, normalised, inv_std, w, gx, gw ? block_w.data() + k * size : nullptr,
                    gb ? block_b.data() + k * size : nullptr, first, last, size);
    }
  });
  for (long long c = 0; gw && c < size; ++c) {
    double total = 0.0;
    for (long long k = 0; k < blocks; ++k) total += block_w[k * size + c];
    gw[c] = T(total);
  }
  for (long long c = 0; gb && c < size; ++c) {
    double total = 0.0;
    for (long long k = 0; k < blocks; ++k) total += block_b[k * size + c];
    gb[c] = T(total);
  }
}

}  // namespace

extern "C" {

// x (rows, size); w, b (size) or null -> out, normalised (rows, size), inv_std (rows).
void gg_layer_norm_forward_f32(const float* x, const float* w, const float* b, float* out,
                               float* normalised, float* inv_std, long long rows,
                               long long size, double eps) {
  forward(x, w, b, out, normalised, inv_std, rows, size, eps);
}

void gg_layer_norm_forward_f64(const double* x, const double* w, const double* b, double* out,
                               double* normalised, double* inv_std, long long rows,
                               long long size, double eps) {
  forward(x, w, b, out, normalised, inv_std, rows, size, eps);
}

void gg_layer_norm_backward_f32(const float* g, const float* normalised, const float* inv_std,
                                const float* w, float* gx, float* gw, float* gb, long long rows,
                                long long size) {
  backward(g, normalised, inv_std, w, gx, gw, gb, rows, size);
}

void gg_layer_norm_backward_f64(const double* g, const double* normalised,
                                const double* inv_std, const double* w, double* gx, double* gw,
                                double* gb, long long rows, long long size) {
  backward(g, normalised, inv_std, w, gx, gw, gb, rows, size);
}

}  // extern "C"
