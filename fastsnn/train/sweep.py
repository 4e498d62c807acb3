"""The robustness sweeps of Zenke & Vogels (2021) on Randman: ``python -m fastsnn.train.sweep``.

Part 1 ("surrogate"): surrogate shape (superspike, sigmoid, esser) x surrogate scale k on a log
grid (0.1 .. 1000), everything else the defaults of ``python -m fastsnn.train.randman``: test
accuracy against k, one curve per shape (the paper's Fig. 3 question: how much do shape and
scale matter?).

Part 2 ("upper"): the upper-bound spike-count regularizer (``fastsnn.regularizers.
spike_count_upper``, a bound nu on the population-mean spike count per neuron and trial)
tightened step by step: test accuracy against the mean hidden firing rate it leaves (the
paper's question of how sparse the network can be made before accuracy suffers).

Every run is one ``fastsnn.train.randman.train`` call in this process, one after the other,
each seed given by ``--seeds``. Written to ``--out`` (default
``sweep_out/<date>/`` under the current folder): ``sweep.md`` (the command, the
machine, the two tables), ``sweep.json`` (every run: settings, test/val accuracy, rates, times)
and ``surrogate_scale.png``, ``upper_bound.png``. The arguments and the output folder are checked
before the first run (argparse errors, exit code 2). sweep.json is rewritten atomically after
every run with ``"status"`` ``"running"``, then ``"finished"``; Ctrl-C or SIGTERM leaves the
runs done so far with ``"interrupted"`` and exits with 130 or 143 (no sweep.md then).

Sized for a 2-core CPU with the fused backend (``--backend cpu``, the default): 27 + 7 runs
per seed of ``--epochs`` epochs on the full data set. ``--quick`` is a seconds-long smoke test on a tiny
task (what the tests run), not a measurement.
"""

import argparse
import datetime
import json
import math
import os
import platform
import signal
import statistics
import sys
import time

import torch

import fastsnn

from . import randman as R

SHAPES = ("superspike", "sigmoid", "esser")
SCALES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
NU_UPPER = (None, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1)
EPOCHS = 8
# the quick mode: a tiny task, seconds per run
QUICK = dict(classes=3, units=10, steps=30, samples_per_class=40, split="30,5,5", hidden=16,
             batch_size=30, epochs=1)


def _floats(text):
    return [float(s) for s in text.split(",") if s.strip()]


