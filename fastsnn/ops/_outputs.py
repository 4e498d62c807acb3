"""The outputs of the scan ops, allocated in one place: for the Triton wrappers
(ops/_triton_common.py) and the fake implementations of the C++ ops (ops/<op>/fake.py)."""

import torch

from .._validate import acc_dtype


def alloc(shape, like, dtype):
    """Every output goes through here (tests poison it with NaN)."""
    return like.new_empty(shape, dtype=dtype)


def alloc_like(x):
    return torch.empty_like(x)


def outputs(like, alloc=alloc, alloc_like=alloc_like, seq=(), part=(), square=()):
    """The outputs of a scan op for ``like`` [B, T, N] (unit neuron stride): alloc_like(like),
    then the two (B, N) final states or state gradients, then per flag of ``seq`` a
    (B, T, N), of ``part`` a (B, N), of ``square`` an (N, N) tensor, each in the accumulation
    dtype and an empty (0,) one where its flag is False (an output that was not asked for).
    The Triton modules pass their own alloc / alloc_like, which tests replace."""
    B, T, N = like.shape
    acc = acc_dtype(like.dtype)

    def maybe(want, shape):
        return alloc(shape if want else (0,), like, acc)

    return (alloc_like(like), alloc((B, N), like, acc), alloc((B, N), like, acc),
            *(maybe(w, (B, T, N)) for w in seq), *(maybe(w, (B, N)) for w in part),
            *(maybe(w, (N, N)) for w in square))
