"""Small forward + backward runs of every CUDA kernel, for compute-sanitizer.

    compute-sanitizer --tool memcheck --error-exitcode 1 --kernel-name kns=fastsnn \\
        python scripts/cuda_sanitize.py
    compute-sanitizer --tool racecheck --error-exitcode 1 --kernel-name kns=fastsnn \\
        python scripts/cuda_sanitize.py
    python scripts/cuda_sanitize.py --plan      # the runs, without a GPU

``--kernel-name kns=fastsnn`` checks only fastsnn's kernels (all in namespace fastsnn, so the
mangled names hold "fastsnn"); PyTorch's own kernels (randn, the reference's ops) then run
unchecked at full speed.

fastsnn.lif for every reset mode (detached and not, learnable per-neuron alpha, beta and
threshold, a given initial state) and fastsnn.li, with backend="cuda", in float64, float32 and
bfloat16, on both lane widths of the kernels: one neuron per thread (odd N, a misaligned view)
and 16-byte lanes (N = 1024 and enough rows for the launcher to pick them). PyTorch's caching
allocator is turned off (PYTORCH_NO_CUDA_MEMORY_CACHING=1) so that every tensor is its own
cudaMalloc and memcheck sees a read or write past its end. fastsnn.rlif likewise, on a small
and a large N. --ops and --dtypes narrow the runs. One line per run is printed as it starts, so
a log cut short by a timeout shows how far it got. Exits non-zero on any error.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("PYTORCH_NO_CUDA_MEMORY_CACHING", "1")

import torch  # noqa: E402

import fastsnn  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}
RESETS = ("zero", "subtract", "none")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ops", default="lif,li,rlif", help="comma list of lif, li, rlif")
    p.add_argument("--dtypes", default=",".join(DTYPES), help=f"comma list of {', '.join(DTYPES)}")
    p.add_argument("--plan", action="store_true", help="print the runs and exit (no GPU needed)")
    a = p.parse_args(argv)
    a.ops, dtypes = a.ops.split(","), a.dtypes.split(",")
    for name, vals, ok in (("ops", a.ops, ("lif", "li", "rlif")), ("dtypes", dtypes, DTYPES)):
        bad = [v for v in vals if v not in ok]
        if bad:
            p.error(f"--{name}: unknown {bad}, expected some of {list(ok)}")
    a.dtypes = [DTYPES[d] for d in dtypes]
    return a


def runs(ops, dtypes, sms):
    """(op, B, T, N, misaligned, dtype, options) for every run; sms: multiprocessors."""
    # (B, T, N, misaligned): one-neuron lanes; 16-byte lanes need B*N/4 >= 2 * 128 * SMs
    for B, T, N, mis in [(3, 9, 37, True), (sms + 1, 9, 1024, False)]:
        for dtype in dtypes:
            if "lif" in ops:
                for reset in RESETS:
                    for detach in (True, False):
                        yield "lif", B, T, N, mis, dtype, dict(reset=reset, detach_reset=detach)
            if "li" in ops:
                yield "li", B, T, N, mis, dtype, {}
    # rlif: a small odd N (V in shared memory) and a large one (V read in chunks from global
    # memory), every reset, recurrent gradient on and off, dV included
    if "rlif" in ops:
        for B, T, N, mis in [(3, 9, 37, True), (5, 6, 1500, False)]:
            for dtype in dtypes:
                for reset in RESETS:
                    for detach_rec in (False, True):
                        yield "rlif", B, T, N, mis, dtype, dict(
                            reset=reset, detach_reset=reset != "zero",
                            detach_recurrent=detach_rec)


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


def run_one(op, B, T, N, mis, dtype, opts, seed):
    name = f"{op} {str(dtype).replace('torch.', '')} B={B} T={T} N={N} " + " ".join(
        f"{k}={v}" for k, v in opts.items())
    print(f"cuda_sanitize: {name}", flush=True)
    x, alpha, beta, thr, state = inputs(B, T, N, dtype, mis, seed)
    if op == "lif":
        s, (i_T, u_T) = fastsnn.lif(x, alpha, beta, thr, state=state, surrogate="sigmoid",
                                    backend="cuda", **opts)
        loss = (s.float() * torch.randn_like(s.float())).sum() + u_T.sum() + i_T.sum()
        check(name, (s, i_T, u_T, *torch.autograd.grad(loss, (x, alpha, beta, thr, *state))))
        with torch.no_grad():  # inference: nothing saved
            fastsnn.lif(x, 0.8, 0.9, reset=opts["reset"], backend="cuda")
    elif op == "li":
        u, (i_T, u_T) = fastsnn.li(x, alpha, beta, state=state, backend="cuda")
        loss = (u.float() * torch.randn_like(u.float())).sum() + u_T.sum() + i_T.sum()
        check(name, (u, i_T, u_T, *torch.autograd.grad(loss, (x, alpha, beta, *state))))
        with torch.no_grad():
            fastsnn.li(x, 0.8, 0.9, backend="cuda")
    else:
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        w = (torch.randn(N, N, device="cuda", dtype=acc) / N ** 0.5).requires_grad_()
        s, (i_T, u_T) = fastsnn.rlif(x, w, alpha, beta, thr, state=state, backend="cuda", **opts)
        loss = (s.float() * torch.randn_like(s.float())).sum() + u_T.sum() + i_T.sum()
        leaves = (x, w, alpha, beta, thr, *state)
        check(name, (s, i_T, u_T, *torch.autograd.grad(loss, leaves)))
        with torch.no_grad():
            fastsnn.rlif(x, w, 0.8, 0.9, reset=opts["reset"], backend="cuda")


def main(argv=None):
    args = parse_args(argv)
    if args.plan:
        plan = list(runs(args.ops, args.dtypes, sms=0))
        for op, B, T, N, mis, dtype, opts in plan:
            print(op, "B=SMs+1" if B == 1 else f"B={B}", f"T={T} N={N} misaligned={mis}",
                  str(dtype).replace("torch.", ""), opts)
        print(f"cuda_sanitize --plan: {len(plan)} forward+backward runs")
        return 0
    if not torch.cuda.is_available() or "cuda" not in fastsnn.available_backends():
        print("cuda_sanitize: needs a CUDA device and fastsnn built with the CUDA kernels "
              f"(available backends: {fastsnn.available_backends()})", file=sys.stderr)
        return 2
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    t0, n = time.perf_counter(), 0
    for n, (op, B, T, N, mis, dtype, opts) in enumerate(runs(args.ops, args.dtypes, sms), 1):
        run_one(op, B, T, N, mis, dtype, opts, seed=n)
    torch.cuda.synchronize()
    print(f"cuda_sanitize: {n} forward+backward runs, all outputs finite "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
