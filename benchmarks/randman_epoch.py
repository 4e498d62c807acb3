"""Training-epoch time of the Randman network, fused backend against the reference, side by side.

    python -m benchmarks.randman_epoch --rounds 10 --out bench_out/randman_epoch

Two copies of the training command's network (``fastsnn.train.randman``, its defaults: 20
Randman units -> 100 recurrent LIF -> 10 leaky integrators, batch 250, Adam, the lower-bound
regularizer), one per backend, built from the same seed, train in lockstep on the same
batches with the command's own epoch loop (``train_epoch``). Each round runs one epoch of
each, in alternating order (ABBA), so a slow phase of a shared machine lands on both; the
speedup is the median over rounds of (reference epoch time / fused epoch time), next to the
ratio of the median epoch times. Writes epoch.json and epoch.md to --out.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.randman_epoch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fused", default="cpu", help="fused backend to time (cpu, cuda, triton)")
    p.add_argument("--baseline", default="torch", help="the reference backend")
    p.add_argument("--rounds", type=int, default=10, help="epochs of each backend")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batches-per-epoch", type=int, default=0,
                   help="stop each epoch after this many batches (0: all 32; for smoke tests)")
    p.add_argument("--out", default="bench_out/randman_epoch")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    from tqdm.auto import tqdm

    import fastsnn
    from fastsnn.train import randman as R

    if a.threads:
        torch.set_num_threads(a.threads)
    dd = R.Dist(a.device)
    runs = {}
    for backend in (a.fused, a.baseline):
        cfg = R.make_config(backend=backend, seed=a.seed, device=a.device, quiet=True,
                            plots=False)
        data = R.load_data(cfg)
        Xtr, ytr = (t.to(dd.device) for t in data.train)
        torch.manual_seed(cfg.seed)
        model = R.build_model(cfg).to(dd.device, torch.float32)
        runs[backend] = dict(cfg=cfg, model=model, opt=R.make_optimizer(model, cfg),
                             times=[], acc=[])
    order = [a.fused, a.baseline]
    bar = tqdm(range(1, a.rounds + 1), desc="rounds", disable=a.quiet, unit="round")
    for epoch in bar:
        for backend in order:
            r = runs[backend]
            batches = R.epoch_batches(len(ytr), r["cfg"].batch_size, a.seed, epoch)
            if a.batches_per_epoch > 0:
                batches = batches[:a.batches_per_epoch]
            sums, seconds = R.train_epoch(r["model"], r["opt"], Xtr, ytr, batches, r["cfg"],
                                          dd, torch.float32)
            r["times"].append(seconds)
            r["acc"].append(sums[2].item() / max(sums[3].item(), 1.0))
        order.reverse()
        f, b = runs[a.fused]["times"][-1], runs[a.baseline]["times"][-1]
        bar.set_postfix(fused=f"{f:.2f}s", ref=f"{b:.2f}s", ratio=f"{b / f:.2f}x")
    bar.close()

    ft, bt = runs[a.fused]["times"], runs[a.baseline]["times"]
    ratios = [b / f for f, b in zip(ft, bt)]
    result = dict(
        command="python -m benchmarks.randman_epoch " + " ".join(sys.argv[1:] if argv is None
                                                                else argv),
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), fused=a.fused, baseline=a.baseline,
        rounds=a.rounds, seed=a.seed, device=str(dd.device), threads=torch.get_num_threads(),
        torch=torch.__version__, fastsnn=fastsnn.__version__, python=platform.python_version(),
        machine=platform.machine(), processor=platform.processor(),
        fused_epoch_s=ft, baseline_epoch_s=bt, ratios=ratios,
        fused_train_acc=runs[a.fused]["acc"], baseline_train_acc=runs[a.baseline]["acc"],
        median_fused_s=statistics.median(ft), median_baseline_s=statistics.median(bt),
        median_ratio=statistics.median(ratios),
        ratio_of_medians=statistics.median(bt) / statistics.median(ft))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "epoch.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    lines = [f"Randman training epoch, {a.fused} (fused) against {a.baseline} (reference), "
             f"{a.rounds} rounds side by side, {result['threads']} threads, torch "
             f"{torch.__version__}, {result['date']}", "",
             "| round | fused s | reference s | ratio | fused train acc | reference train acc |",
             "| --- | --- | --- | --- | --- | --- |"]
    for i, (f, b, r, fa, ba) in enumerate(zip(ft, bt, ratios, result["fused_train_acc"],
                                               result["baseline_train_acc"]), 1):
        lines.append(f"| {i} | {f:.3f} | {b:.3f} | {r:.2f}x | {fa:.3f} | {ba:.3f} |")
    lines += ["", f"median epoch: fused {result['median_fused_s']:.3f} s, reference "
              f"{result['median_baseline_s']:.3f} s; median of the per-round ratios "
              f"**{result['median_ratio']:.2f}x** (ratio of the medians "
              f"{result['ratio_of_medians']:.2f}x, rounds {min(ratios):.2f}-{max(ratios):.2f}x)"]
    with open(os.path.join(a.out, "epoch.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
