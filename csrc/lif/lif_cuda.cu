// Fused LIF scans on CUDA: one launch walks the whole time axis forward, one walks it backward.
// Each thread owns V neighbouring neurons of one batch row (a "lane"), keeps their state in
// registers and streams over time with kDepth steps of loads in flight. V = 16 bytes of
// accumulator per lane (4 floats, 2 doubles) when pointers, strides and N allow it, else 1.
// Per-step math: lif_math.h, shared unchanged with the CPU kernels (lif_cpu_kernels.h).
// No torch headers here: the launchers take the plain Params blocks of common/params.h.
// I/O packs, lanes, lane width and launch checks: common/cuda_io.cuh, shared with li_cuda.cu.
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../common/cuda_io.cuh"
#include "lif_math.h"

namespace fastsnn {
namespace {

constexpr int kFwdDepth = 8;  // forward: time steps of x loaded ahead of use
constexpr int kBwdDepth = 4;  // backward: time steps of (grad_s, U_{t-1}, I_{t-1}) ahead

// alpha, beta, thr [N] of neurons n0 .. n0 + V - 1; gamma = 1 - beta when normalize_input.
template <typename acc_t, int V>
__host__ __device__ __forceinline__ void load_consts(const void* alpha, const void* beta,
                                                     const void* thr, int64_t n0,
                                                     bool normalize_input,
                                                     LifConsts<acc_t> (&c)[V]) {
  const auto a = load_pack<acc_t, V>(static_cast<const acc_t*>(alpha) + n0);
  const auto be = load_pack<acc_t, V>(static_cast<const acc_t*>(beta) + n0);
  const auto th = load_pack<acc_t, V>(static_cast<const acc_t*>(thr) + n0);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    c[j] = {a.v[j], be.v[j], normalize_input ? acc_t(1) - be.v[j] : acc_t(1), th.v[j]};
  }
}

// ---- Forward -------------------------------------------------------------------------------

// One lane of the forward scan: x, s [B, T, N] at (batch, time) strides; u_saved, i_saved
// [B, T, N] contiguous; i0, u0, iT, uT [B, N]; alpha, beta, thr [N].
template <typename io_t, typename acc_t, int V, Reset R, bool kSaveU, bool kSaveI>
__host__ __device__ __forceinline__ void lif_fwd_lane(const LifFwdParams& p, int64_t g) {
  const Lane l = lane_of<V>(g, p.N);
  const int64_t T = p.T, bn = l.b * p.N + l.n0;
  const io_t* __restrict__ x = static_cast<const io_t*>(p.x) + l.b * p.x_sb + l.n0;  // [T, V]
  io_t* __restrict__ s = static_cast<io_t*>(p.s) + l.b * p.s_sb + l.n0;
  acc_t* __restrict__ us = kSaveU ? static_cast<acc_t*>(p.u_saved) + l.b * T * p.N + l.n0
                                  : nullptr;  // [T, V] at stride N
  acc_t* __restrict__ is = kSaveI ? static_cast<acc_t*>(p.i_saved) + l.b * T * p.N + l.n0
                                  : nullptr;

  LifConsts<acc_t> c[V];
  load_consts<acc_t, V>(p.alpha, p.beta, p.thr, l.n0, p.normalize_input, c);
  const auto i_in = load_pack<acc_t, V>(static_cast<const acc_t*>(p.i0) + bn);
  const auto u_in = load_pack<acc_t, V>(static_cast<const acc_t*>(p.u0) + bn);
  acc_t I[V], U[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    I[j] = i_in.v[j];
    U[j] = u_in.v[j];
  }

  // Ring of kFwdDepth prefetched steps: slot k holds step t0 + k; refilled with t + kFwdDepth
  // as soon as step t is taken out, so kFwdDepth loads stay in flight.
  Pack<io_t, V> ring[kFwdDepth];
#pragma unroll
  for (int k = 0; k < kFwdDepth; ++k) {
    if (k < T) ring[k] = load_pack<io_t, V>(x + k * p.x_st);
  }
  for (int64_t t0 = 0; t0 < T; t0 += kFwdDepth) {
#pragma unroll
    for (int k = 0; k < kFwdDepth; ++k) {
      const int64_t t = t0 + k;
      if (t >= T) break;
      const Pack<io_t, V> xv = ring[k];
      if (t + kFwdDepth < T) ring[k] = load_pack<io_t, V>(x + (t + kFwdDepth) * p.x_st);
      Pack<io_t, V> sv;
      Pack<acc_t, V> uv, iv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        lif_step_fwd<R>(c[j], to_acc(xv.v[j]), I[j], U[j]);
        sv.v[j] = from_acc<io_t>(heaviside(U[j], c[j].thr));
        uv.v[j] = U[j];
        iv.v[j] = I[j];
      }
      store_pack(s + t * p.s_st, sv);
      if constexpr (kSaveU) store_pack(us + t * p.N, uv);
      if constexpr (kSaveI) store_pack(is + t * p.N, iv);
    }
  }

