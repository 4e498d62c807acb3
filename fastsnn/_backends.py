"""Which backends this installation can run, and the choice for a given tensor.

Importing fastsnn never fails: the compiled extension and Triton are optional, and only a
request for a missing backend by name raises, with how to get it.
"""

import functools
import importlib

import torch

_BUILD_HINT = (
    "reinstall fastsnn from its source tree with a C++ compiler present: "
    "`pip install --no-build-isolation -e .`"
)


@functools.lru_cache(maxsize=None)
def _extension():
    """(module, None) when fastsnn._C imports, else (None, the import error as text)."""
    try:
        mod = importlib.import_module("fastsnn._C")
    except (ImportError, OSError) as e:
        return None, f"{type(e).__name__}: {e}"
    from .ops import _fake  # noqa: F401  (fake implementations need the schemas loaded)

    return mod, None


def extension_available() -> bool:
    return _extension()[0] is not None


def cuda_kernels_built() -> bool:
    mod = _extension()[0]
    return bool(mod is not None and getattr(mod, "with_cuda", 0))


@functools.lru_cache(maxsize=None)
def _triton_error():
    try:
        from .ops.lif import triton as _lif_triton  # noqa: F401
        from .ops.li import triton as _li_triton  # noqa: F401
    except Exception as e:  # ImportError, or a Triton that fails to initialise
        return f"{type(e).__name__}: {e}"
    return None


def triton_available() -> bool:
    return _triton_error() is None


def available_backends():
    """The backends this installation can run, fastest first within each device.

    "torch" (the reference) is always there; "cpu" when the C++ extension is built; "cuda" when
    it was built with the CUDA kernels and a GPU is visible; "triton" when Triton imports and a
    GPU is visible (or TRITON_INTERPRET=1 runs it on the CPU).
    """
    out = []
    has_gpu = torch.cuda.is_available()
    if cuda_kernels_built() and has_gpu:
        out.append("cuda")
    if triton_available() and (has_gpu or _triton_interpret()):
        out.append("triton")
    if extension_available():
        out.append("cpu")
    out.append("torch")
    return out


def _triton_interpret() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve(backend: str, X: torch.Tensor) -> str:
    """The backend to run for X: 'auto' picks the fastest available for X's device."""
    dev = X.device.type
    if backend == "auto":
        if dev == "cuda":
            if cuda_kernels_built():
                return "cuda"
            if triton_available():
                return "triton"
            return "torch"
        if dev == "cpu" and extension_available():
            return "cpu"
        return "torch"
    if backend == "torch":
        return backend
    if backend == "cpu":
        if dev != "cpu":
            raise RuntimeError(
                f"backend='cpu' runs on CPU tensors, but X is on {X.device}; "
                "use backend='cuda', 'triton' or 'auto', or move X to the CPU"
            )
        err = _extension()[1]
        if err is not None:
            raise RuntimeError(f"backend='cpu' is not available: fastsnn._C failed to import "
                               f"({err}); {_BUILD_HINT}")
        return backend
    if backend == "cuda":
        if dev != "cuda":
            raise RuntimeError(
                f"backend='cuda' runs on CUDA tensors, but X is on {X.device}; "
                "use backend='cpu' or 'auto' for CPU tensors"
            )
        if not cuda_kernels_built():
            err = _extension()[1]
            why = (f"fastsnn._C failed to import ({err})" if err else
                   "fastsnn._C was built without the CUDA kernels")
            raise RuntimeError(
                f"backend='cuda' is not available: {why}; rebuild with a CUDA toolkit and a "
                "CUDA build of torch: `FASTSNN_BUILD_CUDA=1 pip install --no-build-isolation -e .`"
            )
        return backend
    if backend == "triton":
        err = _triton_error()
        if err is not None:
            raise RuntimeError(
                f"backend='triton' is not available ({err}); `pip install triton` "
                "(it comes with CUDA builds of torch)"
            )
        if dev != "cuda" and not _triton_interpret():
            raise RuntimeError(
                f"backend='triton' runs on CUDA tensors, but X is on {X.device}; set "
                "TRITON_INTERPRET=1 to run the Triton kernels on the CPU (slow, for testing)"
            )
        return backend
    raise ValueError(f"unknown backend {backend!r}")
