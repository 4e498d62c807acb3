"""Spiking Heidelberg Digits with recurrent adaptive LIF layers: ``python -m fastsnn.train.shd``.

The recipe of the best published SHD results (SE-adLIF, Baronig et al., Nature Communications
2025; adLIF, Bittar & Garner 2022) with fastsnn's modules: 700 input channels, binned into
``--steps`` time steps over ``--max-time`` seconds (``fastsnn.data.load_shd``) -> two recurrent
adaptive LIF layers of ``--hidden`` neurons (``fastsnn.nn.AdLIF``, SE variant by default, its
parameters in the published ranges and clamped after every optimizer step) -> 20 leaky-
integrator readouts (``fastsnn.nn.LeakyIntegrator``), cross-entropy of the readout's sum over
time (``--readout sum``, the default: the adaptation keeps the hidden layers sparse, and the sum
learned where the maximum stalled on the test's synthetic task) or of its maximum over time
(``--readout max``), Adam.

The data: the SHD files ``shd_train.h5`` and ``shd_test.h5`` of Cramer et al. (2020), IEEE
TNNLS 33(7), from the Zenke lab's data page (https://zenkelab.org/resources/spiking-heidelberg-
datasets-shd/; gunzip the downloads). ``--data`` names the folder that holds them. Nothing is
downloaded here. ``--val-fraction`` of the training file (default 0.1, a fixed seeded split) is
the validation set; the test file is used once, at the end.

Output in ``--out`` (default ``shd_out``): ``run.json`` (config, per-epoch train loss and
accuracy, validation accuracy, times, then the test accuracy; rewritten atomically after every
epoch with ``"status"`` ``"running"``, then ``"finished"``, or ``"interrupted"`` after Ctrl-C /
SIGTERM), ``model.pt`` and ``learning_curves.png``. Arguments, the data files and the output
folder are checked before any training.
"""

import argparse
import datetime
import math
import os
import signal
import sys
import time

import torch
from torch import nn

import fastsnn
from fastsnn import nn as snn
from fastsnn.train import randman as R

BACKENDS = ("auto", "cpu", "cuda", "triton", "torch")
FILES = ("shd_train.h5", "shd_test.h5")
CLASSES = 20
CHANNELS = 700


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m fastsnn.train.shd",
        description="Train two recurrent adaptive LIF layers on the Spiking Heidelberg Digits.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="folder holding shd_train.h5 and shd_test.h5")
    p.add_argument("--out", default="shd_out", help="output folder")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="weights, split and batch order")
    p.add_argument("--hidden", type=int, default=256, help="neurons per adaptive LIF layer")
    p.add_argument("--layers", type=int, default=2, help="recurrent adaptive LIF layers")
    p.add_argument("--variant", default="se", choices=("se", "ef"))
    p.add_argument("--readout", default="sum", choices=("sum", "max"),
                   help="cross-entropy of the readout's maximum or sum over time")
    p.add_argument("--steps", type=int, default=250, help="time bins")
    p.add_argument("--max-time", type=float, default=1.4, help="seconds binned")
    p.add_argument("--input-gain", type=float, default=20.0,
                   help="each layer's input weights ~ U(±g/sqrt(fan_in)): the adaptive "
                        "membrane takes (1 - alpha) of its drive")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--limit", type=int, default=0,
                   help="use only the first N samples of each file (0: all); for smoke runs")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-plots", dest="plots", action="store_false")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no per-epoch lines")
    return p


def check_args(parser, cfg):
    def need(ok, opt, what):
        if not ok:
            parser.error(f"{opt}: {what}")

    for opt, v in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size),
                   ("--hidden", cfg.hidden), ("--layers", cfg.layers), ("--steps", cfg.steps)):
        need(v >= 1, opt, f"must be >= 1, got {v}")
    need(cfg.limit >= 0, "--limit", f"must be >= 0, got {cfg.limit}")
    need(cfg.threads >= 0, "--threads", f"must be >= 0, got {cfg.threads}")
    for opt, v in (("--lr", cfg.lr), ("--max-time", cfg.max_time),
                   ("--input-gain", cfg.input_gain)):
        need(math.isfinite(v) and v > 0, opt, f"must be a finite number > 0, got {v}")
    need(0 <= cfg.val_fraction < 1, "--val-fraction", f"must lie in [0, 1), got {cfg.val_fraction}")
    for name in FILES:
        path = os.path.join(cfg.data, name)
        need(os.path.isfile(path), "--data", f"{path} not found (the SHD files: see "
             "`python -m fastsnn.train.shd --help` and the module docstring for where to get "
             "them)")
    err = R.check_out_dir(cfg.out)
    need(not err, "--out", err)
    try:
        import h5py  # noqa: F401
    except ImportError:
        parser.error("reading the SHD files needs h5py: pip install h5py")


class SHDNet(nn.Module):
    """700 inputs -> ``layers`` recurrent adaptive LIF layers -> 20 leaky-integrator readouts.
    forward(x (B, T, 700)) -> (readout trace (B, T, 20), spikes of the last hidden layer)."""

    def __init__(self, hidden=256, layers=2, variant="se", backend="auto", input_gain=20.0):
        super().__init__()
        sizes = [CHANNELS] + [hidden] * layers
        self.hidden = nn.ModuleList(
            snn.AdLIF(n_in, n_out, variant=variant, backend=backend, spike_input=True)
            for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():  # U(±g/sqrt(fan_in)) for every layer's input weights
            for layer, n_in in zip(self.hidden, sizes[:-1]):
                bound = input_gain / math.sqrt(n_in)
                layer.linear.weight.uniform_(-bound, bound)
        self.readout = snn.LeakyIntegrator(hidden, CLASSES, alpha=0.0, beta=math.exp(-1 / 20),
                                           backend=backend, spike_input=True)

    def forward(self, x):
        for layer in self.hidden:
            x, _ = layer(x)
        U, _ = self.readout(x)
        return U, x


def logits(U, readout):
    return U.amax(dim=1) if readout == "max" else U.sum(dim=1)


def load(cfg):
    """(train, val, test) pairs of (X (n, steps, 700), y)."""
    out = []
    for name in FILES:
        X, y = fastsnn.data.load_shd(os.path.join(cfg.data, name), num_steps=cfg.steps,
                                     max_time=cfg.max_time)
        if cfg.limit:
            X, y = X[:cfg.limit], y[:cfg.limit]
        out.append((X, y))
    (Xtr, ytr), test = out
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(cfg.seed))
    n_val = int(round(cfg.val_fraction * len(ytr)))
    val, train = perm[:n_val], perm[n_val:]
    return (Xtr[train], ytr[train]), (Xtr[val], ytr[val]), test


