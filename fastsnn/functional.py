"""Public functions of SPEC section 3: ``lif``, ``rlif`` and ``li`` with the backends behind them,
``adlif`` (SPEC section 7), and ``spike_linear`` (a linear layer over spike inputs)."""

from . import _backends
from . import _validate as checks
from .ops import registry
from .ops.adlif.function import adlif_fused_btn
from .ops.adlif.ref import adlif_ref_btn
from .ops.li.function import li_fused_btn
from .ops.li.ref import li_ref_btn
from .ops.lif.function import lif_fused_btn
from .ops.lif.ref import lif_ref_btn
from .ops.rlif.ref import rlif_ref_btn
from .ops.rlif.function import rlif_fused_btn
from .ops.spike_linear import spike_linear  # noqa: F401  (public: fastsnn.spike_linear)


def lif(X, alpha, beta, threshold=1.0, *, state=None, reset="zero", detach_reset=True,
        surrogate="superspike", scale=10.0, normalize_input=True, batch_first=True,
        backend="auto"):
    """Current-based LIF neurons over a whole sequence (SPEC section 1).

    X: input current, (B, T, N) if ``batch_first`` else (T, B, N), float64/32, bf16 or fp16.
    alpha, beta: synaptic and membrane decay in [0, 1]; threshold: the firing threshold. Each a
    float or a tensor broadcasting to (N,); tensors that require grad get gradients.
    state: optional (I, U) pair of (B, N) tensors, the state before the first step.
    Returns S (spikes, the shape and dtype of X) and the final state (I_T, U_T) in float32
    (float64 for float64 X).

    Reference equivalent (per step): S_prev = U > thr; I = alpha*I + X_t;
    U = (beta*U + (1-beta)*I) * (1 - S_prev); S_t = U > thr.
    """
    x, alpha, beta, threshold, state, scale, backend = checks.check_lif_args(
        X, alpha, beta, threshold, state, reset, detach_reset, surrogate, scale,
        normalize_input, batch_first, backend)
    B, T, N = x.shape
    chosen = _backends.resolve(backend, X)
    if T == 0:
        return checks.empty_time(X, state, B, N)
    i0, u0 = state if state is not None else (None, None)
    args = (alpha, beta, threshold, i0, u0, reset, detach_reset, surrogate, scale,
            normalize_input)
    if chosen == "torch":
        s, final = lif_ref_btn(x, *args)
    else:
        s, final = lif_fused_btn(x, *args, chosen)
    return checks.to_btn(s, batch_first), final


def rlif(X, weight_rec, alpha, beta, threshold=1.0, *, state=None, detach_recurrent=False,
         reset="zero", detach_reset=True, surrogate="superspike", scale=10.0,
         normalize_input=True, batch_first=True, backend="auto"):
    """Recurrent LIF: ``lif`` plus R_t = S_{t-1} @ weight_rec in the current (SPEC section 1).

    weight_rec: V, (N, N), used as S_prev @ V; it gets a gradient when it requires one.
    detach_recurrent: S_{t-1} enters R_t without gradient (the paper's "Ctl"); V still learns.
    Everything else as ``lif``. Every backend runs it: the fused kernels keep the recurrent
    product inside their time loop, forward and backward.

    Reference equivalent (per step): S_prev = U > thr; I = alpha*I + X_t + S_prev @ V;
    U = (beta*U + (1-beta)*I) * (1 - S_prev); S_t = U > thr.
    """
    x, alpha, beta, threshold, state, scale, backend = checks.check_lif_args(
        X, alpha, beta, threshold, state, reset, detach_reset, surrogate, scale,
        normalize_input, batch_first, backend)
    B, T, N = x.shape
    checks.check_flag(detach_recurrent, "detach_recurrent")
    weight_rec = checks.check_weight_rec(weight_rec, X, N)
    chosen = _backends.resolve(backend, X)
    if T == 0:
        return checks.empty_time(X, state, B, N)
    i0, u0 = state if state is not None else (None, None)
    args = (alpha, beta, threshold, i0, u0, reset, detach_reset)
    if chosen == "torch":
        s, final = rlif_ref_btn(x, weight_rec, *args, detach_recurrent, surrogate, scale,
                                normalize_input)
    else:
        s, final = rlif_fused_btn(x, weight_rec, *args, detach_recurrent, surrogate, scale,
                                  normalize_input, chosen)
    return checks.to_btn(s, batch_first), final


