// The CUDA scan skeleton of the LIF family, written once for LIF (lif_cuda.cu) and the leaky
// integrator (li_cuda.cu, Neuron::Li: no threshold or reset, output U_t, math of li_math.h).
// One launch walks the whole time axis forward, one walks it backward. Each thread owns V
// neighbouring neurons of one batch row (a "lane"), keeps their state in registers and streams
// over time with kDepth steps of loads in flight. V = 16 bytes of accumulator per lane (4
// floats, 2 doubles) when pointers, strides and N allow it, else 1. Per-step math is shared
// unchanged with the CPU skeleton (lif_cpu_kernels.h). No torch headers: the launchers take the
// plain Params blocks of common/params.h. I/O packs, lane width, launch: common/cuda_io.cuh.
#pragma once

#include <type_traits>

#include "../common/cuda_io.cuh"
#include "../li/li_math.h"
#include "lif_math.h"

namespace fastsnn {
namespace {

constexpr int kFwdDepth = 8;  // forward: time steps of x loaded ahead of use
constexpr int kBwdDepth = 4;  // backward: time steps of (grad, U_{t-1}, I_{t-1}) ahead

// alpha, beta, thr [N] of neurons n0 .. n0 + V - 1; gamma = 1 - beta when normalize_input.
// Li has no threshold (thr is nullptr): thr stays 0 and is never used.
template <Neuron K, typename acc_t, int V>
__host__ __device__ __forceinline__ void load_consts(const void* alpha, const void* beta,
                                                     const void* thr, int64_t n0,
                                                     bool normalize_input,
                                                     LifConsts<acc_t> (&c)[V]) {
  const auto a = load_pack<acc_t, V>(static_cast<const acc_t*>(alpha) + n0);
  const auto be = load_pack<acc_t, V>(static_cast<const acc_t*>(beta) + n0);
  Pack<acc_t, V> th{};
  if constexpr (K == Neuron::Lif) th = load_pack<acc_t, V>(static_cast<const acc_t*>(thr) + n0);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    c[j] = {a.v[j], be.v[j], normalize_input ? acc_t(1) - be.v[j] : acc_t(1), th.v[j]};
  }
}

// ---- Forward -------------------------------------------------------------------------------

// One lane of the forward scan: x, s [B, T, N] at (batch, time) strides (s holds U_t for Li);
// u_saved, i_saved [B, T, N] contiguous; i0, u0, iT, uT [B, N]; alpha, beta, thr [N].
template <Neuron K, typename io_t, typename acc_t, int V, Reset R, bool kSaveU, bool kSaveI>
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
  load_consts<K, acc_t, V>(p.alpha, p.beta, p.thr, l.n0, p.normalize_input, c);
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
        if constexpr (K == Neuron::Li) {
          li_step_fwd(LiConsts<acc_t>{c[j].alpha, c[j].beta, c[j].gamma}, to_acc(xv.v[j]), I[j],
                      U[j]);
          sv.v[j] = from_acc<io_t>(U[j]);
        } else {
          lif_step_fwd<R>(c[j], to_acc(xv.v[j]), I[j], U[j]);
          sv.v[j] = from_acc<io_t>(heaviside(U[j], c[j].thr));
        }
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

// What step t of the reverse scan reads: the incoming gradient (dL/dS_t, or dL/dU_t for Li),
// U_{t-1} and I_{t-1} (the initial state at t = 0) where saved. U_t and I_t are carried from
// step t + 1, so every saved value is read once.
template <typename io_t, typename acc_t, int V>
struct BwdStep {
  Pack<io_t, V> gs;
  Pack<acc_t, V> u_prev, i_prev;
};

template <Neuron K, typename io_t, typename acc_t, int V, Reset R, Surrogate SG, bool kDetach,
          bool kParams>
__host__ __device__ __forceinline__ void lif_bwd_lane(const LifBwdParams& p, int64_t g) {
  constexpr bool kLi = K == Neuron::Li;
  // I_t is read when the parameters learn or the undetached zero reset needs H_t (not saved,
  // and read as 0, when only LIF's threshold learns: its partial needs no I_t); U_t always for
  // LIF (surrogate, reset), for Li only for the parameter gradients.
  constexpr bool kHasI = kParams || (R == Reset::Zero && !kDetach);
  const bool has_i = kHasI && p.i_saved != nullptr;
  constexpr bool kHasU = kParams || !kLi;
  const Lane l = lane_of<V>(g, p.N);
  const int64_t T = p.T, N = p.N, bn = l.b * N + l.n0;
  const io_t* __restrict__ gs = static_cast<const io_t*>(p.gs) + l.b * p.gs_sb + l.n0;  // [T, V]
  io_t* __restrict__ gx = static_cast<io_t*>(p.gx) + l.b * p.gx_sb + l.n0;
  const acc_t* __restrict__ us =
      kHasU ? static_cast<const acc_t*>(p.u_saved) + l.b * T * N + l.n0 : nullptr;
  const acc_t* __restrict__ is =
      p.i_saved != nullptr ? static_cast<const acc_t*>(p.i_saved) + l.b * T * N + l.n0 : nullptr;
  const acc_t* __restrict__ u0 = static_cast<const acc_t*>(p.u0) + bn;
  const acc_t* __restrict__ i0 = static_cast<const acc_t*>(p.i0) + bn;
  const acc_t ks = static_cast<acc_t>(p.scale);
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);

