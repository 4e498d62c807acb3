"""The modules against the functions they wrap."""

import pytest
import torch

import fastsnn
from fastsnn import nn as snn

BACKENDS = [b for b in ("torch", "cpu") if b in fastsnn.available_backends()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_module_matches_functional(backend):
    torch.manual_seed(0)
    m = snn.LIF(6, 9, alpha=0.7, beta=0.85, learn_beta=True, learn_threshold=True,
                reset="subtract", backend=backend)
    x = torch.rand(3, 20, 6) * 2
    S, (I, U) = m(x)
    S2, (I2, U2) = fastsnn.lif(m.linear(x), 0.7, m.neuron.beta, m.neuron.threshold,
                               reset="subtract", backend=backend)
    assert torch.equal(S, S2) and torch.equal(U, U2)
    (S.sum() + U.sum()).backward()
    assert m.neuron.beta.grad.shape == (9,) and m.neuron.threshold.grad.shape == (9,)
    assert m.linear.weight.grad is not None
    assert {n for n, _ in m.named_parameters()} == {
        "linear.weight", "linear.bias", "neuron.beta", "neuron.threshold"}


def test_learning_needs_a_size():
    with pytest.raises(ValueError, match="learn_alpha=True needs the number of neurons"):
        snn.LIFNeuron(learn_alpha=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_leaky_integrator_and_neuron_modules(backend):
    torch.manual_seed(1)
    li = snn.LeakyIntegrator(9, 4, alpha=0.6, learn_alpha=True, backend=backend)
    neuron = snn.LIFNeuron(alpha=0.8, beta=0.9, backend=backend)
    X = torch.rand(2, 15, 9) * 2
    S, st = neuron(X)
    S_b, st_b = neuron(X[:, 8:], neuron(X[:, :8])[1])  # state carried between calls
    assert torch.equal(S[:, 8:], S_b)
    U, _ = li(S)
    U2, _ = fastsnn.li(li.linear(S), li.alpha, 0.9, backend=backend)
    assert torch.equal(U, U2)
    U.sum().backward()
    assert li.alpha.grad.shape == (4,)


def test_recurrent_lif_module_matches_functional():
    torch.manual_seed(2)
    m = snn.RecurrentLIF(5, 7, detach_recurrent=True, learn_alpha=True)
    x = torch.rand(2, 12, 5) * 3
    S, (I, U) = m(x)
    S2, (I2, U2) = fastsnn.rlif(m.linear(x), m.weight_rec, m.neuron.alpha, 0.9,
                                detach_recurrent=True)
    assert torch.equal(S, S2) and torch.equal(U, U2)
    (S.sum() + U.sum()).backward()
    assert m.weight_rec.grad is not None and m.neuron.alpha.grad.shape == (7,)
    assert m.weight_rec.abs().max() <= 1 / 7 ** 0.5
