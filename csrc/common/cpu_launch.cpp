// The CPU launchers of launch.h: parallel over work items (a batch row's block of neurons, see
// cpu_block), the time loop inside each, the neuron loop innermost so it vectorizes. The kernel
// bodies (lif_cpu_kernels.h, li_cpu_kernels.h) are compiled per instruction set (cpu_isa.h).
#include <cstdlib>
#include <string>

#include <ATen/Parallel.h>

#include "cpu_dispatch.h"
#include "cpu_isa.h"

namespace fastsnn {

template <typename Params, typename Base, typename Avx2>
void run_cpu_items(const Params& p, IoType io, Base base_fn, Avx2 avx2_fn) {
  const int64_t block = cpu_block(p.B, p.N, at::get_num_threads());
  const int64_t items = p.B * ((p.N + block - 1) / block);
  const bool avx2 = cpu_use_avx2();
  at::parallel_for(0, items, cpu_grain(block, p.T), [&](int64_t begin, int64_t end) {
    if (avx2) {
      avx2_fn(p, io, block, begin, end);
    } else {
      base_fn(p, io, block, begin, end);
    }
  });
}

#ifdef FASTSNN_HAS_AVX2_BUILD
#define FASTSNN_AVX2_OR_BASE(fn) avx2::fn
#else
#define FASTSNN_AVX2_OR_BASE(fn) base::fn
#endif

void lif_fwd_cpu(const LifFwdParams& p, IoType io) {
  run_cpu_items(p, io, base::lif_fwd_items, FASTSNN_AVX2_OR_BASE(lif_fwd_items));
}

void lif_bwd_cpu(const LifBwdParams& p, IoType io) {
  run_cpu_items(p, io, base::lif_bwd_items, FASTSNN_AVX2_OR_BASE(lif_bwd_items));
}

void li_fwd_cpu(const LiFwdParams& p, IoType io) {
  run_cpu_items(p, io, base::li_fwd_items, FASTSNN_AVX2_OR_BASE(li_fwd_items));
}

void li_bwd_cpu(const LiBwdParams& p, IoType io) {
  run_cpu_items(p, io, base::li_bwd_items, FASTSNN_AVX2_OR_BASE(li_bwd_items));
}

bool cpu_use_avx2() {
#ifdef FASTSNN_HAS_AVX2_BUILD
  static const bool use = [] {
    const char* isa = std::getenv("FASTSNN_CPU_ISA");
    if (isa != nullptr && std::string(isa) == "base") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return use;
#else
  return false;
#endif
}

}  // namespace fastsnn
