// The persistent rlif kernels and their launch plan (csrc/rlif/rlif_cuda.cu launches them).
// Kept apart from the launchers, with no CUDA runtime calls, so the kernels and the plan can be
// compiled and checked on their own.
//
// One thread block owns `rows` batch rows (1, 2 or 4) and all N neurons; rows never interact,
// so blocks never synchronise with each other, and one launch walks the whole time axis. Thread
// `tid` owns the neurons n = s * threads + tid of column slot s, for every row of its block: it
// keeps their state (in shared memory, or in global memory when N is too large) and is the only
// thread that touches it. Slots are processed kRlifCols at a time ("passes") so the products
// keep their partial sums in registers.
//
// Forward, step t: R_t = S_{t-1} @ V by a sparse gather. S_{t-1} is 0/1, so each row's R_t[n] is
// the sum of V[j, n] over the neurons j that spiked at t-1. Before the step the block compacts
// the neurons that spiked in any of its rows into a list in shared memory, in ascending j, each
// entry carrying a bit mask of the rows it spiked in (ballot per warp, prefix over warps and
// slots). Each thread then sums rows j of V at its columns: V[j, n] is read once per block and
// added to the rows whose bit is set (0 to the others, which is exact). Every row's sum is thus
// a plain left-to-right float sum over its spiking j in ascending order, whatever the other
// rows do. Two __syncthreads per step (count, then list).
// Dense mode (V holds inf/NaN: the host's flag, RlifFwdParams::w_finite): the list holds every
// neuron, each with its (possibly empty) row mask, and each row adds mask bit * V[j, n], so the
// neurons that did not spike add 0 * V[j, n] (NaN for an inf or NaN) as the reference's dense
// product S_{t-1} @ V does.
//
// Backward, step t (reverse): rec_t = gI_{t+1} @ Vᵀ, dense: rec_t[n] = sum_k gI_{t+1}[k] Vᵀ[k, n]
// in ascending k, with gI_{t+1} of the block's rows exchanged through a double-buffered [N, rows]
// array (shared memory, or the workspace when too large). One __syncthreads per step.
//
// V (forward) and Vᵀ (backward) are read as `w`, [N, N] row-major; the first `staged` rows are
// copied to shared memory at the start (all of them when they fit: N up to about 230 in float32
// with the 227 KB of an H100/H200), the rest are read from global memory (L2) every step.
//
// Products in float32 (float64 for float64 I/O) on the SIMT cores, for every I/O dtype: the
// operands V and gI are accumulation-dtype values, and a bf16/fp16 tensor-core product would
// round them to 8/11 significant bits (the reference multiplies them in float32). With one block
// reading V per step for `rows` batch rows, a product does `rows` multiply-adds per element of V
// it streams from L2/shared memory, far below what tensor cores need to pay off; the time of a
// step is the time to stream V (the forward streams only the rows of V of the spiking neurons).
// Multiplies and adds stay separate (the build passes --fmad=false), so a sum over k rounds as
// a plain sequential loop does.
//
// Per-step neuron math: lif_math.h, shared unchanged with the CPU kernels.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../common/cuda_io.cuh"
#include "../lif/lif_math.h"

