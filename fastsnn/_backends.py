"""Which backends this installation can run, and the choice for a given tensor.

Importing fastsnn never fails: the compiled extension and Triton are optional, and only a
request for a missing backend by name raises, with how to get it. Availability is settled once
at import, so ``resolve`` only reads constants and torch.compile traces it without breaks.
"""

import importlib
import importlib.util
import os

import torch

_BUILD_HINT = (
    "reinstall fastsnn from its source tree with a C++ compiler present: "
    "`pip install --no-build-isolation -e .`"
)


def _load_extension():
    try:
        mod = importlib.import_module("fastsnn._C")
    except (ImportError, OSError) as e:
        return None, f"{type(e).__name__}: {e}"
    from .ops import registry

    registry.import_all("fake")  # fake implementations need the schemas loaded

    return mod, None


def _triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _load_triton():
    """None when the Triton kernels import, else why not. Only tried where they can run."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if not (torch.cuda.is_available() or _triton_interpret()):
        return "no CUDA device (set TRITON_INTERPRET=1 to run Triton kernels on the CPU)"
    try:
        from .ops import registry

        registry.import_all("triton")
    except Exception as e:  # ImportError, or a Triton that fails to initialise
        return f"{type(e).__name__}: {e}"
    return None


_EXT, _EXT_ERR = _load_extension()
_WITH_CUDA = bool(_EXT is not None and getattr(_EXT, "with_cuda", 0))
_TRITON_ERR = _load_triton()


def extension_available() -> bool:
    return _EXT is not None


def cuda_kernels_built() -> bool:
    return _WITH_CUDA


def triton_available() -> bool:
    return _TRITON_ERR is None


def available_backends():
    """The backends this installation can run, fastest first within each device.

    "torch" (the reference) is always there; "cpu" when the C++ extension is built; "cuda" when
    it was built with the CUDA kernels and a GPU is visible; "triton" when Triton imports and a
    GPU is visible (or TRITON_INTERPRET=1 runs it on the CPU).
    """
    out = []
    if _WITH_CUDA and torch.cuda.is_available():
        out.append("cuda")
    if triton_available():
        out.append("triton")
    if extension_available():
        out.append("cpu")
    out.append("torch")
    return out


def resolve(backend: str, X: torch.Tensor) -> str:
    """The backend to run for X: 'auto' picks the fastest available for X's device."""
    dev = X.device.type
    if backend == "auto":
        if dev == "cuda":
            if _WITH_CUDA:
                return "cuda"
            if triton_available():
                return "triton"
            return "torch"
        if dev == "cpu" and _EXT is not None:
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
        if _EXT is None:
            raise RuntimeError(f"backend='cpu' is not available: fastsnn._C failed to import "
                               f"({_EXT_ERR}); {_BUILD_HINT}")
        return backend
    if backend == "cuda":
        if dev != "cuda":
            raise RuntimeError(
                f"backend='cuda' runs on CUDA tensors, but X is on {X.device}; "
                "use backend='cpu' or 'auto' for CPU tensors"
            )
        if not _WITH_CUDA:
            why = (f"fastsnn._C failed to import ({_EXT_ERR})" if _EXT is None else
                   "fastsnn._C was built without the CUDA kernels")
            raise RuntimeError(
                f"backend='cuda' is not available: {why}; rebuild with a CUDA toolkit and a "
                "CUDA build of torch: `FASTSNN_BUILD_CUDA=1 pip install --no-build-isolation -e .`"
            )
        return backend
    if backend == "triton":
        if _TRITON_ERR is not None:
            raise RuntimeError(
                f"backend='triton' is not available: {_TRITON_ERR}. Triton comes with CUDA "
                "builds of torch (`pip install triton` otherwise)"
            )
        if dev != "cuda" and not _triton_interpret():
            raise RuntimeError(
                f"backend='triton' runs on CUDA tensors, but X is on {X.device}; set "
                "TRITON_INTERPRET=1 to run the Triton kernels on the CPU (slow, for testing)"
            )
        return backend
    raise ValueError(f"unknown backend {backend!r}")
