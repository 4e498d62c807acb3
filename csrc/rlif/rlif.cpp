// Host entry points of fastsnn::rlif_fwd / rlif_bwd (the pattern of csrc/lif/lif.cpp): check,
// allocate, fill the Params block, launch on the tensors' device.
#include <atomic>

#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>

#include "../lif/lif_host.h"

#ifdef FASTSNN_WITH_CUDA
#include <ATen/ops/cat.h>
#include <ATen/ops/gt.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sub.h>
#endif

namespace fastsnn {

using at::Tensor;

// torch.ops.fastsnn.set_rlif_dense(True) makes the CPU forward form R_t with the dense product
// for finite V too, the path non-finite V takes: tests check that path's arithmetic on finite
// weights, and benchmarks/rlif_cpu_product.py times it against the gather.
static std::atomic<bool> g_force_dense{false};

static void set_rlif_dense(bool on) { g_force_dense.store(on, std::memory_order_relaxed); }

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rlif_fwd(
    const Tensor& x_in, const Tensor& weight_rec, const Tensor& alpha, const Tensor& beta,
    const Tensor& threshold, const Tensor& i0, const Tensor& u0, int64_t reset,
    bool normalize_input, bool save_u, bool save_i) {
  constexpr const char* op = "fastsnn::rlif_fwd";
  const LifFwdCall c = prepare_lif_fwd(op, x_in, alpha, beta, threshold, i0, u0, reset,
                                       normalize_input, save_u, save_i);
  const int64_t N = c.N();
  const Tensor w = acc_arg(weight_rec, c.x, acc_dtype(c.io), {N, N}, op, "weight_rec");
  if (c.empty()) return c.outputs();
  RlifFwdParams p{};
  p.lif = c.p;
  p.w = w.data_ptr();
  // With inf/NaN in V, R_t must include 0 * V[j, :] for the neurons j that did not spike (the
  // reference's dense product gives NaN there), which the gather over the spikes skips: the
  // kernels then form R_t over every neuron (RlifFwdParams::dense_product). The check is O(N²),
  // against the scan's O(B·T·N) at least.
  launch_on(c.x, op, [&] {
    p.dense_product = g_force_dense.load(std::memory_order_relaxed) ||
                      !at::isfinite(w).all().item<bool>();  // CPU tensor: no sync
    rlif_fwd_cpu(p, c.io);
  },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              // The flag stays on the device (computed on the current stream, read by the
              // kernel): no host sync.
              const Tensor finite = at::isfinite(w).all();
              p.dense_product = false;
              p.w_finite = finite.data_ptr<bool>();
              rlif_fwd_cuda(p, c.io, stream);
#else
              (void)stream;
#endif
            });
  return c.outputs();
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> rlif_bwd(
    const Tensor& grad_s_in, const Tensor& grad_iT, const Tensor& grad_uT, const Tensor& u_saved,
    const Tensor& i_saved, const Tensor& i0, const Tensor& u0, const Tensor& weight_rec,
    const Tensor& alpha, const Tensor& beta, const Tensor& threshold, int64_t reset,
    bool detach_reset, bool detach_recurrent, int64_t surrogate, double scale,
    bool normalize_input, bool param_grads, bool weight_grad) {
  constexpr const char* op = "fastsnn::rlif_bwd";
  const LifBwdCall c = prepare_lif_bwd(op, grad_s_in, grad_iT, grad_uT, u_saved, i_saved, i0,
                                       u0, alpha, beta, threshold, reset, detach_reset,
                                       surrogate, scale, normalize_input, param_grads);
  const int64_t B = c.p.B, T = c.p.T, N = c.p.N;
  const auto acc = acc_dtype(c.io);
  const Tensor w = acc_arg(weight_rec, c.gs, acc, {N, N}, op, "weight_rec");
  const auto opt = c.gs.options().dtype(acc);
  Tensor gw = maybe_empty(weight_grad, {N, N}, opt);
  if (c.empty()) {
    if (weight_grad) gw.zero_();
    return {c.gx, c.gi0, c.gu0, c.ga, c.gb, c.gt, gw};
  }
  const Tensor wt = w.t().contiguous();

  RlifBwdParams p{};
  p.lif = c.p;
  p.wt = wt.data_ptr();
  p.detach_recurrent = detach_recurrent;
  launch_on(c.gs, op, [&] {
    p.gw = mptr(gw);  // the CPU kernels accumulate dV inside the scan
    rlif_bwd_cpu(p, c.io);
  },
            [&](void* stream) {
#ifdef FASTSNN_WITH_CUDA
              // dV = S_prevᵀ @ gI, one product after the scan, from dL/dI in the acc dtype.
              const bool narrow = c.io != IoType::F64 && c.io != IoType::F32;
              Tensor gi_acc = maybe_empty(weight_grad && narrow, {B, T, N}, opt);
              p.gi_acc = mptr(gi_acc);
              const int64_t ws = rlif_bwd_cuda_workspace(p, c.io);
              Tensor workspace = at::empty({ws}, c.gs.options().dtype(at::kByte));
              p.workspace = ws > 0 ? workspace.data_ptr() : nullptr;
              rlif_bwd_cuda(p, c.io, stream);
              if (weight_grad && T == 0) {
                gw.zero_();
              } else if (weight_grad) {
                const Tensor u_prev = at::cat({c.u0.unsqueeze(1), c.us.narrow(1, 0, T - 1)}, 1);
                const Tensor s_prev = at::gt(at::sub(u_prev, c.th), 0).to(acc);
                const Tensor g = narrow ? gi_acc : c.gx.to(acc);
                at::mm_out(gw, s_prev.reshape({B * T, N}).t(), g.reshape({B * T, N}));
              }
#else
              (void)stream;
              (void)B;
              (void)T;
#endif
            });
  return {c.gx, c.gi0, c.gu0, c.ga, c.gb, c.gt, gw};
}

// The op's schemas (csrc/ops.cpp defines the library). Absent optional outputs are empty
// (0,) tensors, so every schema returns plain Tensors.
TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  m.def("set_rlif_dense(bool on) -> ()", &set_rlif_dense);
  m.def(
      "rlif_fwd(Tensor x, Tensor weight_rec, Tensor alpha, Tensor beta, Tensor threshold, "
      "Tensor i0, Tensor u0, int reset, bool normalize_input, bool save_u, bool save_i) "
      "-> (Tensor s, Tensor i_T, Tensor u_T, Tensor u_saved, Tensor i_saved)");
  m.def(
      "rlif_bwd(Tensor grad_s, Tensor grad_iT, Tensor grad_uT, Tensor u_saved, Tensor i_saved, "
      "Tensor i0, Tensor u0, Tensor weight_rec, Tensor alpha, Tensor beta, Tensor threshold, "
      "int reset, bool detach_reset, bool detach_recurrent, int surrogate, float scale, "
      "bool normalize_input, bool param_grads, bool weight_grad) "
      "-> (Tensor grad_x, Tensor grad_i0, Tensor grad_u0, Tensor grad_alpha, Tensor grad_beta, "
      "Tensor grad_threshold, Tensor grad_weight_rec)");
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