namespace fastsnn {
namespace {

constexpr int kRlifMaxRows = 4;      // batch rows per block: 1, 2 or 4 (a power of two)
constexpr int kRlifMaxThreads = 256;  // threads per block (fewer for N < 256)
constexpr int kRlifCols = 2;          // column slots per thread per pass (register tile)
// List entries / rows of Vᵀ loaded per batch in the products (loads in flight per thread).
template <typename acc_t>
constexpr int kRlifUnroll = sizeof(acc_t) == 4 ? 16 : 8;

// Everything a launch decides on the host: the shape of the grid and where each buffer lives.
struct RlifPlan {
  int rows;        // batch rows per block (1, 2 or 4)
  int threads;     // threads per block, a multiple of 32
  int ncols;       // column slots per thread: ceil(N / threads)
  int64_t blocks;  // ceil(B / rows)
  int64_t staged;  // leading rows of w copied to shared memory (0 .. N)
  bool state_smem;  // per (row, neuron) state in shared memory (else in outputs / workspace)
  bool g_smem;      // backward: the gI exchange buffers in shared memory (else workspace)
  // Byte offsets into the dynamic shared memory, and its size.
  int64_t off_w, off_state, off_list, off_cnt, off_g, smem_bytes;
  // Backward workspace: byte offsets of the gI buffers and of the reset carries, total bytes.
  int64_t ws_g, ws_cs, ws_bytes;
};

// ---- Plan (host) -------------------------------------------------------------------------

inline int64_t round16(int64_t bytes) { return (bytes + 15) / 16 * 16; }

// The smallest power of two >= v, capped at kRlifMaxRows.
inline int rows_for(int64_t v) {
  int r = 1;
  while (r < kRlifMaxRows && r < v) r *= 2;
  return r;
}

inline void plan_shape(RlifPlan& pl, int64_t B, int64_t N, int rows) {
  if (N >= (int64_t(1) << 27)) {
    throw std::invalid_argument("fastsnn::rlif (CUDA): N = " + std::to_string(N) +
                                " is too large (the spike list encodes neurons in 27 bits)");
  }
  pl.rows = rows;
  pl.threads = static_cast<int>(N < kRlifMaxThreads ? (N + 31) / 32 * 32 : kRlifMaxThreads);
  pl.ncols = static_cast<int>((N + pl.threads - 1) / pl.threads);
  pl.blocks = (B + rows - 1) / rows;
}

// Leading rows of w that fit in `avail` bytes of shared memory.
inline int64_t staged_rows(int64_t N, int64_t acc_bytes, int64_t avail) {
  const int64_t rows = (avail / 16 * 16) / (N * acc_bytes);
  return rows < N ? rows : N;
}

// Forward. Rows per block: as few as keep every multiprocessor busy (sms blocks), since the
// gather reads the rows of V of the union of the block's spikes, which grows with the rows.
// Shared memory: the spike list and its counts (required), the state if it fits, then as many
// rows of V as fit in the rest of the opt-in limit.
inline RlifPlan plan_fwd(int64_t B, int64_t N, int64_t acc_bytes, int sms, int64_t smem_max) {
  RlifPlan pl{};
  plan_shape(pl, B, N, rows_for((B + sms - 1) / sms));
  const int64_t list = round16(4 * N);
  const int64_t cnt = round16(4 * int64_t(pl.ncols) * (pl.threads / 32));
  const int64_t state = round16(2 * pl.rows * N * acc_bytes);
  if (list + cnt > smem_max) {
    throw std::invalid_argument("fastsnn::rlif_fwd (CUDA): N = " + std::to_string(N) +
                                " is too large for the spike list in shared memory (" +
                                std::to_string(smem_max) + " bytes per block)");
  }
  pl.state_smem = list + cnt + state <= smem_max;
  const int64_t used = list + cnt + (pl.state_smem ? state : 0);
  pl.staged = staged_rows(N, acc_bytes, smem_max - used);
  pl.off_w = 0;
  pl.off_state = round16(pl.staged * N * acc_bytes);
  pl.off_list = pl.off_state + (pl.state_smem ? state : 0);
  pl.off_cnt = pl.off_list + list;
  pl.smem_bytes = pl.off_cnt + cnt;
  return pl;
}

// Backward with a given number of rows per block. nstate: per (row, neuron) arrays kept (gU, gI,
// plus the reset carry gS when the reset is not detached, plus the alpha/beta/threshold partials
// when they are asked for).
inline RlifPlan plan_bwd_rows(int64_t B, int64_t N, int64_t acc_bytes, int rows, int nstate,
                              bool carry_s, int64_t smem_max) {
  RlifPlan pl{};
  plan_shape(pl, B, N, rows);
  const int64_t g = round16(2 * N * rows * acc_bytes);
  const int64_t state = round16(int64_t(nstate) * rows * N * acc_bytes);
  pl.g_smem = g <= smem_max;
  int64_t used = pl.g_smem ? g : 0;
  pl.state_smem = used + state <= smem_max;
  used += pl.state_smem ? state : 0;
  pl.staged = staged_rows(N, acc_bytes, smem_max - used);
  pl.off_w = 0;
  pl.off_g = round16(pl.staged * N * acc_bytes);
  pl.off_state = pl.off_g + (pl.g_smem ? g : 0);
  pl.smem_bytes = pl.off_state + (pl.state_smem ? state : 0);
  pl.ws_g = 0;
  int64_t ws = pl.g_smem ? 0 : round16(pl.blocks * 2 * N * rows * acc_bytes);
  pl.ws_cs = ws;
  if (!pl.state_smem && carry_s) ws += round16(pl.blocks * rows * N * acc_bytes);
  pl.ws_bytes = ws;
  return pl;
}

// Backward. The dense product streams all of Vᵀ per block and step whatever the rows, so when Vᵀ
// does not fit in shared memory, blocks take the most rows (fewer blocks, less L2 traffic);
// when it fits, as few rows as keep every multiprocessor busy.
inline RlifPlan plan_bwd(int64_t B, int64_t N, int64_t acc_bytes, int nstate, bool carry_s,
                         int sms, int64_t smem_max) {
  RlifPlan pl = plan_bwd_rows(B, N, acc_bytes, rows_for((B + sms - 1) / sms), nstate, carry_s,
                              smem_max);
  if (pl.staged < N) pl = plan_bwd_rows(B, N, acc_bytes, rows_for(B), nstate, carry_s, smem_max);
  return pl;
}

// ---- Device helpers ----------------------------------------------------------------------

// a[i] for a runtime i < K without dynamic register indexing (which would go to local memory).
template <typename T, int K>
__host__ __device__ __forceinline__ T pick(const T (&a)[K], int i) {
  T v = a[0];
#pragma unroll
  for (int k = 1; k < K; ++k) {
    if (i == k) v = a[k];
  }
  return v;
}

// Calls f(std::integral_constant<int, R>) for the plan's rows, R in {1, 2, 4}.
template <typename F>
__host__ __device__ __forceinline__ void switch_rows(int rows, F&& f) {
  if (rows == 1) {
    f(std::integral_constant<int, 1>{});
  } else if (rows == 2) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 4>{});
  }
}

