// The CPU scan skeleton of the LIF family, compiled once per instruction set (csrc/cpu_isa/*.cpp
// define FASTSNN_CPU_ISA and include this after their own includes and target pragma). A work
// item walks time over the neurons [n0, n0 + block) of one batch row; cpu_launch.cpp spreads the
// work items over threads and picks the instruction set at run time. The Neuron parameter picks
// LIF (lif_math.h) or the leaky integrator (li_math.h: no threshold or reset, output U_t).
#pragma once

namespace fastsnn {
namespace FASTSNN_CPU_ISA {


template <Neuron K, typename io_t, typename acc_t, Reset R, bool kSaveU, bool kSaveI>
void lif_fwd_kernel(const LifFwdParams& p, int64_t block, int64_t begin, int64_t end) {
  constexpr bool kLi = K == Neuron::Li;
  const int64_t nblk = (p.N + block - 1) / block;
  const io_t* x = static_cast<const io_t*>(p.x);
  io_t* s = static_cast<io_t*>(p.s);
  const acc_t* alpha = static_cast<const acc_t*>(p.alpha);
  const acc_t* beta = static_cast<const acc_t*>(p.beta);
  const acc_t* thr = static_cast<const acc_t*>(p.thr);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  acc_t* iT = static_cast<acc_t*>(p.iT);
  acc_t* uT = static_cast<acc_t*>(p.uT);
  acc_t* u_saved = static_cast<acc_t*>(p.u_saved);
  acc_t* i_saved = static_cast<acc_t*>(p.i_saved);

  {
    alignas(64) acc_t I[kMaxBlock], U[kMaxBlock], A[kMaxBlock], Be[kMaxBlock], G[kMaxBlock],
        Th[kLi ? 1 : kMaxBlock];
    alignas(64) io_t Sb[kMaxBlock];  // the step's output, streamed out after the neuron loop
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b = w / nblk, n0 = (w % nblk) * block;
      const int64_t nb = std::min(block, p.N - n0);
      for (int64_t j = 0; j < nb; ++j) {
        A[j] = alpha[n0 + j];
        Be[j] = beta[n0 + j];
        G[j] = p.normalize_input ? acc_t(1) - Be[j] : acc_t(1);
        if constexpr (!kLi) Th[j] = thr[n0 + j];
        I[j] = i0[b * p.N + n0 + j];
        U[j] = u0[b * p.N + n0 + j];
      }
      for (int64_t t = 0; t < p.T; ++t) {
        const io_t* __restrict__ xt = x + b * p.x_sb + t * p.x_st + n0;  // [nb]
        const int64_t off = (b * p.T + t) * p.N + n0;
#pragma GCC ivdep  // lanes are independent
        for (int64_t j = 0; j < nb; ++j) {
          acc_t i = I[j], u = U[j];
          if constexpr (kLi) {
            li_step_fwd(LiConsts<acc_t>{A[j], Be[j], G[j]}, static_cast<acc_t>(xt[j]), i, u);
            Sb[j] = static_cast<io_t>(u);
          } else {
            const LifConsts<acc_t> c{A[j], Be[j], G[j], Th[j]};
            lif_step_fwd<R>(c, static_cast<acc_t>(xt[j]), i, u);
            Sb[j] = static_cast<io_t>(heaviside(u, c.thr));
          }
          I[j] = i;
          U[j] = u;
        }
        stream_row(s + b * p.s_sb + t * p.s_st + n0, Sb, nb);
        if constexpr (kSaveU) stream_row(u_saved + off, U, nb);
        if constexpr (kSaveI) stream_row(i_saved + off, I, nb);
      }
      for (int64_t j = 0; j < nb; ++j) {
        iT[b * p.N + n0 + j] = I[j];
        uT[b * p.N + n0 + j] = U[j];
      }
    }
    stream_fence();
  }
}

// gs holds dL/dS_t for LIF, dL/dU_t for Li. kHasI: I_t is read (parameter gradients, or the
// undetached zero reset needs H_t); it was not saved, and reads as 0, when only LIF's threshold
// learns (its partial needs no I_t). kHasU: U_t was saved (LIF always, Li for its parameters).
template <Neuron K, typename io_t, typename acc_t, Reset R, Surrogate SG, bool kDetach,
          bool kParams>
void lif_bwd_kernel(const LifBwdParams& p, int64_t block, int64_t begin, int64_t end) {
  constexpr bool kLi = K == Neuron::Li;
  constexpr bool kHasI = kParams || (R == Reset::Zero && !kDetach);
  constexpr bool kHasU = kParams || !kLi;
  const int64_t nblk = (p.N + block - 1) / block;
  const io_t* gs = static_cast<const io_t*>(p.gs);
  io_t* gx = static_cast<io_t*>(p.gx);
  const acc_t* giT = static_cast<const acc_t*>(p.giT);
  const acc_t* guT = static_cast<const acc_t*>(p.guT);
  const acc_t* u_saved = static_cast<const acc_t*>(p.u_saved);
  const acc_t* i_saved = static_cast<const acc_t*>(p.i_saved);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  const acc_t* alpha = static_cast<const acc_t*>(p.alpha);
  const acc_t* beta = static_cast<const acc_t*>(p.beta);
  const acc_t* thr = static_cast<const acc_t*>(p.thr);
  acc_t* gi0 = static_cast<acc_t*>(p.gi0);
  acc_t* gu0 = static_cast<acc_t*>(p.gu0);
  acc_t* galpha = static_cast<acc_t*>(p.galpha);
  acc_t* gbeta = static_cast<acc_t*>(p.gbeta);
  acc_t* gthr = static_cast<acc_t*>(p.gthr);
  const acc_t k = static_cast<acc_t>(p.scale);
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);

