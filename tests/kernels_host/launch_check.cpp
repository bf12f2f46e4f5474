// Runs every kernel of kernels/*.cu on the host through launch_shim.h, built with
// -fsanitize=address,undefined by tests/test_kernels.py. For each kernel, size n and grid/block
// shape: inputs are exactly n elements on the heap (so any out-of-bounds access is an ASan
// report), the output is poisoned with a NaN first, and afterwards every element must equal, bit
// for bit, the header function applied to that element's inputs (so every element was written,
// by the right index). Half (f16) kernels are checked the same way on binary16 arrays
// (unsigned short bits) against gg::store(f(gg::load(...))), the header's float math rounded
// once. The loss kernels are checked the same way per row: (rows, classes)
// logits, and every loss or gradient element must equal the header's row function. Prints
// "kernel <name>" per kernel, then "checked <elements> elements in <launches> launches, <m>
// mismatches"; exits 0, or 1 after printing the first mismatches.
//
// argv[1] picks a group: "activations" (f32, f64), "activations-f16", "optim" or "losses" (the
// test runs the groups side by side); none runs them all. "control-oob" or "control-unwritten" runs only a deliberately
// broken kernel instead: the test expects ASan to report the first and this program to report
// the second.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "launch_shim.h"
// The real kernel files, unchanged.
#include "activations.cu"
#include "bias_activation.cu"
#include "losses.cu"
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

// For the further configurations of a kernel already run over sizes(): they change the
// per-element math and which buffers are null, not the indexing, so fewer sizes do.
std::vector<long long> few_sizes() { return {0, 1, 2, 31, 32, 33, 255, 256, 257, 1000, 4097}; }

// (grid, block): fewer threads than elements, about equal, and many more.
const unsigned kShapes[][2] = {{1, 1},  {1, 32},  {3, 7},   {1, 256}, {4, 128},
                               {7, 33}, {64, 1},  {2, 1024}, {64, 256}};

unsigned long long input_hash(long long i, int k) {
  unsigned long long h = (unsigned long long)(i * 2654435761LL + k * 40503LL + 12345);
  h ^= h >> 13;
  return h * 0x9E3779B97F4A7C15ULL;
}

// Reproducible inputs in [-4, 4] (no <random>: the same values on every libstdc++).
template <typename T>
T input_value(long long i, int k) {
  return T((long long)(input_hash(i, k) >> 40) % 8001 - 4000) / T(1000);
}

// Poison for outputs: a quiet NaN with a payload that no arithmetic here produces (the kernels'
// own NaN, nan(""), has none), so an element still holding it was never written.
template <typename T>
T poison();
// binary16: a signaling NaN. gg::float_to_half of an arithmetic (quiet) NaN keeps the quiet bit,
// and the half inputs never hold this pattern, so no kernel passes it through either.
template <>
unsigned short poison<unsigned short>() {
  return 0x7dadu;
}
template <typename T>
T poison() {
  T v;
  if (sizeof(T) == sizeof(std::uint32_t)) {
    const std::uint32_t bits = 0x7fc0deadu;
    std::memcpy(&v, &bits, sizeof v);
  } else {
    const std::uint64_t bits = 0x7ff80000deadbeefull;
    std::memcpy(&v, &bits, sizeof v);
  }
  return v;
}

// binary16 inputs (bit patterns): the float inputs rounded to half, and one element in 16 an
// arbitrary pattern (subnormals, ±inf, NaN, up to ±65504), except the output poison.
template <>
unsigned short input_value<unsigned short>(long long i, int k) {
  if ((i + 3 * k) % 16 == 5) {
    const unsigned short bits = (unsigned short)(input_hash(i, k) >> 48);
    return bits == poison<unsigned short>() ? (unsigned short)(bits ^ 1u) : bits;
  }
  return gg::float_to_half(input_value<float>(i, k));
}