template <typename acc_t>
__host__ __device__ __forceinline__ LifConsts<acc_t> consts_at(const void* alpha,
                                                               const void* beta,
                                                               const void* thr, int64_t n,
                                                               bool normalize_input) {
  const acc_t be = static_cast<const acc_t*>(beta)[n];
  return {static_cast<const acc_t*>(alpha)[n], be, normalize_input ? acc_t(1) - be : acc_t(1),
          static_cast<const acc_t*>(thr)[n]};
}

// K consecutive values from p (aligned to their size, at most 16 bytes per access). No
// __restrict__: p points into a buffer the kernel writes (the gI exchange).
template <int K, typename acc_t>
__host__ __device__ __forceinline__ void load_vec(const acc_t* p, acc_t (&out)[K]) {
  constexpr int bytes = K * int(sizeof(acc_t));
  if constexpr (bytes <= 16) {
    using R = typename Raw<bytes>::type;
    const R r = *reinterpret_cast<const R*>(p);
    memcpy(out, &r, bytes);
  } else {
    static_assert(bytes == 32, "load_vec: 32 bytes at most");
    const uint4 lo = *reinterpret_cast<const uint4*>(p);
    const uint4 hi = *reinterpret_cast<const uint4*>(p + K / 2);
    memcpy(out, &lo, 16);
    memcpy(out + K / 2, &hi, 16);
  }
}

// Copies the first `count` elements of w to shared memory.
template <typename acc_t>
__device__ __forceinline__ void stage_w(const acc_t* __restrict__ w, acc_t* sw, int64_t count,
                                        int tid, int threads) {
  for (int64_t i = tid; i < count; i += threads) sw[i] = w[i];
}

// The neurons of this thread's slot s: n = s * threads + tid (>= N past the end).
__device__ __forceinline__ int64_t neuron_of(const RlifPlan& pl, int s, int tid) {
  return int64_t(s) * pl.threads + tid;
}

// Bit r set when row r spiked: Theta(U[r, n] - thr[n]), rows r < nrows; 0 for n >= N.
template <typename acc_t>
__device__ __forceinline__ unsigned spike_mask(const acc_t* U, const acc_t* thr, int64_t N,
                                               int nrows, int64_t n) {
  unsigned m = 0;
  if (n < N) {
    const acc_t th = thr[n];
    for (int r = 0; r < nrows; ++r) {
      if (heaviside(U[r * N + n], th) > acc_t(0)) m |= 1u << r;
    }
  }
  return m;
}

// Builds the block's spike list from the state U [rows, N]: entries (j << 4) | row mask for the
// neurons j that spiked in any row (every neuron j < N when dense, masks possibly 0), in
// ascending j (slot, then warp, then lane); returns their
// number. Every thread of the block must call it. The neuron of (slot s, warp w, lane) is
// s * threads + 32 w + lane, so counts per (slot, warp) in that order give ascending positions.
// Syncs: after the counts (the list of the previous step is no longer read past this point) and
// after the list (visible to the gather).
template <typename acc_t>
__device__ __forceinline__ int build_spike_list(const acc_t* U, const acc_t* thr, int64_t N,
                                                int nrows, const RlifPlan& pl, int* list,
                                                int* cnt, bool dense) {
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5, nwarps = pl.threads >> 5;
  for (int s = 0; s < pl.ncols; ++s) {
    const int64_t n = neuron_of(pl, s, tid);
    const unsigned m = spike_mask(U, thr, N, nrows, n);
    const unsigned bal = __ballot_sync(0xffffffffu, dense ? n < N : m != 0);
    if (lane == 0) cnt[s * nwarps + warp] = __popc(bal);
  }
  __syncthreads();
  int base = 0;
  for (int s = 0; s < pl.ncols; ++s) {
    int before = 0, in_slot = 0;
    for (int w = 0; w < nwarps; ++w) {
      const int c = cnt[s * nwarps + w];
      in_slot += c;
      if (w < warp) before += c;
    }
    const int64_t n = neuron_of(pl, s, tid);
    const unsigned m = spike_mask(U, thr, N, nrows, n);
    const bool in = dense ? n < N : m != 0;
    const unsigned bal = __ballot_sync(0xffffffffu, in);
    if (in) {
      list[base + before + __popc(bal & ((1u << lane) - 1u))] =
          static_cast<int>(n << 4) | static_cast<int>(m);
    }
    base += in_slot;
  }
  __syncthreads();
  return base;
}

