// Compile-time switches for the CPU launchers: runtime flags become template parameters so
// the inner neuron loop has no branches and vectorizes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "launch.h"
#include "surrogate.h"
#include "switch.h"

namespace fastsnn {

// Neurons per CPU work item. A work item walks time over one row slice [n0, n0 + block) of one
// batch row; when the slice is the whole row, consecutive steps are adjacent in memory and the
// hardware prefetcher streams them. Rows are split only to give every thread some items.
constexpr int64_t kMaxBlock = 1024;

inline int64_t cpu_block(int64_t B, int64_t N, int64_t threads) {
  const int64_t want_items = 4 * std::max<int64_t>(threads, 1);
  const int64_t per_row = std::max<int64_t>(1, (want_items + B - 1) / std::max<int64_t>(B, 1));
  int64_t block = (N + per_row - 1) / per_row;
  block = (block + 15) / 16 * 16;  // whole cache lines for float32
  return std::clamp<int64_t>(block, 16, kMaxBlock);
}

// Work items per chunk of parallel_chunks: at least ~64K neuron-steps each, so small problems
// stay on one thread instead of paying a thread wake-up, and up to 8 chunks per thread, so a
// thread that loses its core holds up an eighth of its share at most.
inline int64_t cpu_chunk_items(int64_t items, int64_t block, int64_t T, int64_t threads) {
  const int64_t per_item = std::max<int64_t>(block * T, 1);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / per_item);
  const int64_t spread = (items + 8 * threads - 1) / std::max<int64_t>(8 * threads, 1);
  return std::max(grain, spread);
}

// Copies a finished row slice to its destination with non-temporal stores when it is float or
// double and 16-byte aligned: the outputs are written once and not read soon, so skipping the
// read-for-ownership of each line saves a third of the memory traffic of the scan.
// Rows under 256 bytes (small N) are copied with plain stores: there a non-temporal store of
// a partial cache line, or a library memcpy call per tiny row, costs more than the row's math.
// Above, streaming wins even with partial lines at the row ends (ops/rlif/README.md).
template <typename T>
inline void stream_row(T* dst, const T* src, int64_t n) {
  if (n * static_cast<int64_t>(sizeof(T)) < 256) {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
    return;
  }
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    if ((reinterpret_cast<std::uintptr_t>(dst) & 15) == 0) {
      int64_t j = 0;
      for (; j + 4 <= n; j += 4) _mm_stream_ps(dst + j, _mm_loadu_ps(src + j));
      for (; j < n; ++j) dst[j] = src[j];
      return;
    }
  } else if constexpr (std::is_same_v<T, double>) {
    if ((reinterpret_cast<std::uintptr_t>(dst) & 15) == 0) {
      int64_t j = 0;
      for (; j + 2 <= n; j += 2) _mm_stream_pd(dst + j, _mm_loadu_pd(src + j));
      for (; j < n; ++j) dst[j] = src[j];
      return;
    }
  }
#endif
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
}

// Orders this thread's non-temporal stores before the results are handed to other threads.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

template <typename F>
void dispatch_io(IoType io, F&& f) {
  switch (io) {
    case IoType::F64: return f(double{}, double{});
    case IoType::F32: return f(float{}, float{});
    case IoType::BF16: return f(c10::BFloat16{}, float{});
    case IoType::F16: return f(c10::Half{}, float{});
  }
  throw std::invalid_argument("fastsnn: unknown io dtype code " + std::to_string(int(io)));
}

}  // namespace fastsnn
