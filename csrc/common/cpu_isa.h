// The CPU kernels are compiled twice: for baseline x86-64 (SSE2) and for AVX2, and the wider
// one is picked at run time when the processor has it (FASTSNN_CPU_ISA=base forces the
// baseline). Both compute the same IEEE operations in the same order (no FMA contraction), so
// their results are bitwise identical; AVX2 only does eight lanes per instruction instead of
// four. Declarations of the per-instruction-set entry points (csrc/cpu_isa/*.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "launch.h"

namespace fastsnn {

#define FASTSNN_DECLARE_CPU_ISA(isa)                                                         \
  namespace isa {                                                                            \
  void lif_fwd_items(const LifFwdParams& p, IoType io, int64_t block, int64_t b, int64_t e); \
  void lif_bwd_items(const LifBwdParams& p, IoType io, int64_t block, int64_t b, int64_t e); \
  void li_fwd_items(const LifFwdParams& p, IoType io, int64_t block, int64_t b, int64_t e);  \
  void li_bwd_items(const LifBwdParams& p, IoType io, int64_t block, int64_t b, int64_t e);  \
  void rlif_fwd_items(const RlifFwdParams& p, IoType io, int64_t tile, int64_t b, int64_t e); \
  void rlif_bwd_items(const RlifBwdParams& p, IoType io, int64_t tile, int64_t b, int64_t e,  \
                      void* dw);                                                             \
  void spike_linear_fwd_rows(const SpikeLinearParams& p, IoType io, int64_t b, int64_t e);    \
  void spike_linear_gx_rows(const SpikeLinearParams& p, IoType io, int64_t b, int64_t e);     \
  void spike_linear_gwt_rows(const SpikeLinearParams& p, IoType io, int64_t b, int64_t e,     \
                             void* gwt);                                                     \
  }

FASTSNN_DECLARE_CPU_ISA(base)
#if defined(__x86_64__) && defined(__GNUC__)
#define FASTSNN_HAS_AVX2_BUILD 1
FASTSNN_DECLARE_CPU_ISA(avx2)
#endif

// Whether the AVX2 kernels run here: the processor has AVX2 and FMA, and FASTSNN_CPU_ISA != "base".
bool cpu_use_avx2();

// Whether the AVX2 kernels' float32 tile products (rlif) use AVX-512 here: the AVX2 kernels
// run, the processor and OS have AVX-512F, and FASTSNN_CPU_ISA is not "avx2" (nor "base").
// Same results either way; FASTSNN_CPU_ISA=avx2 is there to compare and to time them.
bool cpu_use_avx512();

// What the CPU kernels run here: "base", "avx2", or "avx2+avx512" (AVX2 kernels whose rlif
// float32 products use AVX-512). torch.ops.fastsnn.cpu_isa(); the benchmark header records it.
std::string cpu_isa_name();

}  // namespace fastsnn
