"""Randman: the generator's formula, reproducibility, and the spike rasters it makes."""

import math
import time

import pytest
import torch

from fastsnn.data import RandmanData, randman
from fastsnn.data.randman import _draw_manifold, _embed, _frequency_count

SMALL = dict(num_classes=3, num_units=7, num_steps=40, samples_per_class=50, split=(30, 10, 10))


def _splits(data):
    return [data.train, data.val, data.test]


def test_frequency_cutoff():
    # amplitude bound 1/k^alpha >= 1e-3, at most 1000 terms
    assert [_frequency_count(a) for a in (0.0, 1.0, 1.5, 2.0, 3.0)] == [1000, 1000, 100, 31, 10]


def test_embed_is_the_product_of_sine_sums():
    g = torch.Generator().manual_seed(5)
    manifold = _draw_manifold(g, num_units=2, manifold_dim=2, alpha=3.0)  # 10 frequencies
    omega, phase, amplitude = manifold
    assert omega.shape == (2, 2, 10)
    k = torch.arange(1, 11, dtype=torch.float64)
    assert torch.all(amplitude <= k ** -3.0) and torch.all(omega <= 2 * math.pi * k)
    x = torch.rand(5, 2, generator=g, dtype=torch.float64)
    w, p, a, xs = omega.tolist(), phase.tolist(), amplitude.tolist(), x.tolist()
    expected = torch.tensor([[math.prod(sum(a[d][u][j] * math.sin(w[d][u][j] * xs[n][d]
                                                                  + p[d][u][j])
                                            for j in range(10)) for d in range(2))
                              for u in range(2)] for n in range(5)], dtype=torch.float64)
    torch.testing.assert_close(_embed(x, manifold), expected, rtol=1e-12, atol=1e-12)


def test_shapes_dtypes_and_class_balance():
    data = randman(**SMALL, seed=1)
    assert isinstance(data, RandmanData)
    for (X, y), n in zip(_splits(data), SMALL["split"]):
        assert X.shape == (3 * n, 40, 7) and X.dtype == torch.float32
        assert y.shape == (3 * n,) and y.dtype == torch.int64
        assert torch.bincount(y, minlength=3).tolist() == [n] * 3
        assert not torch.equal(y, y.sort().values)  # shuffled, not in class blocks


def test_one_spike_per_unit_within_the_window():
    data = randman(**SMALL, spike_window=0.3, seed=2)  # window: round(0.3 * 40) = 12 steps
    X = torch.cat([X for X, _ in _splits(data)])
    y = torch.cat([y for _, y in _splits(data)])
    assert torch.all((X == 0) | (X == 1))
    assert torch.all(X.sum(1) == 1)
    assert X[:, 12:].sum() == 0
    # min-max scaling per class and unit: each unit's earliest spike in a class is at step 0
    # and its latest in the last step of the window
    step = X.argmax(1)
    for c in range(3):
        assert torch.all(step[y == c].amin(0) == 0) and torch.all(step[y == c].amax(0) == 11)


def test_seed_reproduces_and_different_seeds_differ():
    a, b, c = randman(**SMALL, seed=7), randman(**SMALL, seed=7), randman(**SMALL, seed=8)
    for (Xa, ya), (Xb, yb), (Xc, _) in zip(_splits(a), _splits(b), _splits(c)):
        assert torch.equal(Xa, Xb) and torch.equal(ya, yb)
        assert not torch.equal(Xa, Xc)


def test_global_rng_untouched():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    randman(**SMALL)
    assert torch.equal(torch.rand(3), expected)


def test_larger_alpha_gives_smoother_manifolds():
    # total variation along a fine grid of the intrinsic coordinate, relative to the range
    x = torch.linspace(0, 1, 2001, dtype=torch.float64)[:, None]

    def roughness(alpha):
        f = _embed(x, _draw_manifold(torch.Generator().manual_seed(3), 10, 1, alpha))
        return ((f[1:] - f[:-1]).abs().sum(0) / (f.amax(0) - f.amin(0))).mean()

    r0, r1, r3 = roughness(0.0), roughness(1.0), roughness(3.0)
    assert r3 < r1 < r0 and r3 < 0.1 * r0


@pytest.mark.parametrize("kwargs, name", [
    (dict(num_classes=0), "num_classes"),
    (dict(num_units=2.5), "num_units"),
    (dict(num_steps=True), "num_steps"),
    (dict(manifold_dim=0), "manifold_dim"),
    (dict(alpha=-1.0), "alpha"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(samples_per_class=0), "samples_per_class"),
    (dict(split=(800, 100)), "split"),
    (dict(split=(800, 100, 99)), "split"),
    (dict(spike_window=0.0), "spike_window"),
    (dict(spike_window=1.5), "spike_window"),
    (dict(num_steps=10, spike_window=0.01), "spike_window"),
    (dict(seed=-1), "seed"),
])
def test_argument_errors(kwargs, name):
    with pytest.raises(ValueError, match=name):
        randman(**kwargs)


def test_default_data_set_is_fast():
    start = time.perf_counter()
    data = randman()
    elapsed = time.perf_counter() - start
    assert [len(y) for _, y in _splits(data)] == [8000, 1000, 1000]
    assert data.train[0].shape == (8000, 100, 20)
    assert elapsed < 10.0, f"randman() took {elapsed:.1f} s"  # about 1 s on 2 idle cores
