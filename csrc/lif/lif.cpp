// Host entry points of fastsnn::lif_fwd / lif_bwd: check, allocate, fill the Params block,
// launch on the tensors' device. Registered for CPU here and for CUDA when built with it.
#include "lif_host.h"

namespace fastsnn {

using at::Tensor;

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lif_fwd(
    const Tensor& x_in, const Tensor& alpha, const Tensor& beta, const Tensor& threshold,
    const Tensor& i0, const Tensor& u0, int64_t reset, bool normalize_input, bool save_u,
    bool save_i) {
  constexpr const char* op = "fastsnn::lif_fwd";
  const LifFwdCall c = prepare_lif_fwd(op, x_in, alpha, beta, threshold, i0, u0, reset,
                                       normalize_input, save_u, save_i);
  if (c.empty()) return c.outputs();
  launch_on(c.x, op, [&] { lif_fwd_cpu(c.p, c.io); },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              lif_fwd_cuda(c.p, c.io, stream);
#else
              (void)stream;
#endif
            });
  return c.outputs();
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lif_bwd(
    const Tensor& grad_s_in, const Tensor& grad_iT, const Tensor& grad_uT, const Tensor& u_saved,
    const Tensor& i_saved, const Tensor& i0, const Tensor& u0, const Tensor& alpha,
    const Tensor& beta, const Tensor& threshold, int64_t reset, bool detach_reset,
    int64_t surrogate, double scale, bool normalize_input, bool param_grads) {
  constexpr const char* op = "fastsnn::lif_bwd";
  const LifBwdCall c = prepare_lif_bwd(op, grad_s_in, grad_iT, grad_uT, u_saved, i_saved, i0,
                                       u0, alpha, beta, threshold, reset, detach_reset,
                                       surrogate, scale, normalize_input, param_grads);
  if (!c.empty()) {
    launch_on(c.gs, op, [&] { lif_bwd_cpu(c.p, c.io); },
              [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
                lif_bwd_cuda(c.p, c.io, stream);
#else
                (void)stream;
#endif
              });
  }
  return {c.gx, c.gi0, c.gu0, c.ga, c.gb, c.gt};
}

// The op's schemas (csrc/ops.cpp defines the library). Absent optional outputs are empty
// (0,) tensors, so every schema returns plain Tensors.
TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  m.def(
      "lif_fwd(Tensor x, Tensor alpha, Tensor beta, Tensor threshold, Tensor i0, Tensor u0, "
      "int reset, bool normalize_input, bool save_u, bool save_i) "
      "-> (Tensor s, Tensor i_T, Tensor u_T, Tensor u_saved, Tensor i_saved)");
  m.def(
      "lif_bwd(Tensor grad_s, Tensor grad_iT, Tensor grad_uT, Tensor u_saved, Tensor i_saved, "
      "Tensor i0, Tensor u0, Tensor alpha, Tensor beta, Tensor threshold, int reset, "
      "bool detach_reset, int surrogate, float scale, bool normalize_input, bool param_grads) "
      "-> (Tensor grad_x, Tensor grad_i0, Tensor grad_u0, Tensor grad_alpha, Tensor grad_beta, "
      "Tensor grad_threshold)");
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
