"""fastsnn: fused CPU, CUDA and Triton kernels for spiking (LIF) layers in PyTorch."""

from ._backends import available_backends
from .functional import li, lif

__version__ = "0.1.0"
__all__ = ["lif", "li", "available_backends", "__version__"]
