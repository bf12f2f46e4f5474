// A batch of small matrix products for the CPU: the NumPy backend's compiled path for
// np.matmul on stacks of matrices (attention's q·kᵀ and p·v).
//
// NumPy multiplies a stack one matrix after another on the calling thread, and OpenBLAS runs a
// product that small on one thread too: a GPT step's 64 products of 64 x 32 by 32 x 64 used one
// core of two. Here the same BLAS call per matrix, with the same arguments NumPy's loop gives
// it, is shared over the pool's threads by matrix, so each product has the bits it has in
// NumPy. The gemm function is NumPy's OpenBLAS's, found by gpugrad/backend/blas_threads.py
// (ILP64: 64-bit sizes).
#include <cstdint>

#include "parallel.h"

namespace {

// CBLAS's enums, as cblas.h numbers them.
constexpr int ROW_MAJOR = 101;
constexpr int NO_TRANS = 111;
constexpr int TRANS = 112;

template <typename T>
using Gemm = void (*)(int order, int trans_a, int trans_b, std::int64_t m, std::int64_t n,
                      std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
                      std::int64_t ldb, T beta, T* c, std::int64_t ldc);

// One operand of the stack, whose matrices are walked by two batch axes: matrix (o, i) starts
// at base + o·outer + i·inner (elements); `transposed` says its rows are columns in memory,
// `ld` is the distance between them.
template <typename T>
struct Operand {
  const T* base;
  std::int64_t outer, inner, ld;
  int transposed;

  const T* matrix(long long o, long long i) const { return base + o * outer + i * inner; }
};

template <typename T>
void bmm(void* gemm, long long outer, long long inner, long long m, long long n, long long k,
         const Operand<T>& a, const Operand<T>& b, T* c) {
  const Gemm<T> product = reinterpret_cast<Gemm<T>>(gemm);
  const int ta = a.transposed ? TRANS : NO_TRANS;
  const int tb = b.transposed ? TRANS : NO_TRANS;
  // One matrix per chunk: a product of this size takes microseconds, a chunk's hand-over far
  // less.
  gg_cpu::parallel_for(outer * inner, 1, [&](long long begin, long long end) {
    for (long long j = begin; j < end; ++j) {
      const long long o = j / inner, i = j % inner;
      product(ROW_MAJOR, ta, tb, m, n, k, T(1), a.matrix(o, i), a.ld, b.matrix(o, i), b.ld, T(0),
              c + j * m * n, n);
    }
  });
}

}  // namespace

extern "C" {

// c[j] = a[j]·b[j] for the outer·inner matrices of two stacks walked by two batch axes:
// a's matrix (o, i) (m x k) at a + o·a_outer + i·a_inner, b's (k x n) likewise; each stored by
// rows with leading dimension lda/ldb, or transposed (by columns) where a_t/b_t; c contiguous
// (outer·inner, m, n), j = o·inner + i. gemm: cblas_sgemm with 64-bit sizes.
void gg_bmm_f32(void* gemm, long long outer, long long inner, long long m, long long n,
                long long k, const float* a, long long a_outer, long long a_inner, long long lda,
                int a_t, const float* b, long long b_outer, long long b_inner, long long ldb,
                int b_t, float* c) {
  bmm<float>(gemm, outer, inner, m, n, k, {a, a_outer, a_inner, lda, a_t},
             {b, b_outer, b_inner, ldb, b_t}, c);
}

// As gg_bmm_f32 in float64, with cblas_dgemm.
void gg_bmm_f64(void* gemm, long long outer, long long inner, long long m, long long n,
                long long k, const double* a, long long a_outer, long long a_inner,
                long long lda, int a_t, const double* b, long long b_outer, long long b_inner,
                long long ldb, int b_t, double* c) {
  bmm<double>(gemm, outer, inner, m, n, k, {a, a_outer, a_inner, lda, a_t},
              {b, b_outer, b_inner, ldb, b_t}, c);
}

}  // extern "C"
