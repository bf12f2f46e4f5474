// Runs every kernel of kernels/activations.cu and kernels/optim.cu on the host through launch_shim.h, built with
// -fsanitize=address,undefined by tests/test_kernels.py. For each kernel, size n and grid/block
// shape: inputs are exactly n elements on the heap (so any out-of-bounds access is an ASan
// report), the output is poisoned with NaN first, and afterwards every element must equal, bit
// for bit, the header function applied to that element's inputs (so every element was written,
// by the right index). Prints "kernel <name>" per kernel, then "checked <elements> elements in
// <launches> launches, <m> mismatches"; exits 0, or 1 after printing the first mismatches.
//
// argv[1] = "control-oob" or "control-unwritten" runs only a deliberately broken kernel instead:
// the test expects ASan to report the first and this program to report the second.
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "launch_shim.h"
// The real kernel files, unchanged.
#include "activations.cu"
#include "optim.cu"

namespace {

// Controls: one reads and writes element n (i <= n), one never writes the last element.
__global__ void control_oob(long long n, const float* x, float* out) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i <= n;
       i += (long long)blockDim.x * gridDim.x)
    out[i] = x[i];
}
__global__ void control_unwritten(long long n, const float* x, float* out) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n - 1;
       i += (long long)blockDim.x * gridDim.x)
    out[i] = x[i];
}

struct Stats {
  long long elements = 0, launches = 0, failures = 0;
};

std::vector<long long> sizes() {
  std::vector<long long> s;
  for (long long n = 0; n <= 70; ++n) s.push_back(n);  // every size around one warp / block
  for (long long n = 97; n < 4097; n += 397) s.push_back(n);
  for (long long p = 128; p <= 4096; p *= 2) {
    for (long long d = -1; d <= 1; ++d) s.push_back(p + d);  // edges of power-of-two blocks
  }
  return s;
}

// (grid, block): fewer threads than elements, about equal, and many more.
const unsigned kShapes[][2] = {{1, 1},  {1, 32},  {3, 7},   {1, 256}, {4, 128},
                               {7, 33}, {64, 1},  {2, 1024}, {64, 256}};

// Reproducible inputs in [-4, 4] (no <random>: the same values on every libstdc++).
template <typename T>
T input_value(long long i, int k) {
  unsigned long long h = (unsigned long long)(i * 2654435761LL + k * 40503LL + 12345);
  h ^= h >> 13;
  h *= 0x9E3779B97F4A7C15ULL;
  return T((long long)(h >> 40) % 8001 - 4000) / T(1000);
}

// launch_kernel(grid, block, n, arrays): arrays[0..inputs-1] are the kernel's inputs,
// arrays[inputs] its output. reference(n, arrays, want) writes the expected output by calling
// the header function element by element.
template <typename T, typename Launch, typename Reference>
void check(Stats& st, const char* name, int inputs, Launch launch_kernel, Reference reference) {
  for (long long n : sizes()) {
    std::vector<T*> a(inputs + 1);
    for (int k = 0; k <= inputs; ++k) a[k] = new T[n];  // exactly n: one more is an ASan report
    for (int k = 0; k < inputs; ++k) {
      for (long long i = 0; i < n; ++i) a[k][i] = input_value<T>(i, k);
    }
    std::vector<T> want(n);
    reference(n, a.data(), want.data());
    for (const auto& shape : kShapes) {
      for (long long i = 0; i < n; ++i) a[inputs][i] = std::numeric_limits<T>::quiet_NaN();
      launch_kernel(dim3(shape[0]), dim3(shape[1]), n, a.data());
      ++st.launches;
      for (long long i = 0; i < n; ++i) {
        if (std::memcmp(&want[i], &a[inputs][i], sizeof(T)) != 0 && st.failures++ < 10) {
          std::printf("MISMATCH %s n=%lld grid=%u block=%u i=%lld: got %.17g want %.17g\n", name,
                      n, shape[0], shape[1], i, (double)a[inputs][i], (double)want[i]);
        }
      }
      st.elements += n;
    }
    for (T* p : a) delete[] p;
  }
  std::printf("kernel %s\n", name);  // the test compares this list with the .cu file's kernels
}

// One kernel: INPUTS arrays in, REF the expected element i, then the kernel's arguments after n.
#define GG_CHECK(T, KERNEL, INPUTS, REF, ...)                                                    \
  check<T>(st, #KERNEL, INPUTS,                                                                \
           [&](dim3 gr, dim3 bl, long long n, T** a) { launch(KERNEL, gr, bl, n, __VA_ARGS__); }, \
           [&](long long n, T** a, T* want) {                                            \
             for (long long i = 0; i < n; ++i) want[i] = REF;                            \
           })

