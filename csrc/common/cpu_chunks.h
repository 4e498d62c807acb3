// Loop helpers shared by the CPU kernels, compiled once per instruction set like them
// (included after the target pragma, inside FASTSNN_CPU_ISA): column chunking for the kernels
// that keep a row's partial sums in registers (rlif's R_t gather, spike_linear's input
// gradient), and the walk over the set bits of a compare mask (the spike and nonzero scans).
#pragma once

#include <cstdint>

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

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
