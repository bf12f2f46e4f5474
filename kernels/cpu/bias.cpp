// A linear layer's bias added to every row of its product, in place, for the CPU: the NumPy
// backend's compiled path for `out += b` on a (rows, cols) float array (nn/layers.py's _Linear).
// One IEEE addition per element, as NumPy's, so the same bits; the rows are shared over the
// CPUs (parallel.h), where NumPy's broadcast add runs on one.
#include "parallel.h"

namespace {

// Elements per part of a split loop: below two of them a call stays on one thread.
constexpr long long GRAIN = 1 << 15;

template <typename T>
void add_rows(T* out, const T* row, long long rows, long long cols) {
  const long long per_part = cols >= GRAIN ? 1 : GRAIN / (cols > 0 ? cols : 1);
  gg_cpu::parallel_for(rows, per_part, [&](long long first, long long last) {
    for (long long r = first; r < last; ++r) {
      T* __restrict o = out + r * cols;
      const T* __restrict b = row;
      for (long long c = 0; c < cols; ++c) o[c] = o[c] + b[c];
    }
  });
}

}  // namespace

extern "C" {

// out (rows, cols) += row (cols), each row.
void gg_add_rows_f32(float* out, const float* row, long long rows, long long cols) {
  add_rows(out, row, rows, cols);
}

void gg_add_rows_f64(double* out, const double* row, long long rows, long long cols) {
  add_rows(out, row, rows, cols);
}

}  // extern "C"
