// Per-step LIF forward and backward (SPEC sections 1 and 5), shared unchanged by the CPU and
// CUDA kernels. Derivation: fastsnn/ops/lif/README.md.
#pragma once

#include "../common/surrogate.h"

namespace fastsnn {

// Which neuron a scan skeleton (lif_cpu_kernels.h, lif_cuda_skeleton.cuh) runs: Lif, or the
// leaky integrator Li (SPEC section 2), with no threshold or reset, whose output is U_t and
// whose per-step math is li_math.h.
enum class Neuron : int { Lif = 0, Li = 1 };

// Per-neuron constants of one (batch, neuron) lane. gamma = 1 - beta when normalize_input.
template <typename acc_t>
struct LifConsts {
  acc_t alpha, beta, gamma, thr;
};

// The membrane update of one step, after I holds I_t: U holds U_{t-1} on entry, U_t on exit.
template <Reset reset, typename acc_t>
FASTSNN_HD void lif_membrane_step(const LifConsts<acc_t>& c, acc_t s_prev, acc_t I, acc_t& U) {
  const acc_t H = c.beta * U + c.gamma * I;
  if constexpr (reset == Reset::Zero) {
    U = H * (acc_t(1) - s_prev);
  } else if constexpr (reset == Reset::Subtract) {
    U = H - c.thr * s_prev;
  } else {
    U = H;
  }
}

// One forward step: (I, U) hold step t-1 on entry and step t on exit.
template <Reset reset, typename acc_t>
FASTSNN_HD void lif_step_fwd(const LifConsts<acc_t>& c, acc_t x, acc_t& I, acc_t& U) {
  const acc_t s_prev = heaviside(U, c.thr);
  I = c.alpha * I + x;
  lif_membrane_step<reset>(c, s_prev, I, U);
}

// One rlif forward step: r = R_t = (S_{t-1} @ V) for this neuron, added after the feed-forward
// current in the reference's order, I_t = (alpha I_{t-1} + x_t) + R_t.
template <Reset reset, typename acc_t>
FASTSNN_HD void rlif_step_fwd(const LifConsts<acc_t>& c, acc_t x, acc_t r, acc_t& I, acc_t& U) {
  const acc_t s_prev = heaviside(U, c.thr);
  I = c.alpha * I + x;
  I = I + r;
  lif_membrane_step<reset>(c, s_prev, I, U);
}

// Gradient carries of the reverse scan, all with respect to step t's quantities as seen
// from step t+1: gU (through H_{t+1}), gI (through I_{t+1}), gS (through the reset of t+1).
template <typename acc_t>
struct LifGradCarry {
  acc_t gU, gI, gS;
};

// What one reverse step hands back besides the updated carries.
template <typename acc_t>
struct LifStepGrads {
  acc_t gx;      // dL/dX_t = dL/dI_t
  acc_t gH;      // dL/dH_t
  acc_t sg_gs;   // sigma'(U_t - thr) * dL/dS_t
  acc_t gU;      // dL/dU_t (total)
};

// One reverse step at time t. u = U_t, u_prev = U_{t-1}, i_t = I_t (read only when the zero
// reset is not detached, where dU_t/dS_{t-1} = -H_t needs it). gs_out = incoming dL/dS_t.
// Compile-time flags keep the neuron loop branch-free so it vectorizes.
template <Reset reset, Surrogate sg, bool detach_reset, typename acc_t>
FASTSNN_HD LifStepGrads<acc_t> lif_step_bwd(const LifConsts<acc_t>& c, acc_t k, acc_t gs_out,
                                            acc_t u, acc_t u_prev, acc_t i_t,
                                            LifGradCarry<acc_t>& carry) {
  LifStepGrads<acc_t> r;
  const acc_t gs = gs_out + carry.gS;
  r.sg_gs = surrogate_grad<sg>(u - c.thr, k) * gs;
  r.gU = r.sg_gs + carry.gU;
  const acc_t s_prev = heaviside(u_prev, c.thr);
  if constexpr (reset == Reset::Zero) {
    r.gH = r.gU * (acc_t(1) - s_prev);
    if constexpr (detach_reset) {
      carry.gS = acc_t(0);
    } else {
      const acc_t H = c.beta * u_prev + c.gamma * i_t;
      carry.gS = -(r.gU * H);
    }
  } else if constexpr (reset == Reset::Subtract) {
    r.gH = r.gU;
    if constexpr (detach_reset) {
      carry.gS = acc_t(0);
    } else {
      carry.gS = -(r.gU * c.thr);
    }
  } else {
    r.gH = r.gU;
    carry.gS = acc_t(0);
  }
  r.gx = c.gamma * r.gH + carry.gI;
  carry.gI = c.alpha * r.gx;
  carry.gU = c.beta * r.gH;
  return r;
}

// Partial parameter gradients of one step, accumulated per (batch, neuron) lane.
//   d alpha += gI_t I_{t-1};  d beta += gH_t (U_{t-1} - [normalize] I_t);
//   d thr   += -sigma' gS_t - [subtract] S_{t-1} gU_t.
template <Reset reset, typename acc_t>
FASTSNN_HD void lif_param_grads(const LifConsts<acc_t>& c, acc_t normalize_input,
                                const LifStepGrads<acc_t>& r, acc_t u_prev, acc_t i_prev,
                                acc_t i_t, acc_t& ga, acc_t& gb, acc_t& gthr) {
  ga += r.gx * i_prev;
  gb += r.gH * (u_prev - normalize_input * i_t);  // normalize_input is 0 or 1
  gthr -= r.sg_gs;
  if constexpr (reset == Reset::Subtract) gthr -= heaviside(u_prev, c.thr) * r.gU;
}

// After the reverse scan: the spike S_{-1} of the initial state fed step 0's reset, so the
// initial membrane and the threshold pick up its surrogate term (SPEC section 5).
template <Surrogate sg, typename acc_t>
FASTSNN_HD void lif_initial_state_grads(const LifConsts<acc_t>& c, acc_t k, acc_t u0,
                                        const LifGradCarry<acc_t>& carry, acc_t& gi0, acc_t& gu0,
                                        acc_t& gthr) {
  const acc_t sg_gs = surrogate_grad<sg>(u0 - c.thr, k) * carry.gS;
  gi0 = carry.gI;
  gu0 = carry.gU + sg_gs;
  gthr -= sg_gs;
}

}  // namespace fastsnn
