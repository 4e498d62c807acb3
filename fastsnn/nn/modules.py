"""Thin torch.nn.Modules: ``LIFNeuron`` (the neuron alone), ``LIF`` (Linear + lif),
``RecurrentLIF`` (Linear + V + rlif) and ``LeakyIntegrator`` (Linear + li).

Time constants come as decays (``alpha``, ``beta``, default 0.8 and 0.9) or as time constants
with a time step (``tau_syn``, ``tau_mem``, ``dt``: alpha = exp(-dt / tau_syn), beta =
exp(-dt / tau_mem); the paper's tau_syn = 5 ms, tau_mem = 10 ms at dt = 1 ms give about the
default decays). They and the threshold are fixed floats unless a module is asked to learn them
(``learn_alpha`` / ``learn_beta`` / ``learn_threshold``): then they are per-neuron
``nn.Parameter``s of shape (N,) holding the values themselves.

Keeping learned values in range, two parts:

- The forward never uses a stored value as it is: it uses it projected into its valid range,
  alpha and beta clamped to [0, 1] and the threshold to [MIN_THRESHOLD, the dtype's largest
  finite value], so no optimizer step can make a forward fail because of the module's own
  parameters (a NaN parameter, a diverged training, still gives the error naming it). The clamp
  passes the gradient straight through, so a parameter pushed past a bound still learns and can
  come back. The forward modifies nothing in place.
- The stored values themselves are projected only on request: ``module.constrain_()`` on any
  of these modules, or ``fastsnn.nn.constrain_parameters(model)`` over a whole model, clamps
  them in place into the same ranges. Call it after ``optimizer.step()`` (not between a forward
  and its backward) to keep the stored values meaningful, e.g. for inspection or export; after
  it, the stored values are the ones the forward uses. Without it, a value past a bound (say
  alpha = 5.5 after many Adam steps) keeps drifting while the forward uses 1.0.

Every forward takes an optional state (I, U) and returns (output, (I_T, U_T)), like nn.RNN.
"""

import math
import numbers

import torch
from torch import nn

from .. import functional as F

MIN_THRESHOLD = 1e-6


def _check_real(value, name, ok, expected):
    """A real number (not a bool) for which ok(value) holds, as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(float(value)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def _decays(alpha, beta, tau_syn, tau_mem, dt):
    """alpha and beta from the decays or from the time constants and dt (defaults 0.8, 0.9)."""
    if tau_syn is None and tau_mem is None:
        if dt is not None:
            raise ValueError("dt is used only with tau_syn or tau_mem; give those too, or "
                             "give the decays alpha and beta without dt")
    else:
        if dt is None:
            raise ValueError("tau_syn and tau_mem need the time step dt (in their units)")
        dt = _check_real(dt, "dt", lambda v: 0 < v < math.inf, "a finite real number > 0")
    out = []
    for decay, tau, name, tau_name, default in ((alpha, tau_syn, "alpha", "tau_syn", 0.8),
                                                (beta, tau_mem, "beta", "tau_mem", 0.9)):
        if tau is None:
            out.append(_check_real(default if decay is None else decay, name,
                                   lambda v: 0 <= v <= 1, "a real number in [0, 1]"))
        elif decay is not None:
            raise ValueError(f"give {name} (a decay) or {tau_name} (a time constant), not both")
        else:
            tau = _check_real(tau, tau_name, lambda v: v >= 0, "a real number >= 0")
            out.append(0.0 if tau == 0 else math.exp(-dt / tau))  # tau = 0: no memory
    return out


def _parameter(value, learn, size, name):
    """The float itself, or a learnable per-neuron (size,) parameter starting at it."""
    if not learn:
        return value
    if size is None:
        raise ValueError(f"learn_{name}=True needs the number of neurons (size)")
    return nn.Parameter(torch.full((size,), value))


def _upper(value, hi):
    """hi, or the largest finite value of value's dtype when there is no upper bound."""
    return torch.finfo(value.dtype).max if hi is None else hi


def _in_range(value, lo, hi=None):
    """A learned value clamped to [lo, hi] for the forward (hi None: the dtype's largest finite
    value), with its gradient passed straight through (d/dvalue = 1), so that a parameter past a
    bound keeps learning. Floats are checked at construction and pass unchanged."""
    if not isinstance(value, torch.Tensor):
        return value
    return value.detach().clamp(lo, _upper(value, hi)) + (value - value.detach())


