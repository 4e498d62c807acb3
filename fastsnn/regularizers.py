"""Activity regularizers on spike counts, as in Zenke & Vogels (2021), section "Activity
regularization".

Both act on the spike count of each neuron over a trial, zeta_i = sum_t S[b, t, i], per sample,
and return the batch mean of a per-sample penalty, so they add to a loss that is a batch mean:

- ``spike_count_lower``: a per-neuron lower bound. Every neuron whose count falls below nu is
  penalised, which keeps neurons from falling silent for good (a silent neuron passes no
  gradient through its spikes). With the paper's nu = 1e-3 only neurons with no spike at all
  in the sample contribute.
- ``spike_count_upper``: an upper bound on the population mean count of the layer, which keeps
  the layer sparse without forcing any one neuron down.

The gradients reach the network through the surrogate derivative of the spikes.
"""

import math
import numbers

import torch


def _counts(spikes, batch_first):
    """Spike counts per sample and neuron, (B, M), in float32 at least."""
    if not isinstance(spikes, torch.Tensor) or not spikes.is_floating_point():
        raise TypeError(f"spikes must be a floating-point torch.Tensor, got "
                        f"{getattr(spikes, 'dtype', type(spikes).__name__)}")
    if spikes.dim() != 3:
        raise ValueError(f"spikes must have 3 dimensions (B, T, M) or (T, B, M), got shape "
                         f"{tuple(spikes.shape)}")
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first must be a bool, got {type(batch_first).__name__}")
    acc = torch.promote_types(spikes.dtype, torch.float32)
    return spikes.sum(1 if batch_first else 0, dtype=acc)


def _check_real(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value >= minimum):
        raise ValueError(f"{name} must be a finite real number >= {minimum}, got {value!r}")
    return float(value)


def spike_count_lower(spikes, nu=1e-3, strength=100.0, *, batch_first=True):
    """Per-neuron lower bound on spike counts: strength / M * sum_i [nu - zeta_i]_+^2.

    spikes: (B, T, M) (or (T, B, M) with ``batch_first=False``), M neurons; zeta_i is neuron
    i's spike count in a sample. Returns the mean over the batch of the per-sample value, a
    scalar. nu = 1e-3 and strength = 100 are the paper's values.
    """
    zeta = _counts(spikes, batch_first)
    nu = _check_real(nu, "nu", 0.0)
    strength = _check_real(strength, "strength", 0.0)
    return strength * torch.relu(nu - zeta).square().mean(dim=1).mean()


def spike_count_upper(spikes, nu=7.0, strength=0.1, power=2, *, batch_first=True):
    """Upper bound on the population mean spike count: strength * [mean_i zeta_i - nu]_+^power.

    spikes: (B, T, M) (or (T, B, M) with ``batch_first=False``); zeta_i is neuron i's spike
    count in a sample, and the bound applies to the mean over the M neurons of the layer (the
    paper's form), not to each neuron. Returns the mean over the batch, a scalar.

    Defaults: power = 2 as in the paper. nu = 7 spikes per neuron and trial and strength = 0.1
    follow the public example setups of the authors' group; we could not check them against
    the 2021 paper's parameter tables, so treat them as a starting point and tune nu to the
    trial length (7 spikes in 100 steps is a spike every 14 steps on average).
    """
    zeta = _counts(spikes, batch_first)
    nu = _check_real(nu, "nu", 0.0)
    strength = _check_real(strength, "strength", 0.0)
    power = _check_real(power, "power", 1.0)
    return strength * torch.relu(zeta.mean(dim=1) - nu).pow(power).mean()
