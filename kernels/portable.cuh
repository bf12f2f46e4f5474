// What every kernel header needs to compile three ways: with nvcc, with NVRTC (what CuPy uses at
// run time; it has no standard headers) and with a host C++ compiler (tests/kernels_host/, which
// checks the math against the NumPy twins on a CPU).
#pragma once

#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
// Host compiler: the CUDA qualifiers mean nothing here, and the math comes from libm.
#include <cmath>
#define __host__
#define __device__
#define __forceinline__ inline
#endif

namespace gg {
// Products that are never contracted into a fused multiply-add with a following add: on the
// device __fmul_rn/__dmul_rn, which nvcc and NVRTC leave alone; on the host a plain product (the
// host builds use -ffp-contract=off). So the device rounds each operation as NumPy does.
namespace rn {
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
#else
__host__ __forceinline__ float mul(float a, float b) { return a * b; }
__host__ __forceinline__ double mul(double a, double b) { return a * b; }
#endif
__host__ __device__ __forceinline__ float sqrt(float x) { return ::sqrtf(x); }
__host__ __device__ __forceinline__ double sqrt(double x) { return ::sqrt(x); }
}  // namespace rn
}  // namespace gg
