// The fastsnn library with its utility ops, and the Python module stub whose import loads the
// registrations. Each op declares its own schemas next to its host code (csrc/<op>/<op>.cpp,
// TORCH_LIBRARY_FRAGMENT).
#include <Python.h>

#include <torch/library.h>

#include "common/cpu_isa.h"
#include "common/cpu_pool.h"

TORCH_LIBRARY(fastsnn, m) {
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
