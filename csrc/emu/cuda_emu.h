// Host emulation of the CUDA device language, for running fastsnn's real .cu kernel sources on
// the CPU (tests/cuda_emu.py builds them with this header forced in; csrc/emu/README.md).
//
// The execution model is CUDA's: a grid of blocks; the threads of a block run concurrently as
// fibers of one OS thread, scheduled cooperatively at barriers and warp collectives;
// __syncthreads is a barrier of the block; dynamic and static __shared__ memory is per block
// and starts filled with 0xff bytes (NaN), as uninitialised as on a GPU; warp collectives
// (__ballot_sync, __shfl*_sync, __any/__all_sync, __syncwarp) wait for every lane of their mask
// and check it. The kernel translation units are compiled with -fsanitize=thread, whose
// instrumentation calls back into emu_runtime.cpp before every memory access: shared memory is
// race-checked per barrier epoch, global memory against the bounds (and read-only flag) of the
// buffers the caller registered. The first finding stops the launch before the access happens.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- Keywords ------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Static __shared__ variables live in thread-local storage of the kernel library (one OS thread
// runs one block at a time); the runtime treats that storage as the block's shared memory.
#define __shared__ static thread_local
#define __CUDA_ARCH__ 900
#define FASTSNN_CUDA_EMULATION 1

// ---- Vector types --------------------------------------------------------------------------
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) double2 { double x, y; };

// ---- Runtime (emu_runtime.cpp) -------------------------------------------------------------
namespace fastsnn_emu {

dim3 thread_idx();  // by value: the runtime's memory is not the kernel's
dim3 block_idx();
dim3 block_dim();
dim3 grid_dim();
unsigned char* dynamic_smem();
void syncthreads();
void syncwarp(unsigned mask);
enum class Coll : int { Ballot, Any, All, Shfl, ShflUp, ShflDown, ShflXor, SyncWarp };
// A warp collective: every lane of mask calls it with the same kind; returns the lane's result.
uint64_t warp_collective(Coll kind, unsigned mask, uint64_t value, int arg, int width);
unsigned active_mask();

using Entry = void (*)(void* ctx);
// Runs entry(ctx) as every thread of the grid. args/args_size: the kernel's argument copy
// (read-only for the kernel). Returns 0 or a cudaError_t code (the finding is kept for
// emu_take_report).
int run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, Entry entry,
             void* ctx, const void* args, size_t args_size);
int func_set_max_dynamic_smem(const void* kernel, int bytes);

template <typename T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of this type");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <typename... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  struct Call {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> args;
  };
  // The argument copy a launch makes (converted to the parameter types, as CUDA does); every
  // thread calls the kernel with it.
  template <typename... A>
  void operator()(A&&... a) const {
    Call call{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(a)...)};
    run_grid(reinterpret_cast<const void*>(kernel), grid, block, smem,
             [](void* c) {
               Call& k = *static_cast<Call*>(c);
               std::apply(k.kernel, k.args);
             },
             &call, &call, sizeof(call));
  }
};

template <typename... P, typename S>
Launch<P...> make_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, S) {
  return Launch<P...>{kernel, grid, block, smem};
}

}  // namespace fastsnn_emu

// The launch line of the kernel sources (common/cuda_io.cuh): kernel<<<g, b, smem, stream>>>.
#define FASTSNN_LAUNCH(kernel, grid, block, smem, stream) \
  ::fastsnn_emu::make_launch(kernel, grid, block, smem, stream)
// The dynamic shared memory declaration of the kernel sources.
#define FASTSNN_DYNAMIC_SMEM(name) unsigned char* const name = ::fastsnn_emu::dynamic_smem()

#define threadIdx (::fastsnn_emu::thread_idx())
#define blockIdx (::fastsnn_emu::block_idx())
#define blockDim (::fastsnn_emu::block_dim())
#define gridDim (::fastsnn_emu::grid_dim())
constexpr int warpSize = 32;

// ---- Intrinsics ----------------------------------------------------------------------------
inline void __syncthreads() { ::fastsnn_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::fastsnn_emu::syncwarp(mask); }
inline unsigned __activemask() { return ::fastsnn_emu::active_mask(); }
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(
      ::fastsnn_emu::warp_collective(::fastsnn_emu::Coll::Ballot, mask, pred != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
  return static_cast<int>(
      ::fastsnn_emu::warp_collective(::fastsnn_emu::Coll::Any, mask, pred != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
  return static_cast<int>(
      ::fastsnn_emu::warp_collective(::fastsnn_emu::Coll::All, mask, pred != 0, 0, 32));
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  using namespace ::fastsnn_emu;
  return from_bits<T>(warp_collective(Coll::Shfl, mask, to_bits(v), src, width));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  using namespace ::fastsnn_emu;
  return from_bits<T>(warp_collective(Coll::ShflUp, mask, to_bits(v), int(delta), width));
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  using namespace ::fastsnn_emu;
  return from_bits<T>(warp_collective(Coll::ShflDown, mask, to_bits(v), int(delta), width));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  using namespace ::fastsnn_emu;
  return from_bits<T>(warp_collective(Coll::ShflXor, mask, to_bits(v), lane_mask, width));
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline unsigned __brev(unsigned v) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}
template <typename T>
T __ldg(const T* p) { return *p; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float v) { return std::exp(v); }

// ---- half / bfloat16 (cuda_fp16.h, cuda_bf16.h): round to nearest even, as the GPU does -------
struct __nv_bfloat16 {
  unsigned short x;
};
struct __half {
  unsigned short x;
};
inline float __bfloat162float(__nv_bfloat16 v) {
  const uint32_t b = uint32_t(v.x) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if (std::isnan(f)) return {static_cast<unsigned short>((b >> 16) | 0x40u)};  // quiet NaN
  b += 0x7fffu + ((b >> 16) & 1u);
  return {static_cast<unsigned short>(b >> 16)};
}
inline float __half2float(__half v) {
  _Float16 h;
  std::memcpy(&h, &v.x, 2);
  return static_cast<float>(h);
}
inline __half __float2half(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  __half out;
  std::memcpy(&out.x, &h, 2);
  return out;
}

// ---- Runtime API (cuda_runtime.h): the calls the launchers make ------------------------------
enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorLaunchFailure = 719,
  cudaErrorIllegalAddress = 700,
  cudaErrorInvalidConfiguration = 9,
};
enum cudaDeviceAttr : int {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute : int { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace fastsnn_emu {
int device_attribute(int attr, int* value);
cudaError_t take_last_error();
const char* error_name(cudaError_t e);
const char* error_string(cudaError_t e);
}  // namespace fastsnn_emu

inline cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev) {
  if (dev != 0) return cudaErrorInvalidValue;
  return static_cast<cudaError_t>(::fastsnn_emu::device_attribute(attr, value));
}
template <typename K>
cudaError_t cudaFuncSetAttribute(K* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return static_cast<cudaError_t>(
      ::fastsnn_emu::func_set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), value));
}
inline cudaError_t cudaGetLastError() { return ::fastsnn_emu::take_last_error(); }
inline const char* cudaGetErrorName(cudaError_t e) { return ::fastsnn_emu::error_name(e); }
inline const char* cudaGetErrorString(cudaError_t e) { return ::fastsnn_emu::error_string(e); }
