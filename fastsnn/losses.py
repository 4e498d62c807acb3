"""Classification losses on the membrane trace of a leaky-integrator readout (``fastsnn.li``).

U is (B, T, C): one output unit per class, its membrane potential over the trial. A readout
reduces the time axis to one logit per class, and the loss is the cross-entropy of those
logits with the labels y (B,), averaged over the batch:

- "max": the maximum over time, the readout of Zenke & Vogels (2021). Its gradient goes to the
  step that holds the maximum (the first, on ties), as torch.max gives it and the authors'
  code uses it; amax would share it among tied steps (a readout that stays at 0 ties over
  every step) and costs several times more in backward;
- "sum": the mean over time (the sum scaled by 1/T, so the logits, and with them the softmax,
  do not grow with the trial length; otherwise the same as summing);
- "last": the last time step.
"""

import torch
import torch.nn.functional as nnf


_READOUTS = {
    "max": lambda U: U.max(dim=1).values,
    "sum": lambda U: U.mean(dim=1),
    "last": lambda U: U[:, -1],
}


def _logits(U, kind, batch_first):
    """The (B, C) readout of U for ``kind``, in float32 at least."""
    if not isinstance(U, torch.Tensor) or not U.is_floating_point():
        raise TypeError(f"U must be a floating-point torch.Tensor, got "
                        f"{getattr(U, 'dtype', type(U).__name__)}")
    if U.dim() != 3:
        raise ValueError(f"U must have 3 dimensions (B, T, C) or (T, B, C), got shape "
                         f"{tuple(U.shape)}")
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first must be a bool, got {type(batch_first).__name__}")
    if not isinstance(kind, str) or kind not in _READOUTS:
        raise ValueError(f"kind must be one of {sorted(_READOUTS)}, got {kind!r}")
    if U.shape[1 if batch_first else 0] == 0:
        raise ValueError("U must have at least one time step")
    U = U if batch_first else U.transpose(0, 1)
    return _READOUTS[kind](U.to(torch.promote_types(U.dtype, torch.float32)))


def _check_labels(y, logits):
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32,
                                                          torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"y must be an integer torch.Tensor of class indices, got "
                        f"{getattr(y, 'dtype', type(y).__name__)}")
    if tuple(y.shape) != (logits.shape[0],):
        raise ValueError(f"y must have shape (B,) = ({logits.shape[0]},), got {tuple(y.shape)}")
    return y.long()


def readout_logits(U, kind="max", *, batch_first=True):
    """The (B, C) logits of the ``kind`` readout of U (B, T, C), float32 at least."""
    return _logits(U, kind, batch_first)


def readout_loss(U, y, kind="max", *, batch_first=True):
    """Cross-entropy of the ``kind`` readout of U (B, T, C) with labels y (B,), batch mean.

    kind: "max", "sum" (mean over time) or "last"; see the module docstring.
    """
    logits = _logits(U, kind, batch_first)
    return nnf.cross_entropy(logits, _check_labels(y, logits))


def max_over_time_ce(U, y, *, batch_first=True):
    """Cross-entropy of the maximum over time of U (B, T, C): the paper's readout."""
    return readout_loss(U, y, "max", batch_first=batch_first)


def sum_over_time_ce(U, y, *, batch_first=True):
    """Cross-entropy of the mean over time of U (B, T, C) (the sum scaled by 1/T)."""
    return readout_loss(U, y, "sum", batch_first=batch_first)


def last_step_ce(U, y, *, batch_first=True):
    """Cross-entropy of the last time step of U (B, T, C)."""
    return readout_loss(U, y, "last", batch_first=batch_first)


def accuracy(U, y, kind="max", *, batch_first=True):
    """Fraction of samples whose largest ``kind`` readout is their label, a 0-dim tensor."""
    logits = _logits(U, kind, batch_first)
    return (logits.argmax(dim=1) == _check_labels(y, logits)).float().mean()