// An element as a number, for the mismatch report (binary16 bits as their value).
double shown(double v) { return v; }
double shown(unsigned short h) { return gg::half_to_float(h); }

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
      std::fill(a[inputs], a[inputs] + n, poison<T>());
      launch_kernel(dim3(shape[0]), dim3(shape[1]), n, a.data());
      ++st.launches;
      for (long long i = 0; i < n; ++i) {
        if (std::memcmp(&want[i], &a[inputs][i], sizeof(T)) != 0 && st.failures++ < 10) {
          std::printf("MISMATCH %s n=%lld grid=%u block=%u i=%lld: got %.17g want %.17g\n", name,
                      n, shape[0], shape[1], i, shown(a[inputs][i]), shown(want[i]));
        }
      }
      st.elements += n;
    }
    for (T* p : a) delete[] p;
  }
  std::printf("kernel %s\n", name);  // the test compares this list with the .cu file's kernels
}

// One kernel: INPUTS arrays in, REF the expected element i (in the math type: it is stored with
// gg::store, as the kernel stores), then the kernel's arguments after n.
#define GG_CHECK(T, KERNEL, INPUTS, REF, ...)                                                     \
  check<T>(st, #KERNEL, INPUTS,                                                                   \
           [&](dim3 gr, dim3 bl, long long n, T** a) { launch(KERNEL, gr, bl, n, __VA_ARGS__); }, \
           [&](long long n, T** a, T* want) {                                                     \
             for (long long i = 0; i < n; ++i) gg::store(want[i], REF);                           \
           })

// Input k of element i in the math type, as the kernels load it.
#define GG_IN(k) gg::load(a[k][i])

