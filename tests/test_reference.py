"""The pure-PyTorch reference: SPEC semantics by hand, surrogate formulas, and gradcheck.

gradcheck needs a differentiable forward, so these tests swap the Heaviside spike for the
antiderivative of its surrogate (fastsnn.surrogate.smooth_spike): then the surrogate gradient
is the true derivative and autograd of the loop must match finite differences. With
detach_reset the reset path deliberately has no gradient, so the comparison is against the
same loop with the reset spikes frozen as constants.
"""

import itertools
import math

import pytest
import torch

import fastsnn
from fastsnn.ops.lif.ref import lif_ref, lif_ref_btn, lif_step_ref
from fastsnn.ops.li.ref import li_ref
from fastsnn.surrogate import smooth_spike, surrogate_antiderivative, surrogate_grad

SURR = ["superspike", "superspike_asymptotic", "sigmoid", "esser", "atan", "exponential"]
PEAK = {"superspike": lambda k: 1.0, "superspike_asymptotic": lambda k: k,
        "sigmoid": lambda k: 0.25, "esser": lambda k: 1.0, "atan": lambda k: k / 2,
        "exponential": lambda k: 1.0}


@pytest.mark.parametrize("name", SURR)
@pytest.mark.parametrize("k", [0.5, 10.0])
def test_surrogate_formulas(name, k):
    x = torch.linspace(-3, 3, 601, dtype=torch.float64).requires_grad_()
    assert surrogate_grad(name, torch.zeros((), dtype=torch.float64), k).item() == pytest.approx(
        PEAK[name](k))
    (d,) = torch.autograd.grad(surrogate_antiderivative(name, x, k).sum(), x)
    ref = surrogate_grad(name, x.detach(), k)
    mask = (x.detach().abs() - 1.0 / k).abs() > 1e-6 if name == "esser" else slice(None)
    torch.testing.assert_close(d[mask], ref[mask], rtol=1e-12, atol=1e-12)
    assert (ref >= 0).all()


def test_spec_by_hand_zero_reset():
    """One neuron, alpha=0.5, beta=0.5, normalize_input, threshold 1, zero reset."""
    X = torch.tensor([[[2.0], [4.0], [0.0], [0.0]]], dtype=torch.float64)
    S, (I, U) = lif_ref(X, 0.5, 0.5, 1.0)
    # t0: I=2, U=.5*0+.5*2=1.0 -> no spike (Theta(0)=0); t1: I=5, U=.5+2.5=3 -> spike
    # t2: I=2.5, H=1.5+1.25=2.75, reset -> U=0; t3: I=1.25, U=0+.625
    assert S.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert I.item() == 1.25 and U.item() == 0.625


def test_spec_by_hand_subtract_reset_and_strict_threshold():
    X = torch.tensor([[[1.0], [1.5], [0.0]]], dtype=torch.float64)
    for backend in fastsnn.available_backends():
        if backend not in ("torch", "cpu"):
            continue
        S, (I, U) = fastsnn.lif(X, 0.0, 0.0, 1.0, reset="subtract", normalize_input=False,
                                backend=backend)
        # U_t = X_t - S_{t-1}: 1.0 (not above 1), 1.5 (spike), 0 - 1 = -1
        assert S.flatten().tolist() == [0.0, 1.0, 0.0]
        assert U.item() == -1.0


def frozen_reset_loop(x, alpha, beta, thr, i0, u0, reset, s_resets, name, k, normalize):
    """The reference loop with the reset's spikes given as constants (what detach means)."""
    gamma = 1.0 - beta if normalize else torch.ones_like(beta)
    I, U, out = i0, u0, []
    for x_t, s_reset in zip(x.unbind(1), s_resets):
        I, U = lif_step_ref(x_t, I, U, alpha, beta, gamma, thr, reset, s_reset)
        out.append(smooth_spike(U - thr, name, k))
    return torch.stack(out, 1), I, U


def gradcheck_inputs(seed, per_neuron):
    g = torch.Generator().manual_seed(seed)
    B, T, N = 2, 5, 3
    f64 = dict(dtype=torch.float64)
    x = (0.6 + 0.6 * torch.randn(B, T, N, generator=g, **f64)).requires_grad_()
    shape = (N,) if per_neuron else ()
    alpha = (0.6 + 0.2 * torch.rand(shape, generator=g, **f64)).requires_grad_()
    beta = (0.7 + 0.2 * torch.rand(shape, generator=g, **f64)).requires_grad_()
    thr = (0.9 + 0.2 * torch.rand(shape, generator=g, **f64)).requires_grad_()
    i0 = (0.3 * torch.randn(B, N, generator=g, **f64)).requires_grad_()
    u0 = (0.8 + 0.3 * torch.randn(B, N, generator=g, **f64)).requires_grad_()
    return x, alpha, beta, thr, i0, u0