def li(X, alpha, beta, *, state=None, normalize_input=True, batch_first=True, backend="auto"):
    """Leaky-integrator readout over a whole sequence (SPEC section 2).

    X: (B, T, N) if ``batch_first`` else (T, B, N). Returns the membrane trace U (the shape and
    dtype of X) and the final state (I_T, U_T).

    Reference equivalent (per step): I = alpha*I + X_t; U = beta*U + (1-beta)*I.
    """
    x, alpha, beta, state, backend = checks.check_li_args(X, alpha, beta, state, normalize_input,
                                                          batch_first, backend)
    B, T, N = x.shape
    chosen = _backends.resolve(backend, X)
    if T == 0:
        return checks.empty_time(X, state, B, N)
    i0, u0 = state if state is not None else (None, None)
    if chosen == "torch":
        u, final = li_ref_btn(x, alpha, beta, i0, u0, normalize_input)
    else:
        u, final = li_fused_btn(x, alpha, beta, i0, u0, normalize_input, chosen)
    return checks.to_btn(u, batch_first), final


def adlif(X, alpha, beta, a, b, threshold=1.0, *, weight_rec=None, variant="se", state=None,
          reset="zero", detach_reset=True, detach_recurrent=False, surrogate="superspike",
          scale=10.0, batch_first=True, backend="auto"):
    """Adaptive LIF neurons (adLIF, SE-adLIF) over a whole sequence (SPEC section 7).

    X: input current, (B, T, N) if ``batch_first`` else (T, B, N). alpha: the membrane decay,
    beta: the adaptation decay (both in [0, 1]; note the names differ from lif's); a, b: the
    adaptation's coupling to the membrane and to the spikes; threshold. Each a float or a tensor
    broadcasting to (N,); tensors that require grad get gradients. weight_rec: optional (N, N)
    recurrent weight V, R_t = Z_{t-1} @ V added to the input current. variant: "se"
    (symplectic Euler, the default) or "ef" (Euler forward). state: optional triple (u, w, z)
    of (B, N) tensors, the state of step -1. Returns Z (spikes, the shape and dtype of X) and
    the final state (u_T, w_T, z_T) in float32 (float64 for float64 X).

    Backends: "torch" (the reference), "cpu" (the fused C++ scans, one call each way with the
    recurrent product inside the time loop, as ``rlif``) and "auto" (the CPU kernels for CPU
    tensors when the extension is built, else the reference). The CUDA and Triton kernels are
    not written yet: asking for "cuda" or "triton" raises NotImplementedError.
    """
    x, alpha, beta, a, b, threshold, weight_rec, state, scale, backend = checks.check_adlif_args(
        X, alpha, beta, a, b, threshold, weight_rec, variant, state, reset, detach_reset,
        detach_recurrent, surrogate, scale, batch_first, backend)
    fused = registry.OPS["adlif"]["backends"]
    if backend not in ("auto", "torch") + fused:
        raise NotImplementedError(
            f"adlif: backend={backend!r} is not available yet (no {backend} adLIF kernels); use "
            f"backend='torch', 'auto' or one of {fused}")
    chosen = _backends.resolve(backend, X)
    if chosen not in fused or x.shape[1] == 0:  # "auto" on a device without adLIF kernels
        chosen = "torch"
    if chosen == "torch":
        Z, final = adlif_ref_btn(x, alpha, beta, a, b, threshold, state, weight_rec=weight_rec,
                                 variant=variant, reset=reset, detach_reset=detach_reset,
                                 detach_recurrent=detach_recurrent, surrogate=surrogate,
                                 scale=scale)
    else:
        Z, final = adlif_fused_btn(x, alpha, beta, a, b, threshold, state, weight_rec, variant,
                                   reset, detach_reset, detach_recurrent, surrogate, scale,
                                   chosen)
    return checks.to_btn(Z, batch_first), final
