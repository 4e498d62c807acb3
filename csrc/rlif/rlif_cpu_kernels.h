// The CPU rlif kernel bodies, compiled once per instruction set like lif_cpu_kernels.h. A work
// item walks time over a tile of up to `tile` whole batch rows (the recurrence couples all N
// neurons of a row, so a row is never split); cpu_launch.cpp hands each thread a contiguous run
// of tiles, so threads never synchronise inside the scan. Per-step math: lif_math.h.
//
// Forward, each step: R_t = S_{t-1} @ V for the tile's rows, then the lif update with R_t added
// to the current. S is 0/1, so the product is a sum of the rows of V of the neurons that spiked
// (a gather: cost ∝ spikes × N); FASTSNN_RLIF_DENSE=1 forms it as a dense tile product instead.
// Backward, each step in reverse: rec_t = gI_{t+1} @ Vᵀ for the tile (dense: gI is dense) joins
// dL/dS_t, then the lif reverse step; dV += S_{t-1}ᵀ gI_t as a gather over the spikes into a
// per-thread partial that the launcher sums once after the scan.
#pragma once

#include <memory>
#include <vector>

namespace fastsnn {
namespace FASTSNN_CPU_ISA {

// C[r, 0:N) = Σ_k A[r, k] · Bm[k, 0:N) for r < M: A [M, K] (row stride lda), Bm [K, N] (ldb),
// C [M, N] (ldc), C overwritten. The products of rlif are at most a few hundred wide, so a
// register-tiled loop is enough: 4 rows × 16 columns of float32 accumulators with FMA in the
// AVX2 build; a plain vectorised axpy loop otherwise (double, baseline build, edges).
template <typename acc_t>
void tile_gemm(int64_t M, int64_t N, int64_t K, const acc_t* A, int64_t lda, const acc_t* Bm,
               int64_t ldb, acc_t* C, int64_t ldc) {
  int64_t j0 = 0;
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<acc_t, float>) {
    for (; j0 + 16 <= N; j0 += 16) {
      int64_t r = 0;
      for (; r + 4 <= M; r += 4) {
        const float* a0 = A + r * lda;
        const float* a1 = a0 + lda;
        const float* a2 = a1 + lda;
        const float* a3 = a2 + lda;
        __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
        __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
        __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
        __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
        const float* bp = Bm + j0;
        for (int64_t k = 0; k < K; ++k, bp += ldb) {
          const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
          __m256 x = _mm256_broadcast_ss(a0 + k);
          c00 = _mm256_fmadd_ps(x, b0, c00);
          c01 = _mm256_fmadd_ps(x, b1, c01);
          x = _mm256_broadcast_ss(a1 + k);
          c10 = _mm256_fmadd_ps(x, b0, c10);
          c11 = _mm256_fmadd_ps(x, b1, c11);
          x = _mm256_broadcast_ss(a2 + k);
          c20 = _mm256_fmadd_ps(x, b0, c20);
          c21 = _mm256_fmadd_ps(x, b1, c21);
          x = _mm256_broadcast_ss(a3 + k);
          c30 = _mm256_fmadd_ps(x, b0, c30);
          c31 = _mm256_fmadd_ps(x, b1, c31);
        }
        float* c = C + r * ldc + j0;
        _mm256_storeu_ps(c, c00);
        _mm256_storeu_ps(c + 8, c01);
        _mm256_storeu_ps(c + ldc, c10);
        _mm256_storeu_ps(c + ldc + 8, c11);
        _mm256_storeu_ps(c + 2 * ldc, c20);
        _mm256_storeu_ps(c + 2 * ldc + 8, c21);
        _mm256_storeu_ps(c + 3 * ldc, c30);
        _mm256_storeu_ps(c + 3 * ldc + 8, c31);
      }
      for (; r < M; ++r) {
        const float* a0 = A + r * lda;
        __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
        const float* bp = Bm + j0;
        for (int64_t k = 0; k < K; ++k, bp += ldb) {
          const __m256 x = _mm256_broadcast_ss(a0 + k);
          c00 = _mm256_fmadd_ps(x, _mm256_loadu_ps(bp), c00);
          c01 = _mm256_fmadd_ps(x, _mm256_loadu_ps(bp + 8), c01);
        }
        _mm256_storeu_ps(C + r * ldc + j0, c00);
        _mm256_storeu_ps(C + r * ldc + j0 + 8, c01);
      }
    }
  }
#endif
  if (j0 == N) return;
  for (int64_t r = 0; r < M; ++r) {
    acc_t* __restrict__ c = C + r * ldc;
    for (int64_t j = j0; j < N; ++j) c[j] = acc_t(0);
    for (int64_t k = 0; k < K; ++k) {
      const acc_t a = A[r * lda + k];
      const acc_t* __restrict__ b = Bm + k * ldb;
#pragma GCC ivdep
      for (int64_t j = j0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

// dst[0:n) += src[0:n)
template <typename acc_t>
inline void add_row(acc_t* __restrict__ dst, const acc_t* __restrict__ src, int64_t n) {
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
}

// Per-neuron constants [N] of a call, loaded once per work run.
template <typename acc_t>
struct RlifConstRows {
  std::vector<acc_t> A, Be, G, Th;
  RlifConstRows(const LifFwdParams& p) : RlifConstRows(p.N, p.alpha, p.beta, p.thr, p.normalize_input) {}
  RlifConstRows(const LifBwdParams& p) : RlifConstRows(p.N, p.alpha, p.beta, p.thr, p.normalize_input) {}
  RlifConstRows(int64_t N, const void* alpha, const void* beta, const void* thr, bool normalize)
      : A(N), Be(N), G(N), Th(N) {
    for (int64_t j = 0; j < N; ++j) {
      A[j] = static_cast<const acc_t*>(alpha)[j];
      Be[j] = static_cast<const acc_t*>(beta)[j];
      G[j] = normalize ? acc_t(1) - Be[j] : acc_t(1);
      Th[j] = static_cast<const acc_t*>(thr)[j];
    }
  }
};

template <typename io_t, typename acc_t, Reset R, bool kSaveU, bool kSaveI>
void rlif_fwd_kernel(const RlifFwdParams& rp, int64_t tile, int64_t begin, int64_t end) {
  const LifFwdParams& p = rp.lif;
  const int64_t N = p.N;
  const io_t* x = static_cast<const io_t*>(p.x);
  io_t* s = static_cast<io_t*>(p.s);
  const acc_t* w = static_cast<const acc_t*>(rp.w);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  acc_t* iT = static_cast<acc_t*>(p.iT);
  acc_t* uT = static_cast<acc_t*>(p.uT);
  acc_t* u_saved = static_cast<acc_t*>(p.u_saved);
  acc_t* i_saved = static_cast<acc_t*>(p.i_saved);

  const RlifConstRows<acc_t> k(p);
  std::vector<acc_t> I(tile * N), U(tile * N), Rt(tile * N);
  std::vector<acc_t> Sd(rp.dense_product ? tile * N : 0);  // S_{t-1} of the tile, dense path
  std::vector<int32_t> spk(N);
  std::vector<io_t> Sb(N);

  for (int64_t item = begin; item < end; ++item) {
    const int64_t b0 = item * tile, nb = std::min(tile, p.B - b0);
    for (int64_t r = 0; r < nb; ++r) {
      std::copy_n(i0 + (b0 + r) * N, N, I.data() + r * N);
      std::copy_n(u0 + (b0 + r) * N, N, U.data() + r * N);
    }
    for (int64_t t = 0; t < p.T; ++t) {
      // R_t = S_{t-1} @ V for every row of the tile, S_{t-1} recomputed from U_{t-1}.
      if (rp.dense_product) {
        for (int64_t r = 0; r < nb; ++r) {
          const acc_t* u = U.data() + r * N;
          for (int64_t j = 0; j < N; ++j) Sd[r * N + j] = heaviside(u[j], k.Th[j]);
        }
        tile_gemm<acc_t>(nb, N, N, Sd.data(), N, w, N, Rt.data(), N);
      } else {
        for (int64_t r = 0; r < nb; ++r) {
          const acc_t* u = U.data() + r * N;
          int64_t n_spk = 0;
          for (int64_t j = 0; j < N; ++j) {
            spk[n_spk] = static_cast<int32_t>(j);
            n_spk += heaviside(u[j], k.Th[j]) != acc_t(0);
          }
          acc_t* rt = Rt.data() + r * N;
          std::fill_n(rt, N, acc_t(0));
          for (int64_t q = 0; q < n_spk; ++q) add_row(rt, w + int64_t(spk[q]) * N, N);
        }
      }
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t b = b0 + r;
        const io_t* __restrict__ xt = x + b * p.x_sb + t * p.x_st;
        acc_t* __restrict__ Ir = I.data() + r * N;
        acc_t* __restrict__ Ur = U.data() + r * N;
        const acc_t* __restrict__ rt = Rt.data() + r * N;
#pragma GCC ivdep
        for (int64_t j = 0; j < N; ++j) {
          const LifConsts<acc_t> c{k.A[j], k.Be[j], k.G[j], k.Th[j]};
          acc_t i = Ir[j], u = Ur[j];
          rlif_step_fwd<R>(c, static_cast<acc_t>(xt[j]), rt[j], i, u);
          Ir[j] = i;
          Ur[j] = u;
          Sb[j] = static_cast<io_t>(heaviside(u, c.thr));
        }
        const int64_t off = (b * p.T + t) * N;
        stream_row(s + b * p.s_sb + t * p.s_st, Sb.data(), N);
        if constexpr (kSaveU) stream_row(u_saved + off, Ur, N);
        if constexpr (kSaveI) stream_row(i_saved + off, Ir, N);
      }
    }
    for (int64_t r = 0; r < nb; ++r) {
      std::copy_n(I.data() + r * N, N, iT + (b0 + r) * N);
      std::copy_n(U.data() + r * N, N, uT + (b0 + r) * N);
    }
  }
  stream_fence();
}

// dw: this run's dV partial [N, N] (zeroed by the caller) or nullptr.
template <typename io_t, typename acc_t, Reset R, Surrogate SG, bool kDetach, bool kParams>
void rlif_bwd_kernel(const RlifBwdParams& rp, int64_t tile, int64_t begin, int64_t end,
                     acc_t* dw) {
  constexpr bool kHasI = kParams || (R == Reset::Zero && !kDetach);
  const LifBwdParams& p = rp.lif;
  const int64_t N = p.N;
  const bool rec = !rp.detach_recurrent;
  const io_t* gs = static_cast<const io_t*>(p.gs);
  io_t* gx = static_cast<io_t*>(p.gx);
  const acc_t* wt = static_cast<const acc_t*>(rp.wt);
  const acc_t* giT = static_cast<const acc_t*>(p.giT);
  const acc_t* guT = static_cast<const acc_t*>(p.guT);
  const acc_t* u_saved = static_cast<const acc_t*>(p.u_saved);
  const acc_t* i_saved = static_cast<const acc_t*>(p.i_saved);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  acc_t* gi0 = static_cast<acc_t*>(p.gi0);
  acc_t* gu0 = static_cast<acc_t*>(p.gu0);
  acc_t* galpha = static_cast<acc_t*>(p.galpha);
  acc_t* gbeta = static_cast<acc_t*>(p.gbeta);
  acc_t* gthr = static_cast<acc_t*>(p.gthr);
  const acc_t kk = static_cast<acc_t>(p.scale);
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);

  const RlifConstRows<acc_t> k(p);
  const int64_t TN = tile * N;
  // Carries of the reverse scan per (row, neuron); gI holds gI_{t+1} on entry to step t and
  // gI_t on exit; rc the recurrent part of dL/dS_t.
  std::vector<acc_t> cU(TN), cI(TN), cS(kDetach ? 0 : TN), gI(TN), rc(TN, acc_t(0));
  std::vector<acc_t> GA(kParams ? TN : 0), GB(kParams ? TN : 0), GT(kParams ? TN : 0);
  std::vector<io_t> Gx(N);

  for (int64_t item = begin; item < end; ++item) {
    const int64_t b0 = item * tile, nb = std::min(tile, p.B - b0);
    std::copy_n(guT + b0 * N, nb * N, cU.data());
    std::copy_n(giT + b0 * N, nb * N, cI.data());
    if constexpr (!kDetach) std::fill_n(cS.data(), nb * N, acc_t(0));
    if constexpr (kParams) {
      std::fill_n(GA.data(), nb * N, acc_t(0));
      std::fill_n(GB.data(), nb * N, acc_t(0));
      std::fill_n(GT.data(), nb * N, acc_t(0));
    }
    for (int64_t t = p.T - 1; t >= 0; --t) {
      const bool rec_t = rec && t < p.T - 1;  // R_{t+1} exists: S_t fed step t+1
      if (rec_t) tile_gemm<acc_t>(nb, N, N, gI.data(), N, wt, N, rc.data(), N);
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t b = b0 + r, bn = b * N, rn = r * N;
        const io_t* __restrict__ gst = gs + b * p.gs_sb + t * p.gs_st;
        const int64_t off = (b * p.T + t) * N;
        const acc_t* __restrict__ ut = u_saved + off;
        const acc_t* __restrict__ up = t > 0 ? ut - N : u0 + bn;
        const acc_t* __restrict__ it = kHasI ? i_saved + off : nullptr;
        const acc_t* __restrict__ ip = kHasI ? (t > 0 ? it - N : i0 + bn) : nullptr;
        const acc_t* __restrict__ rcr = rc.data() + rn;
        acc_t* __restrict__ gIr = gI.data() + rn;
#pragma GCC ivdep
        for (int64_t j = 0; j < N; ++j) {
          const LifConsts<acc_t> c{k.A[j], k.Be[j], k.G[j], k.Th[j]};
          LifGradCarry<acc_t> carry{cU[rn + j], cI[rn + j],
                                    kDetach ? acc_t(0) : cS[kDetach ? 0 : rn + j]};
          acc_t i_t = acc_t(0);
          if constexpr (kHasI) i_t = it[j];
          const acc_t g_in = static_cast<acc_t>(gst[j]);
          const auto res = lif_step_bwd<R, SG, kDetach>(c, kk, rec_t ? g_in + rcr[j] : g_in,
                                                        ut[j], up[j], i_t, carry);
          cU[rn + j] = carry.gU;
          cI[rn + j] = carry.gI;
          if constexpr (!kDetach) cS[rn + j] = carry.gS;
          gIr[j] = res.gx;
          Gx[j] = static_cast<io_t>(res.gx);
          if constexpr (kParams) {
            lif_param_grads<R>(c, norm, res, up[j], ip[j], i_t, GA[rn + j], GB[rn + j],
                               GT[rn + j]);
          }
        }
        stream_row(gx + b * p.gx_sb + t * p.gx_st, Gx.data(), N);
        if (dw != nullptr) {  // dV[j, :] += gI_t for every neuron j that spiked at t-1
          for (int64_t j = 0; j < N; ++j) {
            if (heaviside(up[j], k.Th[j]) != acc_t(0)) add_row(dw + j * N, gIr, N);
          }
        }
      }
    }
    // Step -1: S_{-1} = Θ(U_{-1} - ϑ) fed R_0, so gI_0 @ Vᵀ joins its gradient.
    if (rec && p.T > 0) tile_gemm<acc_t>(nb, N, N, gI.data(), N, wt, N, rc.data(), N);
    for (int64_t r = 0; r < nb; ++r) {
      const int64_t bn = (b0 + r) * N, rn = r * N;
      for (int64_t j = 0; j < N; ++j) {
        const LifConsts<acc_t> c{k.A[j], k.Be[j], k.G[j], k.Th[j]};
        const acc_t gs_reset = kDetach ? acc_t(0) : cS[kDetach ? 0 : rn + j];
        const LifGradCarry<acc_t> carry{cU[rn + j], cI[rn + j],
                                        rec ? gs_reset + rc[rn + j] : gs_reset};
        acc_t gt_unused = acc_t(0);
        acc_t& gt = kParams ? GT[kParams ? rn + j : 0] : gt_unused;
        lif_initial_state_grads<SG>(c, kk, u0[bn + j], carry, gi0[bn + j], gu0[bn + j], gt);
        if constexpr (kParams) {
          galpha[bn + j] = GA[rn + j];
          gbeta[bn + j] = GB[rn + j];
          gthr[bn + j] = GT[rn + j];
        }
      }
    }
  }
  stream_fence();
}

void rlif_fwd_items(const RlifFwdParams& p, IoType io, int64_t tile, int64_t begin,
                    int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_reset(p.lif.reset, [&](auto r) {
      dispatch_bool(p.lif.u_saved != nullptr, [&](auto su) {
        dispatch_bool(p.lif.i_saved != nullptr, [&](auto si) {
          rlif_fwd_kernel<io_t, acc_t, decltype(r)::value, decltype(su)::value,
                          decltype(si)::value>(p, tile, begin, end);
        });
      });
    });
  });
}

void rlif_bwd_items(const RlifBwdParams& p, IoType io, int64_t tile, int64_t begin, int64_t end,
                    void* dw) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_reset(p.lif.reset, [&](auto r) {
      dispatch_surrogate(p.lif.surrogate, [&](auto sg) {
        const bool detach = p.lif.detach_reset || decltype(r)::value == Reset::None;
        dispatch_bool(detach, [&](auto kd) {
          dispatch_bool(p.lif.galpha != nullptr, [&](auto kp) {
            rlif_bwd_kernel<io_t, acc_t, decltype(r)::value, decltype(sg)::value,
                            decltype(kd)::value, decltype(kp)::value>(
                p, tile, begin, end, static_cast<acc_t*>(dw));
          });
        });
      });
    });
  });
}

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