// Every kernel of one array type T, math type M (name suffix S); x, g, out are a[0], a[1], a[2]
// in kernel order.
#define GG_CHECK_ALL(T, M, S)                                                                     \
  do {                                                                                            \
    const M slope = M(0.1), alpha = M(0.7), beta = M(2), threshold = M(3);                        \
    GG_CHECK(T, activation_forward_relu_##S, 1, gg::relu_fwd(GG_IN(0)), a[0], a[1]);              \
    GG_CHECK(T, activation_forward_leaky_relu_##S, 1, gg::leaky_relu_fwd(GG_IN(0), slope), a[0],  \
             a[1], slope);                                                                        \
    GG_CHECK(T, activation_forward_elu_##S, 1, gg::elu_fwd(GG_IN(0), alpha), a[0], a[1], alpha);  \
    GG_CHECK(T, activation_forward_gelu_##S, 1, gg::gelu_fwd(GG_IN(0)), a[0], a[1]);              \
    GG_CHECK(T, activation_forward_gelu_tanh_##S, 1, gg::gelu_tanh_fwd(GG_IN(0)), a[0], a[1]);    \
    GG_CHECK(T, activation_forward_silu_##S, 1, gg::silu_fwd(GG_IN(0)), a[0], a[1]);              \
    GG_CHECK(T, activation_forward_sigmoid_##S, 1, gg::sigmoid_fwd(GG_IN(0)), a[0], a[1]);        \
    GG_CHECK(T, activation_forward_tanh_##S, 1, gg::tanh_fwd(GG_IN(0)), a[0], a[1]);              \
    GG_CHECK(T, activation_forward_softplus_##S, 1, gg::softplus_fwd(GG_IN(0), beta, threshold),  \
             a[0], a[1], beta, threshold);                                                        \
    GG_CHECK(T, activation_backward_relu_##S, 2, gg::relu_bwd(GG_IN(0), GG_IN(1)), a[0], a[1],    \
             a[2]);                                                                               \
    GG_CHECK(T, activation_backward_leaky_relu_##S, 2,                                            \
             gg::leaky_relu_bwd(GG_IN(0), GG_IN(1), slope), a[0], a[1], a[2], slope);             \
    GG_CHECK(T, activation_backward_elu_##S, 3, gg::elu_bwd(GG_IN(0), GG_IN(1), GG_IN(2), alpha), \
             a[0], a[1], a[2], a[3], alpha);                                                      \
    GG_CHECK(T, activation_backward_gelu_##S, 2, gg::gelu_bwd(GG_IN(0), GG_IN(1)), a[0], a[1],    \
             a[2]);                                                                               \
    GG_CHECK(T, activation_backward_gelu_tanh_##S, 2, gg::gelu_tanh_bwd(GG_IN(0), GG_IN(1)),      \
             a[0], a[1], a[2]);                                                                   \
    GG_CHECK(T, activation_backward_silu_##S, 2, gg::silu_bwd(GG_IN(0), GG_IN(1)), a[0], a[1],    \
             a[2]);                                                                               \
    GG_CHECK(T, activation_backward_sigmoid_##S, 2, gg::sigmoid_bwd(GG_IN(0), GG_IN(1)), a[0],    \
             a[1], a[2]);                                                                         \
    GG_CHECK(T, activation_backward_tanh_##S, 2, gg::tanh_bwd(GG_IN(0), GG_IN(1)), a[0], a[1],    \
             a[2]);                                                                               \
    GG_CHECK(T, activation_backward_softplus_##S, 2,                                              \
             gg::softplus_bwd(GG_IN(0), GG_IN(1), beta, threshold), a[0], a[1], a[2], beta,       \
             threshold);                                                                          \
  } while (0)

// The bias + activation kernels: z of rows x cols elements and a bias of exactly cols (so
// reading past either is an ASan report); the output poisoned, then every element must equal
// the header function of z + bias[column], bit for bit.
template <typename T, typename Kernel, typename F>
void check_bias(Stats& st, const char* name, Kernel kernel, F f) {
  for (long long cols : {1LL, 2LL, 3LL, 31LL, 32LL, 33LL, 130LL}) {
    for (long long rows : {0LL, 1LL, 2LL, 5LL, 17LL, 64LL}) {
      const long long n = rows * cols;
      T* z = new T[n];
      T* bias = new T[cols];
      T* out = new T[n];
      for (long long i = 0; i < n; ++i) z[i] = input_value<T>(i, 0);
      for (long long c = 0; c < cols; ++c) bias[c] = input_value<T>(c, 1);
      for (const auto& shape : kShapes) {
        std::fill(out, out + n, poison<T>());
        launch(kernel, dim3(shape[0]), dim3(shape[1]), n, cols, z, bias, out);
        ++st.launches;
        for (long long i = 0; i < n; ++i) {
          T want;
          gg::store(want, f(gg::load(z[i]) + gg::load(bias[i % cols])));
          if (std::memcmp(&want, &out[i], sizeof(T)) != 0 && st.failures++ < 10) {
            std::printf("MISMATCH %s rows=%lld cols=%lld grid=%u block=%u i=%lld\n", name, rows,
                        cols, shape[0], shape[1], i);
          }
        }
        st.elements += n;
      }
      delete[] z;
      delete[] bias;
      delete[] out;
    }
  }
  std::printf("kernel %s\n", name);
}

#define GG_CHECK_BIAS(T, M, S)                                                                    \
  do {                                                                                            \
    check_bias<T>(st, "bias_activation_forward_relu_" #S, bias_activation_forward_relu_##S,       \
                  [](M v) { return gg::relu_fwd(v); });                                           \
    check_bias<T>(st, "bias_activation_forward_sigmoid_" #S,                                      \
                  bias_activation_forward_sigmoid_##S, [](M v) { return gg::sigmoid_fwd(v); });   \
    check_bias<T>(st, "bias_activation_forward_tanh_" #S, bias_activation_forward_tanh_##S,       \
                  [](M v) { return gg::tanh_fwd(v); });                                           \
  } while (0)

// Inputs of in-place array k: in [1 + k, 9 + k], or for the arrays in the bit mask `small`, in
// [0.001, 0.009] (a running maximum below the new value, so it must change; a running mean small
// enough that s - a*a stays positive).
template <typename T>
T inplace_input(long long i, int k, unsigned small) {
  const T v = input_value<T>(i, k) + T(5);
  return (small >> k) & 1u ? v / T(1000) : v + T(k);
}

// In-place kernels (the optimizer updates): `arrays` arrays of exactly n elements, all read and
// written. For each size and shape every array is refilled with the same inputs; afterwards every
// element of every array must equal, bit for bit, what reference(n, arrays) leaves in a copy (an
// element never visited keeps its input, which the update changes: the inputs make every update
// change every element of param and of each state array the configuration uses; an array passed
// as null must keep its input). launch_kernel(grid, block, n, arrays) as for check().
template <typename T, typename Launch, typename Reference>
void check_inplace(Stats& st, const char* name, const std::vector<long long>& ns, int arrays,
                   unsigned small, Launch launch_kernel, Reference reference) {
  for (long long n : ns) {
    std::vector<T*> a(arrays), want(arrays);
    std::vector<std::vector<T>> init(arrays, std::vector<T>(n));
    for (int k = 0; k < arrays; ++k) {
      a[k] = new T[n];
      want[k] = new T[n];
      for (long long i = 0; i < n; ++i) init[k][i] = want[k][i] = inplace_input<T>(i, k, small);
    }
    reference(n, want.data());
    for (const auto& shape : kShapes) {
      for (int k = 0; k < arrays; ++k) std::copy(init[k].begin(), init[k].end(), a[k]);
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

// Optimizer kernels of one dtype T (suffix S), in several configurations each, the first over
// sizes() and the others over few_sizes(); inputs are shifted to [1, 13] so every update moves
// every element. A state array that a configuration
// does not use is passed as null (SGD without momentum, Adam without amsgrad, RMSprop neither
// centered nor with momentum): the kernel must not touch it (a dereference would be an
// ASan/UBSan report). Array order is the kernel's: param, grad, state....
#define GG_CHECK_OPTIM(T, S)                                                                    \
  do {                                                                                          \
    const double sgd_cfg[][6] = {/* lr, momentum, dampening, wd, nesterov, first */             \
                                 {0.1, 0, 0, 0, 0, 0},     {0.1, 0.9, 0, 0.01, 0, 1},           \
                                 {0.1, 0.9, 0.1, 0, 0, 0}, {0.05, 0.8, 0, 0.001, 1, 0}};        \
    for (const auto& c : sgd_cfg) {                                                             \
      const bool mom = c[1] != 0;                                                               \
      check_inplace<T>(                                                                         \
          st, "sgd_step_" #S, &c == sgd_cfg ? sizes() : few_sizes(), mom ? 3 : 2, 0u,           \
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
    /* lr, wd, decoupled, amsgrad, step_size, correction2_sqrt, small vmax */                   \
    const double adam_cfg[][7] = {{1e-3, 0, 0, 0, 1e-2, 0.0316, 0},                             \
                                  {1e-3, 0.01, 0, 0, 5e-3, 0.05, 0},                            \
                                  {1e-3, 0.1, 1, 0, 2e-3, 0.1, 0},                              \
                                  {1e-3, 0, 0, 1, 1e-2, 0.0316, 1},                             \
                                  {1e-3, 0.1, 1, 1, 2e-3, 0.1, 0}};                             \
    for (const auto& c : adam_cfg) {                                                            \
      const bool ams = c[3] != 0;                                                               \
      check_inplace<T>(                                                                         \
          st, "adam_step_" #S, &c == adam_cfg ? sizes() : few_sizes(), ams ? 5 : 4,             \
          c[6] != 0 ? 1u << 4 : 0u,                                                             \
          [&](dim3 gr, dim3 bl, long long n, T** a) {                                           \
            launch(adam_step_##S, gr, bl, n, a[0], (const T*)a[1], a[2], a[3],                  \
                   ams ? a[4] : (T*)nullptr, c[0], 0.9, 0.999, 1e-8, c[1], (int)c[2],           \
                   (int)c[3], c[4], c[5]);                                                      \
          },                                                                                    \
          [&](long long n, T** a) {                                                             \
            for (long long i = 0; i < n; ++i)                                                   \
              gg::adam_update(a[0][i], a[1][i], a[2][i], a[3][i], ams ? a[4] + i : nullptr,     \
                              c[0], 0.9, 0.999, 1e-8, c[1], c[2] != 0, ams, c[4], c[5]);        \
          });                                                                                   \
    }                                                                                           \
    /* lr, alpha, wd, momentum, centered; arrays param, grad, square_avg, grad_avg, buf */      \
    const double rmsprop_cfg[][5] = {{1e-2, 0.99, 0, 0, 0},                                     \
                                     {1e-2, 0.9, 0.01, 0, 0},                                   \
                                     {1e-2, 0.99, 0, 0, 1},                                     \
                                     {1e-2, 0.99, 0, 0.9, 0},                                   \
                                     {1e-3, 0.95, 1e-3, 0.5, 1}};                               \
    for (const auto& c : rmsprop_cfg) {                                                         \
      const bool centered = c[4] != 0, mom = c[3] > 0;                                          \
      check_inplace<T>(                                                                         \
          st, "rmsprop_step_" #S, &c == rmsprop_cfg ? sizes() : few_sizes(), 5, 1u << 3,        \
          [&](dim3 gr, dim3 bl, long long n, T** a) {                                           \
            launch(rmsprop_step_##S, gr, bl, n, a[0], (const T*)a[1], a[2],                     \
                   centered ? a[3] : (T*)nullptr, mom ? a[4] : (T*)nullptr, c[0], c[1], 1e-8,   \
                   c[2], c[3], (int)c[4]);                                                      \
          },                                                                                    \
          [&](long long n, T** a) {                                                             \
            for (long long i = 0; i < n; ++i)                                                   \
              gg::rmsprop_update(a[0][i], a[1][i], a[2][i], centered ? a[3] + i : nullptr,      \
                                 mom ? a[4] + i : nullptr, c[0], c[1], 1e-8, c[2], c[3],        \
                                 centered);                                                     \
          });                                                                                   \
    }                                                                                           \
    const double adagrad_cfg[][3] = {/* clr, wd, eps */ {1e-2, 0, 1e-10}, {0.05, 1e-3, 1e-6}};  \
    for (const auto& c : adagrad_cfg) {                                                         \
      check_inplace<T>(                                                                         \
          st, "adagrad_step_" #S, &c == adagrad_cfg ? sizes() : few_sizes(), 3, 0u,             \
          [&](dim3 gr, dim3 bl, long long n, T** a) {                                           \
            launch(adagrad_step_##S, gr, bl, n, a[0], (const T*)a[1], a[2], c[0], c[1], c[2]);  \
          },                                                                                    \
          [&](long long n, T** a) {                                                             \
            for (long long i = 0; i < n; ++i)                                                   \
              gg::adagrad_update(a[0][i], a[1][i], a[2][i], c[0], c[1], c[2]);                  \
          });                                                                                   \
    }                                                                                           \
  } while (0)

// Row kernels (softmax cross-entropy). Rows 0..70 and a few larger counts, for each (classes,
// label_smoothing) below; logits in [-80, 80] with some -inf (the paths where push_logit skips)
// and an occasional NaN; labels mostly valid, every 7th row ignore_index, every 11th out of
// range (classes, or -1), which must give NaN. The output (rows losses, or rows x classes
// gradients) is poisoned, and after each launch every element must equal what the header's row
// function gives, bit for bit. launch_kernel(grid, block, rows, classes, ls, logits, labels, g,
// out); reference(rows, classes, ls, logits, labels, g, want).
const long long kIgnore = -100;
const struct {
  long long classes;
  double label_smoothing;
} kRowCases[] = {{1, 0.1}, {2, 0.0}, {10, 0.1}, {33, 0.0}, {33, 0.1}};

std::vector<long long> row_sizes() {
  std::vector<long long> s;
  for (long long r = 0; r <= 70; ++r) s.push_back(r);
  for (long long r : {127, 128, 129, 255, 256, 257, 1000}) s.push_back(r);
  return s;
}

template <typename T>
T logit_value(long long i) {
  if (i % 13 == 5) return -std::numeric_limits<T>::infinity();
  if (i % 1009 == 7) return std::numeric_limits<T>::quiet_NaN();
  return input_value<T>(i, 0) * T(20);
}

long long label_value(long long r, long long classes) {
  if (r % 7 == 3) return kIgnore;
  if (r % 11 == 4) return r % 2 ? classes : -1;
  return (r * 7 + 1) % classes;
}

template <typename T, typename Launch, typename Reference>
void check_rows(Stats& st, const char* name, bool per_class, Launch launch_kernel,
                Reference reference) {
  for (const auto& cfg : kRowCases) {
    const long long classes = cfg.classes;
    for (long long rows : row_sizes()) {
      const long long n = rows * classes, out_n = per_class ? n : rows;
      // Exactly as many elements as the kernel may touch: one more is an ASan report.
      T* x = new T[n];
      long long* labels = new long long[rows];
      T* g = new T[rows];
      T* out = new T[out_n];
      for (long long i = 0; i < n; ++i) x[i] = logit_value<T>(i);
      for (long long r = 0; r < rows; ++r) {
        labels[r] = label_value(r, classes);
        g[r] = input_value<T>(r, 1);
      }
      std::vector<T> want(out_n);
      reference(rows, classes, cfg.label_smoothing, x, labels, g, want.data());
      for (const auto& shape : kShapes) {
        std::fill(out, out + out_n, poison<T>());
        launch_kernel(dim3(shape[0]), dim3(shape[1]), rows, classes, cfg.label_smoothing, x,
                      labels, g, out);
        ++st.launches;
        for (long long i = 0; i < out_n; ++i) {
          if (std::memcmp(&want[i], &out[i], sizeof(T)) != 0 && st.failures++ < 10) {
            std::printf("MISMATCH %s classes=%lld rows=%lld grid=%u block=%u i=%lld: got %.17g "
                        "want %.17g\n",
                        name, classes, rows, shape[0], shape[1], i, (double)out[i],
                        (double)want[i]);
          }
        }
        st.elements += out_n;
      }
      delete[] x;
      delete[] labels;
      delete[] g;
      delete[] out;
    }
  }
  std::printf("kernel %s\n", name);
}

#define GG_CHECK_LOSSES(T, S)                                                                   \
  do {                                                                                          \
    check_rows<T>(                                                                              \
        st, "softmax_cross_entropy_forward_" #S, false,                                         \
        [&](dim3 gr, dim3 bl, long long rows, long long classes, double ls, const T* x,         \
            const long long* labels, const T*, T* out) {                                        \
          launch(softmax_cross_entropy_forward_##S, gr, bl, rows, classes, x, labels, out,      \
                 kIgnore, ls);                                                                  \
        },                                                                                      \
        [&](long long rows, long long classes, double ls, const T* x, const long long* labels,  \
            const T*, T* want) {                                                                \
          for (long long r = 0; r < rows; ++r)                                                  \
            want[r] = gg::softmax_xent_forward_row(classes, x + r * classes, labels[r],         \
                                                   kIgnore, ls);                                \
        });                                                                                     \
    check_rows<T>(                                                                              \
        st, "softmax_cross_entropy_backward_" #S, true,                                         \
        [&](dim3 gr, dim3 bl, long long rows, long long classes, double ls, const T* x,         \
            const long long* labels, const T* g, T* out) {                                      \
          launch(softmax_cross_entropy_backward_##S, gr, bl, rows, classes, g, x, labels, out,  \
                 kIgnore, ls);                                                                  \
        },                                                                                      \
        [&](long long rows, long long classes, double ls, const T* x, const long long* labels,  \
            const T* g, T* want) {                                                              \
          for (long long r = 0; r < rows; ++r)                                                  \
            gg::softmax_xent_backward_row(classes, g[r], x + r * classes, labels[r], kIgnore,   \
                                          ls, want + r * classes);                              \
        });                                                                                     \
  } while (0)

}  // namespace

int main(int argc, char** argv) {
  Stats st;
  const char* group = argc > 1 ? argv[1] : "all";
  const bool all = !std::strcmp(group, "all");
  if (!std::strcmp(group, "control-oob")) {
    GG_CHECK(float, control_oob, 1, a[0][i], a[0], a[1]);
  } else if (!std::strcmp(group, "control-unwritten")) {
    GG_CHECK(float, control_unwritten, 1, a[0][i], a[0], a[1]);
  } else {
    const bool activations = all || !std::strcmp(group, "activations");
    const bool half = all || !std::strcmp(group, "activations-f16");
    const bool optim = all || !std::strcmp(group, "optim");
    const bool losses = all || !std::strcmp(group, "losses");
    if (!activations && !half && !optim && !losses) {
      std::printf("unknown group %s\n", group);
      return 2;
    }
    if (activations) {
      GG_CHECK_ALL(float, float, f32);
      GG_CHECK_ALL(double, double, f64);
      GG_CHECK_BIAS(float, float, f32);
      GG_CHECK_BIAS(double, double, f64);
    }
    if (half) {
      GG_CHECK_ALL(unsigned short, float, f16);
      GG_CHECK_BIAS(unsigned short, float, f16);
    }
    if (optim) {
      GG_CHECK_OPTIM(float, f32);
      GG_CHECK_OPTIM(double, f64);
    }
    if (losses) {
      GG_CHECK_LOSSES(float, f32);
      GG_CHECK_LOSSES(double, f64);
    }
  }
  std::printf("checked %lld elements in %lld launches, %lld mismatches\n", st.elements,
              st.launches, st.failures);
  return st.failures ? 1 : 0;
}
