// The fastsnn op schemas, and the Python module stub whose import loads the registrations.
#include <Python.h>

#include <torch/library.h>

#include "common/cpu_isa.h"
#include "common/cpu_pool.h"

// Absent optional outputs are empty({0}) tensors so every schema returns plain Tensors.
TORCH_LIBRARY(fastsnn, m) {
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
  m.def(
      "li_fwd(Tensor x, Tensor alpha, Tensor beta, Tensor i0, Tensor u0, bool normalize_input, "
      "bool save_state) -> (Tensor u, Tensor i_T, Tensor u_T, Tensor i_saved, Tensor u_saved)");
  m.def(
      "li_bwd(Tensor grad_u, Tensor grad_iT, Tensor grad_uT, Tensor i_saved, Tensor u_saved, "
      "Tensor i0, Tensor u0, Tensor alpha, Tensor beta, bool normalize_input, bool param_grads) "
      "-> (Tensor grad_x, Tensor grad_i0, Tensor grad_u0, Tensor grad_alpha, Tensor grad_beta)");
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
  m.def("spike_linear_fwd(Tensor x, Tensor weight) -> Tensor");
  m.def(
      "spike_linear_bwd(Tensor grad_y, Tensor x, Tensor weight, bool input_grad, "
      "bool weight_grad) -> (Tensor grad_x, Tensor grad_weight)");
  m.def("cpu_pool_cached_bytes() -> int", &fastsnn::cpu_pool_cached_bytes);
  m.def("empty_cache() -> ()", &fastsnn::cpu_pool_empty_cache);
  m.def("set_poison(bool on) -> ()", &fastsnn::set_poison);
  m.def("cpu_isa() -> str", &fastsnn::cpu_isa_name);
}

#ifdef FASTSNN_WITH_CUDA
#define FASTSNN_HAS_CUDA 1
#else
#define FASTSNN_HAS_CUDA 0
#endif

static struct PyModuleDef fastsnn_c_module = {PyModuleDef_HEAD_INIT, "_C",
                                              "fastsnn C++ ops (registered as torch.ops.fastsnn)",
                                              -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* m = PyModule_Create(&fastsnn_c_module);
  if (m != nullptr) PyModule_AddIntConstant(m, "with_cuda", FASTSNN_HAS_CUDA);
  return m;
}