  Pack<acc_t, V> i_last, u_last;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    i_last.v[j] = I[j];
    u_last.v[j] = U[j];
  }
  store_pack(static_cast<acc_t*>(p.iT) + bn, i_last);
  store_pack(static_cast<acc_t*>(p.uT) + bn, u_last);
}

// ---- Backward ------------------------------------------------------------------------------

// What step t of the reverse scan reads: dL/dS_t, U_{t-1} and I_{t-1} (the initial state at
// t = 0). U_t and I_t are carried from step t + 1, so every saved value is read once.
template <typename io_t, typename acc_t, int V>
struct BwdStep {
  Pack<io_t, V> gs;
  Pack<acc_t, V> u_prev, i_prev;
};

template <typename io_t, typename acc_t, int V, Reset R, Surrogate SG, bool kDetach,
          bool kParams>
__host__ __device__ __forceinline__ void lif_bwd_lane(const LifBwdParams& p, int64_t g) {
  // I_t is read when the parameters learn or the undetached zero reset needs H_t.
  constexpr bool kHasI = kParams || (R == Reset::Zero && !kDetach);
  const Lane l = lane_of<V>(g, p.N);
  const int64_t T = p.T, N = p.N, bn = l.b * N + l.n0;
  const io_t* __restrict__ gs = static_cast<const io_t*>(p.gs) + l.b * p.gs_sb + l.n0;  // [T, V]
  io_t* __restrict__ gx = static_cast<io_t*>(p.gx) + l.b * p.gx_sb + l.n0;
  const acc_t* __restrict__ us = static_cast<const acc_t*>(p.u_saved) + l.b * T * N + l.n0;
  const acc_t* __restrict__ is =
      kHasI ? static_cast<const acc_t*>(p.i_saved) + l.b * T * N + l.n0 : nullptr;
  const acc_t* __restrict__ u0 = static_cast<const acc_t*>(p.u0) + bn;
  const acc_t* __restrict__ i0 = static_cast<const acc_t*>(p.i0) + bn;
  const acc_t ks = static_cast<acc_t>(p.scale);
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);

  LifConsts<acc_t> c[V];
  load_consts<acc_t, V>(p.alpha, p.beta, p.thr, l.n0, p.normalize_input, c);
  acc_t cU[V], cI[V], cS[V], GA[V], GB[V], GT[V], u_t[V], i_t[V];
  {
    const auto gu_T = load_pack<acc_t, V>(static_cast<const acc_t*>(p.guT) + bn);
    const auto gi_T = load_pack<acc_t, V>(static_cast<const acc_t*>(p.giT) + bn);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      cU[j] = gu_T.v[j];
      cI[j] = gi_T.v[j];
      cS[j] = GA[j] = GB[j] = GT[j] = u_t[j] = i_t[j] = acc_t(0);
    }
  }
  if (T > 0) {
    const auto ul = load_pack<acc_t, V>(us + (T - 1) * N);
#pragma unroll
    for (int j = 0; j < V; ++j) u_t[j] = ul.v[j];
    if constexpr (kHasI) {
      const auto il = load_pack<acc_t, V>(is + (T - 1) * N);
#pragma unroll
      for (int j = 0; j < V; ++j) i_t[j] = il.v[j];
    }
  }

  auto load_step = [&](int64_t t) {
    BwdStep<io_t, acc_t, V> st;
    st.gs = load_pack<io_t, V>(gs + t * p.gs_st);
    st.u_prev = load_pack<acc_t, V>(t > 0 ? us + (t - 1) * N : u0);
    if constexpr (kHasI) st.i_prev = load_pack<acc_t, V>(t > 0 ? is + (t - 1) * N : i0);
    return st;
  };

  // Ring slot k holds reverse step r0 + k, i.e. time T - 1 - (r0 + k).
  BwdStep<io_t, acc_t, V> ring[kBwdDepth];
