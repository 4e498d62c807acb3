// Kernels of the emulation's own tests (tests/test_cuda_emulated.py): each bug the checker must
// report, next to its fixed twin that must run clean, and warp intrinsics with known results.
// Built only by tests/cuda_emu.py (host compiler, csrc/emu/cuda_emu.h forced in).
#include <cuda_runtime.h>

#include <cstring>

namespace {

// Each thread publishes in[t] in shared memory and reads its neighbour's: the neighbour's write
// and this read are in one barrier epoch when the barrier is missing (bug).
__global__ void neighbour_sum(const float* in, float* out, int n, int bug) {
  FASTSNN_DYNAMIC_SMEM(smem);
  float* buf = reinterpret_cast<float*>(smem);
  const int t = threadIdx.x;
  buf[t] = in[t];
  if (!bug) __syncthreads();
  out[t] = buf[t] + buf[(t + 1) % n];
}

// The same with a static __shared__ array.
__global__ void neighbour_sum_static(const float* in, float* out, int n, int bug) {
  __shared__ float tile[64];
  const int t = threadIdx.x;
  tile[t] = in[t];
  if (!bug) __syncthreads();
  out[t] = tile[t] + tile[(t + 1) % n];
}

// Thread 0 copies n elements; "<= n" writes one past the end of out.
__global__ void copy_all(const float* in, float* out, int n, int off_by_one) {
  if (threadIdx.x != 0) return;
  for (int i = 0; i < n + (off_by_one ? 1 : 0); ++i) out[i] = i < n ? in[i] : 0.0f;
}

// Reads shared memory one float past the dynamic size when off_by_one.
__global__ void smem_tail(const float* in, float* out, int n, int off_by_one) {
  FASTSNN_DYNAMIC_SMEM(smem);
  float* buf = reinterpret_cast<float*>(smem);
  const int t = threadIdx.x;
  buf[t] = in[t];
  __syncthreads();
  out[t] = buf[off_by_one ? t + 1 : t];
}

// Reads shared memory that no thread wrote.
__global__ void smem_uninitialised(const float* in, float* out, int n, int bug) {
  FASTSNN_DYNAMIC_SMEM(smem);
  float* buf = reinterpret_cast<float*>(smem);
  const int t = threadIdx.x;
  if (!bug || t % 2 == 0) buf[t] = in[t];
  __syncthreads();
  out[t] = buf[t];
}

// Half the block skips the barrier.
__global__ void divergent_barrier(const float* in, float* out, int n, int bug) {
  const int t = threadIdx.x;
  if (!bug || t < n / 2) __syncthreads();
  out[t] = in[t];
}

// Lanes 16..31 leave before the ballot that names them.
__global__ void ballot_after_exit(const float* in, float* out, int n, int bug) {
  const int t = threadIdx.x;
  if (bug && (t & 31) >= 16) return;
  const unsigned m = __ballot_sync(0xffffffffu, in[t] > 0.0f);
  out[t] = static_cast<float>(__popc(m));
}

// Writes the input buffer.
__global__ void write_input(const float* in, float* out, int n, int bug) {
  const int t = threadIdx.x;
  if (bug) const_cast<float*>(in)[t] = 0.0f;
  out[t] = in[t];
}

// Warp intrinsics with known results: out[t] = sum over the warp (shfl_down tree), the lane's
// butterfly sum (shfl_xor), the vote count, lane 3's value (shfl), prefix step (shfl_up).
__global__ void warp_ops(const float* in, float* out, int n, int) {
  const int t = threadIdx.x;
  float v = in[t];
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  float x = in[t];
  for (int d = 1; d < 32; d *= 2) x += __shfl_xor_sync(0xffffffffu, x, d);
  const unsigned vote = __ballot_sync(0xffffffffu, in[t] > 0.0f);
  const float l3 = __shfl_sync(0xffffffffu, in[t], 3);
  const float up = __shfl_up_sync(0xffffffffu, in[t], 1);
  const int any = __any_sync(0xffffffffu, in[t] > 100.0f), all = __all_sync(0xffffffffu, true);
  __syncwarp();
  out[5 * t + 0] = (t & 31) == 0 ? v : 0.0f;
  out[5 * t + 1] = x;
  out[5 * t + 2] = static_cast<float>(__popc(vote)) + 100.0f * any + 1000.0f * all;
  out[5 * t + 3] = l3;
  out[5 * t + 4] = up;
}

using Kernel = void (*)(const float*, float*, int, int);

int run(Kernel k, const float* in, float* out, int n, int flag, unsigned threads, size_t smem) {
  FASTSNN_LAUNCH(k, 1, threads, smem, nullptr)(in, out, n, flag);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int run_broken(const char* name, const float* in, float* out, int n, int flag) {
  const size_t smem = sizeof(float) * n;
  const struct { const char* name; Kernel k; size_t smem; } table[] = {
      {"neighbour_sum", neighbour_sum, smem},
      {"neighbour_sum_static", neighbour_sum_static, 0},
      {"copy_all", copy_all, 0},
      {"smem_tail", smem_tail, smem},
      {"smem_uninitialised", smem_uninitialised, smem},
      {"divergent_barrier", divergent_barrier, 0},
      {"ballot_after_exit", ballot_after_exit, 0},
      {"write_input", write_input, 0},
      {"warp_ops", warp_ops, 0},
  };
  for (const auto& e : table) {
    if (std::strcmp(e.name, name) == 0) return run(e.k, in, out, n, flag, static_cast<unsigned>(n), e.smem);
  }
  return -1;
}
