// The CPU leaky-integrator kernel bodies, compiled once per instruction set (see
// csrc/lif/lif_cpu_kernels.h for the arrangement).
#pragma once

namespace fastsnn {
namespace FASTSNN_CPU_ISA {

template <typename io_t, typename acc_t, bool kSave>
void li_fwd_kernel(const LiFwdParams& p, int64_t block, int64_t begin, int64_t end) {
  const int64_t nblk = (p.N + block - 1) / block;
  const io_t* x = static_cast<const io_t*>(p.x);
  io_t* u = static_cast<io_t*>(p.u);
  const acc_t* alpha = static_cast<const acc_t*>(p.alpha);
  const acc_t* beta = static_cast<const acc_t*>(p.beta);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  acc_t* iT = static_cast<acc_t*>(p.iT);
  acc_t* uT = static_cast<acc_t*>(p.uT);
  acc_t* i_saved = static_cast<acc_t*>(p.i_saved);
  acc_t* u_saved = static_cast<acc_t*>(p.u_saved);

  {
    alignas(64) acc_t I[kMaxBlock], U[kMaxBlock], A[kMaxBlock], Be[kMaxBlock], G[kMaxBlock];
    alignas(64) io_t Ob[kMaxBlock];  // the step's output, streamed out after the neuron loop
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b = w / nblk, n0 = (w % nblk) * block;
      const int64_t nb = std::min(block, p.N - n0);
      const int64_t bn = b * p.N + n0;
      for (int64_t j = 0; j < nb; ++j) {
        A[j] = alpha[n0 + j];
        Be[j] = beta[n0 + j];
        G[j] = p.normalize_input ? acc_t(1) - Be[j] : acc_t(1);
        I[j] = i0[bn + j];
        U[j] = u0[bn + j];
      }
      for (int64_t t = 0; t < p.T; ++t) {
        const io_t* __restrict__ xt = x + b * p.x_sb + t * p.x_st + n0;  // [nb]
        const int64_t off = (b * p.T + t) * p.N + n0;
#pragma GCC ivdep  // lanes are independent
        for (int64_t j = 0; j < nb; ++j) {
          const LiConsts<acc_t> c{A[j], Be[j], G[j]};
          acc_t i = I[j], v = U[j];
          li_step_fwd(c, static_cast<acc_t>(xt[j]), i, v);
          I[j] = i;
          U[j] = v;
          Ob[j] = static_cast<io_t>(v);
        }
        stream_row(u + b * p.u_sb + t * p.u_st + n0, Ob, nb);
        if constexpr (kSave) {
          stream_row(i_saved + off, I, nb);
          stream_row(u_saved + off, U, nb);
        }
      }
      for (int64_t j = 0; j < nb; ++j) {
        iT[bn + j] = I[j];
        uT[bn + j] = U[j];
      }
    }
    stream_fence();
  }
}

template <typename io_t, typename acc_t, bool kParams>
void li_bwd_kernel(const LiBwdParams& p, int64_t block, int64_t begin, int64_t end) {
  const int64_t nblk = (p.N + block - 1) / block;
  const io_t* gu = static_cast<const io_t*>(p.gu);
  io_t* gx = static_cast<io_t*>(p.gx);
  const acc_t* giT = static_cast<const acc_t*>(p.giT);
  const acc_t* guT = static_cast<const acc_t*>(p.guT);
  const acc_t* i_saved = static_cast<const acc_t*>(p.i_saved);
  const acc_t* u_saved = static_cast<const acc_t*>(p.u_saved);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  const acc_t* alpha = static_cast<const acc_t*>(p.alpha);
  const acc_t* beta = static_cast<const acc_t*>(p.beta);
  acc_t* gi0 = static_cast<acc_t*>(p.gi0);
  acc_t* gu0 = static_cast<acc_t*>(p.gu0);
  acc_t* galpha = static_cast<acc_t*>(p.galpha);
  acc_t* gbeta = static_cast<acc_t*>(p.gbeta);
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);

  {
    alignas(64) acc_t A[kMaxBlock], Be[kMaxBlock], G[kMaxBlock], cU[kMaxBlock], cI[kMaxBlock];
    alignas(64) acc_t GA[kParams ? kMaxBlock : 1], GB[kParams ? kMaxBlock : 1];
    alignas(64) io_t Gx[kMaxBlock];
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b = w / nblk, n0 = (w % nblk) * block;
      const int64_t nb = std::min(block, p.N - n0);
      const int64_t bn = b * p.N + n0;
      for (int64_t j = 0; j < nb; ++j) {
        A[j] = alpha[n0 + j];
        Be[j] = beta[n0 + j];
        G[j] = p.normalize_input ? acc_t(1) - Be[j] : acc_t(1);
        cU[j] = guT[bn + j];
        cI[j] = giT[bn + j];
        if constexpr (kParams) GA[j] = GB[j] = acc_t(0);
      }
      for (int64_t t = p.T - 1; t >= 0; --t) {
        const io_t* __restrict__ gt = gu + b * p.gu_sb + t * p.gu_st + n0;  // [nb]
        const int64_t off = (b * p.T + t) * p.N + n0;
#pragma GCC ivdep  // lanes are independent
        for (int64_t j = 0; j < nb; ++j) {
          const LiConsts<acc_t> c{A[j], Be[j], G[j]};
          acc_t gU = cU[j], gI = cI[j], gu_t;
          const acc_t g = li_step_bwd(c, static_cast<acc_t>(gt[j]), gU, gI, gu_t);
          cU[j] = gU;
          cI[j] = gI;
          Gx[j] = static_cast<io_t>(g);
          if constexpr (kParams) {
            const acc_t u_prev = t > 0 ? u_saved[off - p.N + j] : u0[bn + j];
            const acc_t i_prev = t > 0 ? i_saved[off - p.N + j] : i0[bn + j];
            li_param_grads(norm, g, gu_t, u_prev, i_prev, i_saved[off + j], GA[j], GB[j]);
          }
        }
        stream_row(gx + b * p.gx_sb + t * p.gx_st + n0, Gx, nb);
      }
      for (int64_t j = 0; j < nb; ++j) {
        gi0[bn + j] = cI[j];
        gu0[bn + j] = cU[j];
        if constexpr (kParams) {
          galpha[bn + j] = GA[j];
          gbeta[bn + j] = GB[j];
        }
      }
    }
    stream_fence();
  }
}


void li_fwd_items(const LiFwdParams& p, IoType io, int64_t block, int64_t begin,
                  int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    dispatch_bool(p.i_saved != nullptr, [&](auto sv) {
      li_fwd_kernel<decltype(io_v), decltype(acc_v), decltype(sv)::value>(p, block, begin, end);
    });
  });
}

void li_bwd_items(const LiBwdParams& p, IoType io, int64_t block, int64_t begin,
                  int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    dispatch_bool(p.galpha != nullptr, [&](auto kp) {
      li_bwd_kernel<decltype(io_v), decltype(acc_v), decltype(kp)::value>(p, block, begin, end);
    });
  });
}

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
