// What the lif and rlif host entry points share: checking the lif arguments, allocating the
// outputs and filling the lif Params block. rlif adds V on top (csrc/rlif/rlif.cpp).
#pragma once

#include "../common/host.h"

namespace fastsnn {

// A checked forward call: the inputs as the kernels read them, the outputs, the Params block
// (pointing into both, so the struct keeps them alive until the launch).
struct LifFwdCall {
  at::Tensor x, a, b, th, i0, u0;
  at::Tensor s, iT, uT, u_saved, i_saved;
  IoType io;
  LifFwdParams p{};
  int64_t N() const { return p.N; }
  bool empty() const { return p.B * p.N == 0; }
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> outputs() const {
    return {s, iT, uT, u_saved, i_saved};
  }
};

inline LifFwdCall prepare_lif_fwd(const char* op, const at::Tensor& x_in, const at::Tensor& alpha,
                                  const at::Tensor& beta, const at::Tensor& threshold,
                                  const at::Tensor& i0, const at::Tensor& u0, int64_t reset,
                                  bool normalize_input, bool save_u, bool save_i) {
  LifFwdCall c;
  check_btn(x_in, op, "x");
  c.io = io_type_of(x_in, op, "x");
  TORCH_CHECK_VALUE(reset >= 0 && reset <= 2, op, ": reset code must be 0, 1 or 2, got ", reset);
  c.x = unit_neuron_stride(x_in);
  const int64_t B = c.x.size(0), T = c.x.size(1), N = c.x.size(2);
  const auto acc = acc_dtype(c.io);
  c.a = acc_arg(alpha, c.x, acc, {N}, op, "alpha");
  c.b = acc_arg(beta, c.x, acc, {N}, op, "beta");
  c.th = acc_arg(threshold, c.x, acc, {N}, op, "threshold");
  c.i0 = acc_arg(i0, c.x, acc, {B, N}, op, "i0");
  c.u0 = acc_arg(u0, c.x, acc, {B, N}, op, "u0");

  const auto opt = c.x.options().dtype(acc);
  c.s = alloc_like(c.x, c.x.scalar_type());
  c.iT = alloc({B, N}, opt);
  c.uT = alloc({B, N}, opt);
  c.u_saved = maybe_empty(save_u, {B, T, N}, opt);
  c.i_saved = maybe_empty(save_i, {B, T, N}, opt);

  LifFwdParams& p = c.p;
  p.B = B; p.T = T; p.N = N;
  p.x = mptr(c.x); p.x_sb = c.x.stride(0); p.x_st = c.x.stride(1);
  p.s = mptr(c.s); p.s_sb = c.s.stride(0); p.s_st = c.s.stride(1);
  p.alpha = mptr(c.a); p.beta = mptr(c.b); p.thr = mptr(c.th);
  p.i0 = mptr(c.i0); p.u0 = mptr(c.u0);
  p.iT = mptr(c.iT); p.uT = mptr(c.uT);
  p.u_saved = mptr(c.u_saved); p.i_saved = mptr(c.i_saved);
  p.reset = static_cast<int>(reset);
  p.normalize_input = normalize_input;
  return c;
}

// A checked backward call, as LifFwdCall.
struct LifBwdCall {
  at::Tensor gs, us, is, gi, gu, i0, u0, a, b, th;
  at::Tensor gx, gi0, gu0, ga, gb, gt;
  IoType io;
  LifBwdParams p{};
  bool empty() const { return p.B * p.N == 0; }
};

inline LifBwdCall prepare_lif_bwd(const char* op, const at::Tensor& grad_s_in,
                                  const at::Tensor& grad_iT, const at::Tensor& grad_uT,
                                  const at::Tensor& u_saved, const at::Tensor& i_saved,
                                  const at::Tensor& i0, const at::Tensor& u0,
                                  const at::Tensor& alpha, const at::Tensor& beta,
                                  const at::Tensor& threshold, int64_t reset, bool detach_reset,
                                  int64_t surrogate, double scale, bool normalize_input,
                                  bool param_grads) {
  LifBwdCall c;
  check_btn(grad_s_in, op, "grad_s");
  c.io = io_type_of(grad_s_in, op, "grad_s");
  TORCH_CHECK_VALUE(reset >= 0 && reset <= 2, op, ": reset code must be 0, 1 or 2, got ", reset);
  TORCH_CHECK_VALUE(surrogate >= 0 && surrogate <= 5, op,
                    ": surrogate code must be in [0, 5], got ", surrogate);
  c.gs = unit_neuron_stride(grad_s_in);
  const int64_t B = c.gs.size(0), T = c.gs.size(1), N = c.gs.size(2);
  const auto acc = acc_dtype(c.io);
  c.us = acc_arg(u_saved, c.gs, acc, {B, T, N}, op, "u_saved");
  const bool has_i = i_saved.dim() == 3;  // absent tensors are passed as empty({0})
  // I_t is needed for the undetached zero reset; for the parameter partials it is read when
  // given (alpha and beta need it; without it only grad_threshold is meaningful, SPEC section 4)
  TORCH_CHECK_VALUE(has_i || !(reset == 0 && !detach_reset), op,
                    ": i_saved is required for the undetached zero reset");
  const bool need_i = has_i && (param_grads || (reset == 0 && !detach_reset));
  c.is = has_i ? acc_arg(i_saved, c.gs, acc, {B, T, N}, op, "i_saved") : i_saved;
  c.gi = acc_arg(grad_iT, c.gs, acc, {B, N}, op, "grad_iT");
  c.gu = acc_arg(grad_uT, c.gs, acc, {B, N}, op, "grad_uT");
  c.i0 = acc_arg(i0, c.gs, acc, {B, N}, op, "i0");
  c.u0 = acc_arg(u0, c.gs, acc, {B, N}, op, "u0");
  c.a = acc_arg(alpha, c.gs, acc, {N}, op, "alpha");
  c.b = acc_arg(beta, c.gs, acc, {N}, op, "beta");
  c.th = acc_arg(threshold, c.gs, acc, {N}, op, "threshold");

  const auto opt = c.gs.options().dtype(acc);
  c.gx = alloc_like(c.gs, c.gs.scalar_type());
  c.gi0 = alloc({B, N}, opt);
  c.gu0 = alloc({B, N}, opt);
  c.ga = maybe_empty(param_grads, {B, N}, opt);
  c.gb = maybe_empty(param_grads, {B, N}, opt);
  c.gt = maybe_empty(param_grads, {B, N}, opt);

  LifBwdParams& p = c.p;
  p.B = B; p.T = T; p.N = N;
  p.gs = mptr(c.gs); p.gs_sb = c.gs.stride(0); p.gs_st = c.gs.stride(1);
  p.gx = mptr(c.gx); p.gx_sb = c.gx.stride(0); p.gx_st = c.gx.stride(1);
  p.giT = mptr(c.gi); p.guT = mptr(c.gu);
  p.u_saved = mptr(c.us);
  p.i_saved = need_i ? mptr(c.is) : nullptr;
  p.i0 = mptr(c.i0); p.u0 = mptr(c.u0);
  p.alpha = mptr(c.a); p.beta = mptr(c.b); p.thr = mptr(c.th);
  p.gi0 = mptr(c.gi0); p.gu0 = mptr(c.gu0);
  p.galpha = mptr(c.ga); p.gbeta = mptr(c.gb); p.gthr = mptr(c.gt);
  p.reset = static_cast<int>(reset);
  p.surrogate = static_cast<int>(surrogate);
  p.detach_reset = detach_reset;
  p.normalize_input = normalize_input;
  p.scale = scale;
  return c;
}

}  // namespace fastsnn
