"""fastsnn.nn.AdLIF: the layer of SE-adLIF / adLIF over fastsnn.adlif."""

import math

import pytest
import torch

import fastsnn
from fastsnn.nn import AdLIF, constrain_parameters


def test_forward_is_linear_recurrence_and_adlif():
    torch.manual_seed(0)
    m = AdLIF(7, 5, variant="ef")
    x = torch.randn(3, 11, 7) * 3
    Z, (u, w, z) = m(x)
    alpha, beta, a, b = m.adlif_params()
    want = fastsnn.adlif(m.linear(x), alpha, beta, a, b, 1.0, weight_rec=m.weight_rec,
                         variant="ef", backend="torch")
    assert torch.equal(Z, want[0])  # the CPU kernels (backend "auto") or the reference
    for p, q in zip((u, w, z), want[1]):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)
    assert Z.shape == (3, 11, 5)


def test_initial_parameters_lie_in_the_published_ranges():
    m = AdLIF(4, 64)
    lo, hi = math.exp(-1 / 5), math.exp(-1 / 25)
    assert lo <= m.alpha.min() and m.alpha.max() <= hi
    lo, hi = math.exp(-1 / 60), math.exp(-1 / 300)
    assert lo <= m.beta.min() and m.beta.max() <= hi
    assert 0 <= m.a.min() and m.a.max() <= 1 and 0 <= m.b.min() and m.b.max() <= 2
    W = m.weight_rec.detach()
    torch.testing.assert_close(W @ W.t(), torch.eye(64), atol=1e-5, rtol=0)  # orthogonal


def test_training_keeps_parameters_in_range():
    """Adam with a large learning rate pushes the parameters past their bounds; constrain_()
    after each step keeps the stored values in range and the forward finite."""
    torch.manual_seed(1)
    m = AdLIF(6, 8, recurrent=True)
    opt = torch.optim.Adam(m.parameters(), lr=0.5)
    x = torch.randn(4, 12, 6)
    for _ in range(20):
        Z, (u, w, z) = m(x)
        loss = -(Z.sum() + u.sum() + w.sum())  # drives every parameter one way
        opt.zero_grad()
        loss.backward()
        opt.step()
        constrain_parameters(m)
    assert math.exp(-1 / 5) <= m.alpha.min() and m.alpha.max() <= math.exp(-1 / 25)
    assert math.exp(-1 / 60) <= m.beta.min() and m.beta.max() <= math.exp(-1 / 300)
    assert 0 <= m.a.min() and m.a.max() <= 1 and 0 <= m.b.min() and m.b.max() <= 2
    assert all(torch.isfinite(t).all() for t in m(x)[1])


def test_gradients_pass_through_the_clamp():
    m = AdLIF(3, 4, recurrent=False)
    with torch.no_grad():
        m.a.fill_(5.0)  # past the bound: the forward uses 1.0
    Z, (u, w, z) = m(torch.randn(2, 6, 3) * 4)
    w.sum().backward()
    assert m.a.grad is not None and m.a.grad.abs().sum() > 0
    assert m.weight_rec is None


def test_spike_input_gives_the_linear_result():
    torch.manual_seed(2)
    m = AdLIF(10, 5, spike_input=True)
    x = (torch.rand(2, 9, 10) > 0.8).float()
    Z, st = m(x)
    m.spike_input = False
    Z2, st2 = m(x)
    assert torch.equal(Z, Z2)
    for p, q in zip(st, st2):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"tau_u_range": (25, 5)}, "tau_u_range"),
    ({"tau_w_range": (0, 10)}, "tau_w_range"),
    ({"a_range": 1.0}, "a_range"),
    ({"q": float("inf")}, "q"),
    ({"threshold": 0}, "threshold"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdLIF(3, 4, **kwargs)


def test_bad_variant_reaches_the_function():
    with pytest.raises(ValueError, match="variant"):
        AdLIF(3, 4, variant="rk")(torch.zeros(1, 2, 3))
