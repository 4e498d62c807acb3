"""Randman: the smooth random manifold spike-timing data sets of Zenke & Vogels (2021).

Each class is a random smooth manifold of intrinsic dimension D embedded in
``num_units`` dimensions; a sample is a point drawn on it, and each embedding coordinate
becomes the time of the one spike of one input unit. Harder tasks come from more classes, more
intrinsic dimensions or a rougher manifold (smaller alpha). Written from the paper's
description; the generator here is reproducible for a seed but not bit-for-bit that of the
authors' own code.
"""

import math
import numbers
from typing import NamedTuple

import torch

MAX_FREQUENCIES = 1000
MIN_AMPLITUDE = 1e-3
_CHUNK_ELEMENTS = 1 << 21  # sine arguments evaluated at once: 16 MB of float64


class RandmanData(NamedTuple):
    """The three splits, each a pair (X, y): X float32 (n, num_steps, num_units) of 0/1
    spikes, batch first, and y int64 (n,) class labels."""

    train: tuple
    val: tuple
    test: tuple


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_split(split, samples_per_class):
    if (not isinstance(split, (tuple, list)) or len(split) != 3
            or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0
                   for s in split)):
        raise ValueError(f"split must be three non-negative integers (train, val, test) per "
                         f"class, got {split!r}")
    if sum(split) != samples_per_class:
        raise ValueError(f"split must add up to samples_per_class ({samples_per_class}), got "
                         f"{tuple(split)} adding up to {sum(split)}")
    return tuple(int(s) for s in split)


def _frequency_count(alpha: float) -> int:
    """How many sine terms a coordinate function has: those whose amplitude bound 1/k^alpha is
    at least MIN_AMPLITUDE, at most MAX_FREQUENCIES (all of them for alpha <= 1)."""
    k = torch.arange(1, MAX_FREQUENCIES + 1, dtype=torch.float64)
    return int((k.pow(-alpha) >= MIN_AMPLITUDE * (1 - 1e-12)).sum())


def _draw_manifold(generator, num_units, manifold_dim, alpha):
    """Random parameters of one manifold: (omega, phase, amplitude), each (D, num_units, F).

    Coordinate u of the manifold at intrinsic point x in [0, 1]^D is
        f_u(x) = prod_d sum_k amplitude[d, u, k] * sin(omega[d, u, k] * x_d + phase[d, u, k])
    with, for frequency index k = 1..F and a, f, p drawn U(0, 1),
        amplitude = a / k^alpha,   omega = 2 pi k f,   phase = 2 pi p.
    The amplitude spectrum falls as a power of the frequency: the larger alpha, the faster the
    high frequencies die out and the smoother the manifold (alpha = 0: all frequencies alike, a
    rough one). Terms whose bound 1/k^alpha is below MIN_AMPLITUDE are left out, at most
    MAX_FREQUENCIES kept. The paper writes the one-dimensional function; for D > 1 we multiply
    one such function per intrinsic dimension (a separable choice of ours).
    """
    F = _frequency_count(alpha)
    a, f, p = torch.rand(3, manifold_dim, num_units, F, generator=generator,
                         dtype=torch.float64)
    k = torch.arange(1, F + 1, dtype=torch.float64)
    return 2 * math.pi * k * f, 2 * math.pi * p, a * k.pow(-alpha)


def _embed(x, manifold):
    """Points x (n, D) in [0, 1]^D mapped onto a manifold of ``_draw_manifold``: (n, num_units).

    Vectorised over units and frequencies, a chunk of points at a time so the (units, points,
    frequencies) sine arguments stay small."""
    omega, phase, amplitude = manifold
    D, U, F = omega.shape
    chunk = max(1, _CHUNK_ELEMENTS // (U * F))
    out = x.new_ones((x.shape[0], U))
    for d in range(D):
        parts = []
        for xs in x[:, d].split(chunk):
            arg = torch.addcmul(phase[d, :, None, :], omega[d, :, None, :], xs[None, :, None])
            parts.append(torch.bmm(arg.sin_(), amplitude[d, :, :, None])[..., 0])  # (U, s)
        out *= torch.cat(parts, dim=1).T
    return out


def _spike_raster(times, num_steps):
    """Spike times (n, num_units), int64, to a float32 raster (n, num_steps, num_units) with
    exactly one spike per unit and sample."""
    X = torch.zeros(times.shape[0], num_steps, times.shape[1])
    return X.scatter_(1, times[:, None, :], 1.0)


def randman(num_classes=10, num_units=20, num_steps=100, manifold_dim=1, alpha=1.0,
            samples_per_class=1000, split=(800, 100, 100), spike_window=0.5, seed=0):
    """A Randman classification data set as spike rasters (the paper's defaults).

    For each class a random smooth manifold (``_draw_manifold``: manifold_dim intrinsic
    dimensions, num_units coordinates, smoothness alpha); samples_per_class points drawn
    uniformly in its intrinsic coordinates and mapped onto it; each coordinate min-max scaled
    to [0, 1] over the class's samples, then turned into the one spike of one input unit at
    step int(c * W), clipped to W - 1, where W = round(spike_window * num_steps) is the number
    of steps of the spike window at the start of the trial (50 of 100 by default).

    split: samples per class for (train, val, test); they must add up to samples_per_class.
    Each split is class-balanced and shuffled. Everything comes from one torch.Generator seeded
    with ``seed``; the global RNG is untouched, and the same seed gives the same data.
    Returns a RandmanData of (X, y) pairs: X float32 (n, num_steps, num_units), y int64 (n,).
    """
    num_classes = _check_int(num_classes, "num_classes", 1)
    num_units = _check_int(num_units, "num_units", 1)
    num_steps = _check_int(num_steps, "num_steps", 1)
    manifold_dim = _check_int(manifold_dim, "manifold_dim", 1)
    samples_per_class = _check_int(samples_per_class, "samples_per_class", 1)
    split = _check_split(split, samples_per_class)
    seed = _check_int(seed, "seed", 0)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (
            math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite real number >= 0, got {alpha!r}")
    if isinstance(spike_window, bool) or not isinstance(spike_window, numbers.Real) or not (
            0 < spike_window <= 1):
        raise ValueError(f"spike_window must be a fraction of the trial in (0, 1], got "
                         f"{spike_window!r}")
    window = round(spike_window * num_steps)
    if window < 1:
        raise ValueError(f"spike_window * num_steps must round to at least one step, got "
                         f"{spike_window} * {num_steps}")

    g = torch.Generator().manual_seed(seed)
    manifolds = [_draw_manifold(g, num_units, manifold_dim, float(alpha))
                 for _ in range(num_classes)]
    x = torch.rand(num_classes, samples_per_class, manifold_dim, generator=g,
                   dtype=torch.float64)
    times = []
    for c, manifold in enumerate(manifolds):
        v = _embed(x[c], manifold)
        lo, hi = v.aminmax(dim=0)
        v = (v - lo) / (hi - lo).clamp_min(torch.finfo(v.dtype).tiny)
        times.append((v * window).long().clamp_(0, window - 1))
    times = torch.stack(times)  # (C, S, U)

    splits, start = [], 0
    for n in split:
        t = times[:, start:start + n].reshape(-1, num_units)
        y = torch.arange(num_classes).repeat_interleave(n)
        order = torch.randperm(len(y), generator=g)
        splits.append((_spike_raster(t[order], num_steps), y[order]))
        start += n
    return RandmanData(*splits)
