"""Soak test (opt in: --runslow; marker ``soak``): trains the Randman network with the fused CPU
backend for a few minutes, with variable sequence lengths, and checks that the process's
resident memory stays flat after the warm-up (the CPU buffer pool, saved tensors and autograd
graphs are all released). FASTSNN_SOAK_SECONDS sets the duration (default 180)."""

import os
import time

import pytest
import torch

import fastsnn

pytestmark = [pytest.mark.slow, pytest.mark.soak]


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
@pytest.mark.skipif("cpu" not in fastsnn.available_backends(), reason="needs the extension")
def test_training_memory_stays_flat():
    seconds = float(os.environ.get("FASTSNN_SOAK_SECONDS", "180"))
    torch.manual_seed(0)
    data = fastsnn.data.randman(num_classes=10, num_units=20, num_steps=100,
                                samples_per_class=100, split=(80, 10, 10), seed=0)
    X, y = data.train
    hidden = fastsnn.nn.RecurrentLIF(20, 100, backend="cpu", spike_input=True)
    readout = fastsnn.nn.LeakyIntegrator(100, 10, backend="cpu", spike_input=True)
    opt = torch.optim.Adam(list(hidden.parameters()) + list(readout.parameters()), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    start, samples, steps = time.time(), [], 0
    while time.time() - start < seconds:
        idx = torch.randint(0, X.shape[0], (64,), generator=g)
        T = int(torch.randint(40, 101, (1,), generator=g))  # variable lengths
        S, _ = hidden(X[idx, :T])
        V, _ = readout(S)
        loss = torch.nn.functional.cross_entropy(V.amax(1), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps % 5 == 0:
            samples.append(rss_mb())
    assert len(samples) >= 8, f"only {steps} steps in {seconds} s"
    warm = samples[len(samples) // 5:]  # after the first fifth
    growth = max(warm) - warm[0]
    assert growth < 64, f"resident memory grew by {growth:.0f} MB over {steps} steps: {warm}"
