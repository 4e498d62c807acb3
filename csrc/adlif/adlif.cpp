// fastsnn::adlif_fwd / adlif_bwd: the adaptive LIF scan (SPEC section 7) on the CPU, one call
// each way, the recurrent product inside the time loop. Per batch row, forward: R_t as the sum
// of V's rows of the neurons that spiked at t-1 (every row, times its z, when V is not finite or
// the given z_{-1} is not 0/1), then the step of adlif_math.h; backward: the reverse scan of
// fastsnn/ops/adlif/README.md with gc_t @ Vᵀ added to the spike carry, and dV = Σ_t Z_{t-1}ᵀ gc_t
// gathered over the spikes into per-chunk partials summed in chunk order (chunks set by B alone,
// so the result does not depend on the thread count).
#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <vector>

#include "../common/cpu_dispatch.h"
#include "../common/cpu_isa.h"
#include "../common/cpu_workers.h"
#include "../common/host.h"
#include "adlif_math.h"

namespace fastsnn {
namespace {

using at::Tensor;

struct AdlifFwdArgs {
  int64_t B, T, N;
  const void* x; int64_t x_sb, x_st;
  void* z; int64_t z_sb, z_st;
  const void* w_rec;  // [N, N] acc or nullptr
  bool dense;         // R_t over every neuron (z_j * V[j, :])
  const void *alpha, *beta, *a, *b, *thr;
  const void *u0, *w0, *z0;
  void *uT, *wT, *zT;
  void *m_saved, *w_saved, *d_saved;  // [B, T, N] or nullptr
};

struct AdlifBwdArgs {
  int64_t B, T, N;
  const void* gz; int64_t gz_sb, gz_st;
  void* gx; int64_t gx_sb, gx_st;
  const void *guT, *gwT, *gzT;
  const void *m_saved, *w_saved, *d_saved;
  const void *u0, *w0, *z0;
  const void* wt;  // Vᵀ [N, N] acc, or nullptr
  bool recurrent_grad;
  const void *alpha, *beta, *a, *b, *thr;
  double scale;
  void *gu0, *gw0, *gz0;
  void *ga, *gb, *gaa, *gbb, *gt;  // [B, N] partials or nullptr
  void* gw_rec;                    // [N, N] or nullptr
};

// Chunks of batch rows: set by B only (see the file comment), a multiple of the backward's
// tile of rows where B allows.
int64_t row_chunks(int64_t B) { return std::clamp<int64_t>(B / 16, 1, 16); }

template <typename io_t, typename acc_t, bool kSE, Reset R>
void adlif_fwd_rows(const AdlifFwdArgs& p, int64_t b0, int64_t b1) {
  const int64_t T = p.T, N = p.N;
  const acc_t* V = static_cast<const acc_t*>(p.w_rec);
  const acc_t *al = static_cast<const acc_t*>(p.alpha), *be = static_cast<const acc_t*>(p.beta),
              *pa = static_cast<const acc_t*>(p.a), *pb = static_cast<const acc_t*>(p.b),
              *th = static_cast<const acc_t*>(p.thr);
  std::vector<acc_t> u(N), w(N), z(N), r(N);
  acc_t* ms = static_cast<acc_t*>(p.m_saved);
  acc_t* ws = static_cast<acc_t*>(p.w_saved);
  acc_t* ds = static_cast<acc_t*>(p.d_saved);
  for (int64_t bb = b0; bb < b1; ++bb) {
    const int64_t bn = bb * N;
    for (int64_t j = 0; j < N; ++j) {
      u[j] = static_cast<const acc_t*>(p.u0)[bn + j];
      w[j] = static_cast<const acc_t*>(p.w0)[bn + j];
      z[j] = static_cast<const acc_t*>(p.z0)[bn + j];
    }
    for (int64_t t = 0; t < T; ++t) {
      const io_t* xt = static_cast<const io_t*>(p.x) + bb * p.x_sb + t * p.x_st;
      io_t* zt = static_cast<io_t*>(p.z) + bb * p.z_sb + t * p.z_st;
      const int64_t off = (bb * T + t) * N;
      std::fill(r.begin(), r.end(), acc_t(0));
      if (V != nullptr) {
        for (int64_t j = 0; j < N; ++j) {
          const acc_t zj = z[j];
          if (zj == acc_t(0) && !p.dense) continue;
          const acc_t* vj = V + j * N;
          if (zj == acc_t(1)) {
            for (int64_t k = 0; k < N; ++k) r[k] += vj[k];
          } else {
            for (int64_t k = 0; k < N; ++k) r[k] += zj * vj[k];
          }
        }
      }
      for (int64_t j = 0; j < N; ++j) {
        const AdlifConsts<acc_t> k{al[j], be[j], pa[j], pb[j], th[j]};
        const acc_t c = (V != nullptr) ? static_cast<acc_t>(xt[j]) + r[j]
                                       : static_cast<acc_t>(xt[j]);
        acc_t m, d;
        adlif_step_fwd<kSE, R>(k, c, u[j], w[j], z[j], m, d);
        zt[j] = static_cast<io_t>(z[j]);
        if (ms != nullptr) ms[off + j] = m;
        if (ws != nullptr) {
          ws[off + j] = w[j];
          ds[off + j] = d;
        }
      }
    }
    for (int64_t j = 0; j < N; ++j) {
      static_cast<acc_t*>(p.uT)[bn + j] = u[j];
      static_cast<acc_t*>(p.wT)[bn + j] = w[j];
      static_cast<acc_t*>(p.zT)[bn + j] = z[j];
    }
  }
}

// rec[r, :] = Σ_k gc[r, k] Vᵀ[k, :] for the nr rows of a tile, k ascending (each product
// rounded, then added: the same sums with or without AVX2).
template <typename acc_t>
__attribute__((always_inline)) inline void rec_product_body(const acc_t* gc, const acc_t* Wt,
                                                            acc_t* rec, int64_t nr, int64_t N) {
  std::fill(rec, rec + nr * N, acc_t(0));
  for (int64_t kk = 0; kk < N; ++kk) {
    const acc_t* __restrict__ row = Wt + kk * N;  // Vᵀ[kk, :] = V[:, kk]
    for (int64_t r = 0; r < nr; ++r) {
      const acc_t g = gc[r * N + kk];
      acc_t* __restrict__ rr = rec + r * N;
      for (int64_t j = 0; j < N; ++j) rr[j] += g * row[j];
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
template <typename acc_t>
__attribute__((target("avx2"))) void rec_product_avx2(const acc_t* gc, const acc_t* Wt,
                                                      acc_t* rec, int64_t nr, int64_t N) {
  rec_product_body(gc, Wt, rec, nr, N);
}
#endif

template <typename acc_t>
void rec_product(const acc_t* gc, const acc_t* Wt, acc_t* rec, int64_t nr, int64_t N) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_use_avx2()) return rec_product_avx2(gc, Wt, rec, nr, N);
#endif
  rec_product_body(gc, Wt, rec, nr, N);
}

// Batch rows walk the reverse scan in tiles of kTile rows in lockstep: each step's gc_t @ Vᵀ
// then reads every row of Vᵀ once per tile instead of once per row.
constexpr int64_t kTile = 8;

template <typename io_t, typename acc_t, bool kSE, Reset R, Surrogate SG, bool kDetach,
          bool kParams, bool kDecay>
void adlif_bwd_rows(const AdlifBwdArgs& p, int64_t b0, int64_t b1, acc_t* gV) {
  const int64_t T = p.T, N = p.N;
  const acc_t* Wt = static_cast<const acc_t*>(p.wt);
  const acc_t *al = static_cast<const acc_t*>(p.alpha), *be = static_cast<const acc_t*>(p.beta),
              *pa = static_cast<const acc_t*>(p.a), *pb = static_cast<const acc_t*>(p.b),
              *th = static_cast<const acc_t*>(p.thr);
  const acc_t* ms = static_cast<const acc_t*>(p.m_saved);
  const acc_t* ws = static_cast<const acc_t*>(p.w_saved);
  const acc_t* ds = static_cast<const acc_t*>(p.d_saved);
  const acc_t ks = static_cast<acc_t>(p.scale);
  std::vector<AdlifCarry<acc_t>> carry(kTile * N);
  std::vector<AdlifPartials<acc_t>> part(kTile * N);
  std::vector<acc_t> gc(kTile * N), rec(kTile * N), zprev(kTile * N);
  for (int64_t tb = b0; tb < b1; tb += kTile) {
    const int64_t nr = std::min(kTile, b1 - tb);
    for (int64_t r = 0; r < nr; ++r) {
      const int64_t bn = (tb + r) * N;
      for (int64_t j = 0; j < N; ++j) {
        carry[r * N + j] = {static_cast<const acc_t*>(p.guT)[bn + j],
                            static_cast<const acc_t*>(p.gwT)[bn + j],
                            static_cast<const acc_t*>(p.gzT)[bn + j]};
        part[r * N + j] = {acc_t(0), acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
      }
    }
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t r = 0; r < nr; ++r) {
        const int64_t bb = tb + r, bn = bb * N;
        const io_t* gzt = static_cast<const io_t*>(p.gz) + bb * p.gz_sb + t * p.gz_st;
        io_t* gxt = static_cast<io_t*>(p.gx) + bb * p.gx_sb + t * p.gx_st;
        const acc_t* u0 = static_cast<const acc_t*>(p.u0) + bn;
        const acc_t* w0 = static_cast<const acc_t*>(p.w0) + bn;
        const acc_t* z0 = static_cast<const acc_t*>(p.z0) + bn;
        const int64_t off = (bb * T + t) * N;
        acc_t* gcr = gc.data() + r * N;
        acc_t* zpr = zprev.data() + r * N;
        for (int64_t j = 0; j < N; ++j) {
          const AdlifConsts<acc_t> k{al[j], be[j], pa[j], pb[j], th[j]};
          acc_t u_prev, z_prev;
          if (t > 0) {
            const acc_t mp = ms[off - N + j];
            z_prev = heaviside(mp, k.thr);
            u_prev = kSE ? adlif_reset<R>(mp, z_prev, k.thr) : mp;
          } else {
            z_prev = z0[j];
            u_prev = u0[j];
          }
          zpr[j] = z_prev;
          acc_t w_prev = acc_t(0), d = acc_t(0);
          if constexpr (kDecay) {
            w_prev = t > 0 ? ws[off - N + j] : w0[j];
            d = ds[off + j];
          }
          gcr[j] = adlif_step_bwd<kSE, R, SG, kDetach, kParams, kDecay>(
              k, ks, static_cast<acc_t>(gzt[j]), ms[off + j], u_prev, z_prev, w_prev, d,
              carry[r * N + j], part[r * N + j]);
          gxt[j] = static_cast<io_t>(gcr[j]);
        }
      }
      if (Wt == nullptr) continue;
      if (p.recurrent_grad) {  // dL/dZ_{t-1} += gc_t @ Vᵀ
        rec_product(gc.data(), Wt, rec.data(), nr, N);
        for (int64_t i = 0; i < nr * N; ++i) carry[i].gZ += rec[i];
      }
      if (gV != nullptr) {  // dV += Z_{t-1}ᵀ gc_t, over the spikes
        for (int64_t r = 0; r < nr; ++r) {
          const acc_t* gcr = gc.data() + r * N;
          for (int64_t j = 0; j < N; ++j) {
            const acc_t zj = zprev[r * N + j];
            if (zj == acc_t(0)) continue;
            acc_t* __restrict__ row = gV + j * N;
            for (int64_t kk = 0; kk < N; ++kk) row[kk] += zj * gcr[kk];
          }
        }
      }
    }
    for (int64_t r = 0; r < nr; ++r) {
      const int64_t bn = (tb + r) * N;
      for (int64_t j = 0; j < N; ++j) {
        const auto& c = carry[r * N + j];
        static_cast<acc_t*>(p.gu0)[bn + j] = c.gU;
        static_cast<acc_t*>(p.gw0)[bn + j] = c.gW;
        static_cast<acc_t*>(p.gz0)[bn + j] = c.gZ;
        if constexpr (kParams) {
          const auto& q = part[r * N + j];
          static_cast<acc_t*>(p.ga)[bn + j] = q.ga;
          static_cast<acc_t*>(p.gb)[bn + j] = q.gb;
          static_cast<acc_t*>(p.gaa)[bn + j] = q.gaa;
          static_cast<acc_t*>(p.gbb)[bn + j] = q.gbb;
          static_cast<acc_t*>(p.gt)[bn + j] = q.gt;
        }
      }
    }
  }
}

void check_reset(int64_t reset, const char* op) {
  TORCH_CHECK_VALUE(reset >= 0 && reset <= 2, op, ": reset code must be 0, 1 or 2, got ", reset);
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> adlif_fwd(
    const Tensor& x_in, const Tensor& weight_rec, const Tensor& alpha, const Tensor& beta,
    const Tensor& a, const Tensor& b, const Tensor& threshold, const Tensor& u0, const Tensor& w0,
    const Tensor& z0, bool se, int64_t reset, bool save_m, bool save_wd) {
  constexpr const char* op = "fastsnn::adlif_fwd";
  check_btn(x_in, op, "x");
  check_reset(reset, op);
  const IoType io = io_type_of(x_in, op, "x");
  const Tensor x = unit_neuron_stride(x_in);
  const int64_t B = x.size(0), T = x.size(1), N = x.size(2);
  const auto acc = acc_dtype(io);
  const bool rec = weight_rec.numel() > 0;
  const Tensor V = rec ? acc_arg(weight_rec, x, acc, {N, N}, op, "weight_rec") : weight_rec;
  const Tensor ta = acc_arg(alpha, x, acc, {N}, op, "alpha"), tb = acc_arg(beta, x, acc, {N}, op,
                                                                           "beta");
  const Tensor taa = acc_arg(a, x, acc, {N}, op, "a"), tbb = acc_arg(b, x, acc, {N}, op, "b");
  const Tensor tt = acc_arg(threshold, x, acc, {N}, op, "threshold");
  const Tensor tu0 = acc_arg(u0, x, acc, {B, N}, op, "u0"), tw0 = acc_arg(w0, x, acc, {B, N}, op,
                                                                          "w0");
  const Tensor tz0 = acc_arg(z0, x, acc, {B, N}, op, "z0");
  const auto opt = x.options().dtype(acc);
  Tensor z = alloc_like(x, x.scalar_type());
  Tensor uT = alloc({B, N}, opt), wT = alloc({B, N}, opt), zT = alloc({B, N}, opt);
  Tensor ms = maybe_empty(save_m, {B, T, N}, opt);
  Tensor ws = maybe_empty(save_wd, {B, T, N}, opt), ds = maybe_empty(save_wd, {B, T, N}, opt);
  if (B * N == 0) return {z, uT, wT, zT, ms, ws, ds};
  TORCH_CHECK(x.device().is_cpu(), op, ": no kernel for device ", x.device());
  AdlifFwdArgs p{};
  p.B = B; p.T = T; p.N = N;
  p.x = mptr(x); p.x_sb = x.stride(0); p.x_st = x.stride(1);
  p.z = mptr(z); p.z_sb = z.stride(0); p.z_st = z.stride(1);
  p.w_rec = rec ? mptr(V) : nullptr;
  // 0 * inf = NaN as in the reference's dense product, and a given z_{-1} may be any value
  p.dense = rec && (!at::isfinite(V).all().item<bool>() ||
                    !tz0.eq(0).logical_or(tz0.eq(1)).all().item<bool>());
  p.alpha = mptr(ta); p.beta = mptr(tb); p.a = mptr(taa); p.b = mptr(tbb); p.thr = mptr(tt);
  p.u0 = mptr(tu0); p.w0 = mptr(tw0); p.z0 = mptr(tz0);
  p.uT = mptr(uT); p.wT = mptr(wT); p.zT = mptr(zT);
  p.m_saved = mptr(ms); p.w_saved = mptr(ws); p.d_saved = mptr(ds);
  const int64_t chunks = row_chunks(B);
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_bool(se, [&](auto kse) {
      dispatch_reset(static_cast<int>(reset), [&](auto r) {
        parallel_chunks(chunks, cpu_threads(), [&](int64_t c) {
          adlif_fwd_rows<io_t, acc_t, decltype(kse)::value, decltype(r)::value>(
              p, c * B / chunks, (c + 1) * B / chunks);
        });
      });
    });
  });
  return {z, uT, wT, zT, ms, ws, ds};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
adlif_bwd(const Tensor& grad_z_in, const Tensor& grad_uT, const Tensor& grad_wT,
          const Tensor& grad_zT, const Tensor& m_saved, const Tensor& w_saved,
          const Tensor& d_saved, const Tensor& u0, const Tensor& w0, const Tensor& z0,
          const Tensor& weight_rec, const Tensor& alpha, const Tensor& beta, const Tensor& a,
          const Tensor& b, const Tensor& threshold, bool se, int64_t reset, bool detach_reset,
          bool detach_recurrent, int64_t surrogate, double scale, bool param_grads,
          bool weight_grad) {
  constexpr const char* op = "fastsnn::adlif_bwd";
  check_btn(grad_z_in, op, "grad_z");
  check_reset(reset, op);
  TORCH_CHECK_VALUE(surrogate >= 0 && surrogate <= 5, op, ": surrogate code must be 0..5, got ",
                    surrogate);
  const IoType io = io_type_of(grad_z_in, op, "grad_z");
  const Tensor gz = unit_neuron_stride(grad_z_in);
  const int64_t B = gz.size(0), T = gz.size(1), N = gz.size(2);
  const auto acc = acc_dtype(io);
  const Tensor ms = acc_arg(m_saved, gz, acc, {B, T, N}, op, "m_saved");
  const bool has_wd = w_saved.dim() == 3 && d_saved.dim() == 3;
  const Tensor ws = has_wd ? acc_arg(w_saved, gz, acc, {B, T, N}, op, "w_saved") : w_saved;
  const Tensor ds = has_wd ? acc_arg(d_saved, gz, acc, {B, T, N}, op, "d_saved") : d_saved;
  const Tensor guT = acc_arg(grad_uT, gz, acc, {B, N}, op, "grad_uT");
  const Tensor gwT = acc_arg(grad_wT, gz, acc, {B, N}, op, "grad_wT");
  const Tensor gzT = acc_arg(grad_zT, gz, acc, {B, N}, op, "grad_zT");
  const Tensor tu0 = acc_arg(u0, gz, acc, {B, N}, op, "u0"), tw0 = acc_arg(w0, gz, acc, {B, N},
                                                                           op, "w0");
  const Tensor tz0 = acc_arg(z0, gz, acc, {B, N}, op, "z0");
  const bool rec = weight_rec.numel() > 0;
  const Tensor V = rec ? acc_arg(weight_rec, gz, acc, {N, N}, op, "weight_rec") : weight_rec;
  const Tensor ta = acc_arg(alpha, gz, acc, {N}, op, "alpha");
  const Tensor tb = acc_arg(beta, gz, acc, {N}, op, "beta");
  const Tensor taa = acc_arg(a, gz, acc, {N}, op, "a"), tbb = acc_arg(b, gz, acc, {N}, op, "b");
  const Tensor tt = acc_arg(threshold, gz, acc, {N}, op, "threshold");
  const auto opt = gz.options().dtype(acc);
  Tensor gx = alloc_like(gz, gz.scalar_type());
  Tensor gu0 = alloc({B, N}, opt), gw0 = alloc({B, N}, opt), gz0 = alloc({B, N}, opt);
  std::vector<Tensor> parts;
  for (int i = 0; i < 5; ++i) parts.push_back(maybe_empty(param_grads, {B, N}, opt));
  Tensor gV = at::zeros({(rec && weight_grad) ? N : 0, (rec && weight_grad) ? N : 0}, opt);
  if (B * N == 0) {
    return {gx, gu0, gw0, gz0, parts[0], parts[1], parts[2], parts[3], parts[4], gV};
  }
  TORCH_CHECK(gz.device().is_cpu(), op, ": no kernel for device ", gz.device());
  const Tensor Wt = rec ? V.t().contiguous() : V;
  AdlifBwdArgs p{};
  p.B = B; p.T = T; p.N = N;
  p.gz = mptr(gz); p.gz_sb = gz.stride(0); p.gz_st = gz.stride(1);
  p.gx = mptr(gx); p.gx_sb = gx.stride(0); p.gx_st = gx.stride(1);
  p.guT = mptr(guT); p.gwT = mptr(gwT); p.gzT = mptr(gzT);
  p.m_saved = mptr(ms); p.w_saved = has_wd ? mptr(ws) : nullptr;
  p.d_saved = has_wd ? mptr(ds) : nullptr;
  p.u0 = mptr(tu0); p.w0 = mptr(tw0); p.z0 = mptr(tz0);
  p.wt = rec ? mptr(Wt) : nullptr;
  p.recurrent_grad = rec && !detach_recurrent;
  p.alpha = mptr(ta); p.beta = mptr(tb); p.a = mptr(taa); p.b = mptr(tbb); p.thr = mptr(tt);
  p.scale = scale;
  p.gu0 = mptr(gu0); p.gw0 = mptr(gw0); p.gz0 = mptr(gz0);
  p.ga = mptr(parts[0]); p.gb = mptr(parts[1]); p.gaa = mptr(parts[2]); p.gbb = mptr(parts[3]);
  p.gt = mptr(parts[4]);
  const int64_t chunks = row_chunks(B);
  const bool want_gv = rec && weight_grad;
  // each chunk's dV partial; the first is gV itself, the others are summed into it in order
  std::vector<Tensor> gv_parts;
  if (want_gv) {
    gv_parts.push_back(gV);
    for (int64_t c = 1; c < chunks; ++c) gv_parts.push_back(at::zeros({N, N}, opt));
  }
  const bool detach = detach_reset || reset == 2;
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_bool(se, [&](auto kse) {
      dispatch_reset(static_cast<int>(reset), [&](auto r) {
        dispatch_surrogate(static_cast<int>(surrogate), [&](auto sg) {
          dispatch_bool(detach, [&](auto kd) {
            auto go = [&](auto kp, auto kdec) {
              parallel_chunks(chunks, cpu_threads(), [&](int64_t c) {
                acc_t* part = want_gv ? gv_parts[c].data_ptr<acc_t>() : nullptr;
                adlif_bwd_rows<io_t, acc_t, decltype(kse)::value, decltype(r)::value,
                               decltype(sg)::value, decltype(kd)::value, decltype(kp)::value,
                               decltype(kdec)::value>(p, c * B / chunks, (c + 1) * B / chunks,
                                                      part);
              });
            };
            if (!param_grads) {
              go(std::false_type{}, std::false_type{});
            } else {
              dispatch_bool(has_wd, [&](auto kdec) { go(std::true_type{}, kdec); });
            }
          });
        });
      });
    });
  });
  for (int64_t c = 1; c < static_cast<int64_t>(gv_parts.size()); ++c) gV.add_(gv_parts[c]);
  return {gx, gu0, gw0, gz0, parts[0], parts[1], parts[2], parts[3], parts[4], gV};
}

}  // namespace