  {
    // Arrays a variant does not use shrink to one element, keeping the working set in L1.
    constexpr int64_t kP = kParams ? kMaxBlock : 1, kS = kDetach ? 1 : kMaxBlock;
    constexpr int64_t kTh = kLi ? 1 : kMaxBlock, kPT = kParams && !kLi ? kMaxBlock : 1;
    alignas(64) acc_t A[kMaxBlock], Be[kMaxBlock], G[kMaxBlock], Th[kTh];
    alignas(64) acc_t cU[kMaxBlock], cI[kMaxBlock], cS[kS];
    alignas(64) acc_t GA[kP], GB[kP], GT[kPT];
    alignas(64) acc_t Zero[kP] = {};  // I_t and I_{t-1} when not saved (threshold alone)
    alignas(64) io_t Gx[kMaxBlock];  // the step's dL/dX, streamed out after the neuron loop
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b = w / nblk, n0 = (w % nblk) * block;
      const int64_t nb = std::min(block, p.N - n0);
      const int64_t bn = b * p.N + n0;
      for (int64_t j = 0; j < nb; ++j) {
        A[j] = alpha[n0 + j];
        Be[j] = beta[n0 + j];
        G[j] = p.normalize_input ? acc_t(1) - Be[j] : acc_t(1);
        if constexpr (!kLi) Th[j] = thr[n0 + j];
        cU[j] = guT[bn + j];
        cI[j] = giT[bn + j];
        if constexpr (!kDetach) cS[j] = acc_t(0);
        if constexpr (kParams) GA[j] = GB[j] = acc_t(0);
        if constexpr (kParams && !kLi) GT[j] = acc_t(0);
      }
      for (int64_t t = p.T - 1; t >= 0; --t) {
        const io_t* __restrict__ gst = gs + b * p.gs_sb + t * p.gs_st + n0;  // [nb]
        const int64_t off = (b * p.T + t) * p.N + n0;
        const acc_t* __restrict__ ut = kHasU ? u_saved + off : nullptr;
        const acc_t* __restrict__ up = kHasU ? (t > 0 ? ut - p.N : u0 + bn) : nullptr;
        const acc_t* __restrict__ it = !kHasI ? nullptr : i_saved ? i_saved + off : Zero;
        const acc_t* __restrict__ ip =
            !kHasI ? nullptr : i_saved ? (t > 0 ? it - p.N : i0 + bn) : Zero;
#pragma GCC ivdep  // lanes are independent
        for (int64_t j = 0; j < nb; ++j) {
          if constexpr (kLi) {
            acc_t gU = cU[j], gI = cI[j], gu_t;
            const acc_t g = li_step_bwd(LiConsts<acc_t>{A[j], Be[j], G[j]},
                                        static_cast<acc_t>(gst[j]), gU, gI, gu_t);
            cU[j] = gU;
            cI[j] = gI;
            Gx[j] = static_cast<io_t>(g);
            if constexpr (kParams) li_param_grads(norm, g, gu_t, up[j], ip[j], it[j], GA[j], GB[j]);
          } else {
            const LifConsts<acc_t> c{A[j], Be[j], G[j], Th[j]};
            LifGradCarry<acc_t> carry{cU[j], cI[j], kDetach ? acc_t(0) : cS[kDetach ? 0 : j]};
            acc_t i_t = acc_t(0);
            if constexpr (kHasI) i_t = it[j];
            const auto r = lif_step_bwd<R, SG, kDetach>(c, k, static_cast<acc_t>(gst[j]), ut[j],
                                                        up[j], i_t, carry);
            cU[j] = carry.gU;
            cI[j] = carry.gI;
            if constexpr (!kDetach) cS[j] = carry.gS;
            Gx[j] = static_cast<io_t>(r.gx);
            if constexpr (kParams) {
              lif_param_grads<R>(c, norm, r, up[j], ip[j], i_t, GA[j], GB[j], GT[j]);
            }
          }
        }
        stream_row(gx + b * p.gx_sb + t * p.gx_st + n0, Gx, nb);
      }
#pragma GCC ivdep
      for (int64_t j = 0; j < nb; ++j) {
        if constexpr (kLi) {
          gi0[bn + j] = cI[j];
          gu0[bn + j] = cU[j];
        } else {
          const LifConsts<acc_t> c{A[j], Be[j], G[j], Th[j]};
          const LifGradCarry<acc_t> carry{cU[j], cI[j], kDetach ? acc_t(0) : cS[kDetach ? 0 : j]};
          acc_t gt_unused = acc_t(0);
          acc_t& gt = kParams ? GT[kParams ? j : 0] : gt_unused;
          lif_initial_state_grads<SG>(c, k, u0[bn + j], carry, gi0[bn + j], gu0[bn + j], gt);
          if constexpr (kParams) gthr[bn + j] = GT[j];
        }
        if constexpr (kParams) {
          galpha[bn + j] = GA[j];
          gbeta[bn + j] = GB[j];
        }
      }
    }
    stream_fence();
  }
}


