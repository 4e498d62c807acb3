"""Plot speedup over the eager reference from a benchmarks.run results.json.

    python -m benchmarks.plot bench_out/results.json [-o bench_out/speedup.png]

One row of panels per op/mode; the left panel plots speedup against T (at the B*N with the most
distinct T values), the right one against B*N (at the T with the most distinct B*N values). One
line per provider (and dtype, by line style); the dashed line at 1 is the reference. An op whose
sizes form no such sweep (rlif's default sizes) gets one bar per size and provider instead. Providers
with status MISMATCH or ERROR have no speedup and are not drawn. A speedup from a noisy timing
(its own or its reference's, "speedup_noisy" in results.json) is drawn hollow (a hatched bar
labelled "noisy"): not a figure to quote.
"""

import argparse
import json
import math
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

STYLES = ["-", "--", ":", "-."]


def _minor_label(v, _):
    """Label the 2s and 5s of a log axis, so short ranges still read."""
    return f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""


def _sweep(rows, fixed, varying):
    """Rows of the `fixed` value with the most distinct `varying` values (a sweep), or []."""
    groups = defaultdict(list)
    for r in rows:
        groups[fixed(r)].append(r)
    best = max(groups.values(), key=lambda g: len({varying(r) for r in g}), default=[])
    return best if len({varying(r) for r in best}) >= 2 else []


def _bars(ax, sel, title, providers, dtypes, colors):
    """Sizes that form no sweep (e.g. rlif's two default sizes): one bar per size and provider."""
    sizes = list(dict.fromkeys((r["B"], r["T"], r["N"]) for r in sel))
    series = [(p, d) for p in providers for d in dtypes
              if any(r["provider"] == p and r["dtype"] == d for r in sel)]
    width = 0.8 / max(len(series), 1)
    for i, (p, d) in enumerate(series):
        xs, ys, noisy = [], [], []
        for j, size in enumerate(sizes):
            r = next((r for r in sel if (r["B"], r["T"], r["N"]) == size
                      and r["provider"] == p and r["dtype"] == d), None)
            if r is not None:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                ys.append(r["speedup"])
                noisy.append(bool(r.get("speedup_noisy")))
        bars = ax.bar(xs, ys, width, color=colors[p], alpha=0.8 if dtypes.index(d) == 0 else 0.5,
                      label=p + (f" {d}" if len(dtypes) > 1 else ""))
        labels = []
        for bar, n in zip(bars, noisy):
            if n:
                bar.set_hatch("//")
                bar.set_fill(False)
                bar.set_edgecolor(colors[p])
            labels.append(f"{bar.get_height():.1f}x" + (" noisy" if n else ""))
        ax.bar_label(bars, labels=labels, fontsize=8)
    ax.axhline(1.0, color="gray", ls="--", lw=1)
    ax.set_xticks(range(len(sizes)), [f"B={b} T={t} N={n}" for b, t, n in sizes])
    ax.set_ylabel("speedup vs torch (eager)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    if series:
        ax.legend(fontsize=8)


def plot(json_path, png_path):
    with open(json_path) as f:
        data = json.load(f)
    hdr, rows = data["header"], [r for r in data["rows"] if r.get("speedup")]
    panels = list(dict.fromkeys((r["op"], r["mode"]) for r in rows)) or [("-", "-")]
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    providers = list(dict.fromkeys(r["provider"] for r in rows if r["provider"] != "torch"))
    colors = {p: f"C{i}" for i, p in enumerate(providers)}
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.6 * len(panels)), squeeze=False)
    axis_defs = [("T", lambda r: r["T"], lambda r: r["B"] * r["N"], "B*N"),
                 ("B*N", lambda r: r["B"] * r["N"], lambda r: r["T"], "T")]
    for (op, mode), ax_row in zip(panels, axes):
        sel = [r for r in rows if (r["op"], r["mode"]) == (op, mode)]
        if not any(_sweep(sel, fixval, xval) for _, xval, fixval, _ in axis_defs):
            _bars(ax_row[0], sel, f"{op} {mode}", providers, dtypes, colors)
            ax_row[1].axis("off")
            continue
        for ax, (xlabel, xval, fixval, fixlabel) in zip(ax_row, axis_defs):
            sweep = _sweep(sel, fixval, xval)
            ax.set_title(f"{op} {mode}" + (f" ({fixlabel} = {fixval(sweep[0])})" if sweep else ""))
            ax.axhline(1.0, color="gray", ls="--", lw=1)
            if not sweep:
                ax.text(0.5, 0.5, f"no sweep over {xlabel}", ha="center", transform=ax.transAxes)
                continue
            for p in providers:
                for d, ls in zip(dtypes, STYLES * 4):
                    pts = sorted({xval(r): r["speedup"] for r in sweep
                                  if r["provider"] == p and r["dtype"] == d}.items())
                    if pts:
                        ax.plot(*zip(*pts), ls=ls, marker="o", color=colors[p],
                                label=p + (f" {d}" if len(dtypes) > 1 else ""))
                    hollow = sorted({xval(r): r["speedup"] for r in sweep
                                     if r["provider"] == p and r["dtype"] == d
                                     and r.get("speedup_noisy")}.items())
                    if hollow:
                        ax.plot(*zip(*hollow), ls="none", marker="o", mfc="white",
                                color=colors[p], zorder=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                axis.set_minor_formatter(FuncFormatter(_minor_label))
            lo, hi = ax.get_ylim()
            if hi < 10 * lo:  # less than a decade: label every minor tick
                ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel(xlabel)
            ax.set_ylabel("speedup vs torch (eager)")
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    noisy = any(r.get("speedup_noisy") for r in rows)
    fig.suptitle(f"fastsnn: {hdr.get('device_name', hdr.get('device'))}, torch {hdr.get('torch')}"
                 f", {hdr.get('date', '')}" + ("; hollow/hatched: noisy timing" if noisy else ""),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))  # room for the suptitle
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json_path")
    ap.add_argument("-o", "--out", default=None, help="default: speedup.png beside the JSON")
    a = ap.parse_args()
    import os

    print(plot(a.json_path, a.out or os.path.join(os.path.dirname(a.json_path), "speedup.png")))
