// Additions of large float arrays for the CPU, split over the CPUs (parallel.h) where NumPy's
// run on one: a linear layer's bias added to every row of its product, in place (`out += b`
// in nn/layers.py's _Linear), and two arrays of one shape added (ops/arithmetic.py's Add on
// large arrays: a transformer's residual stream). One IEEE addition per element, as NumPy's,
// so the same bits.
#include "parallel.h"

namespace {

// Elements per part of a split loop: below two of them a call stays on one thread.
constexpr long long GRAIN = 1 << 15;

template <typename T>
void add_rows(T* out, const T* row, long long rows, long long cols) {
  const long long per_part = gg_cpu::units_per_part(cols, GRAIN);
  gg_cpu::parallel_for(rows, per_part, [&](long long first, long long last) {
    for (long long r = first; r < last; ++r) {
      T* __restrict o = out + r * cols;
      const T* __restrict b = row;
      for (long long c = 0; c < cols; ++c) o[c] = o[c] + b[c];
    }
  });
}

template <typename T>
void add(const T* a, const T* b, T* out, long long n) {
  gg_cpu::parallel_for(n, GRAIN, [&](long long begin, long long end) {
    const T* __restrict x = a;
    const T* __restrict y = b;
    T* __restrict z = out;
    for (long long i = begin; i < end; ++i) z[i] = x[i] + y[i];
  });
}

}  // namespace

extern "C" {

// out = a + b, n elements each.
void gg_add_f32(const float* a, const float* b, float* out, long long n) { add(a, b, out, n); }

void gg_add_f64(const double* a, const double* b, double* out, long long n) {
  add(a, b, out, n);
}


// out (rows, cols) += row (cols), each row.
void gg_add_rows_f32(float* out, const float* row, long long rows, long long cols) {
  add_rows(out, row, rows, cols);
}

void gg_add_rows_f64(double* out, const double* row, long long rows, long long cols) {
  add_rows(out, row, rows, cols);
}

}  // extern "C"
