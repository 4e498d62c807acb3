"""Spike-count regularizers against hand computations on a tiny raster."""

import pytest
import torch

from fastsnn.regularizers import spike_count_lower, spike_count_upper


def _spikes():
    """(B=2, T=3, M=2): counts zeta = [[2, 0], [0, 1]]."""
    S = torch.zeros(2, 3, 2, dtype=torch.float64)
    S[0, [0, 2], 0] = 1
    S[1, 0, 1] = 1
    return S.requires_grad_()


def test_lower_bound_value_and_gradient():
    S = _spikes()
    loss = spike_count_lower(S, nu=1.5, strength=10.0)
    # per sample 10 / 2 * sum_i [1.5 - zeta_i]_+^2: 5 * 1.5^2 = 11.25 and 5 * (1.5^2 + 0.5^2) = 12.5
    assert loss.item() == pytest.approx((11.25 + 12.5) / 2, rel=1e-12)
    (g,) = torch.autograd.grad(loss, S)
    # d/dS[b, t, i] = -(1 / B) * (10 / 2) * 2 * [1.5 - zeta_i]_+, the same at every step
    expected = torch.tensor([[0.0, -7.5], [-7.5, -2.5]], dtype=torch.float64)
    torch.testing.assert_close(g, expected[:, None, :].expand(2, 3, 2), rtol=1e-12, atol=0)


def test_lower_bound_paper_default_sees_only_silent_neurons():
    S = _spikes()
    # nu = 1e-3: only the two silent (sample, neuron) pairs count, each 100 / 2 * 1e-6
    assert spike_count_lower(S).item() == pytest.approx(50e-6, rel=1e-9)
    S2 = torch.ones(2, 3, 2, requires_grad=True)
    loss = spike_count_lower(S2)
    assert loss.item() == 0
    assert torch.all(torch.autograd.grad(loss, S2)[0] == 0)


@pytest.mark.parametrize("power, values", [(2, (2 * 0.75 ** 2, 2 * 0.25 ** 2)),
                                           (3, (2 * 0.75 ** 3, 2 * 0.25 ** 3))])
def test_upper_bound_value_and_gradient(power, values):
    S = _spikes()
    loss = spike_count_upper(S, nu=0.25, strength=2.0, power=power)
    # population means 1 and 0.5; excess over nu 0.75 and 0.25
    assert loss.item() == pytest.approx(sum(values) / 2, rel=1e-12)
    (g,) = torch.autograd.grad(loss, S)
    # d/dS[b, t, i] = (1 / B) * 2 * power * excess^(power - 1) * (1 / M)
    per_sample = torch.tensor([0.75, 0.25], dtype=torch.float64) ** (power - 1) * power / 2
    torch.testing.assert_close(g, per_sample[:, None, None].expand(2, 3, 2), rtol=1e-12, atol=0)


def test_upper_bound_is_on_the_population_mean_not_each_neuron():
    S = _spikes()
    # neuron 0 of sample 0 fires twice, above nu = 1.5, but the sample's mean (1) is below
    loss = spike_count_upper(S, nu=1.5, strength=1.0)
    assert loss.item() == 0
    assert torch.all(torch.autograd.grad(loss, S)[0] == 0)


def test_time_first_layout_and_low_precision():
    S = _spikes()
    for fn in (spike_count_lower, spike_count_upper):
        ref = fn(S, nu=0.25, strength=3.0)
        torch.testing.assert_close(fn(S.transpose(0, 1), nu=0.25, strength=3.0,
                                      batch_first=False), ref)
        low = fn(S.detach().bfloat16(), nu=0.25, strength=3.0)
        assert low.dtype == torch.float32 and low.item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("fn", [spike_count_lower, spike_count_upper])
def test_argument_errors(fn):
    S = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="spikes"):
        fn(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="spikes"):
        fn(torch.zeros(2, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="nu"):
        fn(S, nu=-1.0)
    with pytest.raises(ValueError, match="strength"):
        fn(S, strength=float("inf"))
    with pytest.raises(TypeError, match="batch_first"):
        fn(S, batch_first=1)
    if fn is spike_count_upper:
        with pytest.raises(ValueError, match="power"):
            fn(S, power=0.5)
