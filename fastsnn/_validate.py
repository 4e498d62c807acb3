"""Argument checks of the public functions (SPEC section 6), run before any kernel.

Every error names the argument and what was expected. Checks of tensor values (alpha/beta in
[0, 1], a finite threshold) read the values eagerly; while torch.compile traces they become
torch._assert_async in the graph (no graph break), which raises when the compiled code runs.
"""

import math
import numbers

import torch

from ._enums import RESETS, SURROGATES

IO_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
BACKENDS = ("auto", "torch", "cpu", "triton", "cuda")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """State and arithmetic dtype for an I/O dtype: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def check_input(X, name: str = "X") -> None:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dtype not in IO_DTYPES:
        raise TypeError(
            f"{name} must be float64, float32, bfloat16 or float16, got {X.dtype}"
        )
    if X.dim() != 3:
        raise ValueError(
            f"{name} must have 3 dimensions (B, T, N) or (T, B, N), got shape {tuple(X.shape)}"
        )


def check_choice(value, name: str, options) -> int:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(options)}, got {value!r}")
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return options[value]


def check_flag(value, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number, got {type(scale).__name__}")
    scale = float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be finite and >= 0, got {scale}")
    return scale


def check_param(value, name: str, X: torch.Tensor, N: int, unit_interval: bool):
    """alpha, beta (in [0, 1]) or threshold: a real number, or a tensor broadcasting to (N,)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a float or a tensor, got bool")
    if isinstance(value, numbers.Real):
        v = float(value)
        if unit_interval and not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {v}")
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
        return v
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if value.dtype not in (X.dtype, acc_dtype(X.dtype)):
        raise TypeError(
            f"{name} has dtype {value.dtype}; expected {X.dtype} (the dtype of X) "
            f"or {acc_dtype(X.dtype)}"
        )
    if value.device != X.device:
        raise RuntimeError(f"{name} is on {value.device} but X is on {X.device}")
    if value.dim() > 1 or (value.numel() not in (1, N) and value.dim() == 1):
        raise ValueError(
            f"{name} must be a scalar tensor or have shape ({N},) (one value per neuron), "
            f"got shape {tuple(value.shape)}"
        )
    if value.numel() > 0:
        _check_values(value.detach(), name, unit_interval)
    return value


def _check_values(v: torch.Tensor, name: str, unit_interval: bool) -> None:
    """alpha/beta in [0, 1] (NaN fails), a threshold finite: as float parameters are checked.

    Eagerly a ValueError with the range found. While torch.compile traces, the same conditions
    go into the graph as torch._assert_async, which raises a RuntimeError with the message when
    the compiled function runs (on a GPU a device-side assert). Meta tensors have no values to
    check and are rejected."""
    if v.device.type == "meta":
        raise RuntimeError(
            f"{name} is a meta tensor (it has no values, so they cannot be checked); "
            f"materialize it on X's device, e.g. module.to_empty(device=...) and initialize it")
    if unit_interval:
        if _compiling():
            torch._assert_async(((v >= 0) & (v <= 1)).all(),
                                f"{name} must lie in [0, 1] (a value outside it, or NaN)")
            return
        lo, hi = torch.aminmax(v)
        lo, hi = lo.item(), hi.item()
        if not (lo >= 0.0 and hi <= 1.0) or math.isnan(lo) or math.isnan(hi):
            nan = " (NaN included)" if torch.isnan(v).any().item() else ""
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo}, {hi}]{nan}")
        return
    if _compiling():
        torch._assert_async(torch.isfinite(v).all(), f"{name} must be finite (NaN or inf found)")
        return
    if not torch.isfinite(v).all().item():
        bad = v[~torch.isfinite(v)]
        raise ValueError(f"{name} must be finite, got {bad.numel()} non-finite value(s) "
                         f"(e.g. {bad[0].item()})")


def _check_tensor_arg(t, name, X, shape, shape_text, floating=False):
    """A tensor argument on X's device with X's dtype or the accumulation dtype and a given
    shape (state tensors, weight_rec)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if floating and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.dtype not in (X.dtype, acc_dtype(X.dtype)):
        raise TypeError(f"{name} has dtype {t.dtype}; expected {X.dtype} or {acc_dtype(X.dtype)}")
    if t.device != X.device:
        raise RuntimeError(f"{name} is on {t.device} but X is on {X.device}")
    if tuple(t.shape) != shape:
        dims = ", ".join(str(d) for d in shape)
        raise ValueError(f"{name} must have shape {shape_text} = ({dims}), got {tuple(t.shape)}")
    return t


def check_state(state, X: torch.Tensor, B: int, N: int):
    """state: None or a pair (I, U) of (B, N) tensors on X's device."""
    if state is None:
        return None
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError("state must be None or a pair (I, U) of (B, N) tensors")
    out = []
    for name, s in zip(("state[0] (I)", "state[1] (U)"), state):
        out.append(_check_tensor_arg(s, name, X, (B, N), "(B, N)"))
    return tuple(out)


