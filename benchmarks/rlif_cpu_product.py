"""How the CPU rlif forms R_t = S_{t-1} @ V: the gather over spiking neurons (default) against
the dense tile product (the path of a non-finite V, forced with
torch.ops.fastsnn.set_rlif_dense(True)), side by side in one process.

    python -m benchmarks.rlif_cpu_product

Forward only (inference, torch.no_grad), float32, alpha=0.8, beta=0.9, V ~ N(0, 0.5^2/N), at
the issue's two sizes and two firing rates (input means 0.15 and 0.6). Prints the median of
7 calls per variant, the variants alternated 4 times; reports the best of the 4 medians.
"""

import statistics
import time

import torch

import fastsnn

SIZES = [(250, 100, 100), (64, 500, 512)]
MEANS = [0.15, 0.6]


def median_ms(X, V, reps=7):
    with torch.no_grad():
        fastsnn.rlif(X, V, 0.8, 0.9, backend="cpu")
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fastsnn.rlif(X, V, 0.8, 0.9, backend="cpu")
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main():
    g = torch.Generator().manual_seed(0)
    print("| B | T | N | spike rate | gather ms | dense ms | dense / gather |")
    print("|---|---|---|---|---|---|---|")
    for B, T, N in SIZES:
        V = torch.randn(N, N, generator=g) * (0.5 / N ** 0.5)
        for mean in MEANS:
            X = torch.randn(B, T, N, generator=g) * 0.3 + mean
            with torch.no_grad():
                rate = fastsnn.rlif(X, V, 0.8, 0.9, backend="cpu")[0].mean().item()
            best = {"0": [], "1": []}
            for _ in range(4):
                for mode in ("0", "1"):
                    torch.ops.fastsnn.set_rlif_dense(mode == "1")
                    best[mode].append(median_ms(X, V))
            torch.ops.fastsnn.set_rlif_dense(False)
            gather, dense = min(best["0"]), min(best["1"])
            print(f"| {B} | {T} | {N} | {rate:.3f} | {gather:.2f} | {dense:.2f} | "
                  f"{dense / gather:.2f} |")


if __name__ == "__main__":
    main()
