"""The rlif reference (R_t = S_{t-1} @ V inside the loop): semantics and gradcheck.

The fused kernels are tested against this reference in test_rlif_cpu.py and test_rlif_triton.py.
"""

import itertools

import pytest
import torch

import fastsnn
from fastsnn.ops.lif.ref import lif_ref_btn, lif_step_ref
from fastsnn.ops.rlif.ref import rlif_ref
from fastsnn.surrogate import smooth_spike
from test_reference import gradcheck_inputs


def test_zero_recurrence_is_lif():
    X = 0.3 + 0.5 * torch.randn(3, 40, 7, dtype=torch.float64)
    S, (I, U) = fastsnn.rlif(X, torch.zeros(7, 7, dtype=torch.float64), 0.8, 0.9)
    S0, (I0, U0) = fastsnn.lif(X, 0.8, 0.9, backend="torch")
    assert torch.equal(S, S0) and torch.equal(I, I0) and torch.equal(U, U0)


def test_recurrence_by_hand():
    """Neuron 0 spikes at t=0; V routes its spike into neuron 1's current at t=1."""
    X = torch.tensor([[[3.0, 0.0], [0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    Vw = torch.tensor([[0.0, 5.0], [0.0, 0.0]], dtype=torch.float64)
    S, (I, U) = rlif_ref(X, Vw, 0.0, 0.0, 1.0, normalize_input=False)
    # t0: U0 = 3 > 1 spike; t1: I1 = 0 + S0 @ V = [0, 5], U = [0 (reset), 5] -> neuron 1 spikes
    assert S[0, :, 0].tolist() == [1.0, 0.0, 0.0]
    assert S[0, :, 1].tolist() == [0.0, 1.0, 0.0]


def test_time_major_and_zero_steps():
    X = 0.3 + 0.5 * torch.randn(3, 20, 5)
    Vw = 0.2 * torch.randn(5, 5)
    S, st = fastsnn.rlif(X, Vw, 0.8, 0.9)
    St, stt = fastsnn.rlif(X.transpose(0, 1), Vw, 0.8, 0.9, batch_first=False)
    assert torch.equal(St.transpose(0, 1), S) and torch.equal(stt[1], st[1])
    E, (I, U) = fastsnn.rlif(X[:, :0], Vw, 0.8, 0.9, state=st)
    assert E.shape == (3, 0, 5) and torch.equal(U, st[1])


@pytest.mark.parametrize(
    "call,exc,msg",
    [
        pytest.param(lambda X: fastsnn.rlif(X, torch.zeros(4, 3), 0.8, 0.9), ValueError,
                     "weight_rec must have shape (N, N) = (4, 4)", id="V-shape"),
        pytest.param(lambda X: fastsnn.rlif(X, torch.zeros(4, 4, dtype=torch.float64), 0.8, 0.9),
                     TypeError, "weight_rec has dtype torch.float64", id="V-dtype"),
        pytest.param(lambda X: fastsnn.rlif(X, [[0.0]], 0.8, 0.9), TypeError,
                     "weight_rec must be a torch.Tensor", id="V-list"),
        pytest.param(lambda X: fastsnn.rlif(X, torch.zeros(4, 4, device="meta"), 0.8, 0.9),
                     RuntimeError, "weight_rec is on meta", id="V-device"),
        pytest.param(lambda X: fastsnn.rlif(X, torch.zeros(4, 4), 0.8, 0.9,
                                            detach_recurrent=1), TypeError,
                     "detach_recurrent must be a bool", id="detach-recurrent-int"),
        pytest.param(lambda X: fastsnn.rlif(X, torch.zeros(4, 4), 1.2, 0.9), ValueError,
                     "alpha must lie in [0, 1]", id="alpha"),
    ],
)
def test_rlif_bad_input(call, exc, msg):
    with pytest.raises(exc) as info:
        call(torch.randn(2, 5, 4))
    assert msg in str(info.value)


def frozen_recurrence_loop(x, Vw, alpha, beta, thr, i0, u0, reset, s_recs, name, k):
    """rlif with the recurrent spikes given as constants (what detach_recurrent means); the
    reset is not detached."""
    gamma = 1.0 - beta
    I, U, out = i0, u0, []
    S_prev = smooth_spike(u0 - thr, name, k)
    for x_t, s_rec in zip(x.unbind(1), s_recs):
        I, U = lif_step_ref(x_t, I, U, alpha, beta, gamma, thr, reset, S_prev, s_rec @ Vw)
        S_prev = smooth_spike(U - thr, name, k)
        out.append(S_prev)
    return torch.stack(out, 1), I, U


@pytest.mark.parametrize("reset,detach_recurrent",
                         list(itertools.product(("zero", "subtract", "none"), (False, True))),
                         ids=lambda v: str(v))
def test_rlif_reference_gradcheck(reset, detach_recurrent):
    name, k = "superspike", 2.0
    x, alpha, beta, thr, i0, u0 = gradcheck_inputs(3, per_neuron=True)
    N = x.shape[2]
    g = torch.Generator().manual_seed(7)
    Vw = (0.4 * torch.randn(N, N, generator=g, dtype=torch.float64)).requires_grad_()
    args = (x, Vw, alpha, beta, thr, i0, u0)

    def ref(x, Vw, alpha, beta, thr, i0, u0):
        S, (I, U) = lif_ref_btn(x, alpha, beta, thr, i0, u0, reset, False, name, k, True,
                                spike_fn=smooth_spike, weight_rec=Vw,
                                detach_recurrent=detach_recurrent)
        return S, I, U

    if not detach_recurrent:
        assert torch.autograd.gradcheck(ref, args, atol=1e-7, rtol=1e-6)
        return
    with torch.no_grad():
        S, _, _ = ref(*args)
        s_recs = [smooth_spike(u0 - thr, name, k)] + list(S.unbind(1))[:-1]

    def frozen(x, Vw, alpha, beta, thr, i0, u0):
        return frozen_recurrence_loop(x, Vw, alpha, beta, thr, i0, u0, reset, s_recs, name, k)

    assert torch.autograd.gradcheck(frozen, args, atol=1e-7, rtol=1e-6)
    outs_r, outs_f = ref(*args), frozen(*args)
    w = [torch.randn_like(o) for o in outs_r]
    gr = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs_r, w)), args)
    gf = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs_f, w)), args)
    for a, b in zip(gr, gf):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert gr[1].abs().sum() > 0  # V still learns with the recurrence detached
