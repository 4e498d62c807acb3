// Host entry points of fastsnn::lif_fwd / lif_bwd: check, allocate, fill the Params block,
// launch on the tensors' device. Registered for CPU here and for CUDA when built with it.
#include "../common/host.h"

namespace fastsnn {

using at::Tensor;

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lif_fwd(
    const Tensor& x_in, const Tensor& alpha, const Tensor& beta, const Tensor& threshold,
    const Tensor& i0, const Tensor& u0, int64_t reset, bool normalize_input, bool save_u,
    bool save_i) {
  constexpr const char* op = "fastsnn::lif_fwd";
  check_btn(x_in, op, "x");
  const IoType io = io_type_of(x_in, op, "x");
  TORCH_CHECK_VALUE(reset >= 0 && reset <= 2, op, ": reset code must be 0, 1 or 2, got ", reset);
  const Tensor x = unit_neuron_stride(x_in);
  const int64_t B = x.size(0), T = x.size(1), N = x.size(2);
  const auto acc = acc_dtype(io);
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

  LifFwdParams p{};
  p.B = B; p.T = T; p.N = N;
  p.x = x.data_ptr(); p.x_sb = x.stride(0); p.x_st = x.stride(1);
  p.s = s.data_ptr(); p.s_sb = s.stride(0); p.s_st = s.stride(1);
  p.alpha = a.data_ptr(); p.beta = b.data_ptr(); p.thr = th.data_ptr();
  p.i0 = i0c.data_ptr(); p.u0 = u0c.data_ptr();
  p.iT = iT.data_ptr(); p.uT = uT.data_ptr();
  p.u_saved = mptr(u_saved); p.i_saved = mptr(i_saved);
  p.reset = static_cast<int>(reset);
  p.normalize_input = normalize_input;
  launch_on(x, op, [&] { lif_fwd_cpu(p, io); },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              lif_fwd_cuda(p, io, stream);
#else
              (void)stream;
#endif
            });
  return {s, iT, uT, u_saved, i_saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lif_bwd(
    const Tensor& grad_s_in, const Tensor& grad_iT, const Tensor& grad_uT, const Tensor& u_saved,
    const Tensor& i_saved, const Tensor& i0, const Tensor& u0, const Tensor& alpha,
    const Tensor& beta, const Tensor& threshold, int64_t reset, bool detach_reset,
    int64_t surrogate, double scale, bool normalize_input, bool param_grads) {
  constexpr const char* op = "fastsnn::lif_bwd";
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
  const Tensor a = acc_arg(alpha, gs, acc, {N}, op, "alpha");
  const Tensor b = acc_arg(beta, gs, acc, {N}, op, "beta");
  const Tensor th = acc_arg(threshold, gs, acc, {N}, op, "threshold");

  const auto opt = gs.options().dtype(acc);
  Tensor gx = alloc_like(gs, gs.scalar_type());
  Tensor gi0 = alloc({B, N}, opt), gu0 = alloc({B, N}, opt);
  Tensor ga = maybe_empty(param_grads, {B, N}, opt);
  Tensor gb = maybe_empty(param_grads, {B, N}, opt);
  Tensor gt = maybe_empty(param_grads, {B, N}, opt);
  if (B * N == 0) return {gx, gi0, gu0, ga, gb, gt};

  LifBwdParams p{};
  p.B = B; p.T = T; p.N = N;
  p.gs = gs.data_ptr(); p.gs_sb = gs.stride(0); p.gs_st = gs.stride(1);
  p.gx = gx.data_ptr(); p.gx_sb = gx.stride(0); p.gx_st = gx.stride(1);
  p.giT = gi.data_ptr(); p.guT = gu.data_ptr();
  p.u_saved = mptr(us);
  p.i_saved = need_i ? mptr(is) : nullptr;
  p.i0 = i0c.data_ptr(); p.u0 = u0c.data_ptr();
  p.alpha = a.data_ptr(); p.beta = b.data_ptr(); p.thr = th.data_ptr();
  p.gi0 = gi0.data_ptr(); p.gu0 = gu0.data_ptr();
  p.galpha = mptr(ga); p.gbeta = mptr(gb); p.gthr = mptr(gt);
  p.reset = static_cast<int>(reset);
  p.surrogate = static_cast<int>(surrogate);
  p.detach_reset = detach_reset;
  p.normalize_input = normalize_input;
  p.scale = scale;
  launch_on(gs, op, [&] { lif_bwd_cpu(p, io); },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              lif_bwd_cuda(p, io, stream);
#else
              (void)stream;
#endif
            });
  return {gx, gi0, gu0, ga, gb, gt};
}

TORCH_LIBRARY_IMPL(fastsnn, CPU, m) {
  m.impl("lif_fwd", &lif_fwd);
  m.impl("lif_bwd", &lif_bwd);
}

#ifdef FASTSNN_WITH_CUDA
TORCH_LIBRARY_IMPL(fastsnn, CUDA, m) {
  m.impl("lif_fwd", &lif_fwd);
  m.impl("lif_bwd", &lif_bwd);
}
#endif

}  // namespace fastsnn
