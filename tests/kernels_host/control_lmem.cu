// Control for tests/test_kernels.py: a kernel that must use local memory (a dynamically indexed
// 1 KiB array), so nvcc with the test's flags must fail; this shows -Werror all-warnings really
// turns ptxas's -warn-lmem-usage / -warn-spills warnings into errors.
extern "C" __global__ void control_lmem(int n, const int* idx, float* out) {
  float buf[256];
  for (int k = 0; k < n; ++k) buf[idx[k] & 255] = out[k];
  out[threadIdx.x] = buf[idx[threadIdx.x] & 255];
}
