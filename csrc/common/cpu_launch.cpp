// The CPU launchers of launch.h: parallel over work items (a batch row's block of neurons, see
// cpu_block), the time loop inside each, the neuron loop innermost so it vectorizes. The kernel
// bodies (lif_cpu_kernels.h, the lif/li scan skeleton, and rlif's) are compiled per instruction
// set (cpu_isa.h).
// Every loop runs through parallel_chunks (cpu_workers.h): chunks handed out one at a time, so
// a thread that loses its core to another process holds up little of the work.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_dispatch.h"
#include "cpu_isa.h"
#include "cpu_workers.h"

namespace fastsnn {

template <typename Params, typename Base, typename Avx2>
void run_cpu_items(const Params& p, IoType io, Base base_fn, Avx2 avx2_fn) {
  const int64_t threads = cpu_threads();
  const int64_t block = cpu_block(p.B, p.N, threads);
  const int64_t items = p.B * ((p.N + block - 1) / block);
  const int64_t per = cpu_chunk_items(items, block, p.T, threads);
  const bool avx2 = cpu_use_avx2();
  parallel_chunks((items + per - 1) / per, threads, [&](int64_t c) {
    const int64_t begin = c * per, end = std::min(items, begin + per);
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

void li_fwd_cpu(const LifFwdParams& p, IoType io) {
  run_cpu_items(p, io, base::li_fwd_items, FASTSNN_AVX2_OR_BASE(li_fwd_items));
}

void li_bwd_cpu(const LifBwdParams& p, IoType io) {
  run_cpu_items(p, io, base::li_bwd_items, FASTSNN_AVX2_OR_BASE(li_bwd_items));
}

// rlif: batch rows per work item (a tile shares each step's product with V), and a contiguous
// run of tiles per task. Small problems stay on one thread. With several threads there are up
// to four runs per thread, handed out in order as threads come free: on a shared machine a
// thread that loses its core for a while no longer holds up the other (a static split made
// the other wait in the parallel region's barrier). Which thread walks a run never changes
// what the run computes, so results stay bitwise reproducible.
static int64_t rlif_tile(int64_t B, int64_t threads) {
  const int64_t per_thread = (B + threads - 1) / std::max<int64_t>(threads, 1);
  return std::clamp<int64_t>(per_thread, 1, 8);
}

static int64_t rlif_runs(int64_t B, int64_t T, int64_t N, int64_t tiles, int64_t threads) {
  const int64_t work = B * T * N * std::max<int64_t>(N / 16, 1);
  const int64_t most = threads > 1 ? std::min(tiles, 4 * threads) : 1;
  return std::clamp<int64_t>(work >> 16, 1, most);
}


void rlif_fwd_cpu(const RlifFwdParams& p, IoType io) {
  const LifFwdParams& q = p.lif;
  const int64_t threads = cpu_threads();
  const int64_t tile = rlif_tile(q.B, threads), tiles = (q.B + tile - 1) / tile;
  const int64_t runs = rlif_runs(q.B, q.T, q.N, tiles, threads);
  const bool avx2 = cpu_use_avx2();
  parallel_chunks(runs, threads, [&](int64_t r) {
    const int64_t b = r * tiles / runs, e = (r + 1) * tiles / runs;
    if (avx2) {
      FASTSNN_AVX2_OR_BASE(rlif_fwd_items)(p, io, tile, b, e);
    } else {
      base::rlif_fwd_items(p, io, tile, b, e);
    }
  });
}

// dV: each run accumulates into its own zeroed partial; the partials are summed in run order
// afterwards, so the result does not depend on thread timing.
void rlif_bwd_cpu(const RlifBwdParams& p, IoType io) {
  const LifBwdParams& q = p.lif;
  const int64_t threads = cpu_threads();
  const int64_t tile = rlif_tile(q.B, threads), tiles = (q.B + tile - 1) / tile;
  const int64_t runs = rlif_runs(q.B, q.T, q.N, tiles, threads);
  const bool avx2 = cpu_use_avx2();
  const size_t elt = io == IoType::F64 ? sizeof(double) : sizeof(float);
  const int64_t NN = q.N * q.N;
  std::vector<char> partials(p.gw != nullptr && runs > 1 ? (runs - 1) * NN * elt : 0);
  auto partial = [&](int64_t r) -> void* {
    if (p.gw == nullptr) return nullptr;
    return r == 0 ? p.gw : partials.data() + (r - 1) * NN * elt;
  };
  parallel_chunks(runs, threads, [&](int64_t r) {
    const int64_t b = r * tiles / runs, e = (r + 1) * tiles / runs;
    void* dw = partial(r);
    if (dw != nullptr) std::memset(dw, 0, NN * elt);
    if (avx2) {
      FASTSNN_AVX2_OR_BASE(rlif_bwd_items)(p, io, tile, b, e, dw);
    } else {
      base::rlif_bwd_items(p, io, tile, b, e, dw);
    }
  });
  if (p.gw == nullptr || runs == 1) return;
  auto reduce = [&](auto zero) {
    using acc_t = decltype(zero);
    acc_t* out = static_cast<acc_t*>(p.gw);
    for (int64_t r = 1; r < runs; ++r) {
      const acc_t* part = static_cast<const acc_t*>(partial(r));
      for (int64_t i = 0; i < NN; ++i) out[i] += part[i];
    }
  };
  if (io == IoType::F64) {
    reduce(double{});
  } else {
    reduce(float{});
  }
}

// spike_linear: rows in parallel (dL/dx for M > kSpikeLinearSmallM is at::mm in the host).
// dL/dw: the rows are cut into a fixed number of ranges (set
// by the shape, not the thread count or timing), each gathers into its own zeroed [K, M]
// partial, and the partials are summed in range order and transposed into gw [M, K].
static int64_t spike_linear_grain(int64_t K, int64_t M) {
  return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(K + M, 1));
}

// fn(begin, end) over [0, R) in chunks of at least `grain` rows, up to 8 chunks per thread.
template <typename F>
static void row_chunks(int64_t R, int64_t grain, const F& fn) {
  const int64_t threads = cpu_threads();
  const int64_t per = std::max(grain, (R + 8 * threads - 1) / (8 * threads));
  parallel_chunks((R + per - 1) / per, threads, [&](int64_t c) {
    fn(c * per, std::min(R, (c + 1) * per));
  });
}

void spike_linear_fwd_cpu(const SpikeLinearParams& p, IoType io) {
  const bool avx2 = cpu_use_avx2();
  row_chunks(p.R, spike_linear_grain(p.K, p.M), [&](int64_t b, int64_t e) {
    if (avx2) {
      FASTSNN_AVX2_OR_BASE(spike_linear_fwd_rows)(p, io, b, e);
    } else {
      base::spike_linear_fwd_rows(p, io, b, e);
    }
  });
}

void spike_linear_bwd_cpu(const SpikeLinearParams& p, IoType io) {
  const bool avx2 = cpu_use_avx2();
  if (p.gx != nullptr) {
    row_chunks(p.R, spike_linear_grain(p.K, p.M), [&](int64_t b, int64_t e) {
      if (avx2) {
        FASTSNN_AVX2_OR_BASE(spike_linear_gx_rows)(p, io, b, e);
      } else {
        base::spike_linear_gx_rows(p, io, b, e);
      }
    });
  }
  if (p.gw == nullptr) return;
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const int64_t KM = p.K * p.M;
    // Ranges of >= 1024 rows, at most 16, and at most 16 MB of partials.
    int64_t ranges = std::clamp<int64_t>(p.R / 1024, 1, 16);
    ranges = std::max<int64_t>(1, std::min<int64_t>(ranges, (int64_t(16) << 20) / (KM * int64_t(sizeof(T)) + 1)));
    std::vector<T> part(static_cast<size_t>(ranges * KM), T(0));
    parallel_chunks(ranges, cpu_threads(), [&](int64_t c) {
      const int64_t b = c * p.R / ranges, e = (c + 1) * p.R / ranges;
      if (avx2) {
        FASTSNN_AVX2_OR_BASE(spike_linear_gwt_rows)(p, io, b, e, part.data() + c * KM);
      } else {
        base::spike_linear_gwt_rows(p, io, b, e, part.data() + c * KM);
      }
    });
    for (int64_t c = 1; c < ranges; ++c) {
      const T* src = part.data() + c * KM;
      T* dst = part.data();
      for (int64_t i = 0; i < KM; ++i) dst[i] += src[i];
    }
    T* gw = static_cast<T*>(p.gw);
    for (int64_t k = 0; k < p.K; ++k) {
      for (int64_t m = 0; m < p.M; ++m) gw[m * p.K + k] = part[k * p.M + m];
    }
  };
  if (io == IoType::F64) {
    run(double{});
  } else {
    run(float{});
  }
}

bool cpu_use_avx2() {
#ifdef FASTSNN_HAS_AVX2_BUILD
  static const bool use = [] {
    const char* isa = std::getenv("FASTSNN_CPU_ISA");
    if (isa != nullptr && std::string(isa) == "base") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0;
  }();
  return use;
#else
  return false;
#endif
}

bool cpu_use_avx512() {
#ifdef FASTSNN_HAS_AVX2_BUILD
  static const bool use = [] {
    if (!cpu_use_avx2()) return false;
    const char* isa = std::getenv("FASTSNN_CPU_ISA");
    if (isa != nullptr && std::string(isa) == "avx2") return false;
    __builtin_cpu_init();  // libgcc also checks that the OS saves the AVX-512 registers
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return use;
#else
  return false;
#endif
}

std::string cpu_isa_name() {
  if (!cpu_use_avx2()) return "base";
  return cpu_use_avx512() ? "avx2+avx512" : "avx2";
}

}  // namespace fastsnn