  LifConsts<acc_t> c[V];
  load_consts<K, acc_t, V>(p.alpha, p.beta, p.thr, l.n0, p.normalize_input, c);
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
    if constexpr (kHasU) {
      const auto ul = load_pack<acc_t, V>(us + (T - 1) * N);
#pragma unroll
      for (int j = 0; j < V; ++j) u_t[j] = ul.v[j];
    }
    if (has_i) {
      const auto il = load_pack<acc_t, V>(is + (T - 1) * N);
#pragma unroll
      for (int j = 0; j < V; ++j) i_t[j] = il.v[j];
    }
  }

  auto load_step = [&](int64_t t) {
    BwdStep<io_t, acc_t, V> st;
    st.gs = load_pack<io_t, V>(gs + t * p.gs_st);
    if constexpr (kHasU) st.u_prev = load_pack<acc_t, V>(t > 0 ? us + (t - 1) * N : u0);
    if constexpr (kHasI) {
      st.i_prev = has_i ? load_pack<acc_t, V>(t > 0 ? is + (t - 1) * N : i0) : Pack<acc_t, V>{};
    }
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
        const acc_t up = kHasU ? st.u_prev.v[j] : acc_t(0);
        const acc_t ip = kHasI ? st.i_prev.v[j] : acc_t(0);
        if constexpr (kLi) {
          acc_t gu_t;
          const acc_t gxj = li_step_bwd(LiConsts<acc_t>{c[j].alpha, c[j].beta, c[j].gamma},
                                        to_acc(st.gs.v[j]), cU[j], cI[j], gu_t);
          gxv.v[j] = from_acc<io_t>(gxj);
          if constexpr (kParams) li_param_grads(norm, gxj, gu_t, up, ip, i_t[j], GA[j], GB[j]);
        } else {
          LifGradCarry<acc_t> carry{cU[j], cI[j], cS[j]};
          const auto res = lif_step_bwd<R, SG, kDetach>(c[j], ks, to_acc(st.gs.v[j]), u_t[j],
                                                        up, i_t[j], carry);
          cU[j] = carry.gU;
          cI[j] = carry.gI;
          cS[j] = carry.gS;
          gxv.v[j] = from_acc<io_t>(res.gx);
          if constexpr (kParams) {
            lif_param_grads<R>(c[j], norm, res, up, ip, i_t[j], GA[j], GB[j], GT[j]);
          }
        }
        u_t[j] = up;
        i_t[j] = ip;
      }
      store_pack(gx + t * p.gx_st, gxv);
    }
  }

  Pack<acc_t, V> gi0, gu0, ga, gb, gt;
  if constexpr (kLi) {
#pragma unroll
    for (int j = 0; j < V; ++j) {
      gi0.v[j] = cI[j];
      gu0.v[j] = cU[j];
    }
  } else {
    // The initial state's spike S_{-1} fed step 0's reset (lif_initial_state_grads).
    const auto u0v = load_pack<acc_t, V>(u0);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const LifGradCarry<acc_t> carry{cU[j], cI[j], cS[j]};
      lif_initial_state_grads<SG>(c[j], ks, u0v.v[j], carry, gi0.v[j], gu0.v[j], GT[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) {
    ga.v[j] = GA[j];
    gb.v[j] = GB[j];
    gt.v[j] = GT[j];
  }
  store_pack(static_cast<acc_t*>(p.gi0) + bn, gi0);
  store_pack(static_cast<acc_t*>(p.gu0) + bn, gu0);
  if constexpr (kParams) {
    store_pack(static_cast<acc_t*>(p.galpha) + bn, ga);
    store_pack(static_cast<acc_t*>(p.gbeta) + bn, gb);
    if constexpr (!kLi) store_pack(static_cast<acc_t*>(p.gthr) + bn, gt);
  }
}

template <Neuron K, typename io_t, typename acc_t, int V, Reset R, bool kSaveU, bool kSaveI>
__global__ void __launch_bounds__(kThreads) lif_fwd_kernel(const LifFwdParams p, int64_t lanes) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g < lanes) lif_fwd_lane<K, io_t, acc_t, V, R, kSaveU, kSaveI>(p, g);
}

template <Neuron K, typename io_t, typename acc_t, int V, Reset R, Surrogate SG, bool kDetach,
          bool kParams>