def _project_(value, lo, hi=None):
    """Clamp a learned parameter in place into [lo, hi] (what ``_in_range`` uses); floats are
    left alone. NaN stays NaN (a diverged training is reported, not hidden)."""
    if isinstance(value, nn.Parameter):
        with torch.no_grad():
            value.clamp_(lo, _upper(value, hi))


def constrain_parameters(model: nn.Module) -> nn.Module:
    """Project the learned alpha / beta / threshold of every fastsnn module in ``model`` into
    their valid ranges, in place (``constrain_()`` on each); returns the model. Call it after
    ``optimizer.step()``::

        loss.backward(); optimizer.step(); fastsnn.nn.constrain_parameters(model)
    """
    for m in model.modules():
        if isinstance(m, (LIFNeuron, LeakyIntegrator, AdLIF)):
            m.constrain_()
    return model


def _learned(module, names):
    return [n for n in names if isinstance(getattr(module, n), nn.Parameter)]


class LIFNeuron(nn.Module):
    """LIF neurons applied to an input current X (B, T, N): ``fastsnn.lif`` with stored options.

    size: N, needed only when something is learned. alpha/beta or tau_syn/tau_mem with dt: the
    decays (see the module docstring); threshold: > 0.
    """

    def __init__(self, size=None, alpha=None, beta=None, threshold=1.0, *, tau_syn=None,
                 tau_mem=None, dt=None, learn_alpha=False, learn_beta=False,
                 learn_threshold=False, reset="zero", detach_reset=True, surrogate="superspike",
                 scale=10.0, normalize_input=True, batch_first=True, backend="auto"):
        super().__init__()
        self.size = size
        alpha, beta = _decays(alpha, beta, tau_syn, tau_mem, dt)
        threshold = _check_real(threshold, "threshold", lambda v: 0 < v < math.inf,
                                "a finite real number > 0")
        self.alpha = _parameter(alpha, learn_alpha, size, "alpha")
        self.beta = _parameter(beta, learn_beta, size, "beta")
        self.threshold = _parameter(threshold, learn_threshold, size, "threshold")
        self.options = dict(reset=reset, detach_reset=detach_reset, surrogate=surrogate,
                            scale=scale, normalize_input=normalize_input,
                            batch_first=batch_first, backend=backend)

    def constrain_(self):
        """Clamp the learned alpha and beta into [0, 1] and the learned threshold into
        [MIN_THRESHOLD, the dtype's largest finite value], in place (the values the forward
        uses anyway); call it after ``optimizer.step()``. Returns self."""
        _project_(self.alpha, 0.0, 1.0)
        _project_(self.beta, 0.0, 1.0)
        _project_(self.threshold, MIN_THRESHOLD)
        return self

    def lif_params(self):
        """(alpha, beta, threshold) as the forward passes them: learned ones in range."""
        return (_in_range(self.alpha, 0.0, 1.0), _in_range(self.beta, 0.0, 1.0),
                _in_range(self.threshold, MIN_THRESHOLD))

    def forward(self, X, state=None):
        return F.lif(X, *self.lif_params(), state=state, **self.options)

    def extra_repr(self):
        fixed = [f"{n}={getattr(self, n)!r}" for n in ("alpha", "beta", "threshold")
                 if not isinstance(getattr(self, n), nn.Parameter)]
        return ", ".join([f"size={self.size}", *fixed,
                          f"learned={_learned(self, ('alpha', 'beta', 'threshold'))}"]
                         + [f"{k}={v!r}" for k, v in self.options.items()])


def _project(linear, x, spike_input, backend):
    """linear(x); with spike_input, F.spike_linear (the CPU kernel skips the zero entries of
    x), except on the reference backend, which stays plain PyTorch."""
    if not spike_input:
        return linear(x)
    return F.spike_linear(x, linear.weight, linear.bias,
                          backend="torch" if backend == "torch" else "auto")


class LIF(nn.Module):
    """Linear(in_features, out_features) followed by LIF neurons: x (B, T, in) -> spikes.

    spike_input=True says x is mostly zeros (spikes): on the CPU the projection then skips
    them (``fastsnn.spike_linear``), same result as the Linear. neuron_kwargs go to
    ``LIFNeuron`` (decays or time constants, learn_*, reset, ...)."""

    def __init__(self, in_features, out_features, bias=True, *, spike_input=False,
                 **neuron_kwargs):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.spike_input = bool(spike_input)
        self.neuron = LIFNeuron(out_features, **neuron_kwargs)

    def constrain_(self):
        """``self.neuron.constrain_()``: learned alpha/beta/threshold into range, in place;
        call it after ``optimizer.step()``. Returns self."""
        self.neuron.constrain_()
        return self

    def forward(self, x, state=None):
        x = _project(self.linear, x, self.spike_input, self.neuron.options["backend"])
        return self.neuron(x, state)