def check_weight_rec(W, X: torch.Tensor, N: int) -> torch.Tensor:
    """weight_rec of rlif: an (N, N) floating tensor on X's device, X's dtype or float32."""
    return _check_tensor_arg(W, "weight_rec", X, (N, N), "(N, N)", floating=True)


def check_backend(backend) -> str:
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, one of {BACKENDS}, got {backend!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def to_btn(X: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """A (B, T, N) view of X, whatever its layout."""
    return X if batch_first else X.transpose(0, 1)


def check_lif_args(X, alpha, beta, threshold, state, reset, detach_reset, surrogate, scale,
                   normalize_input, batch_first, backend):
    """SPEC section 6 checks shared by lif and rlif; returns the (B, T, N) view and the
    validated parameters."""
    x, scale, backend = _check_spiking_options(
        X, reset, surrogate, scale, batch_first, backend, detach_reset=detach_reset,
        normalize_input=normalize_input)
    B, T, N = x.shape
    alpha = check_param(alpha, "alpha", X, N, unit_interval=True)
    beta = check_param(beta, "beta", X, N, unit_interval=True)
    threshold = check_param(threshold, "threshold", X, N, unit_interval=False)
    state = check_state(state, X, B, N)
    return x, alpha, beta, threshold, state, scale, backend


def _check_spiking_options(X, reset, surrogate, scale, batch_first, backend, **flags):
    """X, the boolean flags (by name), reset, surrogate, scale and backend of a spiking op, in
    the order the errors are reported; returns the (B, T, N) view, scale and backend."""
    check_input(X)
    for name, flag in (*flags.items(), ("batch_first", batch_first)):
        check_flag(flag, name)
    check_choice(reset, "reset", RESETS)
    check_choice(surrogate, "surrogate", SURROGATES)
    return to_btn(X, batch_first), check_scale(scale), check_backend(backend)


def check_li_args(X, alpha, beta, state, normalize_input, batch_first, backend):
    """SPEC section 6 checks of li; returns the (B, T, N) view and the validated parameters."""
    check_input(X)
    for name, flag in (("normalize_input", normalize_input), ("batch_first", batch_first)):
        check_flag(flag, name)
    backend = check_backend(backend)
    x = to_btn(X, batch_first)
    B, T, N = x.shape
    alpha = check_param(alpha, "alpha", X, N, unit_interval=True)
    beta = check_param(beta, "beta", X, N, unit_interval=True)
    state = check_state(state, X, B, N)
    return x, alpha, beta, state, backend


def empty_time(X, state, B, N):
    """T = 0: an empty output, and the given state (zeros when none) as the final state: new
    tensors in the accumulation dtype, as for T > 0, never the caller's own (a copy that keeps
    the gradient path to the given state)."""
    acc = acc_dtype(X.dtype)
    if state is None:
        return X.new_empty(X.shape), (X.new_zeros((B, N), dtype=acc),
                                      X.new_zeros((B, N), dtype=acc))
    return X.new_empty(X.shape), tuple(s.to(acc, copy=True) for s in state)


ADLIF_VARIANTS = ("se", "ef")


def check_adlif_state(state, X: torch.Tensor, B: int, N: int):
    """state of adlif: None or a triple (u, w, z) of (B, N) tensors on X's device."""
    if state is None:
        return None
    if not isinstance(state, (tuple, list)) or len(state) != 3:
        raise TypeError("state must be None or a triple (u, w, z) of (B, N) tensors (the "
                        f"membrane, adaptation and spikes of step -1), got {_what(state)}")
    return tuple(_check_tensor_arg(s, f"state[{i}] ({name})", X, (B, N), "(B, N)")
                 for i, (name, s) in enumerate(zip("uwz", state)))


def _what(value):
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def check_adlif_args(X, alpha, beta, a, b, threshold, weight_rec, variant, state, reset,
                     detach_reset, detach_recurrent, surrogate, scale, batch_first, backend):
    """SPEC section 6 and 7 checks of adlif; returns the (B, T, N) view and the validated
    arguments."""
    if not isinstance(variant, str) or variant not in ADLIF_VARIANTS:
        raise ValueError(f"variant must be one of {ADLIF_VARIANTS} (symplectic Euler, Euler "
                         f"forward), got {variant!r}")
    x, scale, backend = _check_spiking_options(
        X, reset, surrogate, scale, batch_first, backend, detach_reset=detach_reset,
        detach_recurrent=detach_recurrent)
    B, T, N = x.shape
    alpha = check_param(alpha, "alpha", X, N, unit_interval=True)
    beta = check_param(beta, "beta", X, N, unit_interval=True)
    a = check_param(a, "a", X, N, unit_interval=False)
    b = check_param(b, "b", X, N, unit_interval=False)
    threshold = check_param(threshold, "threshold", X, N, unit_interval=False)
    if weight_rec is not None:
        weight_rec = check_weight_rec(weight_rec, X, N)
    state = check_adlif_state(state, X, B, N)
    return x, alpha, beta, a, b, threshold, weight_rec, state, scale, backend