def _nus(text):
    out = []
    for s in text.split(","):
        s = s.strip().lower()
        if s:
            out.append(None if s in ("none", "off", "inf") else float(s))
    return out


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m fastsnn.train.sweep",
        description="Surrogate shape x scale sweep and upper-bound regularizer sweep on Randman.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=None,
                   help="output folder (default sweep_out/<date>)")
    p.add_argument("--parts", default="surrogate,upper", help="surrogate, upper or both")
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--scales", default=None,
                   help="comma-separated surrogate scales (default "
                        + ",".join(f"{s:g}" for s in SCALES) + "; 1,10 with --quick)")
    p.add_argument("--nu-upper", default=None,
                   help="comma-separated upper bounds on the mean spike count per neuron and "
                        "trial, 'none' = no upper bound (default "
                        + ",".join("none" if n is None else f"{n:g}" for n in NU_UPPER)
                        + "; none,0.5 with --quick)")
    p.add_argument("--upper-strength", type=float, default=1.0,
                   help="strength of the upper-bound regularizer in part 2")
    p.add_argument("--upper-surrogate", default="superspike")
    p.add_argument("--upper-scale", type=float, default=10.0)
    p.add_argument("--seeds", default="0", help="comma-separated seeds (weights, batch order)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs per run (default {EPOCHS}; 1 with --quick)")
    p.add_argument("--backend", default="cpu", choices=R.BACKENDS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a tiny task, 1 epoch, 2 scales, 2 bounds: a smoke test")
    p.add_argument("--quiet", action="store_true", help="no per-run lines")
    p.add_argument("--no-plots", dest="plots", action="store_false")
    p.add_argument("--report-from", metavar="SWEEP_JSON", default=None,
                   help="rewrite sweep.md and the plots from a saved sweep.json (no training)")
    return p


def run_config(args, **over):
    base = dict(backend=args.backend, device=args.device, threads=args.threads, out="",
                plots=False, quiet=True)
    base["epochs"] = EPOCHS
    if args.quick:
        base.update(QUICK)
    if args.epochs is not None:
        base["epochs"] = args.epochs
    base.update(over)
    return R.make_config(**base)


def one_run(args, part, log, **over):
    cfg = run_config(args, **over)
    t0 = time.perf_counter()
    res = R.train(cfg)
    wall = time.perf_counter() - t0
    rec = dict(part=part, surrogate=cfg.surrogate, scale=cfg.scale, seed=cfg.seed,
               upper_nu=cfg.upper_nu if cfg.upper_strength > 0 else None,
               upper_strength=cfg.upper_strength, epochs=cfg.epochs,
               test_acc=res["test_acc"], final_val_acc=res["final_val_acc"],
               best_val_acc=max((h["val_acc"] for h in res["history"]), default=None),
               final_train_loss=res["history"][-1]["train_loss"] if res["history"] else None,
               mean_hidden_rate_hz=res["mean_hidden_rate_hz"],
               mean_hidden_count=res["mean_hidden_rate_hz"] * cfg.steps * cfg.dt * 1e-3,
               silent_fraction=(sum(r == 0 for r in res["hidden_rate_hz"])
                                / max(len(res["hidden_rate_hz"]), 1)),
               median_epoch_time_s=res["median_epoch_time_s"], wall_s=wall)
    log(rec)
    return rec, res


def _mean_std(values):
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _fmt(m, s, n, spec=".3f"):
    return f"{m:{spec}}" if n <= 1 else f"{m:{spec}} ± {s:{spec}}"


def surrogate_table(runs, shapes, scales, nseeds):
    lines = ["| shape \\ scale k | " + " | ".join(f"{k:g}" for k in scales) + " |",
             "| --- |" + " --- |" * len(scales)]
    for sh in shapes:
        cells = []
        for k in scales:
            m, s = _mean_std([r["test_acc"] for r in runs if r["part"] == "surrogate"
                              and r["surrogate"] == sh and r["scale"] == k])
            cells.append(_fmt(m, s, nseeds))
        lines.append(f"| {sh} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def upper_table(runs, nus, nseeds):
    lines = ["| upper bound ν (spikes/neuron/trial) | mean hidden rate (Hz) | "
             "mean count | silent neurons | test accuracy |",
             "| --- | --- | --- | --- | --- |"]
    for nu in nus:
        sel = [r for r in runs if r["part"] == "upper" and r["upper_nu"] == nu]
        rate, rs = _mean_std([r["mean_hidden_rate_hz"] for r in sel])
        cnt, _ = _mean_std([r["mean_hidden_count"] for r in sel])
        sil, _ = _mean_std([r["silent_fraction"] for r in sel])
        acc, accs = _mean_std([r["test_acc"] for r in sel])
        lines.append(f"| {'none' if nu is None else f'{nu:g}'} | {_fmt(rate, rs, nseeds, '.1f')} | "
                     f"{cnt:.2f} | {100 * sil:.0f}% | {_fmt(acc, accs, nseeds)} |")
    return "\n".join(lines)


def plot_surrogate(runs, shapes, scales, chance, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for sh in shapes:
        ms, ss = zip(*[_mean_std([r["test_acc"] for r in runs if r["part"] == "surrogate"
                                  and r["surrogate"] == sh and r["scale"] == k])
                       for k in scales])
        ax.errorbar(scales, ms, yerr=ss, marker="o", capsize=3, label=sh)
    ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("surrogate scale k")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Randman: surrogate shape and scale")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_upper(runs, nus, chance, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs, ys = [], []
    for nu in nus:
        sel = [r for r in runs if r["part"] == "upper" and r["upper_nu"] == nu]
        ax.scatter([r["mean_hidden_rate_hz"] for r in sel], [r["test_acc"] for r in sel],
                   color="tab:gray", s=10, alpha=0.6)
        x, _ = _mean_std([r["mean_hidden_rate_hz"] for r in sel])
        y, _ = _mean_std([r["test_acc"] for r in sel])
        xs.append(x)
        ys.append(y)
        ax.annotate("none" if nu is None else f"ν={nu:g}", (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.plot(xs, ys, "o-", color="tab:red")
    ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
    ax.set_xlabel("mean hidden firing rate on the test set (Hz)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xscale("log")  # the bounds step down geometrically
    ax.set_title("Randman: tightening the upper-bound regularizer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.report_from:
        with open(args.report_from) as f:
            record = json.load(f)
        write_report(record, os.path.dirname(os.path.abspath(args.report_from)), args.plots,
                     args.quiet)
        return 0
    # every argument, and the output folder, before the first run
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    bad = set(parts) - {"surrogate", "upper"}
    if bad or not parts:
        parser.error(f"--parts: must name surrogate and/or upper, got {args.parts!r}")
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    bad = [s for s in shapes if s not in R.SURROGATE_CHOICES]
    if "surrogate" in parts and (bad or not shapes):
        parser.error(f"--shapes: expected some of {list(R.SURROGATE_CHOICES)}, got "
                     f"{args.shapes!r}")
    if args.upper_surrogate not in R.SURROGATE_CHOICES:
        parser.error(f"--upper-surrogate: expected one of {list(R.SURROGATE_CHOICES)}")
    try:
        scales = _floats(args.scales) if args.scales is not None else (
            [1.0, 10.0] if args.quick else list(SCALES))
    except ValueError:
        scales = []
    if not scales or not all(math.isfinite(k) and k > 0 for k in scales):
        parser.error(f"--scales: expected positive numbers separated by commas, got "
                     f"{args.scales!r}")
    try:
        nus = _nus(args.nu_upper) if args.nu_upper is not None else (
            [None, 0.5] if args.quick else list(NU_UPPER))
    except ValueError:
        nus = []
    if not nus or not all(n is None or (math.isfinite(n) and n >= 0) for n in nus):
        parser.error(f"--nu-upper: expected bounds >= 0 or 'none' separated by commas, got "
                     f"{args.nu_upper!r}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        parser.error(f"--seeds: expected integers separated by commas, got {args.seeds!r}")
    if args.epochs is not None and args.epochs < 0:
        parser.error(f"--epochs: must be >= 0, got {args.epochs}")
    if args.threads < 0:
        parser.error(f"--threads: must be >= 0, got {args.threads}")
    if not (math.isfinite(args.upper_strength) and args.upper_strength >= 0):
        parser.error(f"--upper-strength: must be >= 0, got {args.upper_strength}")
    if not (math.isfinite(args.upper_scale) and args.upper_scale > 0):
        parser.error(f"--upper-scale: must be > 0, got {args.upper_scale}")
    date = datetime.date.today().isoformat()
    out = args.out if args.out is not None else os.path.join("sweep_out", date)
    err = R.check_out_dir(out)
    if err:
        parser.error(f"--out: {err}")

    n_runs = (len(shapes) * len(scales) if "surrogate" in parts else 0) + (
        len(nus) if "upper" in parts else 0)
    n_runs *= len(seeds)
    done = [0]
    t_start = time.perf_counter()

    def log(rec):
        done[0] += 1
        if args.quiet:
            return
        el = time.perf_counter() - t_start
        nu = rec["upper_nu"]
        what = (f"{rec['surrogate']:>10s} k={rec['scale']:<7g}" if rec["part"] == "surrogate"
                else "nu=" + ("none" if nu is None else f"{nu:g}"))
        print(f"[{done[0]}/{n_runs} {el / 60:5.1f} min] {rec['part']:9s} {what} seed "
              f"{rec['seed']}: test acc {rec['test_acc']:.3f}, rate "
              f"{rec['mean_hidden_rate_hz']:.1f} Hz, {rec['wall_s']:.0f} s", flush=True)

    cfg0 = run_config(args)
    commit = R._git_commit()
    command = "python -m fastsnn.train.sweep " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
    runs = []

    def record(status):
        env = dict(torch=torch.__version__, fastsnn=fastsnn.__version__,
                   python=sys.version.split()[0], platform=platform.platform(),
                   processor=R.cpu_name(),
                   threads=torch.get_num_threads(), backend=args.backend, commit=commit)
        return dict(command=command, status=status, runs_planned=n_runs,
                    date=date, environment=env, sweep=vars(args), base_config=vars(cfg0),
                    shapes=shapes, scales=scales, nu_upper=nus, seeds=seeds, runs=runs,
                    total_time_s=time.perf_counter() - t_start)

    json_path = os.path.join(out, "sweep.json")

    def save(status):  # after every run: an interrupted sweep keeps what it has done
        R.write_json_atomic(json_path, record(status))

    plan = []
    if "surrogate" in parts:
        for sh in shapes:
            for k in scales:
                for seed in seeds:
                    plan.append(("surrogate", dict(surrogate=sh, scale=k, seed=seed)))
    if "upper" in parts:
        for nu in nus:
            for seed in seeds:
                over = dict(surrogate=args.upper_surrogate, scale=args.upper_scale, seed=seed)
                if nu is not None:
                    over.update(upper_strength=args.upper_strength, upper_nu=nu)
                plan.append(("upper", over))

    try:
        with R.sigterm_interrupts():
            save("running")
            for part, over in plan:
                runs.append(one_run(args, part, log, **over)[0])
                save("running")
    except (KeyboardInterrupt, R.Interrupted) as e:
        save("interrupted")
        print(f"sweep interrupted after {len(runs)} of {n_runs} runs: {json_path} "
              f"(status interrupted)", file=sys.stderr, flush=True)
        return 130 if isinstance(e, KeyboardInterrupt) else 128 + signal.SIGTERM
    rec = record("finished")
    R.write_json_atomic(json_path, rec)
    write_report(rec, out, args.plots, args.quiet)
    return 0


def write_report(record, out, plots=True, quiet=False):
    """sweep.md (and the plots) from a sweep record (the content of sweep.json)."""
    a, c, env = record["sweep"], record["base_config"], record["environment"]
    runs, shapes, scales, seeds = (record["runs"], record["shapes"], record["scales"],
                                   record["seeds"])
    nus, date, total = record["nu_upper"], record["date"], record["total_time_s"]
    parts = [p.strip() for p in a["parts"].split(",") if p.strip()]
    chance = 1.0 / c["classes"]
    md = [f"# Randman robustness sweep ({date})", "",
          "Zenke & Vogels (2021) on Randman with fastsnn (`fastsnn.train.randman`), "
          "test accuracy after training.", "",
          f"- command: `{record['command']}`",
          f"- base run: {c['classes']} classes, {c['units']} inputs, {c['hidden']} "
          f"{'recurrent' if c['recurrent'] else 'feed-forward'} LIF, {c['steps']} steps, "
          f"{c['epochs']} epochs, batch {c['batch_size']}, lr {c['lr']:g}, backend "
          f"`{a['backend']}`, seeds {seeds}" + (" (**--quick: a smoke test, not a result**)"
                                                if a["quick"] else ""),
          f"- machine: {env['processor']}, {env['threads']} threads, torch {env['torch']}, "
          f"fastsnn {env['fastsnn']} (commit {env['commit']})",
          f"- total time: {total / 60:.1f} min for {len(runs)} runs; chance = {chance:.3f}", ""]
    if "surrogate" in parts:
        md += ["## Surrogate shape x scale", "",
               "Test accuracy (mean ± std over seeds when more than one). Scale semantics as "
               "in docs/SPEC.md: superspike 1/(k|x|+1)², sigmoid s(1-s) of s = σ(kx), esser "
               "max(0, 1-k|x|).", "", surrogate_table(runs, shapes, scales, len(seeds)), ""]
        if plots:
            plot_surrogate(runs, shapes, scales, chance, os.path.join(out, "surrogate_scale.png"))
            md += ["![test accuracy vs scale](surrogate_scale.png)", ""]
    if "upper" in parts:
        md += ["## Upper-bound regularizer", "",
               f"`spike_count_upper` with strength {a['upper_strength']:g} (power 2) on the "
               f"population-mean spike count per neuron and trial, bound ν; "
               f"{a['upper_surrogate']} k={a['upper_scale']:g}; the lower bound stays on. "
               "Rates are on the test set.", "", upper_table(runs, nus, len(seeds)), ""]
        if plots:
            plot_upper(runs, nus, chance, os.path.join(out, "upper_bound.png"))
            md += ["![test accuracy vs firing rate](upper_bound.png)", ""]
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write("\n".join(md))
    if not quiet:
        print("\n".join(md))
        print(f"wrote {os.path.abspath(out)}")


if __name__ == "__main__":
    sys.exit(main())