// acc[c][r] += sum over the list of (bit r of the entry) ? w[j, n[c]] : 0, entries in order;
// rows j < staged read from shared memory (sw), the others from global memory (w). Whole
// batches of kRlifUnroll entries keep that many loads in flight; the last batch is padded with
// empty entries, which load nothing and add 0 (exact). kDense (the list holds every neuron):
// entries past `total` are the padding, the others all load, and row r adds
// (bit r) * w[j, n[c]], so 0 * inf = NaN reaches the rows that did not spike.
template <int kR, bool kDense, typename acc_t>
__device__ __forceinline__ void gather_rows(const int* list, int total, const acc_t* sw,
                                            const acc_t* w, int64_t staged, int64_t N,
                                            const int64_t (&n)[kRlifCols],
                                            acc_t (&acc)[kRlifCols][kRlifMaxRows]) {
  constexpr int kU = kRlifUnroll<acc_t>;
  bool ok[kRlifCols];
#pragma unroll
  for (int c = 0; c < kRlifCols; ++c) ok[c] = n[c] < N;
  for (int e = 0; e < total; e += kU) {
    int ent[kU];
    acc_t v[kU][kRlifCols];
#pragma unroll
    for (int u = 0; u < kU; ++u) ent[u] = e + u < total ? list[e + u] : 0;
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int64_t j = ent[u] >> 4;
      const bool live = kDense ? e + u < total : (ent[u] & 15) != 0;
      const acc_t* row = (j < staged ? sw : w) + j * N;
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) v[u][c] = live && ok[c] ? row[n[c]] : acc_t(0);
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) {
#pragma unroll
        for (int r = 0; r < kR; ++r) {
          if constexpr (kDense) {
            acc[c][r] = acc[c][r] + acc_t((ent[u] >> r) & 1) * v[u][c];
          } else {
            acc[c][r] = acc[c][r] + (((ent[u] >> r) & 1) ? v[u][c] : acc_t(0));
          }
        }
      }
    }
  }
}

// acc[c][r] += sum_{k in [kb, ke)} g[k * kR + r] * w[k * N + n[c]], k ascending. g: [N, kR]
// (the gI exchange buffer), w: rows of Vᵀ (shared or global memory, same indexing). Batches as
// in gather_rows; padded steps load nothing and add 0 * 0.
template <int kR, typename acc_t>
__device__ __forceinline__ void rec_rows(const acc_t* g, const acc_t* w, int64_t kb, int64_t ke,
                                         int64_t N, const int64_t (&n)[kRlifCols],
                                         acc_t (&acc)[kRlifCols][kRlifMaxRows]) {
  constexpr int kU = kRlifUnroll<acc_t>;
  bool ok[kRlifCols];
#pragma unroll
  for (int c = 0; c < kRlifCols; ++c) ok[c] = n[c] < N;
  for (int64_t k = kb; k < ke; k += kU) {
    acc_t v[kU][kRlifCols];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) {
        v[u][c] = k + u < ke && ok[c] ? w[(k + u) * N + n[c]] : acc_t(0);
      }
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      acc_t gk[kR];
      if (k + u < ke) {
        load_vec<kR>(g + (k + u) * kR, gk);
      } else {
#pragma unroll
        for (int r = 0; r < kR; ++r) gk[r] = acc_t(0);
      }
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) {
#pragma unroll
        for (int r = 0; r < kR; ++r) acc[c][r] = acc[c][r] + gk[r] * v[u][c];
      }
    }
  }
}