class RecurrentLIF(nn.Module):
    """Linear input plus a recurrent weight V (N, N), the recurrence inside ``fastsnn.rlif``.

    V starts uniform in ±1/sqrt(N) (the nn.RNN habit); detach_recurrent is the paper's "Ctl";
    spike_input as for ``LIF``. neuron_kwargs go to ``LIFNeuron``.
    """

    def __init__(self, in_features, out_features, bias=True, *, detach_recurrent=False,
                 spike_input=False, **neuron_kwargs):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.spike_input = bool(spike_input)
        self.weight_rec = nn.Parameter(torch.empty(out_features, out_features))
        bound = 1.0 / math.sqrt(out_features)
        nn.init.uniform_(self.weight_rec, -bound, bound)
        self.detach_recurrent = detach_recurrent
        self.neuron = LIFNeuron(out_features, **neuron_kwargs)

    def constrain_(self):
        """``self.neuron.constrain_()``: learned alpha/beta/threshold into range, in place;
        call it after ``optimizer.step()``. Returns self."""
        self.neuron.constrain_()
        return self

    def forward(self, x, state=None):
        x = _project(self.linear, x, self.spike_input, self.neuron.options["backend"])
        return F.rlif(x, self.weight_rec, *self.neuron.lif_params(), state=state,
                      detach_recurrent=self.detach_recurrent, **self.neuron.options)


class LeakyIntegrator(nn.Module):
    """Linear(in_features, out_features) followed by the leaky-integrator readout ``li``.

    alpha/beta or tau_syn/tau_mem with dt as for ``LIFNeuron``; learn_alpha / learn_beta make
    them per-unit parameters, kept in [0, 1] the same way; spike_input as for ``LIF`` (a
    readout of spiking neurons)."""

    def __init__(self, in_features, out_features, bias=True, alpha=None, beta=None, *,
                 tau_syn=None, tau_mem=None, dt=None, learn_alpha=False, learn_beta=False,
                 normalize_input=True, batch_first=True, backend="auto", spike_input=False):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.spike_input = bool(spike_input)
        alpha, beta = _decays(alpha, beta, tau_syn, tau_mem, dt)
        self.alpha = _parameter(alpha, learn_alpha, out_features, "alpha")
        self.beta = _parameter(beta, learn_beta, out_features, "beta")
        self.options = dict(normalize_input=normalize_input, batch_first=batch_first,
                            backend=backend)

    def constrain_(self):
        """Clamp the learned alpha and beta into [0, 1] in place (the values the forward uses
        anyway); call it after ``optimizer.step()``. Returns self."""
        _project_(self.alpha, 0.0, 1.0)
        _project_(self.beta, 0.0, 1.0)
        return self

    def forward(self, x, state=None):
        x = _project(self.linear, x, self.spike_input, self.options["backend"])
        return F.li(x, _in_range(self.alpha, 0.0, 1.0),
                    _in_range(self.beta, 0.0, 1.0), state=state, **self.options)


