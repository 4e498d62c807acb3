// Host entry points of fastsnn::li_fwd / li_bwd (see csrc/lif/lif.cpp for the pattern).
#include "../common/host.h"

namespace fastsnn {

using at::Tensor;

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> li_fwd(const Tensor& x_in, const Tensor& alpha,
                                                          const Tensor& beta, const Tensor& i0,
                                                          const Tensor& u0, bool normalize_input,
                                                          bool save_state) {
  constexpr const char* op = "fastsnn::li_fwd";
  check_btn(x_in, op, "x");
  const IoType io = io_type_of(x_in, op, "x");
  const Tensor x = unit_neuron_stride(x_in);
  const int64_t B = x.size(0), T = x.size(1), N = x.size(2);
  const auto acc = acc_dtype(io);
  const Tensor a = acc_arg(alpha, x, acc, {N}, op, "alpha");
  const Tensor b = acc_arg(beta, x, acc, {N}, op, "beta");
  const Tensor i0c = acc_arg(i0, x, acc, {B, N}, op, "i0");
  const Tensor u0c = acc_arg(u0, x, acc, {B, N}, op, "u0");

  const auto opt = x.options().dtype(acc);
  Tensor u = alloc_like(x, x.scalar_type());
  Tensor iT = alloc({B, N}, opt), uT = alloc({B, N}, opt);
  Tensor i_saved = maybe_empty(save_state, {B, T, N}, opt);
  Tensor u_saved = maybe_empty(save_state, {B, T, N}, opt);
  if (B * N == 0) return {u, iT, uT, i_saved, u_saved};

  LifFwdParams p{};  // li's use of the lif blocks: common/params.h
  p.B = B; p.T = T; p.N = N;
  p.x = x.data_ptr(); p.x_sb = x.stride(0); p.x_st = x.stride(1);
  p.s = u.data_ptr(); p.s_sb = u.stride(0); p.s_st = u.stride(1);
  p.alpha = a.data_ptr(); p.beta = b.data_ptr(); p.thr = nullptr;
  p.reset = 2;  // Reset::None
  p.i0 = i0c.data_ptr(); p.u0 = u0c.data_ptr();
  p.iT = iT.data_ptr(); p.uT = uT.data_ptr();
  p.i_saved = save_state ? mptr(i_saved) : nullptr;
  p.u_saved = save_state ? mptr(u_saved) : nullptr;
  p.normalize_input = normalize_input;
  launch_on(x, op, [&] { li_fwd_cpu(p, io); },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              li_fwd_cuda(p, io, stream);
#else
              (void)stream;
#endif
            });
  return {u, iT, uT, i_saved, u_saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> li_bwd(
    const Tensor& grad_u_in, const Tensor& grad_iT, const Tensor& grad_uT, const Tensor& i_saved,
    const Tensor& u_saved, const Tensor& i0, const Tensor& u0, const Tensor& alpha,
    const Tensor& beta, bool normalize_input, bool param_grads) {
  constexpr const char* op = "fastsnn::li_bwd";
  check_btn(grad_u_in, op, "grad_u");
  const IoType io = io_type_of(grad_u_in, op, "grad_u");
  const Tensor gu_seq = unit_neuron_stride(grad_u_in);
  const int64_t B = gu_seq.size(0), T = gu_seq.size(1), N = gu_seq.size(2);
  const auto acc = acc_dtype(io);
  Tensor is = i_saved, us = u_saved;
  if (param_grads) {
    is = acc_arg(i_saved, gu_seq, acc, {B, T, N}, op, "i_saved");
    us = acc_arg(u_saved, gu_seq, acc, {B, T, N}, op, "u_saved");
  }
  const Tensor gi = acc_arg(grad_iT, gu_seq, acc, {B, N}, op, "grad_iT");
  const Tensor gu = acc_arg(grad_uT, gu_seq, acc, {B, N}, op, "grad_uT");
  const Tensor i0c = acc_arg(i0, gu_seq, acc, {B, N}, op, "i0");
  const Tensor u0c = acc_arg(u0, gu_seq, acc, {B, N}, op, "u0");
  const Tensor a = acc_arg(alpha, gu_seq, acc, {N}, op, "alpha");
  const Tensor b = acc_arg(beta, gu_seq, acc, {N}, op, "beta");

  const auto opt = gu_seq.options().dtype(acc);
  Tensor gx = alloc_like(gu_seq, gu_seq.scalar_type());
  Tensor gi0 = alloc({B, N}, opt), gu0 = alloc({B, N}, opt);
  Tensor ga = maybe_empty(param_grads, {B, N}, opt);
  Tensor gb = maybe_empty(param_grads, {B, N}, opt);
  if (B * N == 0) return {gx, gi0, gu0, ga, gb};

  LifBwdParams p{};  // li's use of the lif blocks: common/params.h
  p.B = B; p.T = T; p.N = N;
  p.gs = gu_seq.data_ptr(); p.gs_sb = gu_seq.stride(0); p.gs_st = gu_seq.stride(1);
  p.gx = gx.data_ptr(); p.gx_sb = gx.stride(0); p.gx_st = gx.stride(1);
  p.giT = gi.data_ptr(); p.guT = gu.data_ptr();
  p.i_saved = param_grads ? mptr(is) : nullptr;
  p.u_saved = param_grads ? mptr(us) : nullptr;
  p.i0 = i0c.data_ptr(); p.u0 = u0c.data_ptr();
  p.alpha = a.data_ptr(); p.beta = b.data_ptr(); p.thr = nullptr;
  p.gi0 = gi0.data_ptr(); p.gu0 = gu0.data_ptr();
  p.galpha = mptr(ga); p.gbeta = mptr(gb); p.gthr = nullptr;
  p.reset = 2; p.detach_reset = true;  // Reset::None
  p.normalize_input = normalize_input;
  launch_on(gu_seq, op, [&] { li_bwd_cpu(p, io); },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              li_bwd_cuda(p, io, stream);
#else
              (void)stream;
#endif
            });
  return {gx, gi0, gu0, ga, gb};
}

// The op's schemas (csrc/ops.cpp defines the library). Absent optional outputs are empty
// (0,) tensors, so every schema returns plain Tensors.
TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  m.def(
      "li_fwd(Tensor x, Tensor alpha, Tensor beta, Tensor i0, Tensor u0, bool normalize_input, "
      "bool save_state) -> (Tensor u, Tensor i_T, Tensor u_T, Tensor i_saved, Tensor u_saved)");
  m.def(
      "li_bwd(Tensor grad_u, Tensor grad_iT, Tensor grad_uT, Tensor i_saved, Tensor u_saved, "
      "Tensor i0, Tensor u0, Tensor alpha, Tensor beta, bool normalize_input, bool param_grads) "
      "-> (Tensor grad_x, Tensor grad_i0, Tensor grad_u0, Tensor grad_alpha, Tensor grad_beta)");
}

TORCH_LIBRARY_IMPL(fastsnn, CPU, m) {
  m.impl("li_fwd", &li_fwd);
  m.impl("li_bwd", &li_bwd);
}

#ifdef FASTSNN_WITH_CUDA
TORCH_LIBRARY_IMPL(fastsnn, CUDA, m) {
  m.impl("li_fwd", &li_fwd);
  m.impl("li_bwd", &li_bwd);
}
#endif

}  // namespace fastsnn