GRADCHECK_CASES = [
    pytest.param(reset, detach, name, normalize, per_neuron,
                 id=f"{reset}-{'detach' if detach else 'nodetach'}-{name}"
                    f"-{'norm' if normalize else 'nonorm'}-{'perneuron' if per_neuron else 'scalar'}")
    for reset, detach in itertools.product(("zero", "subtract", "none"), (True, False))
    for name, normalize, per_neuron in (("superspike", True, True), ("sigmoid", False, False))
] + [
    pytest.param("zero", False, name, True, True, id=f"zero-nodetach-{name}-norm-perneuron")
    for name in ("superspike_asymptotic", "esser", "atan", "exponential")
]


@pytest.mark.parametrize("reset,detach,name,normalize,per_neuron", GRADCHECK_CASES)
def test_reference_gradcheck(reset, detach, name, normalize, per_neuron):
    k = 2.0 if name != "esser" else 0.3  # esser: keep |x| < 1/k, away from its kinks
    args = gradcheck_inputs(0, per_neuron)

    def ref(x, alpha, beta, thr, i0, u0):
        S, (I, U) = lif_ref_btn(x, alpha, beta, thr, i0, u0, reset, detach, name, k, normalize,
                                spike_fn=smooth_spike)
        return S, I, U

    if not detach:
        assert torch.autograd.gradcheck(ref, args, atol=1e-7, rtol=1e-6)
        return
    # detach_reset: autograd of the reference equals autograd of the frozen-reset loop,
    # and that loop's gradient equals its finite differences.
    with torch.no_grad():
        x, alpha, beta, thr, i0, u0 = args
        S, _, _ = ref(*args)
        s_prev = smooth_spike(u0 - thr, name, k)
        s_resets = [s_prev] + list(S.unbind(1))[:-1]

    def frozen(x, alpha, beta, thr, i0, u0):
        return frozen_reset_loop(x, alpha, beta, thr, i0, u0, reset, s_resets, name, k,
                                 normalize)

    assert torch.autograd.gradcheck(frozen, args, atol=1e-7, rtol=1e-6)
    outs_r, outs_f = ref(*args), frozen(*args)
    for a, b in zip(outs_r, outs_f):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    w = [torch.randn_like(o) for o in outs_r]
    gr = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs_r, w)), args)
    gf = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs_f, w)), args)
    for a, b in zip(gr, gf):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_li_reference_gradcheck():
    x, alpha, beta, _, i0, u0 = gradcheck_inputs(1, per_neuron=True)

    def f(x, alpha, beta, i0, u0):
        U, (I_T, U_T) = li_ref(x, alpha, beta, state=(i0, u0))
        return U, I_T, U_T

    assert torch.autograd.gradcheck(f, (x, alpha, beta, i0, u0))


def test_reference_uses_unbind_not_indexing():
    """The fair baseline walks time with unbind: its backward is one op, not T slices."""
    X = torch.randn(2, 40, 3, requires_grad=True)
    S, _ = lif_ref(X, 0.8, 0.9)
    names = set()
    stack = [S.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in names:
            continue
        names.add(fn)
        stack.extend(f for f, _ in fn.next_functions)
    kinds = [type(f).__name__ for f in names]
    assert "UnbindBackward0" in kinds and "SelectBackward0" not in kinds


def test_low_precision_inputs_run_in_float32():
    X = 0.15 + 0.3 * torch.randn(2, 30, 8)
    S32, (I32, U32) = lif_ref(X, 0.8, 0.9)
    for dt in (torch.bfloat16, torch.float16):
        Xl = X.to(dt)
        S, (I, U) = lif_ref(Xl, 0.8, 0.9)
        assert S.dtype == dt and I.dtype == torch.float32 and U.dtype == torch.float32
        S_ref, _ = lif_ref(Xl.float(), 0.8, 0.9)  # same rounded input, float32 math
        assert torch.equal(S.float(), S_ref)
    assert math.isfinite(U32.sum().item())