#pragma unroll
  for (int k = 0; k < kBwdDepth; ++k) {
    if (k < T) ring[k] = load_step(T - 1 - k);
  }
  for (int64_t r0 = 0; r0 < T; r0 += kBwdDepth) {
#pragma unroll
    for (int k = 0; k < kBwdDepth; ++k) {
      const int64_t r = r0 + k;
      if (r >= T) break;
      const int64_t t = T - 1 - r;
      const BwdStep<io_t, acc_t, V> st = ring[k];
      if (r + kBwdDepth < T) ring[k] = load_step(t - kBwdDepth);
      Pack<io_t, V> gxv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        LifGradCarry<acc_t> carry{cU[j], cI[j], cS[j]};
        const acc_t up = st.u_prev.v[j];
        const acc_t ip = kHasI ? st.i_prev.v[j] : acc_t(0);
        const auto res = lif_step_bwd<R, SG, kDetach>(c[j], ks, to_acc(st.gs.v[j]), u_t[j], up,
                                                      i_t[j], carry);
        cU[j] = carry.gU;
        cI[j] = carry.gI;
        cS[j] = carry.gS;
        gxv.v[j] = from_acc<io_t>(res.gx);
        if constexpr (kParams) {
          lif_param_grads<R>(c[j], norm, res, up, ip, i_t[j], GA[j], GB[j], GT[j]);
        }
        u_t[j] = up;
        i_t[j] = ip;
      }
      store_pack(gx + t * p.gx_st, gxv);
    }
  }

  // u_t now holds U_{-1} = u0 (or u0 was never read: T = 0).
  const auto u0v = load_pack<acc_t, V>(u0);
  Pack<acc_t, V> gi0, gu0, ga, gb, gt;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const LifGradCarry<acc_t> carry{cU[j], cI[j], cS[j]};
    lif_initial_state_grads<SG>(c[j], ks, u0v.v[j], carry, gi0.v[j], gu0.v[j], GT[j]);
    ga.v[j] = GA[j];
    gb.v[j] = GB[j];
    gt.v[j] = GT[j];
  }
  store_pack(static_cast<acc_t*>(p.gi0) + bn, gi0);
  store_pack(static_cast<acc_t*>(p.gu0) + bn, gu0);
  if constexpr (kParams) {
    store_pack(static_cast<acc_t*>(p.galpha) + bn, ga);
    store_pack(static_cast<acc_t*>(p.gbeta) + bn, gb);
    store_pack(static_cast<acc_t*>(p.gthr) + bn, gt);
  }
}

template <typename io_t, typename acc_t, int V, Reset R, bool kSaveU, bool kSaveI>
__global__ void __launch_bounds__(kThreads) lif_fwd_kernel(const LifFwdParams p, int64_t lanes) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g < lanes) lif_fwd_lane<io_t, acc_t, V, R, kSaveU, kSaveI>(p, g);
}

template <typename io_t, typename acc_t, int V, Reset R, Surrogate SG, bool kDetach,
          bool kParams>
