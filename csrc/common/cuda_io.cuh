// Helpers of the CUDA scan skeleton (lif/lif_cuda_skeleton.cuh, run by lif_cuda.cu and
// li_cuda.cu), kept in one place so scans load, convert, pick lane widths and launch the same
// way: packed I/O, bf16/fp16 conversions, lanes, lane-width choice, launch and error checks,
// runtime-to-template switches.
// Header-only and free of torch headers, like the kernel units; non-template host functions are
// inline so that both units can include it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "launch.h"
#include "switch.h"

// The two spellings host C++ cannot parse, as macros so that the host emulation
// (csrc/emu/cuda_emu.h, which defines them first) compiles these sources unchanged otherwise:
// FASTSNN_LAUNCH(kernel, grid, block, smem, stream)(args...) is kernel<<<...>>>(args...), and
// FASTSNN_DYNAMIC_SMEM(name) declares a kernel's dynamic shared memory.
#ifndef FASTSNN_LAUNCH
#define FASTSNN_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#endif
#ifndef FASTSNN_DYNAMIC_SMEM
#define FASTSNN_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace fastsnn {

constexpr int kThreads = 128;  // threads per block

// ---- I/O: packs of V elements, loaded and stored as one access when V > 1 ----------------

template <int Bytes> struct Raw;
template <> struct Raw<16> { using type = uint4; };
template <> struct Raw<8> { using type = uint2; };
template <> struct Raw<4> { using type = unsigned int; };
template <> struct Raw<2> { using type = unsigned short; };

template <typename T, int V>
struct Pack {
  T v[V];
};

// p must be aligned to V * sizeof(T) (checked by the launcher before it picks V > 1).
template <typename T, int V>
__host__ __device__ __forceinline__ Pack<T, V> load_pack(const T* __restrict__ p) {
  using R = typename Raw<sizeof(T) * V>::type;
  const R r = *reinterpret_cast<const R*>(p);
  Pack<T, V> out;
  memcpy(&out, &r, sizeof(R));
  return out;
}

template <typename T, int V>
__host__ __device__ __forceinline__ void store_pack(T* __restrict__ p, const Pack<T, V>& v) {
  using R = typename Raw<sizeof(T) * V>::type;
  R r;
  memcpy(&r, &v, sizeof(R));
  *reinterpret_cast<R*>(p) = r;
}

// float32 arithmetic for bf16/fp16 I/O; round to nearest even on the way out, as c10 does.
__host__ __device__ __forceinline__ double to_acc(double v) { return v; }
__host__ __device__ __forceinline__ float to_acc(float v) { return v; }
__host__ __device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__host__ __device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }

template <typename io_t, typename acc_t>
__host__ __device__ __forceinline__ io_t from_acc(acc_t v) {
  return v;  // float -> float, double -> double
}
template <>
__host__ __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) {
  return __float2bfloat16(v);
}
template <>
__host__ __device__ __forceinline__ __half from_acc<__half, float>(float v) {
  return __float2half(v);
}

// ---- Lanes ---------------------------------------------------------------------------------

// Lane g of a launch: batch row b, neurons n0 .. n0 + V - 1 (V divides N).
struct Lane {
  int64_t b, n0;
};

template <int V>
__host__ __device__ __forceinline__ Lane lane_of(int64_t g, int64_t N) {
  const int64_t per_row = N / V;
  const int64_t b = g / per_row;
  return {b, (g - b * per_row) * V};
}

// ---- Host side: runtime flags to template parameters ---------------------------------------

template <typename T> struct Tag { using type = T; };

// Calls f(Tag<io_t>, Tag<acc_t>) for the I/O dtype: bf16/fp16 accumulate in float.
template <typename F>
void switch_io(IoType io, F&& f) {
  switch (io) {
    case IoType::F64: return f(Tag<double>{}, Tag<double>{});
    case IoType::F32: return f(Tag<float>{}, Tag<float>{});
    case IoType::BF16: return f(Tag<__nv_bfloat16>{}, Tag<float>{});
    case IoType::F16: return f(Tag<__half>{}, Tag<float>{});
  }
  throw std::invalid_argument("fastsnn: unknown io dtype code " + std::to_string(int(io)));
}

// ---- Host side: lane width, launch checks --------------------------------------------------

inline void check_cuda(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess) {
    throw std::runtime_error(std::string(op) + ": " + what + ": " + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
  }
}

inline bool aligned(const void* ptr, int64_t bytes) {
  return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % static_cast<uintptr_t>(bytes) == 0;
}

// Lane width: 16 bytes of accumulator per lane when every row and step starts aligned and the
// grid keeps two blocks per multiprocessor; otherwise one neuron per lane (more lanes for small
// B * N, any alignment). The choice changes no result: each neuron runs the same arithmetic.
template <typename io_t, typename acc_t>
int lane_width(int64_t B, int64_t N, const void* const* io_ptrs, const int64_t* io_strides,
               int n_io, const void* const* acc_ptrs, int n_acc, const char* op) {
  constexpr int V = 16 / sizeof(acc_t);
  if (N % V != 0) return 1;
  for (int i = 0; i < n_io; ++i) {
    if (!aligned(io_ptrs[i], V * sizeof(io_t))) return 1;
  }
  for (int i = 0; i < 2 * n_io; ++i) {
    if (io_strides[i] % V != 0) return 1;
  }
  for (int i = 0; i < n_acc; ++i) {
    if (!aligned(acc_ptrs[i], 16)) return 1;
  }
  int dev = 0, sms = 0;
  check_cuda(cudaGetDevice(&dev), op, "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), op,
             "cudaDeviceGetAttribute");
  return B * (N / V) >= int64_t(2) * sms * kThreads ? V : 1;
}

// One thread per lane, kThreads per block, on the caller's stream; kernel(p, lanes).
template <typename Params, typename Kernel>
void launch(Kernel kernel, const Params& p, int64_t lanes, void* stream, const char* op) {
  const int64_t blocks = (lanes + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff) {
    throw std::runtime_error(std::string(op) + ": B * N = " + std::to_string(p.B * p.N) +
                             " is too large for one launch");
  }
  FASTSNN_LAUNCH(kernel, static_cast<unsigned>(blocks), kThreads, 0,
                 static_cast<cudaStream_t>(stream))(p, lanes);
  check_cuda(cudaGetLastError(), op, "kernel launch failed");
}

// launch() over the B * N / W lanes of width W.
template <int W, typename Params, typename Kernel>
void launch_lanes(Kernel kernel, const Params& p, void* stream, const char* op) {
  launch(kernel, p, p.B * (p.N / W), stream, op);
}

// Calls f(Tag<io_t>, Tag<acc_t>, std::integral_constant<int, W>) for the I/O dtype and the lane
// width W (16 bytes of accumulator, or 1) that lane_width picks for these pointers and strides,
// so a launcher names each kernel once for every dtype and width.
template <int NIo, int NAcc, typename F>
void switch_io_lanes(IoType io, int64_t B, int64_t N, const void* const (&io_ptrs)[NIo],
                     const int64_t (&io_strides)[2 * NIo], const void* const (&acc_ptrs)[NAcc],
                     const char* op, F&& f) {
  switch_io(io, [&](auto io_tag, auto acc_tag) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    constexpr int kWide = 16 / sizeof(acc_t);
    if (lane_width<io_t, acc_t>(B, N, io_ptrs, io_strides, NIo, acc_ptrs, NAcc, op) == kWide) {
      return f(io_tag, acc_tag, std::integral_constant<int, kWide>{});
    }
    return f(io_tag, acc_tag, std::integral_constant<int, 1>{});
  });
}

}  // namespace fastsnn
