"""The host-side helpers of fastsnn's Triton modules (ops/lif, ops/li, ops/rlif triton.py),
written once: output allocation, argument checks, the launch with no contraction, and the
recording of the kernel variants a wrapper launches (tests/test_triton_aot.py compiles them).

Each Triton module imports ``alloc`` / ``alloc_like`` into its own namespace and passes them to
``outputs``, so that a test can poison one module's allocations with NaN by patching its names.
"""

import contextlib
import dataclasses

import torch
import triton
import triton.language as tl
from triton.runtime.jit import JITFunction

from .._enums import RESETS, SURROGATES
from .._validate import IO_DTYPES
from ._outputs import alloc, alloc_like, outputs  # noqa: F401 (the Triton modules' imports)


@triton.jit
def _probe():
    pass


# False when TRITON_INTERPRET=1 was set before this module was imported.
COMPILED = isinstance(_probe, JITFunction)


def unit_neuron_stride(t):
    """A [B, T, N] tensor whose neuron stride is 1: ``t`` itself when it has one (any batch and
    time strides, 0 included, are read in place), else a copy of only what varies: batch or
    time dimensions of stride 0 stay expanded (the gradient of ``S.sum()`` becomes one row)."""
    if t.size(2) <= 1 or t.stride(2) == 1:
        return t
    c = t
    for d in (0, 1):
        if c.size(d) > 1 and c.stride(d) == 0:
            c = c.narrow(d, 0, 1)
    return c.contiguous().expand(t.shape)


def check_btn(t, op, name):
    if t.dim() != 3:
        raise ValueError(f"{op}: {name} must have shape [B, T, N], got {tuple(t.shape)}")
    if t.dtype not in IO_DTYPES:
        raise TypeError(f"{op}: {name} must be float64, float32, bfloat16 or float16, "
                        f"got {t.dtype}")


def acc_arg(t, x, acc, shape, op, name):
    """An accumulator-dtype tensor of the given shape on x's device, contiguous."""
    if t.device != x.device:
        raise RuntimeError(f"{op}: {name} is on {t.device} but x is on {x.device}")
    if t.dtype != acc:
        raise TypeError(f"{op}: {name} must be {acc}, got {t.dtype}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {list(shape)}, got {list(t.shape)}")
    return t.contiguous()


def acc_args(x, acc, shape, op, **tensors):
    """acc_arg for each keyword (the argument's name) in order: a tuple of the checked tensors."""
    return tuple(acc_arg(t, x, acc, shape, op, name) for name, t in tensors.items())


def check_code(value, hi, op, name):
    if not 0 <= value <= hi:
        raise ValueError(f"{op}: {name} code must be in [0, {hi}], got {value}")


def device_context(x):
    """The context a launch on x's device runs in (Triton launches on the current device)."""
    if x.device.type == "cuda":
        return torch.cuda.device(x.device)
    if COMPILED:
        raise RuntimeError(
            f"fastsnn's Triton kernels got tensors on {x.device}: they run on CUDA tensors, or on "
            "the CPU under the Triton interpreter, which needs TRITON_INTERPRET=1 set before "
            "fastsnn's Triton modules are first imported")
    return contextlib.nullcontext()


def tl_acc(acc):
    return tl.float64 if acc == torch.float64 else tl.float32


# What Triton compiles a kernel for, as the wrappers launch it. Every module's kernel_variants()
# lists these for its wrappers; tests/test_triton_aot.py compiles them ahead of time for sm_90.
TRITON_TYPES = {torch.float64: "fp64", torch.float32: "fp32", torch.bfloat16: "bf16",
                torch.float16: "fp16"}


@dataclasses.dataclass(frozen=True)
class KernelVariant:
    """One specialisation of a Triton kernel that a wrapper launches (Triton compiles each once):
    the kernel (its module and name), the I/O dtype of the input x, the type of each argument
    passed by position ("*fp32" style for a tensor, "int" for an integer), the constexpr values
    (a dtype as its Triton name, "fp32") and the compile options. Triton also specialises on the
    values of the integers (i32 or i64, equal to 1, divisible by 16) and on pointer alignment:
    those follow the sizes at run time and are not part of a variant."""

    module: str
    kernel: str
    io: str
    signature: tuple  # ((name, type), ...) in argument order
    constexprs: tuple  # ((name, value), ...) in argument order
    num_warps: int
    enable_fp_fusion: bool

    @classmethod
    def of(cls, kernel, x, args, constexprs, options):
        names = kernel.arg_names

        def arg_type(name, a):
            if isinstance(a, torch.Tensor):
                return "*" + TRITON_TYPES[a.dtype]
            if isinstance(a, int) and not isinstance(a, bool):
                return "int"
            raise TypeError(f"{kernel.fn.__name__}: argument {name} is a {type(a).__name__}")

        sig = tuple((name, arg_type(name, a)) for name, a in zip(names, args))
        consts = tuple((name, str(constexprs[name]) if isinstance(constexprs[name], tl.dtype)
                        else constexprs[name]) for name in names if name in constexprs)
        assert len(sig) + len(consts) == len(names), (kernel.fn.__name__, names)
        return cls(kernel.fn.__module__, kernel.fn.__name__, TRITON_TYPES[x.dtype], sig, consts,
                   **options)


_RECORDERS = []  # the lists that record_launches() is filling, innermost last


@contextlib.contextmanager
def record_launches():
    """Within it, kernel launches are recorded as KernelVariants in the list it yields, and no
    kernel runs (the wrappers' outputs are then uninitialised). For listing variants, not for
    use while other threads launch kernels: theirs would be recorded too."""
    rec = []
    _RECORDERS.append(rec)
    try:
        yield rec
    finally:
        _RECORDERS.remove(rec)


def start(kernel, grid, x, args, constexprs, num_warps):
    """kernel[grid](*args, **constexprs) on x's device with num_warps and no contraction (as the
    C++ kernels), or its KernelVariant recorded inside record_launches()."""
    options = dict(num_warps=num_warps, enable_fp_fusion=False)
    if _RECORDERS:
        _RECORDERS[-1].append(KernelVariant.of(kernel, x, args, constexprs, options))
        return
    with device_context(x):
        kernel[grid](*args, **constexprs, **options)


BOOLS = (False, True)
RESET_CODES = range(len(RESETS))
SURROGATE_CODES = range(len(SURROGATES))


def distinct_sizes(config, largest):
    """The smallest neuron count N of each distinct config(N) over N = 1, 2, 4, ... 2 * largest:
    one N per tile configuration, for listing kernel variants."""
    first = {}
    n = 1
    while n <= 2 * largest:
        first.setdefault(config(n), n)
        n *= 2
    return sorted(first.values())


def unique(variants):
    return list(dict.fromkeys(variants))
