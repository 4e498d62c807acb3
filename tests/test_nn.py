"""The modules against the functions they wrap."""

import math

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


def test_time_constants_give_the_decays():
    n = snn.LIFNeuron(tau_syn=5.0, tau_mem=10.0, dt=1.0)
    assert n.alpha == pytest.approx(math.exp(-0.2)) and n.beta == pytest.approx(math.exp(-0.1))
    li = snn.LeakyIntegrator(3, 2, tau_mem=20.0, dt=0.5, learn_beta=True)
    assert li.alpha == 0.8 and torch.allclose(li.beta, torch.full((2,), math.exp(-0.025)))
    n = snn.LIFNeuron(alpha=0.5, tau_mem=10.0, dt=1.0)  # a decay for one, a tau for the other
    assert n.alpha == 0.5 and n.beta == pytest.approx(math.exp(-0.1))
    n = snn.LIFNeuron(tau_syn=0.0, tau_mem=math.inf, dt=1.0)  # no synaptic memory, no leak
    assert (n.alpha, n.beta) == (0.0, 1.0)
    assert (snn.LIFNeuron().alpha, snn.LIFNeuron().beta) == (0.8, 0.9)
    X = torch.rand(2, 10, 4) * 2
    n = snn.LIFNeuron(tau_syn=5.0, tau_mem=10.0, dt=1.0)
    assert torch.equal(n(X)[0], fastsnn.lif(X, math.exp(-0.2), math.exp(-0.1))[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=0.8, tau_syn=5.0, dt=1.0), "alpha .* or tau_syn"),
    (dict(beta=0.9, tau_mem=5.0, dt=1.0), "beta .* or tau_mem"),
    (dict(tau_mem=5.0), "need the time step dt"),
    (dict(dt=1.0), "dt is used only with"),
    (dict(tau_syn=-1.0, dt=1.0), "tau_syn must be"),
    (dict(tau_mem=5.0, dt=0.0), "dt must be"),
    (dict(alpha=1.5), "alpha must be a real number in"),
    (dict(beta=True), "beta must be"),
    (dict(threshold=0.0), "threshold must be"),
])
def test_decay_and_threshold_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        snn.LIFNeuron(**kwargs)
    if "threshold" not in kwargs:
        with pytest.raises(ValueError, match=match):
            snn.LeakyIntegrator(3, 2, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_learned_values_outside_their_range_are_clamped(backend):
    # as an optimizer step could leave them: the forward clamps, the gradient passes through
    torch.manual_seed(3)
    n = snn.LIFNeuron(3, learn_alpha=True, learn_beta=True, learn_threshold=True,
                      backend=backend)
    with torch.no_grad():
        n.alpha.copy_(torch.tensor([1.3, 0.5, -0.1]))
        n.beta.copy_(torch.tensor([-0.2, 0.9, 1.01]))
        n.threshold.copy_(torch.tensor([-0.5, 1.0, 0.0]))
    X = torch.rand(2, 12, 3) * 2
    S, (I, U) = n(X)
    a = torch.tensor([1.0, 0.5, 0.0], requires_grad=True)
    b = torch.tensor([0.0, 0.9, 1.0], requires_grad=True)
    th = torch.tensor([snn.modules.MIN_THRESHOLD, 1.0, snn.modules.MIN_THRESHOLD],
                      requires_grad=True)
    S2, (I2, U2) = fastsnn.lif(X, a, b, th, backend=backend)
    assert torch.equal(S, S2) and torch.equal(U, U2)
    grads = torch.autograd.grad(S.sum() + U.sum(), [n.alpha, n.beta, n.threshold])
    grads2 = torch.autograd.grad(S2.sum() + U2.sum(), [a, b, th])
    for g, g2 in zip(grads, grads2):
        assert torch.equal(g, g2)
    assert all(g.abs().sum() > 0 for g in grads)
    li = snn.LeakyIntegrator(3, 2, learn_alpha=True, learn_beta=True, backend=backend)
    with torch.no_grad():
        li.alpha.fill_(2.0)
        li.beta.fill_(-1.0)
    U, _ = li(X)
    assert torch.equal(U, fastsnn.li(li.linear(X), 1.0, 0.0, backend=backend)[0])


def test_forward_survives_large_optimizer_steps():
    torch.manual_seed(4)
    m = snn.LIF(4, 5, learn_alpha=True, learn_beta=True, learn_threshold=True)
    opt = torch.optim.SGD(m.parameters(), lr=50.0)
    x = torch.rand(3, 10, 4) * 2
    for _ in range(5):
        S, (I, U) = m(x)
        opt.zero_grad()
        (S.sum() + U.square().sum()).backward()
        opt.step()
    n = m.neuron
    assert torch.cat([n.alpha, n.beta]).abs().max() > 1 or n.threshold.min() < 0  # left range
    m(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_carries_across_calls_in_every_module(backend):
    torch.manual_seed(5)
    modules = [snn.LIF(4, 6, learn_beta=True, backend=backend),
               snn.RecurrentLIF(4, 6, learn_alpha=True),
               snn.LeakyIntegrator(4, 6, learn_alpha=True, backend=backend)]
    x = torch.rand(2, 16, 4) * 3
    for m in modules:
        out, (I, U) = m(x)
        out_a, state = m(x[:, :7])
        out_b, (I_b, U_b) = m(x[:, 7:], state)
        torch.testing.assert_close(torch.cat([out_a, out_b], 1), out, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close((I_b, U_b), (I, U), rtol=1e-6, atol=1e-6)


def test_state_dict_round_trip():
    torch.manual_seed(6)
    kwargs = dict(learn_alpha=True, learn_beta=True, learn_threshold=True, reset="subtract")
    a, b = snn.RecurrentLIF(3, 5, **kwargs), snn.RecurrentLIF(3, 5, **kwargs)
    with torch.no_grad():
        a.neuron.beta.uniform_(0.5, 0.99)
        a.neuron.threshold.uniform_(0.5, 1.5)
    assert set(a.state_dict()) == {"linear.weight", "linear.bias", "weight_rec",
                                   "neuron.alpha", "neuron.beta", "neuron.threshold"}
    x = torch.rand(2, 9, 3) * 3
    assert not torch.equal(a(x)[1][1], b(x)[1][1])
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x)[0], b(x)[0]) and torch.equal(a(x)[1][1], b(x)[1][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_to_float64(backend):
    torch.manual_seed(7)
    m = snn.LIF(4, 5, learn_beta=True, backend=backend).to(torch.float64)
    assert m.neuron.beta.dtype == torch.float64 and m.linear.weight.dtype == torch.float64
    x = torch.rand(2, 8, 4, dtype=torch.float64) * 3
    S, (I, U) = m(x)
    assert S.dtype == torch.float64 and U.dtype == torch.float64
    S2, (_, U2) = fastsnn.lif(m.linear(x), 0.8, m.neuron.beta, backend=backend)
    assert torch.equal(S, S2) and torch.equal(U, U2)


def test_autocast_bfloat16():
    torch.manual_seed(8)
    m = snn.LIF(4, 5, learn_beta=True, learn_threshold=True)
    readout = snn.LeakyIntegrator(5, 3, learn_alpha=True)
    x = torch.rand(2, 8, 4) * 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        S, _ = m(x)
        V, _ = readout(S)
        assert S.dtype == torch.bfloat16 and V.dtype == torch.bfloat16
        S2, _ = fastsnn.lif(m.linear(x), 0.8, m.neuron.beta, m.neuron.threshold)
    assert torch.equal(S, S2)
    V.float().sum().backward()
    for p in (m.linear.weight, m.neuron.beta, m.neuron.threshold, readout.alpha):
        assert p.grad is not None and p.grad.dtype == torch.float32


class _Net(torch.nn.Module):
    """LIF layer and readout, as a training script would chain them."""

    def __init__(self, backend):
        super().__init__()
        self.lif = snn.LIF(4, 6, learn_beta=True, learn_threshold=True, backend=backend)
        self.readout = snn.LeakyIntegrator(6, 3, learn_alpha=True, backend=backend)

    def forward(self, x):
        S, _ = self.lif(x)
        return self.readout(S)[0]


def test_torch_compile():
    torch.manual_seed(9)
    net = _Net("cpu" if "cpu" in BACKENDS else "torch")
    params = [net.lif.neuron.beta, net.lif.neuron.threshold, net.readout.alpha,
              net.lif.linear.weight]
    x = torch.rand(2, 6, 4) * 3
    V = net(x)
    grads = torch.autograd.grad(V.sum(), params)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    Vc = compiled(x)
    grads_c = torch.autograd.grad(Vc.sum(), params)
    torch.testing.assert_close(Vc, V)
    for g, gc in zip(grads, grads_c):
        torch.testing.assert_close(gc, g)