// lif_step_bwd / lif_initial_state_grads with the surrogate chosen at run time. The surrogate
// is a runtime switch here (uniform across the block, once per neuron and step) rather than a
// template parameter as in lif_cuda.cu: next to the O(N) product per neuron and step its cost is
// nil, and it keeps the backward at 40 kernels instead of 240.
template <Reset R, bool kDetach, typename acc_t>
__device__ __forceinline__ LifStepGrads<acc_t> step_bwd(int sg, const LifConsts<acc_t>& c,
                                                        acc_t k, acc_t gs_out, acc_t u,
                                                        acc_t u_prev, acc_t i_t,
                                                        LifGradCarry<acc_t>& carry) {
  using S = Surrogate;
  switch (static_cast<S>(sg)) {
    case S::SuperSpikeAsymptotic:
      return lif_step_bwd<R, S::SuperSpikeAsymptotic, kDetach>(c, k, gs_out, u, u_prev, i_t,
                                                               carry);
    case S::Sigmoid:
      return lif_step_bwd<R, S::Sigmoid, kDetach>(c, k, gs_out, u, u_prev, i_t, carry);
    case S::Esser:
      return lif_step_bwd<R, S::Esser, kDetach>(c, k, gs_out, u, u_prev, i_t, carry);
    case S::Atan:
      return lif_step_bwd<R, S::Atan, kDetach>(c, k, gs_out, u, u_prev, i_t, carry);
    case S::Exponential:
      return lif_step_bwd<R, S::Exponential, kDetach>(c, k, gs_out, u, u_prev, i_t, carry);
    default:  // S::SuperSpike; the host rejects unknown codes
      return lif_step_bwd<R, S::SuperSpike, kDetach>(c, k, gs_out, u, u_prev, i_t, carry);
  }
}

template <typename acc_t>
__device__ __forceinline__ void initial_grads(int sg, const LifConsts<acc_t>& c, acc_t k,
                                              acc_t u0, const LifGradCarry<acc_t>& carry,
                                              acc_t& gi0, acc_t& gu0, acc_t& gthr) {
  using S = Surrogate;
  switch (static_cast<S>(sg)) {
    case S::SuperSpikeAsymptotic:
      return lif_initial_state_grads<S::SuperSpikeAsymptotic>(c, k, u0, carry, gi0, gu0, gthr);
    case S::Sigmoid:
      return lif_initial_state_grads<S::Sigmoid>(c, k, u0, carry, gi0, gu0, gthr);
    case S::Esser:
      return lif_initial_state_grads<S::Esser>(c, k, u0, carry, gi0, gu0, gthr);
    case S::Atan:
      return lif_initial_state_grads<S::Atan>(c, k, u0, carry, gi0, gu0, gthr);
    case S::Exponential:
      return lif_initial_state_grads<S::Exponential>(c, k, u0, carry, gi0, gu0, gthr);
    default:
      return lif_initial_state_grads<S::SuperSpike>(c, k, u0, carry, gi0, gu0, gthr);
  }
}

// ---- Forward -------------------------------------------------------------------------------