@torch.no_grad()
def evaluate(model, X, y, cfg, device, chunk=256):
    if len(y) == 0:
        return dict(loss=None, acc=None, mean_rate_hz=None)
    model.eval()
    loss = correct = spikes = 0.0
    for i in range(0, len(y), chunk):
        U, S = model(X[i:i + chunk].to(device))
        lg = logits(U, cfg.readout)
        yb = y[i:i + chunk].to(device)
        loss += nn.functional.cross_entropy(lg, yb, reduction="sum").item()
        correct += (lg.argmax(1) == yb).sum().item()
        spikes += S.sum().item()
    model.train()
    n = len(y)
    seconds = cfg.max_time
    return dict(loss=loss / n, acc=correct / n,
                mean_rate_hz=spikes / (n * cfg.hidden * seconds))


def train(cfg):
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if cfg.device == "auto" else cfg.device)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = load(cfg)
    torch.manual_seed(cfg.seed)
    model = SHDNet(cfg.hidden, cfg.layers, cfg.variant, cfg.backend, cfg.input_gain).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    show = not cfg.quiet
    history = []
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    run_json = os.path.join(cfg.out, R.RUN_JSON)

    def record(status, **more):
        times = [h["epoch_time_s"] for h in history]
        return dict(task="shd", recipe="two recurrent adaptive LIF layers (SE-adLIF / adLIF)",
                    status=status, config=vars(cfg).copy(), started=started,
                    samples=dict(train=len(ytr), val=len(yva), test=len(yte)),
                    environment=dict(torch=torch.__version__, fastsnn=fastsnn.__version__,
                                     device=str(device), threads=torch.get_num_threads(),
                                     available_backends=fastsnn.available_backends()),
                    num_parameters=sum(p.numel() for p in model.parameters()),
                    history=history, epochs_done=len(history), epoch_time_s=times,
                    median_epoch_time_s=sorted(times)[len(times) // 2] if times else None,
                    title=f"SHD: {cfg.layers} x {cfg.hidden} adLIF ({cfg.variant}), "
                          f"{cfg.readout} readout, backend {cfg.backend}", **more)

    R.write_json_atomic(run_json, record("running"))
    epoch = 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(
                cfg.seed * 1000003 + epoch))
            batches = list(order.split(cfg.batch_size))
            bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not show,
                       leave=False, unit="batch", dynamic_ncols=True)
            t0 = time.perf_counter()
            tot = correct = 0.0
            for b in bar:
                xb, yb = Xtr[b].to(device), ytr[b].to(device)
                U, _ = model(xb)
                lg = logits(U, cfg.readout)
                loss = nn.functional.cross_entropy(lg, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                snn.constrain_parameters(model)
                tot += loss.item() * len(b)
                correct += (lg.argmax(1) == yb).sum().item()
                if show:
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            bar.close()
            epoch_time = time.perf_counter() - t0
            val = evaluate(model, Xva, yva, cfg, device)
            history.append(dict(epoch=epoch, train_loss=tot / len(ytr),
                                train_acc=correct / len(ytr), train_reg=0.0,
                                val_loss=val["loss"], val_acc=val["acc"],
                                val_rate_hz=val["mean_rate_hz"], epoch_time_s=epoch_time))
            R.write_json_atomic(run_json, record("running"))
            if show:
                va = "-" if val["acc"] is None else f"{val['acc']:.3f}"
                tqdm.write(f"epoch {epoch:3d}/{cfg.epochs}  loss {tot / len(ytr):.4f}  "
                           f"train acc {correct / len(ytr):.3f}  val acc {va}  "
                           f"time {epoch_time:.1f} s")
        test = evaluate(model, Xte, yte, cfg, device)
    except (KeyboardInterrupt, R.Interrupted) as e:
        R.write_json_atomic(run_json, record(
            "interrupted", interrupted_in_epoch=epoch,
            reason="SIGTERM" if isinstance(e, R.Interrupted) else "KeyboardInterrupt"))
        raise
    result = record("finished", test_acc=test["acc"], test_loss=test["loss"],
                    mean_hidden_rate_hz=test["mean_rate_hz"])
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    R._replace_atomic(os.path.join(cfg.out, "model.pt"), lambda f: torch.save(sd, f))
    R.write_json_atomic(run_json, result)
    if cfg.plots and history:
        from . import plots

        plots.learning_curves(result, os.path.join(cfg.out, "learning_curves.png"))
    if show:
        print(f"test acc {test['acc']:.4f}; wrote {os.path.abspath(cfg.out)}", flush=True)
    return result


def main(argv=None):
    parser = build_parser()
    cfg = parser.parse_args(argv)
    check_args(parser, cfg)
    try:
        with R.sigterm_interrupts():
            train(cfg)
    except KeyboardInterrupt:
        return 130
    except R.Interrupted:
        return 128 + signal.SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
