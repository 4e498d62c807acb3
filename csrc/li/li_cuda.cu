// Fused leaky-integrator scans on CUDA; same decomposition as lif_cuda.cu: one launch per
// direction over the whole time axis, a lane of V neurons of one batch row per thread, state in
// registers, kDepth steps of loads in flight. Per-step math: li_math.h (shared with li_cpu_kernels.h).
// The I/O, lane and launch helpers are shared with lif_cuda.cu: common/cuda_io.cuh.
#include "../common/cuda_io.cuh"
#include "li_math.h"

namespace fastsnn {
namespace {

constexpr int kFwdDepth = 8;  // forward: time steps of x loaded ahead of use
constexpr int kBwdDepth = 4;  // backward: time steps of (grad_u, U_{t-1}, I_{t-1}) ahead

// ---- Forward -------------------------------------------------------------------------------

// One lane of the forward scan: x, u [B, T, N] at (batch, time) strides; i_saved, u_saved
// [B, T, N] contiguous; i0, u0, iT, uT [B, N]; alpha, beta [N].
template <typename io_t, typename acc_t, int V, bool kSave>
__host__ __device__ __forceinline__ void li_fwd_lane(const LiFwdParams& p, int64_t g) {
  const Lane l = lane_of<V>(g, p.N);
  const int64_t T = p.T, bn = l.b * p.N + l.n0;
  const io_t* __restrict__ x = static_cast<const io_t*>(p.x) + l.b * p.x_sb + l.n0;  // [T, V]
  io_t* __restrict__ out = static_cast<io_t*>(p.u) + l.b * p.u_sb + l.n0;
  acc_t* __restrict__ is = kSave ? static_cast<acc_t*>(p.i_saved) + l.b * T * p.N + l.n0
                                 : nullptr;  // [T, V] at stride N
  acc_t* __restrict__ us = kSave ? static_cast<acc_t*>(p.u_saved) + l.b * T * p.N + l.n0
                                 : nullptr;

  LiConsts<acc_t> c[V];
  acc_t I[V], U[V];
  {
    const auto a = load_pack<acc_t, V>(static_cast<const acc_t*>(p.alpha) + l.n0);
    const auto be = load_pack<acc_t, V>(static_cast<const acc_t*>(p.beta) + l.n0);
    const auto i_in = load_pack<acc_t, V>(static_cast<const acc_t*>(p.i0) + bn);
    const auto u_in = load_pack<acc_t, V>(static_cast<const acc_t*>(p.u0) + bn);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      c[j] = {a.v[j], be.v[j], p.normalize_input ? acc_t(1) - be.v[j] : acc_t(1)};
      I[j] = i_in.v[j];
      U[j] = u_in.v[j];
    }
  }

  // Ring slot k holds step t0 + k, refilled with t + kFwdDepth when step t is taken out.
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
      Pack<io_t, V> ov;
      Pack<acc_t, V> iv, uv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        li_step_fwd(c[j], to_acc(xv.v[j]), I[j], U[j]);
        ov.v[j] = from_acc<io_t>(U[j]);
        iv.v[j] = I[j];
        uv.v[j] = U[j];
      }
      store_pack(out + t * p.u_st, ov);
      if constexpr (kSave) {
        store_pack(is + t * p.N, iv);
        store_pack(us + t * p.N, uv);
      }
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

// What step t of the reverse scan reads: dL/dU_t, and with parameter gradients U_{t-1} and
// I_{t-1} (the initial state at t = 0); I_t is carried from step t + 1.
template <typename io_t, typename acc_t, int V>
struct LiBwdStep {
  Pack<io_t, V> gu;
  Pack<acc_t, V> u_prev, i_prev;
};

template <typename io_t, typename acc_t, int V, bool kParams>
__host__ __device__ __forceinline__ void li_bwd_lane(const LiBwdParams& p, int64_t g) {
  const Lane l = lane_of<V>(g, p.N);
  const int64_t T = p.T, N = p.N, bn = l.b * N + l.n0;
  const io_t* __restrict__ gu = static_cast<const io_t*>(p.gu) + l.b * p.gu_sb + l.n0;  // [T, V]
  io_t* __restrict__ gx = static_cast<io_t*>(p.gx) + l.b * p.gx_sb + l.n0;
  const acc_t* __restrict__ us =
      kParams ? static_cast<const acc_t*>(p.u_saved) + l.b * T * N + l.n0 : nullptr;
  const acc_t* __restrict__ is =
      kParams ? static_cast<const acc_t*>(p.i_saved) + l.b * T * N + l.n0 : nullptr;
  const acc_t* __restrict__ u0 = static_cast<const acc_t*>(p.u0) + bn;
  const acc_t* __restrict__ i0 = static_cast<const acc_t*>(p.i0) + bn;
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);

