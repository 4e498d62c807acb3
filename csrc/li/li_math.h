// Per-step leaky-integrator readout (SPEC section 2), shared by the CPU and CUDA kernels.
//   I_t = alpha I_{t-1} + X_t;  U_t = beta U_{t-1} + gamma I_t;  output U_t.
#pragma once

#include "../common/surrogate.h"

namespace fastsnn {

template <typename acc_t>
struct LiConsts {
  acc_t alpha, beta, gamma;
};

template <typename acc_t>
FASTSNN_HD void li_step_fwd(const LiConsts<acc_t>& c, acc_t x, acc_t& I, acc_t& U) {
  I = c.alpha * I + x;
  U = c.beta * U + c.gamma * I;
}

// Reverse step: gU, gI carry dL/dU_t and dL/dI_t as seen from step t+1. Returns dL/dX_t; gu_t
// receives the total dL/dU_t for the parameter partials.
template <typename acc_t>
FASTSNN_HD acc_t li_step_bwd(const LiConsts<acc_t>& c, acc_t g_out, acc_t& gU, acc_t& gI,
                             acc_t& gu_t) {
  gu_t = g_out + gU;
  const acc_t gx = c.gamma * gu_t + gI;
  gI = c.alpha * gx;
  gU = c.beta * gu_t;
  return gx;
}

//   d alpha += gI_t I_{t-1};  d beta += gU_t (U_{t-1} - [normalize] I_t).
template <typename acc_t>
FASTSNN_HD void li_param_grads(acc_t normalize_input, acc_t gx, acc_t gu_t, acc_t u_prev,
                               acc_t i_prev, acc_t i_t, acc_t& ga, acc_t& gb) {
  ga += gx * i_prev;
  gb += gu_t * (u_prev - normalize_input * i_t);  // normalize_input is 0 or 1
}

}  // namespace fastsnn
