// Loop helpers shared by the CPU kernels, compiled once per instruction set like them
// (included after the target pragma, inside FASTSNN_CPU_ISA): column chunking for the kernels
// that keep a row's partial sums in registers (rlif's R_t gather, spike_linear's input
// gradient), the walk over the set bits of a compare mask (the spike and nonzero scans),
// 64-byte aligned row buffers, lane masks for a row's last partial vectors, and LineWriter,
// which streams a sequence of back-to-back rows out in whole cache lines.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace fastsnn {
namespace FASTSNN_CPU_ISA {

// fn(base + i) for every set bit i of bits, in ascending i.
template <typename F>
inline void for_each_set_bit(uint32_t bits, int64_t base, F&& fn) {
  while (bits != 0) {
    fn(base + __builtin_ctz(bits));
    bits &= bits - 1;
  }
}

// fn.template operator()<C>(c) over [0, len): chunks of Cmax while they fit, then one each of
// 32, 16, 8 and 4 columns where it fits, then single columns. A chunk's C is a compile-time
// constant, so its C sums stay in vector registers.
template <int64_t Cmax, typename F>
inline void for_each_column_chunk(int64_t len, F&& fn) {
  int64_t c = 0;
  for (; c + Cmax <= len; c += Cmax) fn.template operator()<Cmax>(c);
  auto tail = [&]<int64_t C>() {
    if constexpr (C < Cmax) {
      if (c + C <= len) {
        fn.template operator()<C>(c);
        c += C;
      }
    }
  };
  tail.template operator()<32>();
  tail.template operator()<16>();
  tail.template operator()<8>();
  tail.template operator()<4>();
  for (; c < len; ++c) fn.template operator()<1>(c);
}

// rows × width elements of T, 64-byte aligned, filled with `fill`.
template <typename T>
class AlignedRows {
 public:
  AlignedRows(int64_t rows, int64_t width, T fill = T(0))
      : width_(width), buf_(static_cast<size_t>(rows * width) + 64 / sizeof(T), fill) {
    const auto a = reinterpret_cast<std::uintptr_t>(buf_.data());
    data_ = buf_.data() + (64 - a % 64) % 64 / sizeof(T);
  }
  T* row(int64_t r) { return data_ + r * width_; }
  const T* row(int64_t r) const { return data_ + r * width_; }
  T* data() { return data_; }

 private:
  int64_t width_;
  std::vector<T> buf_;
  T* data_;
};

#if defined(FASTSNN_CPU_FMA)
// Lane masks selecting the first n (0..16) of 16 float lanes: m0 for lanes 0-7, m1 for 8-15,
// for masked loads and stores of a row's last, partial vectors.
struct LaneMasks16 {
  __m256i m0, m1;
  explicit LaneMasks16(int64_t n) {
    alignas(32) int32_t lanes[16];
    for (int i = 0; i < 16; ++i) lanes[i] = i < n ? -1 : 0;
    m0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
    m1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes + 8));
  }
};
#endif

// Writes the rows of one output sequence that lie back to back in memory (a batch row's steps
// in a [B, T, N] tensor), one row per step, ascending (kDown false: step t, then t + 1) or
// descending (kDown true: the backward's dL/dX, step t, then t - 1). Only whole 64-byte lines
// go out with non-temporal stores; a row's partial end line waits here until the next row
// completes it, and the sequence's two end lines (shared with its neighbours) get plain stores.
// Streaming each row on its own would leave two partial lines a row for the memory system to
// merge (measured in ops/rlif/README.md).
template <typename T, bool kDown>
class LineWriter {
 public:
  static constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  // The first row pushed lands at dst (ascending) or ends at dst (descending).
  void start(T* dst) {
    edge_ = dst;
    n_ = 0;
  }
  void push(const T* src, int64_t n) {
    if constexpr (kDown) {
      push_down(src, n);
    } else {
      push_up(src, n);
    }
  }
  // The sequence's last partial line, plain stores.
  void finish() {
    if constexpr (kDown) {
      std::copy_n(line_ + kLine - n_, n_, edge_ - n_);
    } else {
      std::copy_n(line_, n_, edge_);
    }
    n_ = 0;
  }

 private:
  static constexpr int64_t kSize = static_cast<int64_t>(sizeof(T));
  // edge_ % 64 in bytes: nonzero only before the sequence's first line boundary (the head,
  // written with plain stores); a pending partial line exists only once edge_ is aligned.
  int64_t edge_offset() const {
    return static_cast<int64_t>(reinterpret_cast<std::uintptr_t>(edge_) % 64);
  }
  // Ascending: edge_ is where line_[0:n_) goes.
  void push_up(const T* src, int64_t n) {
    int64_t i = 0;
    if (const int64_t off = edge_offset(); off != 0) {
      i = std::min(n, (64 - off) / kSize);
      std::copy_n(src, i, edge_);
      edge_ += i;
      if (i == n) return;
    } else if (n_ > 0) {  // complete the pending line
      const int64_t m = std::min(n, kLine - n_);
      std::copy_n(src, m, line_ + n_);
      n_ += m;
      i = m;
      if (n_ < kLine) return;
      stream_line(edge_, line_);
      edge_ += kLine;
      n_ = 0;
    }
    for (; n - i >= kLine; i += kLine, edge_ += kLine) stream_line(edge_, src + i);
    n_ = n - i;
    std::copy_n(src + i, n_, line_);
  }
  // Descending: line_[kLine - n_ : kLine) goes just below edge_.
  void push_down(const T* src, int64_t n) {
    int64_t j = n;  // src[0:j) still to place
    if (const int64_t off = edge_offset(); off != 0) {
      const int64_t h = std::min(n, off / kSize);
      std::copy_n(src + n - h, h, edge_ - h);
      edge_ -= h;
      j = n - h;
      if (j == 0) return;
    } else if (n_ > 0) {
      const int64_t m = std::min(n, kLine - n_);
      std::copy_n(src + n - m, m, line_ + kLine - n_ - m);
      n_ += m;
      j = n - m;
      if (n_ < kLine) return;
      stream_line(edge_ - kLine, line_);
      edge_ -= kLine;
      n_ = 0;
    }
    for (; j >= kLine; j -= kLine, edge_ -= kLine) stream_line(edge_ - kLine, src + j - kLine);
    n_ = j;
    std::copy_n(src, n_, line_ + kLine - n_);
  }
  static void stream_line(T* dst, const T* src) {  // dst 64-byte aligned
#if defined(FASTSNN_CPU_FMA)
    const auto* s = reinterpret_cast<const __m256i*>(src);
    auto* d = reinterpret_cast<__m256i*>(dst);
    _mm256_stream_si256(d, _mm256_loadu_si256(s));
    _mm256_stream_si256(d + 1, _mm256_loadu_si256(s + 1));
#elif defined(__SSE2__)
    const auto* s = reinterpret_cast<const __m128i*>(src);
    auto* d = reinterpret_cast<__m128i*>(dst);
    for (int q = 0; q < 4; ++q) _mm_stream_si128(d + q, _mm_loadu_si128(s + q));
#else
    std::copy_n(src, kLine, dst);
#endif
  }
  alignas(64) T line_[kLine];  // the pending partial line
  T* edge_ = nullptr;
  int64_t n_ = 0;  // elements pending
};

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