// Grid: plan.blocks blocks of plan.threads threads, plan.smem_bytes of dynamic shared memory.
// w: V [N, N] (acc dtype, row j = the weights out of neuron j). One block per multiprocessor is
// the design (the staged rows of V fill shared memory), hence the minimum of 1 block in the
// launch bounds: it lets the compiler keep the batches of loads in registers instead of spilling.
template <typename io_t, typename acc_t, Reset R>
__global__ void __launch_bounds__(kRlifMaxThreads, 1)
    rlif_fwd_kernel(const LifFwdParams p, const acc_t* __restrict__ w, const bool* w_finite,
                    const bool dense_product, const RlifPlan pl) {
  FASTSNN_DYNAMIC_SMEM(smem);
  const int64_t N = p.N, T = p.T;
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t b0 = int64_t(blockIdx.x) * pl.rows;
  const int nrows = static_cast<int>(p.B - b0 < pl.rows ? p.B - b0 : pl.rows);
  const int npass = (pl.ncols + kRlifCols - 1) / kRlifCols;
  const acc_t* thr = static_cast<const acc_t*>(p.thr);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  const io_t* __restrict__ x = static_cast<const io_t*>(p.x);  // [B, T, N] at (x_sb, x_st)
  io_t* __restrict__ s = static_cast<io_t*>(p.s);
  acc_t* us = static_cast<acc_t*>(p.u_saved);  // [B, T, N] or nullptr
  acc_t* is = static_cast<acc_t*>(p.i_saved);
  acc_t* sw = reinterpret_cast<acc_t*>(smem + pl.off_w);  // [staged, N]
  int* list = reinterpret_cast<int*>(smem + pl.off_list);  // [N]
  int* cnt = reinterpret_cast<int*>(smem + pl.off_cnt);    // [ncols, threads / 32]
  // State I, U [rows, N] of the block's rows: shared memory, or in place in the outputs iT, uT.
  acc_t* st_i = pl.state_smem ? reinterpret_cast<acc_t*>(smem + pl.off_state)
                              : static_cast<acc_t*>(p.iT) + b0 * N;
  acc_t* st_u = pl.state_smem ? st_i + int64_t(pl.rows) * N : static_cast<acc_t*>(p.uT) + b0 * N;

  stage_w(w, sw, pl.staged * N, tid, pl.threads);
  for (int sl = 0; sl < pl.ncols; ++sl) {
    const int64_t n = neuron_of(pl, sl, tid);
    if (n >= N) continue;
    for (int r = 0; r < nrows; ++r) {
      st_i[r * N + n] = i0[(b0 + r) * N + n];
      st_u[r * N + n] = u0[(b0 + r) * N + n];
    }
  }
  // R_t over every neuron when V is not finite (the host's device flag) or when asked.
  const bool dense = dense_product || (w_finite != nullptr && !*w_finite);
  // Its syncs also publish the staged rows of V.
  int total = build_spike_list(st_u, thr, N, nrows, pl, list, cnt, dense);

  for (int64_t t = 0; t < T; ++t) {
    for (int pass = 0; pass < npass; ++pass) {
      int64_t n[kRlifCols];
      io_t xv[kRlifCols][kRlifMaxRows];  // x_t, loaded before the gather to hide its latency
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) {
        n[c] = neuron_of(pl, pass * kRlifCols + c, tid);
#pragma unroll
        for (int r = 0; r < kRlifMaxRows; ++r) {
          xv[c][r] = from_acc<io_t>(acc_t(0));
          if (r < nrows && n[c] < N) xv[c][r] = x[(b0 + r) * p.x_sb + t * p.x_st + n[c]];
        }
      }
      acc_t rec[kRlifCols][kRlifMaxRows] = {};  // R_t = S_{t-1} @ V
      switch_rows(pl.rows, [&](auto kr) {
        if (dense) {
          gather_rows<decltype(kr)::value, true>(list, total, sw, w, pl.staged, N, n, rec);
        } else {
          gather_rows<decltype(kr)::value, false>(list, total, sw, w, pl.staged, N, n, rec);
        }
      });
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) {
        if (n[c] >= N) continue;
        const LifConsts<acc_t> cn =
            consts_at<acc_t>(p.alpha, p.beta, p.thr, n[c], p.normalize_input);
#pragma unroll 1
        for (int r = 0; r < nrows; ++r) {
          const int64_t b = b0 + r, sn = r * N + n[c];
          acc_t I = st_i[sn], U = st_u[sn];
          rlif_step_fwd<R>(cn, to_acc(pick(xv[c], r)), pick(rec[c], r), I, U);
          st_i[sn] = I;
          st_u[sn] = U;
          s[b * p.s_sb + t * p.s_st + n[c]] = from_acc<io_t>(heaviside(U, cn.thr));
          if (us != nullptr) us[(b * T + t) * N + n[c]] = U;
          if (is != nullptr) is[(b * T + t) * N + n[c]] = I;
        }
      }
    }
    total = build_spike_list(st_u, thr, N, nrows, pl, list, cnt, dense);
  }

  if (pl.state_smem) {
    acc_t* iT = static_cast<acc_t*>(p.iT);
    acc_t* uT = static_cast<acc_t*>(p.uT);
    for (int sl = 0; sl < pl.ncols; ++sl) {
      const int64_t n = neuron_of(pl, sl, tid);
      if (n >= N) continue;
      for (int r = 0; r < nrows; ++r) {
        iT[(b0 + r) * N + n] = st_i[r * N + n];
        uT[(b0 + r) * N + n] = st_u[r * N + n];
      }
    }
  }
}

// ---- Backward ------------------------------------------------------------------------------