void lif_fwd_items(const LifFwdParams& p, IoType io, int64_t block, int64_t begin,
                   int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_reset(p.reset, [&](auto r) {
      dispatch_bool(p.u_saved != nullptr, [&](auto su) {
        dispatch_bool(p.i_saved != nullptr, [&](auto si) {
          lif_fwd_kernel<Neuron::Lif, io_t, acc_t, decltype(r)::value, decltype(su)::value,
                         decltype(si)::value>(p, block, begin, end);
        });
      });
    });
  });
}

void lif_bwd_items(const LifBwdParams& p, IoType io, int64_t block, int64_t begin,
                   int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_reset(p.reset, [&](auto r) {
      dispatch_surrogate(p.surrogate, [&](auto sg) {
        // The detach flag only matters for resets that read the previous spike.
        const bool detach = p.detach_reset || decltype(r)::value == Reset::None;
        dispatch_bool(detach, [&](auto kd) {
          dispatch_bool(p.galpha != nullptr, [&](auto kp) {
            lif_bwd_kernel<Neuron::Lif, io_t, acc_t, decltype(r)::value, decltype(sg)::value,
                           decltype(kd)::value, decltype(kp)::value>(p, block, begin, end);
          });
        });
      });
    });
  });
}

// The leaky integrator: the skeleton with Neuron::Li, saving I_t and U_t together (both only
// when alpha/beta learn); reset, surrogate and detach are fixed and never read.
void li_fwd_items(const LifFwdParams& p, IoType io, int64_t block, int64_t begin,
                  int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    dispatch_bool(p.i_saved != nullptr, [&](auto sv) {
      constexpr bool SV = decltype(sv)::value;
      lif_fwd_kernel<Neuron::Li, decltype(io_v), decltype(acc_v), Reset::None, SV, SV>(
          p, block, begin, end);
    });
  });
}

void li_bwd_items(const LifBwdParams& p, IoType io, int64_t block, int64_t begin,
                  int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    dispatch_bool(p.galpha != nullptr, [&](auto kp) {
      lif_bwd_kernel<Neuron::Li, decltype(io_v), decltype(acc_v), Reset::None,
                     Surrogate::SuperSpike, true, decltype(kp)::value>(p, block, begin, end);
    });
  });
}

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