__global__ void __launch_bounds__(kThreads) lif_bwd_kernel(const LifBwdParams p, int64_t lanes) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g < lanes) lif_bwd_lane<io_t, acc_t, V, R, SG, kDetach, kParams>(p, g);
}

// ---- Host side: runtime flags to template parameters (the I/O and bool switches, lane width
// and launch are in common/cuda_io.cuh) -------------------------------------------------------

// The detach flag only matters for resets that read the previous spike: Reset::None gets the
// detached variant only, as in the CPU dispatch.
template <Reset R, typename F>
void switch_detach(bool detach, F&& f) {
  if constexpr (R == Reset::None) {
    (void)detach;
    return f(std::true_type{});
  } else {
    return dispatch_bool(detach, f);
  }
}

}  // namespace

void lif_fwd_cuda(const LifFwdParams& p, IoType io, void* stream) {
  constexpr const char* op = "fastsnn::lif_fwd (CUDA)";
  if (p.B * p.N == 0) return;
  switch_io(io, [&](auto io_tag, auto acc_tag) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    const void* io_ptrs[] = {p.x, p.s};
    const int64_t io_strides[] = {p.x_sb, p.x_st, p.s_sb, p.s_st};
    const void* acc_ptrs[] = {p.alpha, p.beta, p.thr, p.i0, p.u0, p.iT, p.uT, p.u_saved,
                              p.i_saved};
    const int V = lane_width<io_t, acc_t>(p.B, p.N, io_ptrs, io_strides, 2, acc_ptrs, 9, op);
    dispatch_reset(p.reset, [&](auto r) {
      dispatch_bool(p.u_saved != nullptr, [&](auto su) {
        dispatch_bool(p.i_saved != nullptr, [&](auto si) {
          constexpr Reset R = decltype(r)::value;
          constexpr bool SU = decltype(su)::value, SI = decltype(si)::value;
          constexpr int VV = 16 / sizeof(acc_t);
          if (V == VV) {
            launch(lif_fwd_kernel<io_t, acc_t, VV, R, SU, SI>, p, p.B * (p.N / VV), stream, op);
          } else {
            launch(lif_fwd_kernel<io_t, acc_t, 1, R, SU, SI>, p, p.B * p.N, stream, op);
          }
        });
      });
    });
  });
}

void lif_bwd_cuda(const LifBwdParams& p, IoType io, void* stream) {
  constexpr const char* op = "fastsnn::lif_bwd (CUDA)";
  if (p.B * p.N == 0) return;
  switch_io(io, [&](auto io_tag, auto acc_tag) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    const void* io_ptrs[] = {p.gs, p.gx};
    const int64_t io_strides[] = {p.gs_sb, p.gs_st, p.gx_sb, p.gx_st};
    const void* acc_ptrs[] = {p.giT, p.guT, p.u_saved, p.i_saved, p.i0, p.u0, p.alpha, p.beta,
                              p.thr, p.gi0, p.gu0, p.galpha, p.gbeta, p.gthr};
    const int V = lane_width<io_t, acc_t>(p.B, p.N, io_ptrs, io_strides, 2, acc_ptrs, 14, op);
    dispatch_reset(p.reset, [&](auto r) {
      dispatch_surrogate(p.surrogate, [&](auto sg) {
        constexpr Reset R = decltype(r)::value;
        switch_detach<R>(p.detach_reset, [&](auto kd) {
          dispatch_bool(p.galpha != nullptr, [&](auto kp) {
            constexpr Surrogate SG = decltype(sg)::value;
            constexpr bool KD = decltype(kd)::value, KP = decltype(kp)::value;
            constexpr int VV = 16 / sizeof(acc_t);
            if (V == VV) {
              launch(lif_bwd_kernel<io_t, acc_t, VV, R, SG, KD, KP>, p, p.B * (p.N / VV),
                     stream, op);
            } else {
              launch(lif_bwd_kernel<io_t, acc_t, 1, R, SG, KD, KP>, p, p.B * p.N, stream, op);
            }
          });
        });
      });
    });
  });
}

}  // namespace fastsnn
