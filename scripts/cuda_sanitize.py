"""Small forward + backward runs of every CUDA kernel, for compute-sanitizer.

    compute-sanitizer --tool memcheck --error-exitcode 1 python scripts/cuda_sanitize.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python scripts/cuda_sanitize.py

fastsnn.lif for every reset mode (detached and not, learnable per-neuron alpha, beta and
threshold, a given initial state) and fastsnn.li, with backend="cuda", in float64, float32 and
bfloat16, on both lane widths of the kernels: one neuron per thread (odd N, a misaligned view)
and 16-byte lanes (N = 1024 and enough rows for the launcher to pick them). PyTorch's caching
allocator is turned off (PYTORCH_NO_CUDA_MEMORY_CACHING=1) so that every tensor is its own
cudaMalloc and memcheck sees a read or write past its end. fastsnn.rlif likewise, on a small
and a large N. Exits non-zero on any error.
"""

import os

os.environ.setdefault("PYTORCH_NO_CUDA_MEMORY_CACHING", "1")

import torch  # noqa: E402

import fastsnn  # noqa: E402


def inputs(B, T, N, dtype, misaligned, seed):
    g = torch.Generator("cuda").manual_seed(seed)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    if misaligned:  # neurons 1..N of N+1: batch/time strides N+1, no 16-byte alignment
        x = torch.randn(B, T, N + 1, generator=g, device="cuda", dtype=acc)[..., 1:]
    else:
        x = torch.randn(B, T, N, generator=g, device="cuda", dtype=acc)
    x = (x * 1.2 + 0.6).to(dtype).detach().requires_grad_()
    alpha = (0.9 * torch.rand(N, generator=g, device="cuda", dtype=acc)).requires_grad_()
    beta = (0.5 + 0.45 * torch.rand(N, generator=g, device="cuda", dtype=acc)).requires_grad_()
    thr = (0.5 + torch.rand(N, generator=g, device="cuda", dtype=acc)).requires_grad_()
    i0 = (0.5 * torch.randn(B, N, generator=g, device="cuda", dtype=acc)).requires_grad_()
    u0 = (0.8 + 0.6 * torch.randn(B, N, generator=g, device="cuda", dtype=acc)).requires_grad_()
    return x, alpha, beta, thr, (i0, u0)


def check(name, tensors):
    torch.cuda.synchronize()
    for i, t in enumerate(tensors):
        if t is None or not torch.isfinite(t).all():
            raise RuntimeError(f"{name}: output or gradient {i} is missing or not finite")


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    # (B, T, N, misaligned): one-neuron lanes; 16-byte lanes need B*N/4 >= 2 * 128 * SMs
    shapes = [(3, 9, 37, True), (sms + 1, 9, 1024, False)]
    dtypes = [torch.float64, torch.float32, torch.bfloat16]
    runs = 0
    for B, T, N, mis in shapes:
        for dtype in dtypes:
            for reset in ("zero", "subtract", "none"):
                for detach in (True, False):
                    x, alpha, beta, thr, state = inputs(B, T, N, dtype, mis, runs)
                    s, (i_T, u_T) = fastsnn.lif(x, alpha, beta, thr, state=state, reset=reset,
                                                detach_reset=detach, surrogate="sigmoid",
                                                backend="cuda")
                    loss = (s.float() * torch.randn_like(s.float())).sum() + u_T.sum()
                    leaves = (x, alpha, beta, thr, *state)
                    check(f"lif {dtype} {reset} detach={detach} N={N}",
                          (s, i_T, u_T, *torch.autograd.grad(loss + i_T.sum(), leaves)))
                    with torch.no_grad():  # inference: nothing saved
                        fastsnn.lif(x, 0.8, 0.9, reset=reset, backend="cuda")
                    runs += 1
            x, alpha, beta, _, state = inputs(B, T, N, dtype, mis, runs)
            u, (i_T, u_T) = fastsnn.li(x, alpha, beta, state=state, backend="cuda")
            loss = (u.float() * torch.randn_like(u.float())).sum() + u_T.sum() + i_T.sum()
            check(f"li {dtype} N={N}",
                  (u, i_T, u_T, *torch.autograd.grad(loss, (x, alpha, beta, *state))))
            with torch.no_grad():
                fastsnn.li(x, 0.8, 0.9, backend="cuda")
            runs += 1
    # rlif: a small odd N (V in shared memory) and a large one (V read in chunks from global
    # memory), every reset, recurrent gradient on and off, dV included
    for B, T, N, mis in [(3, 9, 37, True), (5, 6, 1500, False)]:
        for dtype in dtypes:
            for reset in ("zero", "subtract", "none"):
                for detach_rec in (False, True):
                    x, alpha, beta, thr, state = inputs(B, T, N, dtype, mis, runs)
                    acc = torch.float64 if dtype == torch.float64 else torch.float32
                    w = (torch.randn(N, N, device="cuda", dtype=acc) / N ** 0.5).requires_grad_()
                    s, (i_T, u_T) = fastsnn.rlif(x, w, alpha, beta, thr, state=state,
                                                 reset=reset, detach_reset=reset != "zero",
                                                 detach_recurrent=detach_rec, backend="cuda")
                    loss = (s.float() * torch.randn_like(s.float())).sum() + u_T.sum()
                    leaves = (x, w, alpha, beta, thr, *state)
                    check(f"rlif {dtype} {reset} detach_recurrent={detach_rec} N={N}",
                          (s, i_T, u_T, *torch.autograd.grad(loss + i_T.sum(), leaves)))
                    with torch.no_grad():
                        fastsnn.rlif(x, w, 0.8, 0.9, reset=reset, backend="cuda")
                    runs += 1
    torch.cuda.synchronize()
    print(f"cuda_sanitize: {runs} forward+backward runs, all outputs finite")


if __name__ == "__main__":
    main()
