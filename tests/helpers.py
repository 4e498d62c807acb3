"""Shared machinery of the kernel tests: run a backend and the reference on identical inputs
with one loss that mixes the output and the final state, and compare what comes back."""

import torch

import fastsnn

DTYPES = {"f64": torch.float64, "f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def make_inputs(B, T, N, dtype, *, seed=0, batch_first=True, noncontig=False, learn=(),
                state=False, per_neuron=False, alpha=0.8, beta=0.9, threshold=1.0,
                mean=0.15, std=0.3):
    """X (requires grad), parameters and optional state, all leaves."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, N) if batch_first else (T, B, N)
    if noncontig:  # a slice of a wider tensor: batch/time strides differ from a packed layout
        wide = mean + std * torch.randn(*shape[:-1], 2 * N + 3, generator=g, dtype=torch.float64)
        X = wide.to(dtype)[..., 1:N + 1].detach().requires_grad_()
        assert not X.is_contiguous()
    else:
        X = (mean + std * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
        X.requires_grad_()
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    params = {}
    for name, v in (("alpha", alpha), ("beta", beta), ("threshold", threshold)):
        if name in learn or per_neuron:
            jitter = 0.05 * torch.rand(N, generator=g, dtype=torch.float64) if per_neuron else 0
            t = (v - jitter) * torch.ones(N, dtype=torch.float64)
            params[name] = t.to(acc).requires_grad_(name in learn)
        else:
            params[name] = v
    st = None
    if state:
        I0 = (0.3 * torch.randn(B, N, generator=g, dtype=torch.float64)).to(acc)
        U0 = (0.9 + 0.3 * torch.randn(B, N, generator=g, dtype=torch.float64)).to(acc)
        st = (I0.requires_grad_(), U0.requires_grad_())
    return X, params, st


def clone_leaves(X, params, state):
    """Fresh leaf copies of the same values (so two backends get separate .grad)."""
    def c(t):
        return t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t
    Xc = torch.empty_strided(X.shape, X.stride(), dtype=X.dtype)  # keeps a strided layout
    Xc.copy_(X.detach())
    Xc.requires_grad_(X.requires_grad)
    return Xc, {k: c(v) for k, v in params.items()}, (tuple(c(s) for s in state) if state else None)


def loss_weights(S, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(S.shape, generator=g, dtype=torch.float64).to(S.dtype)
    B, N = (S.shape[0], S.shape[2])
    c1 = torch.randn(max(B, S.shape[1]), N, generator=g, dtype=torch.float64)
    c2 = torch.randn(max(B, S.shape[1]), N, generator=g, dtype=torch.float64)
    return w, c1, c2


def run(fn, backend, X, params, state, **opts):
    """Forward and backward of fastsnn.lif / fastsnn.li; returns outputs and every gradient."""
    X, params, state = clone_leaves(X, params, state)
    out, (I_T, U_T) = fn(X, *([params["alpha"], params["beta"]] +
                              ([params["threshold"]] if fn is fastsnn.lif else [])),
                         state=state, backend=backend, **opts)
    w, c1, c2 = loss_weights(out)
    B, N = I_T.shape
    loss = ((out.to(torch.float64) * w.to(torch.float64)).sum()
            + (U_T.to(torch.float64) * c1[:B]).sum() + 0.5 * (I_T.to(torch.float64) * c2[:B]).sum())
    loss.backward()
    grads = {"X": X.grad}
    for k, v in params.items():
        if isinstance(v, torch.Tensor) and v.requires_grad:
            grads[k] = v.grad
    if state:
        grads["I0"], grads["U0"] = state[0].grad, state[1].grad
    return {"out": out.detach(), "I_T": I_T.detach(), "U_T": U_T.detach()}, grads


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() if b.numel() else 0.0


def mismatch_rate(a, b):
    return (a != b).double().mean().item() if a.numel() else 0.0


def kept_bytes(call):
    """Run call() and return {storage pointer: bytes} of the tensors autograd keeps for the
    backward (each storage once)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        call()
    return storages
