// Host entry points of fastsnn::spike_linear_fwd / spike_linear_bwd (CPU only): y = x @ wᵀ
// computed over the nonzero entries of x. fastsnn.spike_linear (Python) adds the bias and
// uses F.linear on other devices and dtypes.
#include <ATen/ops/mm.h>

#include "../common/host.h"

namespace fastsnn {

using at::Tensor;

namespace {

void check_args(const Tensor& x, const Tensor& weight, const char* op) {
  TORCH_CHECK(x.device().is_cpu(), op, ": x must be a CPU tensor, got ", x.device());
  TORCH_CHECK(weight.device().is_cpu(), op, ": weight must be a CPU tensor, got ",
              weight.device());
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
                   ": x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK_TYPE(weight.scalar_type() == x.scalar_type(), op, ": weight must have x's dtype ",
                   x.scalar_type(), ", got ", weight.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D (out_features, in_features), got ",
              weight.dim(), "-D");
  TORCH_CHECK(weight.size(1) == x.size(-1), op, ": weight is ", weight.sizes(),
              ", its in_features must equal x's last dimension ", x.size(-1));
}

// x as [R, K] rows with unit column stride (a view when x allows it).
Tensor rows_of(const Tensor& x) {
  const int64_t K = x.size(-1);
  Tensor x2 = x.reshape({-1, K});
  if (K > 1 && x2.stride(1) != 1) x2 = x2.contiguous();
  return x2;
}

}  // namespace

Tensor spike_linear_fwd(const Tensor& x, const Tensor& weight) {
  constexpr const char* op = "fastsnn::spike_linear_fwd";
  check_args(x, weight, op);
  const Tensor x2 = rows_of(x);
  const Tensor wt = weight.t().contiguous();
  const int64_t R = x2.size(0), K = x2.size(1), M = weight.size(0);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = M;
  Tensor y = alloc({R, M}, x.options());
  if (R > 0 && M > 0) {
    SpikeLinearParams p{};
    p.R = R; p.K = K; p.M = M;
    p.x = x2.data_ptr(); p.x_sr = x2.stride(0);
    p.wt = wt.data_ptr();
    p.y = y.data_ptr();
    spike_linear_fwd_cpu(p, io_type_of(x, op, "x"));
  }
  return y.view(shape);
}

std::tuple<Tensor, Tensor> spike_linear_bwd(const Tensor& grad_y, const Tensor& x,
                                            const Tensor& weight, bool input_grad,
                                            bool weight_grad) {
  constexpr const char* op = "fastsnn::spike_linear_bwd";
  check_args(x, weight, op);
  const int64_t M = weight.size(0), K = weight.size(1);
  TORCH_CHECK(grad_y.device().is_cpu() && grad_y.scalar_type() == x.scalar_type(), op,
              ": grad_y must be a CPU tensor of x's dtype");
  std::vector<int64_t> yshape(x.sizes().begin(), x.sizes().end());
  yshape.back() = M;
  TORCH_CHECK(grad_y.sizes().vec() == yshape, op, ": grad_y must have shape ",
              c10::IntArrayRef(yshape), ", got ", grad_y.sizes());
  const Tensor x2 = rows_of(x);
  const Tensor gy = grad_y.reshape({-1, M}).contiguous();
  const Tensor w = weight.contiguous();
  const int64_t R = x2.size(0);
  // dL/dx = gy @ w is dense (gy is): for a readout's few outputs a register-blocked kernel,
  // beyond that the BLAS product. Its output comes from the fused ops' buffer pool, so a
  // training loop does not page-fault a fresh one each step.
  const bool small_m = M <= kSpikeLinearSmallM;
  Tensor gx = input_grad ? alloc({R, K}, x.options()) : x.new_empty({0});
  if (input_grad && !small_m) at::mm_out(gx, gy, w);
  Tensor gw = weight_grad ? alloc({M, K}, x.options()) : x.new_empty({0});
  const bool empty = R == 0 || M == 0 || K == 0;
  if (empty) {
    if (input_grad) gx.zero_();
    if (weight_grad) gw.zero_();
  } else if (weight_grad || (input_grad && small_m)) {
    SpikeLinearParams p{};
    p.R = R; p.K = K; p.M = M;
    p.x = x2.data_ptr(); p.x_sr = x2.stride(0);
    p.w = w.data_ptr();
    p.gy = gy.data_ptr();
    p.gx = input_grad && small_m ? gx.data_ptr() : nullptr;
    p.gw = weight_grad ? gw.data_ptr() : nullptr;
    spike_linear_bwd_cpu(p, io_type_of(x, op, "x"));
  }
  return {input_grad ? gx.view(x.sizes()) : gx, gw};
}

// The op's schemas (csrc/ops.cpp defines the library). Absent optional outputs are empty
// (0,) tensors, so every schema returns plain Tensors.
TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  m.def("spike_linear_fwd(Tensor x, Tensor weight) -> Tensor");
  m.def(
      "spike_linear_bwd(Tensor grad_y, Tensor x, Tensor weight, bool input_grad, "
      "bool weight_grad) -> (Tensor grad_x, Tensor grad_weight)");
}

TORCH_LIBRARY_IMPL(fastsnn, CPU, m) {
  m.impl("spike_linear_fwd", &spike_linear_fwd);
  m.impl("spike_linear_bwd", &spike_linear_bwd);
}

}  // namespace fastsnn
