// Per-step adaptive LIF (SPEC section 7) for the CPU kernels (and the CUDA kernels to come):
// the forward update of fastsnn/ops/adlif/ref.py and the reverse step of
// fastsnn/ops/adlif/README.md, operation for operation.
#pragma once

#include "../common/surrogate.h"

namespace fastsnn {

template <typename acc_t>
struct AdlifConsts {
  acc_t alpha, beta, a, b, thr;
};

template <Reset R, typename acc_t>
FASTSNN_HD acc_t adlif_reset(acc_t u, acc_t z, acc_t thr) {
  if constexpr (R == Reset::Zero) {
    return u * (acc_t(1) - z);
  } else if constexpr (R == Reset::Subtract) {
    return u - thr * z;
  } else {
    return u;
  }
}

// One forward step. c = X_t + R_t; (u, w, z) of step t-1 in, of step t out; m = the membrane
// compared with the threshold, d = c - w_{t-1} (saved for the backward).
template <bool kSE, Reset R, typename acc_t>
FASTSNN_HD void adlif_step_fwd(const AdlifConsts<acc_t>& k, acc_t c, acc_t& u, acc_t& w, acc_t& z,
                               acc_t& m, acc_t& d) {
  d = c - w;
  if constexpr (kSE) {
    m = k.alpha * u + (acc_t(1) - k.alpha) * d;
    z = heaviside(m, k.thr);
    u = adlif_reset<R>(m, z, k.thr);
    w = k.beta * w + (acc_t(1) - k.beta) * (k.a * u + k.b * z);
  } else {
    const acc_t ur = adlif_reset<R>(u, z, k.thr);
    m = k.alpha * ur + (acc_t(1) - k.alpha) * d;
    w = k.beta * w + (acc_t(1) - k.beta) * (k.a * ur + k.b * z);
    z = heaviside(m, k.thr);
    u = m;
  }
}

// The reverse-scan carries: gradients of step t's u, w and z as seen from step t+1.
template <typename acc_t>
struct AdlifCarry {
  acc_t gU, gW, gZ;
};

// Parameter partials of one neuron and batch row.
template <typename acc_t>
struct AdlifPartials {
  acc_t ga, gb, gaa, gbb, gt;  // alpha, beta, a, b, threshold
};

// One reverse step at t: g_out = dL/dZ_t; m = m_t, m_prev = m_{t-1} (or u_{-1} for t = 0 via
// u_prev), z_prev = Z_{t-1}; w_prev = w_{t-1}, d = d_t (read only for the alpha / beta
// partials: kDecay). Updates the carry to step t-1's (without the recurrent term gc @ Vᵀ, which
// the caller adds to gZ) and returns gc_t = dL/dX_t = dL/dR_t.
template <bool kSE, Reset R, Surrogate SG, bool kDetach, bool kParams, bool kDecay,
          typename acc_t>
FASTSNN_HD acc_t adlif_step_bwd(const AdlifConsts<acc_t>& k, acc_t ks, acc_t g_out, acc_t m,
                                acc_t u_prev, acc_t z_prev, acc_t w_prev, acc_t d,
                                AdlifCarry<acc_t>& c, AdlifPartials<acc_t>& p) {
  const acc_t one(1);
  const acc_t nd = kDetach ? acc_t(0) : one;
  const acc_t z = heaviside(m, k.thr);
  const acc_t sg = surrogate_grad<SG>(m - k.thr, ks);
  if constexpr (kSE) {
    const acc_t u = adlif_reset<R>(m, z, k.thr);
    acc_t gz = g_out + c.gZ + (one - k.beta) * k.b * c.gW;
    const acc_t gu = c.gU + (one - k.beta) * k.a * c.gW;
    acc_t gm;
    if constexpr (R == Reset::Zero) {
      gm = gu * (one - z);
      gz = gz + nd * (-m * gu);
    } else if constexpr (R == Reset::Subtract) {
      gm = gu;
      gz = gz + nd * (-k.thr * gu);
      if constexpr (kParams) p.gt -= z * gu;
    } else {
      gm = gu;
    }
    gm = gm + sg * gz;
    if constexpr (kParams) {
      p.gt -= sg * gz;
      if constexpr (kDecay) {
        p.ga += gm * (u_prev - d);
        p.gb += c.gW * (w_prev - (k.a * u + k.b * z));
      }
      p.gaa += (one - k.beta) * c.gW * u;
      p.gbb += (one - k.beta) * c.gW * z;
    }
    const acc_t gc = (one - k.alpha) * gm;
    c.gU = k.alpha * gm;
    c.gW = k.beta * c.gW - (one - k.alpha) * gm;
    c.gZ = acc_t(0);
    return gc;
  } else {
    const acc_t gz = g_out + c.gZ;
    const acc_t gm = c.gU + sg * gz;
    const acc_t ur = adlif_reset<R>(u_prev, z_prev, k.thr);
    const acc_t gur = k.alpha * gm + (one - k.beta) * k.a * c.gW;
    if constexpr (kParams) {
      p.gt -= sg * gz;
      if constexpr (kDecay) {
        p.ga += gm * (ur - d);
        p.gb += c.gW * (w_prev - (k.a * ur + k.b * z_prev));
      }
      p.gaa += (one - k.beta) * c.gW * ur;
      p.gbb += (one - k.beta) * c.gW * z_prev;
    }
    const acc_t gc = (one - k.alpha) * gm;
    acc_t gzp = (one - k.beta) * k.b * c.gW;
    if constexpr (R == Reset::Zero) {
      c.gU = gur * (one - z_prev);
      gzp = gzp + nd * (-u_prev * gur);
    } else if constexpr (R == Reset::Subtract) {
      c.gU = gur;
      gzp = gzp + nd * (-k.thr * gur);
      if constexpr (kParams) p.gt -= z_prev * gur;
    } else {
      c.gU = gur;
    }
    c.gW = k.beta * c.gW - (one - k.alpha) * gm;
    c.gZ = gzp;
    return gc;
  }
}

}  // namespace fastsnn