// Every kernel of one dtype T (name suffix S); x, g, out are a[0], a[1], a[2] in kernel order.
#define GG_CHECK_ALL(T, S)                                                                       \
  do {                                                                                           \
    const T slope = T(0.1), alpha = T(0.7), beta = T(2), threshold = T(3);                       \
    GG_CHECK(T, activation_forward_relu_##S, 1, gg::relu_fwd(a[0][i]), a[0], a[1]);             \
    GG_CHECK(T, activation_forward_leaky_relu_##S, 1, gg::leaky_relu_fwd(a[0][i], slope), a[0], \
             a[1], slope);                                                                       \
    GG_CHECK(T, activation_forward_elu_##S, 1, gg::elu_fwd(a[0][i], alpha), a[0], a[1], alpha); \
    GG_CHECK(T, activation_forward_gelu_##S, 1, gg::gelu_fwd(a[0][i]), a[0], a[1]);             \
    GG_CHECK(T, activation_forward_gelu_tanh_##S, 1, gg::gelu_tanh_fwd(a[0][i]), a[0], a[1]);   \
    GG_CHECK(T, activation_forward_silu_##S, 1, gg::silu_fwd(a[0][i]), a[0], a[1]);             \
    GG_CHECK(T, activation_forward_sigmoid_##S, 1, gg::sigmoid_fwd(a[0][i]), a[0], a[1]);       \
    GG_CHECK(T, activation_forward_tanh_##S, 1, gg::tanh_fwd(a[0][i]), a[0], a[1]);             \
    GG_CHECK(T, activation_forward_softplus_##S, 1, gg::softplus_fwd(a[0][i], beta, threshold), \
             a[0], a[1], beta, threshold);                                                       \
    GG_CHECK(T, activation_backward_relu_##S, 2, gg::relu_bwd(a[0][i], a[1][i]), a[0], a[1],    \
             a[2]);                                                                              \
    GG_CHECK(T, activation_backward_leaky_relu_##S, 2,                                          \
             gg::leaky_relu_bwd(a[0][i], a[1][i], slope), a[0], a[1], a[2], slope);             \
    GG_CHECK(T, activation_backward_elu_##S, 3, gg::elu_bwd(a[0][i], a[1][i], a[2][i], alpha),  \
             a[0], a[1], a[2], a[3], alpha);                                                     \
    GG_CHECK(T, activation_backward_gelu_##S, 2, gg::gelu_bwd(a[0][i], a[1][i]), a[0], a[1],    \
             a[2]);                                                                              \
    GG_CHECK(T, activation_backward_gelu_tanh_##S, 2, gg::gelu_tanh_bwd(a[0][i], a[1][i]), a[0], \
             a[1], a[2]);                                                                        \
    GG_CHECK(T, activation_backward_silu_##S, 2, gg::silu_bwd(a[0][i], a[1][i]), a[0], a[1],    \
             a[2]);                                                                              \
    GG_CHECK(T, activation_backward_sigmoid_##S, 2, gg::sigmoid_bwd(a[0][i], a[1][i]), a[0],    \
             a[1], a[2]);                                                                        \
    GG_CHECK(T, activation_backward_tanh_##S, 2, gg::tanh_bwd(a[0][i], a[1][i]), a[0], a[1],    \
             a[2]);                                                                              \
    GG_CHECK(T, activation_backward_softplus_##S, 2,                                            \
             gg::softplus_bwd(a[0][i], a[1][i], beta, threshold), a[0], a[1], a[2], beta,       \
             threshold);                                                                         \
  } while (0)

// In-place kernels (the optimizer updates): `arrays` arrays of exactly n elements, all read and
// written. For each size and shape every array is refilled with the same inputs; afterwards every
// element of every array must equal, bit for bit, what reference(n, arrays) leaves in a copy (an
// element never visited keeps its input, which the update changes: the inputs below make every
// update change every element). launch_kernel(grid, block, n, arrays) as for check().
template <typename T, typename Launch, typename Reference>
void check_inplace(Stats& st, const char* name, int arrays, Launch launch_kernel,
                   Reference reference) {
  for (long long n : sizes()) {
    std::vector<T*> a(arrays), want(arrays);
    for (int k = 0; k < arrays; ++k) {
      a[k] = new T[n];
      want[k] = new T[n];
      for (long long i = 0; i < n; ++i) want[k][i] = input_value<T>(i, k) + T(5 + k);
    }
    reference(n, want.data());
    for (const auto& shape : kShapes) {
      for (int k = 0; k < arrays; ++k) {
        for (long long i = 0; i < n; ++i) a[k][i] = input_value<T>(i, k) + T(5 + k);
      }
      launch_kernel(dim3(shape[0]), dim3(shape[1]), n, a.data());
      ++st.launches;
      for (int k = 0; k < arrays; ++k) {
        for (long long i = 0; i < n; ++i) {
          if (std::memcmp(&want[k][i], &a[k][i], sizeof(T)) != 0 && st.failures++ < 10) {
            std::printf("MISMATCH %s array %d n=%lld grid=%u block=%u i=%lld: got %.17g want %.17g\n",
                        name, k, n, shape[0], shape[1], i, (double)a[k][i], (double)want[k][i]);
          }
        }
      }
      st.elements += n;
    }
    for (int k = 0; k < arrays; ++k) {
      delete[] a[k];
      delete[] want[k];
    }
  }
  std::printf("kernel %s\n", name);
}

// Optimizer kernels of one dtype T (suffix S), in several configurations each; inputs are
// shifted to [1, 13] so every update moves every element. SGD without momentum gets a null
// momentum buffer: the kernel must not touch it (a dereference would be an ASan/UBSan report).
#define GG_CHECK_OPTIM(T, S)                                                                    \
  do {                                                                                          \
    const double sgd_cfg[][6] = {/* lr, momentum, dampening, wd, nesterov, first */             \
                                 {0.1, 0, 0, 0, 0, 0},     {0.1, 0.9, 0, 0.01, 0, 1},           \
                                 {0.1, 0.9, 0.1, 0, 0, 0}, {0.05, 0.8, 0, 0.001, 1, 0}};        \
    for (const auto& c : sgd_cfg) {                                                             \
      const bool mom = c[1] != 0;                                                               \
      check_inplace<T>(                                                                         \
          st, "sgd_step_" #S, mom ? 3 : 2,                                                      \
          [&](dim3 gr, dim3 bl, long long n, T** a) {                                           \
            launch(sgd_step_##S, gr, bl, n, a[0], (const T*)a[1], mom ? a[2] : (T*)nullptr,     \
                   c[0], c[1], c[2], c[3], (int)c[4], (int)c[5]);                               \
          },                                                                                    \
          [&](long long n, T** a) {                                                             \
            for (long long i = 0; i < n; ++i)                                                   \
              gg::sgd_update(a[0][i], a[1][i], mom ? a[2] + i : nullptr, c[0], c[1], c[2], c[3], \
                             c[4] != 0, c[5] != 0);                                             \
          });                                                                                   \
    }                                                                                           \
    const double adam_cfg[][5] = {/* lr, wd, decoupled, step_size, correction2_sqrt */          \
                                  {1e-3, 0, 0, 1e-2, 0.0316},                                   \
                                  {1e-3, 0.01, 0, 5e-3, 0.05},                                  \
                                  {1e-3, 0.1, 1, 2e-3, 0.1}};                                   \
    for (const auto& c : adam_cfg) {                                                            \
      check_inplace<T>(                                                                         \
          st, "adam_step_" #S, 4,                                                               \
          [&](dim3 gr, dim3 bl, long long n, T** a) {                                           \
            launch(adam_step_##S, gr, bl, n, a[0], (const T*)a[1], a[2], a[3], c[0], 0.9, 0.999, \
                   1e-8, c[1], (int)c[2], c[3], c[4]);                                          \
          },                                                                                    \
          [&](long long n, T** a) {                                                             \
            for (long long i = 0; i < n; ++i)                                                   \
              gg::adam_update(a[0][i], a[1][i], a[2][i], a[3][i], c[0], 0.9, 0.999, 1e-8, c[1], \
                              c[2] != 0, c[3], c[4]);                                           \
          });                                                                                   \
    }                                                                                           \
  } while (0)

}  // namespace

int main(int argc, char** argv) {
  Stats st;
  if (argc > 1 && !std::strcmp(argv[1], "control-oob")) {
    GG_CHECK(float, control_oob, 1, a[0][i], a[0], a[1]);
  } else if (argc > 1 && !std::strcmp(argv[1], "control-unwritten")) {
    GG_CHECK(float, control_unwritten, 1, a[0][i], a[0], a[1]);
  } else {
    GG_CHECK_ALL(float, f32);
    GG_CHECK_ALL(double, f64);
    GG_CHECK_OPTIM(float, f32);
    GG_CHECK_OPTIM(double, f64);
  }
  std::printf("checked %lld elements in %lld launches, %lld mismatches\n", st.elements,
              st.launches, st.failures);
  return st.failures ? 1 : 0;
}
