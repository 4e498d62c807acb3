// Loop helpers shared by the CPU kernels, compiled once per instruction set like them
// (included after the target pragma, inside FASTSNN_CPU_ISA): column chunking for the kernels
// that keep a row's partial sums in registers (rlif's R_t gather, spike_linear's input
// gradient), the walk over the set bits of a compare mask (the spike and nonzero scans),
// 64-byte aligned row buffers, and lane masks for a row's last partial vectors.
#pragma once

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

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