// The op's schemas (csrc/ops.cpp defines the library). Absent optional inputs and outputs are
// empty (0,) tensors. se: the symplectic Euler variant (else Euler forward); save_wd: keep w_t
// and d_t = X_t + R_t - w_{t-1}, which the alpha / beta partials read.
TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  m.def(
      "adlif_fwd(Tensor x, Tensor weight_rec, Tensor alpha, Tensor beta, Tensor a, Tensor b, "
      "Tensor threshold, Tensor u0, Tensor w0, Tensor z0, bool se, int reset, bool save_m, "
      "bool save_wd) -> (Tensor z, Tensor u_T, Tensor w_T, Tensor z_T, Tensor m_saved, "
      "Tensor w_saved, Tensor d_saved)");
  m.def(
      "adlif_bwd(Tensor grad_z, Tensor grad_uT, Tensor grad_wT, Tensor grad_zT, "
      "Tensor m_saved, Tensor w_saved, Tensor d_saved, Tensor u0, Tensor w0, Tensor z0, "
      "Tensor weight_rec, Tensor alpha, Tensor beta, Tensor a, Tensor b, Tensor threshold, "
      "bool se, int reset, bool detach_reset, bool detach_recurrent, int surrogate, "
      "float scale, bool param_grads, bool weight_grad) -> (Tensor grad_x, Tensor grad_u0, "
      "Tensor grad_w0, Tensor grad_z0, Tensor grad_alpha, Tensor grad_beta, Tensor grad_a, "
      "Tensor grad_b, Tensor grad_threshold, Tensor grad_weight_rec)");
}

TORCH_LIBRARY_IMPL(fastsnn, CPU, m) {
  m.impl("adlif_fwd", &adlif_fwd);
  m.impl("adlif_bwd", &adlif_bwd);
}

}  // namespace fastsnn
