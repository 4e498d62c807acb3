// Host entry points of fastsnn::rlif_fwd / rlif_bwd (the pattern of csrc/lif/lif.cpp): check,
// allocate, fill the Params block, launch on the tensors' device.
#include <cstdlib>
#include <string>

#include "../common/host.h"

#ifdef FASTSNN_WITH_CUDA
#include <ATen/ops/cat.h>
#include <ATen/ops/gt.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sub.h>
#endif

namespace fastsnn {

using at::Tensor;

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rlif_fwd(
    const Tensor& x_in, const Tensor& weight_rec, const Tensor& alpha, const Tensor& beta,
    const Tensor& threshold, const Tensor& i0, const Tensor& u0, int64_t reset,
    bool normalize_input, bool save_u, bool save_i) {
  constexpr const char* op = "fastsnn::rlif_fwd";
  check_btn(x_in, op, "x");
  const IoType io = io_type_of(x_in, op, "x");
  TORCH_CHECK_VALUE(reset >= 0 && reset <= 2, op, ": reset code must be 0, 1 or 2, got ", reset);
  const Tensor x = unit_neuron_stride(x_in);
  const int64_t B = x.size(0), T = x.size(1), N = x.size(2);
  const auto acc = acc_dtype(io);
  const Tensor w = acc_arg(weight_rec, x, acc, {N, N}, op, "weight_rec");
  const Tensor a = acc_arg(alpha, x, acc, {N}, op, "alpha");
  const Tensor b = acc_arg(beta, x, acc, {N}, op, "beta");
  const Tensor th = acc_arg(threshold, x, acc, {N}, op, "threshold");
  const Tensor i0c = acc_arg(i0, x, acc, {B, N}, op, "i0");
  const Tensor u0c = acc_arg(u0, x, acc, {B, N}, op, "u0");

  const auto opt = x.options().dtype(acc);
  Tensor s = alloc_like(x, x.scalar_type());
  Tensor iT = alloc({B, N}, opt), uT = alloc({B, N}, opt);
  Tensor u_saved = maybe_empty(save_u, {B, T, N}, opt);
  Tensor i_saved = maybe_empty(save_i, {B, T, N}, opt);
  if (B * N == 0) return {s, iT, uT, u_saved, i_saved};

  RlifFwdParams p{};
  LifFwdParams& q = p.lif;
  q.B = B; q.T = T; q.N = N;
  q.x = x.data_ptr(); q.x_sb = x.stride(0); q.x_st = x.stride(1);
  q.s = s.data_ptr(); q.s_sb = s.stride(0); q.s_st = s.stride(1);
  q.alpha = a.data_ptr(); q.beta = b.data_ptr(); q.thr = th.data_ptr();
  q.i0 = i0c.data_ptr(); q.u0 = u0c.data_ptr();
  q.iT = iT.data_ptr(); q.uT = uT.data_ptr();
  q.u_saved = mptr(u_saved); q.i_saved = mptr(i_saved);
  q.reset = static_cast<int>(reset);
  q.normalize_input = normalize_input;
  p.w = w.data_ptr();
  const char* dense = std::getenv("FASTSNN_RLIF_DENSE");  // read per call: tests flip it
  p.dense_product = dense != nullptr && std::string(dense) == "1";
  launch_on(x, op, [&] { rlif_fwd_cpu(p, io); },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              rlif_fwd_cuda(p, io, stream);
#else
              (void)stream;
#endif
            });
  return {s, iT, uT, u_saved, i_saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> rlif_bwd(
    const Tensor& grad_s_in, const Tensor& grad_iT, const Tensor& grad_uT, const Tensor& u_saved,
    const Tensor& i_saved, const Tensor& i0, const Tensor& u0, const Tensor& weight_rec,
    const Tensor& alpha, const Tensor& beta, const Tensor& threshold, int64_t reset,
    bool detach_reset, bool detach_recurrent, int64_t surrogate, double scale,
    bool normalize_input, bool param_grads, bool weight_grad) {
  constexpr const char* op = "fastsnn::rlif_bwd";
  check_btn(grad_s_in, op, "grad_s");
  const IoType io = io_type_of(grad_s_in, op, "grad_s");
  TORCH_CHECK_VALUE(reset >= 0 && reset <= 2, op, ": reset code must be 0, 1 or 2, got ", reset);
  TORCH_CHECK_VALUE(surrogate >= 0 && surrogate <= 5, op,
                    ": surrogate code must be in [0, 5], got ", surrogate);
  const Tensor gs = unit_neuron_stride(grad_s_in);
  const int64_t B = gs.size(0), T = gs.size(1), N = gs.size(2);
  const auto acc = acc_dtype(io);
  const Tensor us = acc_arg(u_saved, gs, acc, {B, T, N}, op, "u_saved");
  const bool has_i = i_saved.dim() == 3;  // absent tensors are passed as empty({0})
  const bool need_i = param_grads || (reset == 0 && !detach_reset);
  TORCH_CHECK_VALUE(!need_i || has_i, op,
                    ": i_saved is required for parameter gradients and the undetached zero reset");
  const Tensor is = has_i ? acc_arg(i_saved, gs, acc, {B, T, N}, op, "i_saved") : i_saved;
  const Tensor gi = acc_arg(grad_iT, gs, acc, {B, N}, op, "grad_iT");
  const Tensor gu = acc_arg(grad_uT, gs, acc, {B, N}, op, "grad_uT");
  const Tensor i0c = acc_arg(i0, gs, acc, {B, N}, op, "i0");
  const Tensor u0c = acc_arg(u0, gs, acc, {B, N}, op, "u0");
  const Tensor w = acc_arg(weight_rec, gs, acc, {N, N}, op, "weight_rec");
  const Tensor a = acc_arg(alpha, gs, acc, {N}, op, "alpha");
  const Tensor b = acc_arg(beta, gs, acc, {N}, op, "beta");
  const Tensor th = acc_arg(threshold, gs, acc, {N}, op, "threshold");

  const auto opt = gs.options().dtype(acc);
  Tensor gx = alloc_like(gs, gs.scalar_type());
  Tensor gi0 = alloc({B, N}, opt), gu0 = alloc({B, N}, opt);
  Tensor ga = maybe_empty(param_grads, {B, N}, opt);
  Tensor gb = maybe_empty(param_grads, {B, N}, opt);
  Tensor gt = maybe_empty(param_grads, {B, N}, opt);
  Tensor gw = maybe_empty(weight_grad, {N, N}, opt);
  if (B * N == 0) {
    if (weight_grad) gw.zero_();
    return {gx, gi0, gu0, ga, gb, gt, gw};
  }
  const Tensor wt = w.t().contiguous();

  RlifBwdParams p{};
  LifBwdParams& q = p.lif;
  q.B = B; q.T = T; q.N = N;
  q.gs = gs.data_ptr(); q.gs_sb = gs.stride(0); q.gs_st = gs.stride(1);
  q.gx = gx.data_ptr(); q.gx_sb = gx.stride(0); q.gx_st = gx.stride(1);
  q.giT = gi.data_ptr(); q.guT = gu.data_ptr();
  q.u_saved = mptr(us);
  q.i_saved = need_i ? mptr(is) : nullptr;
  q.i0 = i0c.data_ptr(); q.u0 = u0c.data_ptr();
  q.alpha = a.data_ptr(); q.beta = b.data_ptr(); q.thr = th.data_ptr();
  q.gi0 = gi0.data_ptr(); q.gu0 = gu0.data_ptr();
  q.galpha = mptr(ga); q.gbeta = mptr(gb); q.gthr = mptr(gt);
  q.reset = static_cast<int>(reset);
  q.surrogate = static_cast<int>(surrogate);
  q.detach_reset = detach_reset;
  q.normalize_input = normalize_input;
  q.scale = scale;
  p.wt = wt.data_ptr();
  p.detach_recurrent = detach_recurrent;
  launch_on(gs, op, [&] {
    p.gw = mptr(gw);  // the CPU kernels accumulate dV inside the scan
    rlif_bwd_cpu(p, io);
  },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              // dV = S_prevᵀ @ gI, one product after the scan, from dL/dI in the acc dtype.
              const bool narrow = io != IoType::F64 && io != IoType::F32;
              Tensor gi_acc = maybe_empty(weight_grad && narrow, {B, T, N}, opt);
              p.gi_acc = mptr(gi_acc);
              const int64_t ws = rlif_bwd_cuda_workspace(p, io);
              Tensor workspace = at::empty({ws}, gs.options().dtype(at::kByte));
              p.workspace = ws > 0 ? workspace.data_ptr() : nullptr;
              rlif_bwd_cuda(p, io, stream);
              if (weight_grad && T == 0) {
                gw.zero_();
              } else if (weight_grad) {
                const Tensor u_prev = at::cat({u0c.unsqueeze(1), us.narrow(1, 0, T - 1)}, 1);
                const Tensor s_prev = at::gt(at::sub(u_prev, th), 0).to(acc);
                const Tensor g = narrow ? gi_acc : gx.to(acc);
                at::mm_out(gw, s_prev.reshape({B * T, N}).t(), g.reshape({B * T, N}));
              }
#else
              (void)stream;
#endif
            });
  return {gx, gi0, gu0, ga, gb, gt, gw};
}

TORCH_LIBRARY_IMPL(fastsnn, CPU, m) {
  m.impl("rlif_fwd", &rlif_fwd);
  m.impl("rlif_bwd", &rlif_bwd);
}

#ifdef FASTSNN_WITH_CUDA
TORCH_LIBRARY_IMPL(fastsnn, CUDA, m) {
  m.impl("rlif_fwd", &rlif_fwd);
  m.impl("rlif_bwd", &rlif_bwd);
}
#endif

}  // namespace fastsnn
