"""fastsnn: fused CPU, CUDA and Triton kernels for spiking (LIF) layers in PyTorch."""

from ._backends import available_backends
from . import data, losses, nn, regularizers
from .functional import adlif, li, lif, rlif, spike_linear

__version__ = "0.1.0"
__all__ = ["lif", "rlif", "li", "adlif", "spike_linear", "nn", "data", "losses", "regularizers",
           "available_backends", "empty_cache", "__version__"]


def empty_cache() -> None:
    """Return the CPU buffers the fused ops keep cached for reuse to the system.

    The fused CPU ops reuse freed output and saved-state buffers (see csrc/common/cpu_pool.h);
    FASTSNN_CPU_POOL=0 turns that off and FASTSNN_CPU_POOL_MB caps its idle bytes (default 256).
    """
    import torch

    if hasattr(torch.ops.fastsnn, "empty_cache"):
        torch.ops.fastsnn.empty_cache()
