// Attention's softmax for the CPU, float32: the NumPy backend's compiled path
// (gpugrad/backend/native.py builds it). The NumPy twin is nn/attention.py's _Attention.
//
// The scores are held transposed, (S, L) per head (key j, query i), so each query's softmax
// runs down a column: forward, in place, p[j, i] = e^(s[j, i] - max_j s) / Σ_j e^(...), with the
// causal mask (key j hidden from query i when j > i) giving exactly 0; backward, in place on
// ds = v·gᵀ, ds[j, i] = (ds[j, i] - Σ_j ds·p) · p[j, i]. Rows are whole contiguous lines of
// queries, so every loop runs along a row and vectorises. e^x is fast_math.h's, within an ulp
// of NumPy's; sums run in float32 in row order (the twin's by BLAS), so results agree with the
// twin's to a few ulps. NaN in a column makes the whole column NaN, as in the twin. Heads are
// independent and shared over the CPUs (parallel.h): the same bits on any number of threads.
#include <vector>

#include "fast_math.h"
#include "parallel.h"

namespace {

using gg_cpu::exp_nonpositive_f32;

void softmax_columns(float* __restrict s, long long rows, long long cols, bool causal,
                     float* __restrict top, float* __restrict total) {
  for (long long i = 0; i < cols; ++i) {
    top[i] = -__builtin_inff();
    total[i] = 0.0f;
  }
  for (long long j = 0; j < rows; ++j) {
    const float* __restrict row = s + j * cols;
    // Query i sees key j when i >= j: the row's visible part starts at column j.
    for (long long i = causal ? j : 0; i < cols; ++i) {
      const float v = row[i];
      top[i] = (v > top[i]) | (v != v) ? v : top[i];  // NaN wins and stays
    }
  }
  for (long long j = 0; j < rows; ++j) {
    float* __restrict row = s + j * cols;
    const long long first = causal ? (j < cols ? j : cols) : 0;
    for (long long i = 0; i < first; ++i) row[i] = 0.0f;
    for (long long i = first; i < cols; ++i) {
      const float e = exp_nonpositive_f32(row[i] - top[i]);
      row[i] = e;
      total[i] += e;
    }
  }
  for (long long j = 0; j < rows; ++j) {
    float* __restrict row = s + j * cols;
    for (long long i = 0; i < cols; ++i) row[i] = row[i] / total[i];
  }
}

void softmax_columns_backward(float* __restrict ds, const float* __restrict p, long long rows,
                              long long cols, float* __restrict dot) {
  for (long long i = 0; i < cols; ++i) dot[i] = 0.0f;
  for (long long j = 0; j < rows; ++j) {
    const float* __restrict d = ds + j * cols;
    const float* __restrict q = p + j * cols;
    for (long long i = 0; i < cols; ++i) dot[i] += d[i] * q[i];
  }
  for (long long j = 0; j < rows; ++j) {
    float* __restrict d = ds + j * cols;
    const float* __restrict q = p + j * cols;
    for (long long i = 0; i < cols; ++i) d[i] = (d[i] - dot[i]) * q[i];
  }
}

// Scores per part of a split loop (whole heads): below two parts a call stays on one thread.
constexpr long long GRAIN = 1 << 14;

}  // namespace

extern "C" {

// scores (heads, rows, cols) -> the softmax of each column, in place.
void gg_softmax_columns_f32(float* scores, long long heads, long long rows, long long cols,
                            int causal) {
  const long long per_part = gg_cpu::units_per_part(rows * cols, GRAIN);
  gg_cpu::parallel_for(heads, per_part, [&](long long begin, long long end) {
    std::vector<float> top(cols), total(cols);
    for (long long h = begin; h < end; ++h) {
      softmax_columns(scores + h * rows * cols, rows, cols, causal != 0, top.data(),
                      total.data());
    }
  });
}

// ds, p (heads, rows, cols): ds ← (ds − Σ_rows ds·p)·p per column, in place.
void gg_softmax_columns_backward_f32(float* ds, const float* p, long long heads, long long rows,
                                     long long cols) {
  const long long per_part = gg_cpu::units_per_part(rows * cols, GRAIN);
  gg_cpu::parallel_for(heads, per_part, [&](long long begin, long long end) {
    std::vector<float> dot(cols);
    for (long long h = begin; h < end; ++h) {
      softmax_columns_backward(ds + h * rows * cols, p + h * rows * cols, rows, cols,
                               dot.data());
    }
  });
}

}  // extern "C"
