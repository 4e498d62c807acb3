"""Data sets of the Zenke & Vogels (2021) experiments: ``randman`` generates the synthetic
Randman task; ``load_shd`` reads a local copy of the Spiking Heidelberg Digits (SHD)."""

import math
import numbers
import os

import torch

from .randman import RandmanData, randman

__all__ = ["RandmanData", "randman", "load_shd"]


def load_shd(path, num_steps=100, max_time=1.4, num_units=700, dtype=torch.float32):
    """Spiking Heidelberg Digits from a local HDF5 file as binned spike counts.

    The file holds ``spikes/times`` (seconds) and ``spikes/units`` (channel indices), one
    variable-length array per sample, and ``labels``. Spikes at times in [0, max_time) are
    counted in num_steps equal bins; later ones are dropped (1.4 s covers the SHD recordings).
    Returns X (n, num_steps, num_units) of spike counts in ``dtype``, batch first, and y int64
    (n,). Needs h5py (imported here only).
    """
    try:
        import h5py
    except ImportError as e:
        raise ImportError("load_shd needs h5py to read the SHD HDF5 files: pip install h5py") from e
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    for name, value in (("num_steps", num_steps), ("num_units", num_units)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(max_time, bool) or not isinstance(max_time, numbers.Real) or not (
            math.isfinite(max_time) and max_time > 0):
        raise ValueError(f"max_time must be a finite number of seconds > 0, got {max_time!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")

    with h5py.File(path, "r") as f:
        times, units = f["spikes/times"][:], f["spikes/units"][:]
        y = torch.as_tensor(f["labels"][:].astype("int64"))
    n = len(y)
    if len(times) != n or len(units) != n:
        raise ValueError(f"{path}: spikes/times ({len(times)}), spikes/units ({len(units)}) "
                         f"and labels ({n}) must have one entry per sample")
    counts = [len(t) for t in times]
    if counts != [len(u) for u in units]:
        raise ValueError(f"{path}: spikes/times and spikes/units differ in length for a sample")
    sample = torch.arange(n).repeat_interleave(torch.tensor(counts, dtype=torch.int64))
    t = torch.cat([torch.as_tensor(a, dtype=torch.float64) for a in times]
                  + [torch.empty(0, dtype=torch.float64)])
    u = torch.cat([torch.as_tensor(a.astype("int64")) for a in units]
                  + [torch.empty(0, dtype=torch.int64)])
    if len(u) and not (0 <= int(u.min()) and int(u.max()) < num_units):
        raise ValueError(f"spike units must lie in [0, num_units={num_units}); {path} has "
                         f"units {int(u.min())}..{int(u.max())}")
    keep = (t >= 0) & (t < max_time)
    step = (t[keep] * (num_steps / max_time)).long().clamp_(max=num_steps - 1)
    X = torch.zeros(n, num_steps, num_units, dtype=dtype)
    X.index_put_((sample[keep], step, u[keep]), torch.ones((), dtype=dtype), accumulate=True)
    return X, y