def _range(value, name):
    """A (lo, hi) pair of finite reals with lo <= hi."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in value)
            or not all(math.isfinite(v) for v in value) or value[0] > value[1]):
        raise ValueError(f"{name} must be a pair (lo, hi) of finite reals with lo <= hi, "
                         f"got {value!r}")
    return float(value[0]), float(value[1])


class AdLIF(nn.Module):
    """Linear(in_features, out_features), an optional recurrent weight V (N, N) and adaptive LIF
    neurons (``fastsnn.adlif``, SPEC section 7): x (B, T, in) -> spikes, as SE-adLIF (Baronig
    et al. 2025) and adLIF (Bittar & Garner 2022) build their layers.

    Per-neuron parameters, each learned and kept in the published ranges:

    - ``alpha`` (membrane decay) and ``beta`` (adaptation decay), stored as decays and
      initialised uniformly between exp(-1/tau_min) and exp(-1/tau_max) of ``tau_u_range``
      (default 5 to 25 steps) and ``tau_w_range`` (60 to 300 steps);
    - ``a`` in ``a_range`` (default [0, 1]) and ``b`` in ``b_range`` ([0, 2]), initialised
      uniformly there; the neuron gets q * a and q * b (``q``, default 120, the published scale
      of the adaptation's drive).

    Ranges are kept by clamping, as the published code does after each optimizer step: the
    forward uses the stored values clamped into their ranges (the gradient passes straight
    through, so a value pushed past a bound still learns), and ``constrain_()`` (or
    ``fastsnn.nn.constrain_parameters(model)``) clamps the stored values in place after
    ``optimizer.step()``. Clamping, not a reparametrisation, so that the stored parameters are
    the decays and couplings themselves and the gradient is the one of the published models.

    V starts orthogonal (the published initialisation); the input weights as nn.Linear.
    threshold: > 0, fixed. spike_input=True: x is mostly zeros (spikes), and on the CPU the
    projection skips them (``fastsnn.spike_linear``). The other keyword arguments (variant,
    reset, detach_reset, detach_recurrent, surrogate, scale, batch_first, backend) go to
    ``fastsnn.adlif``. Forward: (x, state=None) -> (Z, (u_T, w_T, z_T)).
    """

    def __init__(self, in_features, out_features, bias=True, *, recurrent=True, variant="se",
                 tau_u_range=(5.0, 25.0), tau_w_range=(60.0, 300.0), a_range=(0.0, 1.0),
                 b_range=(0.0, 2.0), q=120.0, threshold=1.0, spike_input=False, reset="zero",
                 detach_reset=True, detach_recurrent=False, surrogate="superspike", scale=10.0,
                 batch_first=True, backend="auto"):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.spike_input = bool(spike_input)
        self.tau_u_range = _range(tau_u_range, "tau_u_range")
        self.tau_w_range = _range(tau_w_range, "tau_w_range")
        if min(self.tau_u_range + self.tau_w_range) <= 0:
            raise ValueError("tau_u_range and tau_w_range must be positive numbers of steps")
        self.a_range = _range(a_range, "a_range")
        self.b_range = _range(b_range, "b_range")
        self.q = _check_real(q, "q", lambda v: math.isfinite(v), "a finite real number")
        self.threshold = _check_real(threshold, "threshold", lambda v: 0 < v < math.inf,
                                     "a finite real number > 0")
        n = out_features
        self.alpha = nn.Parameter(torch.empty(n))
        self.beta = nn.Parameter(torch.empty(n))
        self.a = nn.Parameter(torch.empty(n))
        self.b = nn.Parameter(torch.empty(n))
        self.weight_rec = nn.Parameter(torch.empty(n, n)) if recurrent else None
        self.options = dict(variant=variant, reset=reset, detach_reset=detach_reset,
                            detach_recurrent=detach_recurrent, surrogate=surrogate,
                            scale=scale, batch_first=batch_first, backend=backend)
        self.reset_parameters()

    def decay_range(self, taus):
        return math.exp(-1.0 / taus[0]), math.exp(-1.0 / taus[1])

    def reset_parameters(self):
        with torch.no_grad():
            self.alpha.uniform_(*self.decay_range(self.tau_u_range))
            self.beta.uniform_(*self.decay_range(self.tau_w_range))
            self.a.uniform_(*self.a_range)
            self.b.uniform_(*self.b_range)
            if self.weight_rec is not None:
                nn.init.orthogonal_(self.weight_rec)

    def constrain_(self):
        """Clamp alpha, beta, a and b into their ranges in place (the values the forward uses
        anyway); call it after ``optimizer.step()``. Returns self."""
        _project_(self.alpha, *self.decay_range(self.tau_u_range))
        _project_(self.beta, *self.decay_range(self.tau_w_range))
        _project_(self.a, *self.a_range)
        _project_(self.b, *self.b_range)
        return self

    def adlif_params(self):
        """(alpha, beta, a, b) as the forward passes them: in range, a and b times q."""
        return (_in_range(self.alpha, *self.decay_range(self.tau_u_range)),
                _in_range(self.beta, *self.decay_range(self.tau_w_range)),
                self.q * _in_range(self.a, *self.a_range),
                self.q * _in_range(self.b, *self.b_range))

    def forward(self, x, state=None):
        x = _project(self.linear, x, self.spike_input, self.options["backend"])
        return F.adlif(x, *self.adlif_params(), self.threshold, weight_rec=self.weight_rec,
                       state=state, **self.options)

    def extra_repr(self):
        return (f"in_features={self.linear.in_features}, out_features={self.linear.out_features}"
                f", recurrent={self.weight_rec is not None}, tau_u_range={self.tau_u_range}, "
                f"tau_w_range={self.tau_w_range}, a_range={self.a_range}, "
                f"b_range={self.b_range}, q={self.q}, threshold={self.threshold}, "
                + ", ".join(f"{k}={v!r}" for k, v in self.options.items()))