__global__ void __launch_bounds__(kThreads) lif_bwd_kernel(const LifBwdParams p, int64_t lanes) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g < lanes) lif_bwd_lane<K, io_t, acc_t, V, R, SG, kDetach, kParams>(p, g);
}

// ---- Host side: runtime flags to template parameters, lane width, launch --------------------

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

// The value of a std::integral_constant argument of a generic lambda.
#define FASTSNN_CV(tag) decltype(tag)::value

// Li runs with reset None and saves I_t and U_t together (both only when alpha/beta learn).
template <Neuron K>
void scan_fwd_cuda(const LifFwdParams& p, IoType io, void* stream, const char* op) {
  if (p.B * p.N == 0) return;
  const void* io_ptrs[] = {p.x, p.s};
  const int64_t io_strides[] = {p.x_sb, p.x_st, p.s_sb, p.s_st};
  const void* acc_ptrs[] = {p.alpha, p.beta, p.thr, p.i0, p.u0, p.iT, p.uT, p.u_saved, p.i_saved};
  auto with = [&](auto io_tag, auto acc_tag, auto w) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    auto go = [&](auto r, auto su, auto si) {
      launch_lanes<FASTSNN_CV(w)>(lif_fwd_kernel<K, io_t, acc_t, FASTSNN_CV(w), FASTSNN_CV(r),
                                                 FASTSNN_CV(su), FASTSNN_CV(si)>,
                                  p, stream, op);
    };
    if constexpr (K == Neuron::Li) {
      dispatch_bool(p.i_saved != nullptr, [&](auto sv) {
        go(std::integral_constant<Reset, Reset::None>{}, sv, sv);
      });
    } else {
      dispatch_reset(p.reset, [&](auto r) {
        dispatch_bool(p.u_saved != nullptr, [&](auto su) {
          dispatch_bool(p.i_saved != nullptr, [&](auto si) { go(r, su, si); });
        });
      });
    }
  };
  switch_io_lanes(io, p.B, p.N, io_ptrs, io_strides, acc_ptrs, op, with);
}

// Li runs with reset None, detached; its surrogate is never read.
template <Neuron K>
void scan_bwd_cuda(const LifBwdParams& p, IoType io, void* stream, const char* op) {
  if (p.B * p.N == 0) return;
  const void* io_ptrs[] = {p.gs, p.gx};
  const int64_t io_strides[] = {p.gs_sb, p.gs_st, p.gx_sb, p.gx_st};
  const void* acc_ptrs[] = {p.giT, p.guT, p.u_saved, p.i_saved, p.i0,     p.u0,    p.alpha,
                            p.beta, p.thr, p.gi0,     p.gu0,     p.galpha, p.gbeta, p.gthr};
  auto with = [&](auto io_tag, auto acc_tag, auto w) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    auto go = [&](auto r, auto sg, auto kd, auto kp) {
      launch_lanes<FASTSNN_CV(w)>(lif_bwd_kernel<K, io_t, acc_t, FASTSNN_CV(w), FASTSNN_CV(r),
                                                 FASTSNN_CV(sg), FASTSNN_CV(kd), FASTSNN_CV(kp)>,
                                  p, stream, op);
    };
    if constexpr (K == Neuron::Li) {
      dispatch_bool(p.galpha != nullptr, [&](auto kp) {
        go(std::integral_constant<Reset, Reset::None>{},
           std::integral_constant<Surrogate, Surrogate::SuperSpike>{}, std::true_type{}, kp);
      });
    } else {
      dispatch_reset(p.reset, [&](auto r) {
        dispatch_surrogate(p.surrogate, [&](auto sg) {
          switch_detach<FASTSNN_CV(r)>(p.detach_reset, [&](auto kd) {
            dispatch_bool(p.galpha != nullptr, [&](auto kp) { go(r, sg, kd, kp); });
          });
        });
      });
    }
  };
  switch_io_lanes(io, p.B, p.N, io_ptrs, io_strides, acc_ptrs, op, with);
}

#undef FASTSNN_CV

}  // namespace
}  // namespace fastsnn

// Defines the launch.h entry points name_fwd_cuda and name_bwd_cuda of one neuron.
#define FASTSNN_SCAN_CUDA_ENTRY_POINTS(name, neuron)                                   \
  namespace fastsnn {                                                                  \
  void name##_fwd_cuda(const LifFwdParams& p, IoType io, void* stream) {               \
    scan_fwd_cuda<neuron>(p, io, stream, "fastsnn::" #name "_fwd (CUDA)");             \
  }                                                                                    \
  void name##_bwd_cuda(const LifBwdParams& p, IoType io, void* stream) {               \
    scan_bwd_cuda<neuron>(p, io, stream, "fastsnn::" #name "_bwd (CUDA)");             \
  }                                                                                    \
  }