  LiConsts<acc_t> c[V];
  acc_t cU[V], cI[V], GA[V], GB[V], i_t[V];
  {
    const auto a = load_pack<acc_t, V>(static_cast<const acc_t*>(p.alpha) + l.n0);
    const auto be = load_pack<acc_t, V>(static_cast<const acc_t*>(p.beta) + l.n0);
    const auto gu_T = load_pack<acc_t, V>(static_cast<const acc_t*>(p.guT) + bn);
    const auto gi_T = load_pack<acc_t, V>(static_cast<const acc_t*>(p.giT) + bn);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      c[j] = {a.v[j], be.v[j], p.normalize_input ? acc_t(1) - be.v[j] : acc_t(1)};
      cU[j] = gu_T.v[j];
      cI[j] = gi_T.v[j];
      GA[j] = GB[j] = i_t[j] = acc_t(0);
    }
  }
  if constexpr (kParams) {
    if (T > 0) {
      const auto il = load_pack<acc_t, V>(is + (T - 1) * N);
#pragma unroll
      for (int j = 0; j < V; ++j) i_t[j] = il.v[j];
    }
  }

  auto load_step = [&](int64_t t) {
    LiBwdStep<io_t, acc_t, V> st;
    st.gu = load_pack<io_t, V>(gu + t * p.gu_st);
    if constexpr (kParams) {
      st.u_prev = load_pack<acc_t, V>(t > 0 ? us + (t - 1) * N : u0);
      st.i_prev = load_pack<acc_t, V>(t > 0 ? is + (t - 1) * N : i0);
    }
    return st;
  };

  // Ring slot k holds reverse step r0 + k, i.e. time T - 1 - (r0 + k).
  LiBwdStep<io_t, acc_t, V> ring[kBwdDepth];
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
      const LiBwdStep<io_t, acc_t, V> st = ring[k];
      if (r + kBwdDepth < T) ring[k] = load_step(t - kBwdDepth);
      Pack<io_t, V> gxv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        acc_t gu_t;
        const acc_t gxj = li_step_bwd(c[j], to_acc(st.gu.v[j]), cU[j], cI[j], gu_t);
        gxv.v[j] = from_acc<io_t>(gxj);
        if constexpr (kParams) {
          li_param_grads(norm, gxj, gu_t, st.u_prev.v[j], st.i_prev.v[j], i_t[j], GA[j], GB[j]);
          i_t[j] = st.i_prev.v[j];
        }
      }
      store_pack(gx + t * p.gx_st, gxv);
    }
  }

  Pack<acc_t, V> gi0, gu0, ga, gb;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    gi0.v[j] = cI[j];
    gu0.v[j] = cU[j];
    ga.v[j] = GA[j];
    gb.v[j] = GB[j];
  }
  store_pack(static_cast<acc_t*>(p.gi0) + bn, gi0);
  store_pack(static_cast<acc_t*>(p.gu0) + bn, gu0);
  if constexpr (kParams) {
    store_pack(static_cast<acc_t*>(p.galpha) + bn, ga);
    store_pack(static_cast<acc_t*>(p.gbeta) + bn, gb);
  }
}

template <typename io_t, typename acc_t, int V, bool kSave>
__global__ void __launch_bounds__(kThreads) li_fwd_kernel(const LiFwdParams p, int64_t lanes) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g < lanes) li_fwd_lane<io_t, acc_t, V, kSave>(p, g);
}

template <typename io_t, typename acc_t, int V, bool kParams>
__global__ void __launch_bounds__(kThreads) li_bwd_kernel(const LiBwdParams p, int64_t lanes) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g < lanes) li_bwd_lane<io_t, acc_t, V, kParams>(p, g);
}
}  // namespace

void li_fwd_cuda(const LiFwdParams& p, IoType io, void* stream) {
  constexpr const char* op = "fastsnn::li_fwd (CUDA)";
  if (p.B * p.N == 0) return;
  switch_io(io, [&](auto io_tag, auto acc_tag) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    const void* io_ptrs[] = {p.x, p.u};
    const int64_t io_strides[] = {p.x_sb, p.x_st, p.u_sb, p.u_st};
    const void* acc_ptrs[] = {p.alpha, p.beta, p.i0, p.u0, p.iT, p.uT, p.i_saved, p.u_saved};
    const int V = lane_width<io_t, acc_t>(p.B, p.N, io_ptrs, io_strides, 2, acc_ptrs, 8, op);
    dispatch_bool(p.i_saved != nullptr, [&](auto sv) {
      constexpr bool SV = decltype(sv)::value;
      constexpr int VV = 16 / sizeof(acc_t);
      if (V == VV) {
        launch(li_fwd_kernel<io_t, acc_t, VV, SV>, p, p.B * (p.N / VV), stream, op);
      } else {
        launch(li_fwd_kernel<io_t, acc_t, 1, SV>, p, p.B * p.N, stream, op);
      }
    });
  });
}

void li_bwd_cuda(const LiBwdParams& p, IoType io, void* stream) {
  constexpr const char* op = "fastsnn::li_bwd (CUDA)";
  if (p.B * p.N == 0) return;
  switch_io(io, [&](auto io_tag, auto acc_tag) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    const void* io_ptrs[] = {p.gu, p.gx};
    const int64_t io_strides[] = {p.gu_sb, p.gu_st, p.gx_sb, p.gx_st};
    const void* acc_ptrs[] = {p.giT, p.guT, p.i_saved, p.u_saved, p.i0, p.u0, p.alpha, p.beta,
                              p.gi0, p.gu0, p.galpha, p.gbeta};
    const int V = lane_width<io_t, acc_t>(p.B, p.N, io_ptrs, io_strides, 2, acc_ptrs, 12, op);
    dispatch_bool(p.galpha != nullptr, [&](auto kp) {
      constexpr bool KP = decltype(kp)::value;
      constexpr int VV = 16 / sizeof(acc_t);
      if (V == VV) {
        launch(li_bwd_kernel<io_t, acc_t, VV, KP>, p, p.B * (p.N / VV), stream, op);
      } else {
        launch(li_bwd_kernel<io_t, acc_t, 1, KP>, p, p.B * p.N, stream, op);
      }
    });
  });
}

}  // namespace fastsnn