// Grid as the forward. kHasI: I_t was saved (parameter gradients, or the undetached zero reset
// needs H_t). kDetach is true for Reset::None (the host's switch), so kCarryS means "the reset
// carries a gradient to S_{t-1}".
template <typename io_t, typename acc_t, Reset R, bool kDetach, bool kParams>
__global__ void __launch_bounds__(kRlifMaxThreads, 1)
    rlif_bwd_kernel(const RlifBwdParams rp, const RlifPlan pl) {
  constexpr bool kHasI = kParams || (R == Reset::Zero && !kDetach);
  constexpr bool kCarryS = !kDetach;
  FASTSNN_DYNAMIC_SMEM(smem);
  const LifBwdParams& p = rp.lif;
  const int64_t N = p.N, T = p.T;
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t b0 = int64_t(blockIdx.x) * pl.rows;
  const int nrows = static_cast<int>(p.B - b0 < pl.rows ? p.B - b0 : pl.rows);
  const int npass = (pl.ncols + kRlifCols - 1) / kRlifCols;
  const int64_t RN = int64_t(pl.rows) * N;
  const acc_t ksc = static_cast<acc_t>(p.scale);
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);
  const acc_t* __restrict__ wt = static_cast<const acc_t*>(rp.wt);  // Vᵀ [N, N]
  const io_t* __restrict__ gs = static_cast<const io_t*>(p.gs);      // [B, T, N] strided
  io_t* __restrict__ gx = static_cast<io_t*>(p.gx);
  const acc_t* __restrict__ us = static_cast<const acc_t*>(p.u_saved);  // [B, T, N]
  // [B, T, N] if kHasI, but nullptr when only the threshold learns (its partial reads no I_t)
  const acc_t* __restrict__ is = static_cast<const acc_t*>(p.i_saved);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  acc_t* gi_acc = static_cast<acc_t*>(rp.gi_acc);  // [B, T, N] or nullptr
  unsigned char* ws = static_cast<unsigned char*>(rp.workspace);
  acc_t* sw = reinterpret_cast<acc_t*>(smem + pl.off_w);  // [staged, N]
  // gI exchange, two buffers [N, rows]: step t reads gI_{t+1} from one, writes gI_t to the other.
  acc_t* g0 = pl.g_smem ? reinterpret_cast<acc_t*>(smem + pl.off_g)
                        : reinterpret_cast<acc_t*>(ws + pl.ws_g) + int64_t(blockIdx.x) * 2 * RN;
  acc_t* g1 = g0 + RN;
  // State [rows, N] each: carries gU, gI, gS and partials d alpha, d beta, d thr. In shared
  // memory, or in place in the outputs grad_u0, grad_i0, the partials, and the workspace (gS).
  acc_t *cu, *ci, *cs = nullptr, *ga = nullptr, *gb = nullptr, *gt = nullptr;
  if (pl.state_smem) {
    acc_t* base = reinterpret_cast<acc_t*>(smem + pl.off_state);
    int k = 0;
    cu = base + (k++) * RN;
    ci = base + (k++) * RN;
    if constexpr (kCarryS) cs = base + (k++) * RN;
    if constexpr (kParams) {
      ga = base + (k++) * RN;
      gb = base + (k++) * RN;
      gt = base + (k++) * RN;
    }
  } else {
    cu = static_cast<acc_t*>(p.gu0) + b0 * N;
    ci = static_cast<acc_t*>(p.gi0) + b0 * N;
    if constexpr (kCarryS) {
      cs = reinterpret_cast<acc_t*>(ws + pl.ws_cs) + int64_t(blockIdx.x) * RN;
    }
    if constexpr (kParams) {
      ga = static_cast<acc_t*>(p.galpha) + b0 * N;
      gb = static_cast<acc_t*>(p.gbeta) + b0 * N;
      gt = static_cast<acc_t*>(p.gthr) + b0 * N;
    }
  }

  stage_w(wt, sw, pl.staged * N, tid, pl.threads);
  // Rows past nrows stay zero in both buffers, so the products read no garbage.
  for (int64_t i = tid; i < 2 * RN; i += pl.threads) g0[i] = acc_t(0);
  for (int sl = 0; sl < pl.ncols; ++sl) {
    const int64_t n = neuron_of(pl, sl, tid);
    if (n >= N) continue;
    for (int r = 0; r < nrows; ++r) {
      const int64_t sn = r * N + n, bn = (b0 + r) * N + n;
      cu[sn] = static_cast<const acc_t*>(p.guT)[bn];
      ci[sn] = static_cast<const acc_t*>(p.giT)[bn];
      if constexpr (kCarryS) cs[sn] = acc_t(0);
      if constexpr (kParams) ga[sn] = gb[sn] = gt[sn] = acc_t(0);
    }
  }
  __syncthreads();

  // rec[c][r] = (gI @ Vᵀ)[r, n[c]] from the exchange buffer g: staged rows of Vᵀ, then the rest.
  auto product = [&](const acc_t* g, const int64_t (&n)[kRlifCols],
                     acc_t (&rec)[kRlifCols][kRlifMaxRows]) {
    switch_rows(pl.rows, [&](auto kr) {
      constexpr int kR = decltype(kr)::value;
      rec_rows<kR>(g, sw, 0, pl.staged, N, n, rec);
      rec_rows<kR>(g, wt, pl.staged, N, N, n, rec);
    });
  };

  int cur = 0;  // g0 holds gI_{t+1} when cur == 0
  for (int64_t t = T - 1; t >= 0; --t) {
    const bool use_rec = !rp.detach_recurrent && t < T - 1;
    const acc_t* g_in = cur == 0 ? g0 : g1;
    acc_t* g_out = cur == 0 ? g1 : g0;
    for (int pass = 0; pass < npass; ++pass) {
      int64_t n[kRlifCols];
      // This step's inputs, loaded before the product to hide their latency.
      io_t gsv[kRlifCols][kRlifMaxRows];
      acc_t u_t[kRlifCols][kRlifMaxRows], u_p[kRlifCols][kRlifMaxRows];
      acc_t i_t[kRlifCols][kRlifMaxRows], i_p[kRlifCols][kRlifMaxRows];
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) {
        n[c] = neuron_of(pl, pass * kRlifCols + c, tid);
#pragma unroll
        for (int r = 0; r < kRlifMaxRows; ++r) {
          gsv[c][r] = from_acc<io_t>(acc_t(0));
          u_t[c][r] = u_p[c][r] = i_t[c][r] = i_p[c][r] = acc_t(0);
          if (r < nrows && n[c] < N) {
            const int64_t b = b0 + r, off = (b * T + t) * N + n[c];
            gsv[c][r] = gs[b * p.gs_sb + t * p.gs_st + n[c]];
            u_t[c][r] = us[off];
            u_p[c][r] = t > 0 ? us[off - N] : u0[b * N + n[c]];
            if constexpr (kHasI) {
              if (is != nullptr) {  // absent with only the threshold learning: read as 0
                i_t[c][r] = is[off];
                i_p[c][r] = t > 0 ? is[off - N] : i0[b * N + n[c]];
              }
            }
          }
        }
      }
      acc_t rec[kRlifCols][kRlifMaxRows] = {};  // (gI_{t+1} @ Vᵀ)
      if (use_rec) product(g_in, n, rec);
#pragma unroll
      for (int c = 0; c < kRlifCols; ++c) {
        if (n[c] >= N) continue;
        const LifConsts<acc_t> cn =
            consts_at<acc_t>(p.alpha, p.beta, p.thr, n[c], p.normalize_input);
#pragma unroll 1
        for (int r = 0; r < nrows; ++r) {
          const int64_t b = b0 + r, sn = r * N + n[c];
          LifGradCarry<acc_t> carry{cu[sn], ci[sn], kCarryS ? cs[sn] : acc_t(0)};
          acc_t g = to_acc(pick(gsv[c], r));
          if (use_rec) g = g + pick(rec[c], r);
          const acc_t up = pick(u_p[c], r), it = kHasI ? pick(i_t[c], r) : acc_t(0);
          const auto res =
              step_bwd<R, kDetach>(p.surrogate, cn, ksc, g, pick(u_t[c], r), up, it, carry);
          cu[sn] = carry.gU;
          ci[sn] = carry.gI;
          if constexpr (kCarryS) cs[sn] = carry.gS;
          if constexpr (kParams) {
            lif_param_grads<R>(cn, norm, res, up, pick(i_p[c], r), it, ga[sn], gb[sn], gt[sn]);
          }
          gx[b * p.gx_sb + t * p.gx_st + n[c]] = from_acc<io_t>(res.gx);
          if (gi_acc != nullptr) gi_acc[(b * T + t) * N + n[c]] = res.gx;
          g_out[n[c] * pl.rows + r] = res.gx;
        }
      }
    }
    __syncthreads();
    cur ^= 1;
  }

  // S_{-1} = Theta(U_{-1} - thr) fed step 0's reset and its recurrent input R_0 = S_{-1} @ V:
  // its gradient gets rec_{-1} = gI_0 @ Vᵀ on top of the reset carry.
  const bool use_rec0 = !rp.detach_recurrent && T > 0;
  const acc_t* g_in = cur == 0 ? g0 : g1;  // gI_0
  acc_t* gi0 = static_cast<acc_t*>(p.gi0);
  acc_t* gu0 = static_cast<acc_t*>(p.gu0);
  for (int pass = 0; pass < npass; ++pass) {
    int64_t n[kRlifCols];
#pragma unroll
    for (int c = 0; c < kRlifCols; ++c) n[c] = neuron_of(pl, pass * kRlifCols + c, tid);
    acc_t rec[kRlifCols][kRlifMaxRows] = {};
    if (use_rec0) product(g_in, n, rec);
#pragma unroll
    for (int c = 0; c < kRlifCols; ++c) {
      if (n[c] >= N) continue;
      const LifConsts<acc_t> cn =
          consts_at<acc_t>(p.alpha, p.beta, p.thr, n[c], p.normalize_input);
#pragma unroll 1
      for (int r = 0; r < nrows; ++r) {
        const int64_t sn = r * N + n[c], bn = (b0 + r) * N + n[c];
        LifGradCarry<acc_t> carry{cu[sn], ci[sn], kCarryS ? cs[sn] : acc_t(0)};
        if (use_rec0) carry.gS = carry.gS + pick(rec[c], r);
        acc_t gthr = kParams ? gt[sn] : acc_t(0), gi, gu;
        initial_grads(p.surrogate, cn, ksc, u0[bn], carry, gi, gu, gthr);
        gi0[bn] = gi;
        gu0[bn] = gu;
        if constexpr (kParams) {
          static_cast<acc_t*>(p.galpha)[bn] = ga[sn];
          static_cast<acc_t*>(p.gbeta)[bn] = gb[sn];
          static_cast<acc_t*>(p.gthr)[bn] = gthr;
        }
      }
    }
  }
}

}  // namespace
}  // namespace fastsnn
