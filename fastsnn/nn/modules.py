"""Thin torch.nn.Modules: ``LIFNeuron`` (the neuron alone), ``LIF`` (Linear + lif),
``RecurrentLIF`` (Linear + V + rlif) and ``LeakyIntegrator`` (Linear + li).

Time constants and thresholds are fixed floats unless a module is asked to learn them
(``learn_alpha`` / ``learn_beta`` / ``learn_threshold``): then they are per-neuron
``nn.Parameter``s of shape (N,). Learned decays must stay in [0, 1]; the functions check it.
Every forward takes an optional state (I, U) and returns (output, (I_T, U_T)), like nn.RNN.
"""

import math

import torch
from torch import nn

from .. import functional as F


def _decay(value, learn, size, name):
    if not learn:
        return float(value)
    if size is None:
        raise ValueError(f"learn_{name}=True needs the number of neurons (size)")
    return nn.Parameter(torch.full((size,), float(value)))


class LIFNeuron(nn.Module):
    """LIF neurons applied to an input current X (B, T, N): ``fastsnn.lif`` with stored options.

    size: N, needed only when something is learned.
    """

    def __init__(self, size=None, alpha=0.8, beta=0.9, threshold=1.0, *, learn_alpha=False,
                 learn_beta=False, learn_threshold=False, reset="zero", detach_reset=True,
                 surrogate="superspike", scale=10.0, normalize_input=True, batch_first=True,
                 backend="auto"):
        super().__init__()
        self.size = size
        self.alpha = _decay(alpha, learn_alpha, size, "alpha")
        self.beta = _decay(beta, learn_beta, size, "beta")
        self.threshold = _decay(threshold, learn_threshold, size, "threshold")
        self.options = dict(reset=reset, detach_reset=detach_reset, surrogate=surrogate,
                            scale=scale, normalize_input=normalize_input,
                            batch_first=batch_first, backend=backend)

    def forward(self, X, state=None):
        return F.lif(X, self.alpha, self.beta, self.threshold, state=state, **self.options)

    def extra_repr(self):
        learned = [n for n in ("alpha", "beta", "threshold")
                   if isinstance(getattr(self, n), nn.Parameter)]
        return (f"size={self.size}, learned={learned}, "
                + ", ".join(f"{k}={v!r}" for k, v in self.options.items()))


class LIF(nn.Module):
    """Linear(in_features, out_features) followed by LIF neurons: x (B, T, in) -> spikes."""

    def __init__(self, in_features, out_features, bias=True, **neuron_kwargs):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.neuron = LIFNeuron(out_features, **neuron_kwargs)

    def forward(self, x, state=None):
        return self.neuron(self.linear(x), state)


class RecurrentLIF(nn.Module):
    """Linear input plus a recurrent weight V (N, N), the recurrence inside ``fastsnn.rlif``.

    V starts uniform in ±1/sqrt(N) (the nn.RNN habit); detach_recurrent is the paper's "Ctl".
    """

    def __init__(self, in_features, out_features, bias=True, *, detach_recurrent=False,
                 **neuron_kwargs):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.weight_rec = nn.Parameter(torch.empty(out_features, out_features))
        bound = 1.0 / math.sqrt(out_features)
        nn.init.uniform_(self.weight_rec, -bound, bound)
        self.detach_recurrent = detach_recurrent
        self.neuron = LIFNeuron(out_features, **neuron_kwargs)

    def forward(self, x, state=None):
        n = self.neuron
        return F.rlif(self.linear(x), self.weight_rec, n.alpha, n.beta, n.threshold,
                      state=state, detach_recurrent=self.detach_recurrent, **n.options)


class LeakyIntegrator(nn.Module):
    """Linear(in_features, out_features) followed by the leaky-integrator readout ``li``."""

    def __init__(self, in_features, out_features, bias=True, alpha=0.8, beta=0.9, *,
                 learn_alpha=False, learn_beta=False, normalize_input=True, batch_first=True,
                 backend="auto"):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.alpha = _decay(alpha, learn_alpha, out_features, "alpha")
        self.beta = _decay(beta, learn_beta, out_features, "beta")
        self.options = dict(normalize_input=normalize_input, batch_first=batch_first,
                            backend=backend)

    def forward(self, x, state=None):
        return F.li(self.linear(x), self.alpha, self.beta, state=state, **self.options)
