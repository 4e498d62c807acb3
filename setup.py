"""Builds fastsnn._C: the C++ CPU kernels always, the CUDA kernels when asked or found.

FASTSNN_BUILD_CUDA=auto (default) builds the CUDA sources when a CUDA toolkit (CUDA_HOME) and a
CUDA build of torch are present; 1 requires them and fails loudly; 0 never builds them.
TORCH_CUDA_ARCH_LIST (default "8.0;9.0+PTX") and MAX_JOBS are honoured.
"""

import glob
import os
import sys

from setuptools import find_packages, setup

import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _cuda_wanted(sources_cu):
    mode = os.environ.get("FASTSNN_BUILD_CUDA", "auto").strip().lower()
    if mode not in ("auto", "1", "0"):
        sys.exit(f"FASTSNN_BUILD_CUDA must be auto, 1 or 0, got {mode!r}")
    if mode == "0":
        return False
    missing = []
    if not sources_cu:
        missing.append("fastsnn has no CUDA sources in csrc/")
    if torch.version.cuda is None:
        missing.append(f"torch {torch.__version__} is not a CUDA build")
    home = cpp_extension.CUDA_HOME
    if home is None or not os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
        missing.append(f"no CUDA toolkit found at CUDA_HOME={home!r} (set CUDA_HOME, "
                       "e.g. /usr/local/cuda)")
    if missing and mode == "1":
        sys.exit("FASTSNN_BUILD_CUDA=1 but the CUDA kernels cannot be built: " + "; ".join(missing))
    return not missing


def _extension():
    # csrc/emu is the host emulation of the CUDA kernels, built by the tests (tests/cuda_emu.py)
    def sources(ext):
        return sorted(p for p in glob.glob(f"csrc/**/*.{ext}", recursive=True)
                      if not p.startswith(os.path.join("csrc", "emu", "")))

    cpp, cu = sources("cpp"), sources("cu")
    # -fno-trapping-math lets GCC if-convert the spike selects so the neuron loops vectorize;
    # -ffp-contract=off keeps a*b+c rounded twice, as the eager reference does.
    cxx = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math"]
    if _cuda_wanted(cu):
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
        print(f"fastsnn: building CUDA kernels for {os.environ['TORCH_CUDA_ARCH_LIST']}")
        return cpp_extension.CUDAExtension(
            "fastsnn._C",
            cpp + cu,
            define_macros=[("FASTSNN_WITH_CUDA", "1")],
            extra_compile_args={
                "cxx": cxx,
                # --fmad=false: no fused multiply-add, so the GPU rounds as the CPU kernels,
                # Triton (enable_fp_fusion=False) and the eager reference do.
                "nvcc": ["-O3", "-lineinfo", "--fmad=false",
                         "--expt-relaxed-constexpr"],
            },
            extra_link_args=["-fopenmp"],
        )
    print("fastsnn: building the CPU kernels only")
    return cpp_extension.CppExtension(
        "fastsnn._C", cpp, extra_compile_args={"cxx": cxx}, extra_link_args=["-fopenmp"]
    )


setup(
    packages=find_packages(include=["fastsnn", "fastsnn.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
