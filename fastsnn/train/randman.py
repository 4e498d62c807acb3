"""Zenke & Vogels (2021) on Randman: ``python -m fastsnn.train.randman``.

"The remarkable robustness of surrogate gradient learning for instilling complex function in
spiking neural networks" (Neural Computation 33(4), 2021), its Randman task with fastsnn's
modules: 20 input spike trains -> 100 recurrent current-based LIF neurons
(``fastsnn.nn.RecurrentLIF``, or ``fastsnn.nn.LIF`` with ``--no-recurrent``; ``--neuron adlif``
puts the adaptive LIF of SPEC section 7 there, ``fastsnn.nn.AdLIF``) -> 10 non-spiking
leaky-integrator readouts (``fastsnn.nn.LeakyIntegrator``). SuperSpike surrogate with scale 10,
tau_mem = 10 ms, tau_syn = 5 ms, dt = 1 ms (alpha = exp(-dt/tau_syn), beta = exp(-dt/tau_mem)),
the paper's multiplicative reset and (1 - beta) input normalization; cross-entropy of the
readout's maximum over time; Adam; batch 250; the per-neuron lower-bound spike-count
regularizer (and, for the sweep, the upper bound).

Initialization (what we chose, and why). Weights are zero-mean normal with a fan-in scaled
standard deviation, w ~ N(0, (g / sqrt(fan_in))^2), no biases (as in the paper):

- input weights g_in = 5 (``--init-gain``). With the (1 - beta) normalization one input spike
  through a weight w gives a PSP of peak 0.28 w (area 5.5 w) at these time constants; the 20
  input spikes of a sample, all in the first 50 ms, then move a hidden membrane by a zero-mean
  fluctuation of standard deviation ~0.13 g, about 0.65 of the threshold for g = 5: some
  neurons fire from the first batch (~5 Hz on average), none saturate, and learning starts
  at once. The lower-bound regularizer revives neurons that are silent anyway.
- recurrent weights g_rec = 1 (``--rec-gain``): recurrence present but not dominating;
- readout weights g_out = 1 (``--out-init-gain``) and a fixed output gain of 5
  (``--out-gain``) on the readout membrane before the loss: with the (1 - beta) normalization
  the LI trace of sparse hidden spikes is O(0.1-1), too small for confident logits; the gain
  brings it to the O(1-10) that cross-entropy needs (with Adam it equivalently raises the
  readout's step size).

Under ``torchrun --nproc_per_node=N`` the same command trains with DistributedDataParallel
(gloo on CPU, NCCL on CUDA). Every rank builds the same data and the same initial weights (same
seeds), draws the same global batch order, takes the samples ``batch[rank::N]`` of each global
batch, and scales its loss by ``N * n_local / n_global`` so that DDP's averaged gradient is the
gradient of the batch-mean loss over the global batch: the same as one process with the same
global batch, to rounding. Evaluation is sharded the same way and all-reduced. Only rank 0
shows the progress bar and writes files. Without torchrun (no WORLD_SIZE in the environment)
it runs as one plain process with no process group.

Output (rank 0), in ``--out``: ``run.json`` (config, per-epoch train loss/accuracy, validation
accuracy, wall time per epoch, test accuracy, hidden firing rates, versions, device),
``model.pt`` (the final state_dict), ``learning_curves.png``, ``raster.png`` and
``firing_rates.png``.

The arguments and the output folder (created, and a file written and removed in it) are checked
before any work: a bad value is an argparse error naming the option (exit code 2). run.json is
written at the start of the run and again after every epoch, atomically (a temporary file in the
same folder, then os.replace), with ``"status"``: ``"running"``, then ``"finished"`` (with the
test results) or ``"interrupted"`` (Ctrl-C or SIGTERM: the epochs done so far; the command then
exits with 130 or 143). A fresh run removes the previous run's model.pt, checkpoint.pt and plots
from ``--out`` first. ``checkpoint.pt`` (model, optimizer, epoch, RNG state, curves) is saved
after every epoch; ``--resume`` continues from it to the same result as an uninterrupted run
(the training options must match; ``--epochs`` may grow).
"""

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

import torch
import torch.distributed as dist
from torch import nn

import fastsnn
from fastsnn import nn as snn

BACKENDS = ("auto", "torch", "cpu", "cuda", "triton")
SURROGATE_CHOICES = ("superspike", "superspike_asymptotic", "sigmoid", "esser", "atan",
                     "exponential")
DEFAULT_OUT = "randman_out"
CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"
# what a run writes to --out (removed when a fresh run starts there)
OUTPUT_FILES = (RUN_JSON, CHECKPOINT, "model.pt", "learning_curves.png", "raster.png",
                "firing_rates.png")
# options that may differ between a run and its --resume
RESUMABLE = ("epochs", "out", "resume", "quiet", "plots", "threads", "device")


# --------------------------------------------------------------------------- configuration

def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m fastsnn.train.randman",
        description="Train the recurrent SNN of Zenke & Vogels (2021) on Randman with fastsnn.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=250,
                   help="global batch (split over the ranks under torchrun)")
    t.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    t.add_argument("--seed", type=int, default=0, help="weights and batch order")
    t.add_argument("--loss", default="max", choices=("max", "sum", "last"),
                   help="readout over time fed to the cross-entropy")
    t.add_argument("--batches-per-epoch", type=int, default=0,
                   help="stop each epoch after this many global batches (0: all)")
    m = p.add_argument_group("model")
    m.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="fastsnn backend of the hidden layer (and the readout, unless "
                        "--readout-backend)")
    m.add_argument("--readout-backend", default=None, choices=BACKENDS,
                   help="backend of the leaky-integrator readout (default: --backend)")
    m.add_argument("--dense-projections", dest="spike_input", action="store_false",
                   help="project the input and hidden spikes with dense products on every "
                        "backend (by default the fused CPU backend skips the zeros with "
                        "fastsnn.spike_linear; the reference always uses dense products)")
    m.add_argument("--surrogate", default="superspike", choices=SURROGATE_CHOICES)
    m.add_argument("--scale", type=float, default=10.0, help="surrogate scale k")
    m.add_argument("--neuron", default="lif", choices=("lif", "adlif"),
                   help="hidden neurons: the paper's current-based LIF, or the adaptive LIF of "
                        "SPEC section 7 (fastsnn.nn.AdLIF, SE-adLIF's published ranges)")
    m.add_argument("--hidden", type=int, default=100)
    m.add_argument("--no-recurrent", dest="recurrent", action="store_false",
                   help="feed-forward hidden layer (fastsnn.nn.LIF) instead of RecurrentLIF")
    m.add_argument("--detach-recurrent", action="store_true",
                   help="no gradient through the recurrent spikes (the paper's control)")
    m.add_argument("--tau-mem", type=float, default=10.0, help="ms")
    m.add_argument("--tau-syn", type=float, default=5.0, help="ms")
    m.add_argument("--dt", type=float, default=1.0, help="ms")
    m.add_argument("--init-gain", type=float, default=5.0,
                   help="input weights ~ N(0, (g/sqrt(fan_in))^2)")
    m.add_argument("--rec-gain", type=float, default=1.0,
                   help="recurrent weights ~ N(0, (g/sqrt(hidden))^2)")
    m.add_argument("--out-init-gain", type=float, default=1.0,
                   help="readout weights ~ N(0, (g/sqrt(hidden))^2)")
    m.add_argument("--out-gain", type=float, default=5.0,
                   help="fixed gain on the readout membrane before the loss")
    r = p.add_argument_group("regularizers")
    r.add_argument("--lower-strength", type=float, default=100.0,
                   help="lower-bound spike-count regularizer strength (0: off)")
    r.add_argument("--lower-nu", type=float, default=1e-3)
    r.add_argument("--upper-strength", type=float, default=0.0,
                   help="upper-bound spike-count regularizer strength (0: off)")
    r.add_argument("--upper-nu", type=float, default=None,
                   help="upper bound (the regularizer's own default when not given)")
    r.add_argument("--upper-power", type=int, default=2)
    d = p.add_argument_group("data (fastsnn.data.randman)")
    d.add_argument("--classes", type=int, default=10)
    d.add_argument("--units", type=int, default=20, help="input spike trains")
    d.add_argument("--steps", type=int, default=100, help="time steps of dt")
    d.add_argument("--manifold-dim", type=int, default=1)
    d.add_argument("--randman-alpha", type=float, default=1.0, help="manifold smoothness")
    d.add_argument("--samples-per-class", type=int, default=1000)
    d.add_argument("--split", default="800,100,100", help="train,val,test per class")
    d.add_argument("--spike-window", type=float, default=0.5)
    d.add_argument("--data-seed", type=int, default=0)
    o = p.add_argument_group("run")
    o.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    o.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    o.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    o.add_argument("--out", default=DEFAULT_OUT, help="output folder (rank 0 writes)")
    o.add_argument("--no-plots", dest="plots", action="store_false")
    o.add_argument("--quiet", action="store_true", help="no progress bar, no per-epoch lines")
    o.add_argument("--resume", action="store_true",
                   help=f"continue the run in --out from its {CHECKPOINT} (same options; "
                        "--epochs may be larger)")
    return p


class Interrupted(Exception):
    """SIGTERM during a run (raised by the handler ``main`` installs)."""


def check_out_dir(path):
    """'' when ``path`` is (or can be made) a folder this process can write in, else why not.
    Creates the folder; writes and removes a probe file in it."""
    if not path:
        return "must name a folder (got an empty string)"
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{path!r} exists and is not a folder"
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        return f"cannot write in {path!r}: {e.strerror or e}"
    return ""


def _split_error(text, samples_per_class):
    try:
        parts = [int(v) for v in str(text).split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 0 or parts[0] < 1:
        return f"expected train,val,test sample counts per class (train >= 1), got {text!r}"
    if sum(parts) != samples_per_class:
        return (f"{text!r} adds up to {sum(parts)}, not --samples-per-class "
                f"{samples_per_class}")
    return ""


def check_args(parser, cfg, rank=0):
    """Every option's value before any work: parser.error (exit code 2) naming the option.
    The output folder is checked on rank 0 (the only writer); --resume's checkpoint on every
    rank (each loads it)."""
    def need(ok, opt, what):
        if not ok:
            parser.error(f"{opt}: {what}")

    finite = math.isfinite
    need(cfg.epochs >= 0, "--epochs", f"must be >= 0, got {cfg.epochs}")
    need(cfg.batch_size >= 1, "--batch-size", f"must be >= 1, got {cfg.batch_size}")
    need(finite(cfg.lr) and cfg.lr > 0, "--lr", f"must be > 0, got {cfg.lr}")
    need(cfg.batches_per_epoch >= 0, "--batches-per-epoch",
         f"must be >= 0, got {cfg.batches_per_epoch}")
    need(finite(cfg.scale) and cfg.scale > 0, "--scale", f"must be > 0, got {cfg.scale}")
    need(cfg.hidden >= 1, "--hidden", f"must be >= 1, got {cfg.hidden}")
    for opt in ("tau_mem", "tau_syn", "dt"):
        v = getattr(cfg, opt)
        need(finite(v) and v > 0, "--" + opt.replace("_", "-"), f"must be > 0, got {v}")
    for opt in ("init_gain", "rec_gain", "out_init_gain", "lower_strength", "upper_strength",
                "lower_nu"):
        v = getattr(cfg, opt)
        need(finite(v) and v >= 0, "--" + opt.replace("_", "-"), f"must be >= 0, got {v}")
    need(finite(cfg.out_gain), "--out-gain", f"must be finite, got {cfg.out_gain}")
    need(cfg.upper_nu is None or (finite(cfg.upper_nu) and cfg.upper_nu >= 0), "--upper-nu",
         f"must be >= 0, got {cfg.upper_nu}")
    need(cfg.upper_power >= 1, "--upper-power", f"must be >= 1, got {cfg.upper_power}")
    need(cfg.classes >= 2, "--classes", f"must be >= 2, got {cfg.classes}")
    need(cfg.units >= 1, "--units", f"must be >= 1, got {cfg.units}")
    need(cfg.steps >= 1, "--steps", f"must be >= 1, got {cfg.steps}")
    need(cfg.manifold_dim >= 1, "--manifold-dim", f"must be >= 1, got {cfg.manifold_dim}")
    need(finite(cfg.randman_alpha) and cfg.randman_alpha >= 0, "--randman-alpha",
         f"must be >= 0, got {cfg.randman_alpha}")
    need(cfg.samples_per_class >= 1, "--samples-per-class",
         f"must be >= 1, got {cfg.samples_per_class}")
    err = _split_error(cfg.split, cfg.samples_per_class)
    need(not err, "--split", err)
    need(0 < cfg.spike_window <= 1, "--spike-window",
         f"must be in (0, 1], got {cfg.spike_window}")
    need(cfg.threads >= 0, "--threads", f"must be >= 0, got {cfg.threads}")
    if cfg.device != "auto":
        try:
            dev = torch.device(cfg.device)
        except (RuntimeError, ValueError):
            dev = None
        need(dev is not None, "--device", f"expected auto, cpu, cuda or cuda:N, got "
             f"{cfg.device!r}")
        need(dev.type != "cuda" or torch.cuda.is_available(), "--device",
             f"{cfg.device!r}: no CUDA device is visible")
    if cfg.detach_recurrent and not cfg.recurrent:
        parser.error("--detach-recurrent needs the recurrent layer (drop --no-recurrent)")
    need(bool(cfg.out), "--out", "must name a folder (got an empty string)")
    if rank == 0:
        err = check_out_dir(cfg.out)
        need(not err, "--out", err)
    if cfg.resume:
        need(cfg.out and os.path.isfile(os.path.join(cfg.out, CHECKPOINT)), "--resume",
             f"no {CHECKPOINT} in --out {cfg.out!r} to resume from")


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def make_config(**overrides):
    """The command's defaults with keyword overrides (attribute names, e.g. ``no`` dashes)."""
    cfg = parse_args([])
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise TypeError(f"unknown option {k!r}")
        setattr(cfg, k, v)
    return cfg


# --------------------------------------------------------------------------- the network

def decay(tau, dt):
    """exp(-dt / tau): the per-step decay of a time constant tau (same unit as dt)."""
    return math.exp(-dt / tau)


class RandmanSNN(nn.Module):
    """inputs -> (recurrent) LIF hidden layer -> leaky-integrator readout.

    forward(x (B, T, inputs)) -> (readout trace (B, T, outputs) times ``out_gain``, hidden
    spikes (B, T, hidden)).
    """

    def __init__(self, num_inputs=20, num_hidden=100, num_outputs=10, *, recurrent=True,
                 detach_recurrent=False, tau_mem=10.0, tau_syn=5.0, dt=1.0,
                 surrogate="superspike", scale=10.0, backend="auto", readout_backend=None,
                 init_gain=5.0, rec_gain=1.0, out_init_gain=1.0, out_gain=5.0,
                 spike_input=True, neuron="lif"):
        super().__init__()
        alpha, beta = decay(tau_syn, dt), decay(tau_mem, dt)
        neuron_opts = dict(alpha=alpha, beta=beta, threshold=1.0, surrogate=surrogate,
                           scale=scale, backend=backend)
        if detach_recurrent and not recurrent:
            raise ValueError("--detach-recurrent needs the recurrent layer")
        if neuron == "adlif":  # V starts orthogonal, as SE-adLIF's; rec_gain scales it
            self.hidden = snn.AdLIF(num_inputs, num_hidden, bias=False, recurrent=recurrent,
                                    detach_recurrent=detach_recurrent, spike_input=spike_input,
                                    surrogate=surrogate, scale=scale, backend=backend)
        elif recurrent:
            self.hidden = snn.RecurrentLIF(num_inputs, num_hidden, bias=False,
                                           detach_recurrent=detach_recurrent,
                                           spike_input=spike_input, **neuron_opts)
        else:
            self.hidden = snn.LIF(num_inputs, num_hidden, bias=False, spike_input=spike_input,
                                  **neuron_opts)
        self.readout = snn.LeakyIntegrator(num_hidden, num_outputs, bias=False, alpha=alpha,
                                           beta=beta, backend=readout_backend or backend,
                                           spike_input=spike_input)
        self.out_gain = float(out_gain)
        with torch.no_grad():
            self.hidden.linear.weight.normal_(0.0, init_gain / math.sqrt(num_inputs))
            if recurrent and neuron == "adlif":
                self.hidden.weight_rec.mul_(rec_gain)
            elif recurrent:
                self.hidden.weight_rec.normal_(0.0, rec_gain / math.sqrt(num_hidden))
            self.readout.linear.weight.normal_(0.0, out_init_gain / math.sqrt(num_hidden))

    def forward(self, x):
        S, _ = self.hidden(x)
        U, _ = self.readout(S)
        return U * self.out_gain, S


def build_model(cfg):
    return RandmanSNN(cfg.units, cfg.hidden, cfg.classes, recurrent=cfg.recurrent,
                      detach_recurrent=cfg.detach_recurrent, tau_mem=cfg.tau_mem,
                      tau_syn=cfg.tau_syn, dt=cfg.dt, surrogate=cfg.surrogate, scale=cfg.scale,
                      backend=cfg.backend, readout_backend=cfg.readout_backend,
                      init_gain=cfg.init_gain, rec_gain=cfg.rec_gain,
                      out_init_gain=cfg.out_init_gain, out_gain=cfg.out_gain,
                      spike_input=getattr(cfg, "spike_input", True),
                      neuron=getattr(cfg, "neuron", "lif"))


_DATA_CACHE = {}


def load_data(cfg):
    """fastsnn.data.randman with cfg's data options; the last data set is kept in memory, so
    the runs of a sweep (one process, same data) generate it once. Never modified in place."""
    from fastsnn.data.randman import randman

    split = tuple(int(s) for s in str(cfg.split).split(","))
    kw = dict(num_classes=cfg.classes, num_units=cfg.units, num_steps=cfg.steps,
              manifold_dim=cfg.manifold_dim, alpha=cfg.randman_alpha,
              samples_per_class=cfg.samples_per_class, split=split,
              spike_window=cfg.spike_window, seed=cfg.data_seed)
    key = tuple(sorted(kw.items()))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = randman(**kw)
    return _DATA_CACHE[key]


# --------------------------------------------------------------------------- distributed

class Dist:
    """rank, world size and device of this process; a process group only under torchrun."""

    def __init__(self, device="auto"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", self.local_rank if self.world > 1 else 0)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        self.device = dev
        self.owns_group = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
            self.owns_group = True
        self.active = self.world > 1

    @property
    def main(self):
        return self.rank == 0

    def all_reduce(self, t):
        """Sum over ranks, in place (a no-op in one process). t lives on this rank's device for
        NCCL; the result is returned on t's device."""
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self):
        if self.active:
            dist.barrier()

    def close(self):
        if self.owns_group and dist.is_initialized():
            # Every rank finishes its collectives before any tears the group down: rank 0 hosts
            # the rendezvous store, and a rank whose peers vanish mid-teardown can abort
            # ("terminate called without an active exception", seen in CI). A DDP reducer
            # still alive in a reference cycle would outlive the group: collect it first.
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()


def epoch_batches(n, batch_size, seed, epoch, world=1):
    """The global batches of one epoch: a permutation of range(n) that depends only on (seed,
    epoch), the same on every rank, cut into batch_size pieces (the last may be shorter; one
    with fewer samples than ranks is dropped, so that every rank gets at least one)."""
    g = torch.Generator().manual_seed(1_000_003 * seed + epoch)
    perm = torch.randperm(n, generator=g)
    batches = list(torch.split(perm, batch_size))
    return [b for b in batches if len(b) >= world]


# --------------------------------------------------------------------------- loss

def _losses():
    from fastsnn import losses, regularizers

    return losses, regularizers


def regularization(S, cfg):
    """The batch-mean regularizer terms on hidden spikes S (B, T, N)."""
    _, regularizers = _losses()
    reg = S.new_zeros((), dtype=torch.float32 if S.dtype != torch.float64 else S.dtype)
    if cfg.lower_strength > 0:
        reg = reg + regularizers.spike_count_lower(S, nu=cfg.lower_nu,
                                                   strength=cfg.lower_strength)
    if cfg.upper_strength > 0:
        kw = dict(strength=cfg.upper_strength, power=cfg.upper_power)
        if cfg.upper_nu is not None:
            kw["nu"] = cfg.upper_nu
        reg = reg + regularizers.spike_count_upper(S, **kw)
    return reg


def make_optimizer(model, cfg):
    """Adam with cfg.lr; the fused (single-kernel) implementation where this torch has it for
    the parameters' device, the default one otherwise (same update rule)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def local_objective(U, S, y, n_global, world, cfg, logits_out=None):
    """This rank's share of the global-batch objective.

    The readout loss and the regularizers are batch means over this rank's n_local samples;
    weighting them by world * n_local / n_global makes DDP's gradient average (a mean over the
    ranks) the gradient of the mean over the global batch. Returns (objective, ce, reg), the
    last two the local batch means (detached). logits_out, a list, receives the readout's
    (B, C) logits (detached), so accuracy needs no second pass over U."""
    losses, _ = _losses()
    n_local = y.shape[0]
    logits = losses.readout_logits(U, kind=cfg.loss)
    if logits_out is not None:
        logits_out.append(logits.detach())
    ce = torch.nn.functional.cross_entropy(logits, y)
    reg = regularization(S, cfg)
    w = world * n_local / n_global
    return (ce + reg) * w, ce.detach(), reg.detach()


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model, X, y, cfg, dd, chunk=1000):
    """Loss, accuracy and hidden spike counts on (X, y), sharded over the ranks and summed.

    Returns dict(loss, acc, n, rate_hz (per hidden neuron, a list), mean_rate_hz)."""
    losses, _ = _losses()
    model.eval()
    idx = torch.arange(dd.rank, len(y), dd.world)
    sums = torch.zeros(3, dtype=torch.float64, device=dd.device)  # loss*n, correct, n
    counts = torch.zeros(cfg.hidden, dtype=torch.float64, device=dd.device)
    dtype = getattr(torch, cfg.dtype)
    for part in torch.split(idx, chunk):
        xb = X[part].to(dd.device, dtype)
        yb = y[part].to(dd.device)
        U, S = model(xb)
        n = len(part)
        sums[0] += float(losses.readout_loss(U, yb, kind=cfg.loss)) * n
        sums[1] += round(float(losses.accuracy(U, yb, kind=cfg.loss)) * n)
        sums[2] += n
        counts += S.sum((0, 1)).to(torch.float64)
    dd.all_reduce(sums)
    dd.all_reduce(counts)
    n = max(sums[2].item(), 1.0)
    rate = counts.cpu() / (n * cfg.steps * cfg.dt * 1e-3)  # spikes per second per neuron
    model.train()
    return dict(loss=sums[0].item() / n, acc=sums[1].item() / n, n=int(sums[2].item()),
                rate_hz=rate.tolist(), mean_rate_hz=rate.mean().item())


# --------------------------------------------------------------------------- the run

def _git_commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except Exception:
        return None


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(dd):
    dev = dd.device
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    return dict(torch=torch.__version__, fastsnn=fastsnn.__version__, python=sys.version.split()[0],
                platform=platform.platform(), device=str(dev), device_name=name,
                threads=torch.get_num_threads(), world_size=dd.world,
                available_backends=fastsnn.available_backends(), commit=_git_commit(),
                cuda=torch.version.cuda, argv=sys.argv)


def train_epoch(net, opt, Xtr, ytr, batches, cfg, dd, dtype, on_batch=None):
    """One pass of optimizer steps over ``batches`` (global index tensors; this rank takes its
    share). Returns (sums, seconds): sums = this rank's [ce*n, reg*n, correct, n] (float64,
    not yet reduced over ranks), seconds = wall time of the loop (the epoch time reported).
    on_batch(ce) runs after each step (the progress bar)."""
    sums = torch.zeros(4, dtype=torch.float64, device=dd.device)
    if dd.device.type == "cuda":
        torch.cuda.synchronize(dd.device)
    t0 = time.perf_counter()
    for b in batches:
        local = b[dd.rank::dd.world].to(dd.device)
        xb = Xtr.index_select(0, local).to(dtype)  # a row copy; Xtr[local] is slower
        yb = ytr.index_select(0, local)
        U, S = net(xb)
        logits = []
        obj, ce, reg = local_objective(U, S, yb, len(b), dd.world, cfg, logits)
        opt.zero_grad(set_to_none=True)
        obj.backward()
        opt.step()
        snn.constrain_parameters(net)  # learned adLIF parameters back into their ranges
        with torch.no_grad():
            n = len(local)
            acc = (logits[0].argmax(dim=1) == yb).to(torch.float64).mean()
            sums += torch.stack([ce.double() * n, reg.double() * n, (acc * n).round(),
                                 torch.tensor(float(n), dtype=torch.float64, device=dd.device)])
        if on_batch is not None:
            on_batch(ce)
    if dd.device.type == "cuda":
        torch.cuda.synchronize(dd.device)
    return sums, time.perf_counter() - t0


def train(cfg, dd=None):
    """Train with cfg (``make_config`` / ``parse_args``); return the run's record (a dict, the
    content of run.json). Files are written on rank 0 when cfg.out is set."""
    own_dd = dd is None
    dd = dd or Dist(cfg.device)
    try:
        return _train(cfg, dd)
    finally:
        if own_dd:
            dd.close()


def _train(cfg, dd):
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dtype = getattr(torch, cfg.dtype)
    data = load_data(cfg)
    Xtr, ytr = data.train
    Xva, yva = data.val
    Xte, yte = data.test
    Xtr, ytr = Xtr.to(dd.device), ytr.to(dd.device)

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(cfg).to(dd.device, dtype)
    net = model
    if dd.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[dd.device.index] if dd.device.type == "cuda" else None)
    opt = make_optimizer(model, cfg)

    show = dd.main and not cfg.quiet
    history = []
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    first = 1
    resumed = []
    writes = dd.main and bool(cfg.out)
    if getattr(cfg, "resume", False):
        ck = load_checkpoint(cfg, model, opt, dd)
        history, started, resumed = ck["history"], ck["started"], ck.get("resumed", [])
        first = ck["epoch"] + 1
        resumed = resumed + [ck["epoch"]]
        if writes:  # the final products of the run resumed are not this run's
            fresh_out_dir(cfg.out, keep=(RUN_JSON, CHECKPOINT))
    elif writes:
        fresh_out_dir(cfg.out)

    env = _environment(dd)

    def record(status, **more):
        times = [h["epoch_time_s"] for h in history]
        return dict(
            task="randman", paper="Zenke & Vogels (2021), Neural Computation 33(4)",
            status=status, config=vars(cfg).copy(), started=started,
            resumed_after_epochs=resumed, environment=env,
            alpha=decay(cfg.tau_syn, cfg.dt), beta=decay(cfg.tau_mem, cfg.dt),
            num_parameters=sum(p.numel() for p in model.parameters()),
            history=history, epochs_done=len(history),
            final_val_acc=history[-1]["val_acc"] if history else None,
            epoch_time_s=times, median_epoch_time_s=(sorted(times)[len(times) // 2] if times
                                                     else None),
            total_train_time_s=sum(times), **more)

    if writes:
        write_json_atomic(os.path.join(cfg.out, RUN_JSON), record("running"))
    epoch = first - 1
    try:
        for epoch in range(first, cfg.epochs + 1):
            batches = epoch_batches(len(ytr), cfg.batch_size, cfg.seed, epoch, dd.world)
            if cfg.batches_per_epoch > 0:
                batches = batches[:cfg.batches_per_epoch]
            bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not show,
                       leave=False, unit="batch", dynamic_ncols=True)
            sums, epoch_time = train_epoch(net, opt, Xtr, ytr, bar, cfg, dd, dtype,
                                           on_batch=(lambda ce: bar.set_postfix(
                                               loss=f"{ce.item():.3f}", refresh=False))
                                           if show else None)
            bar.close()
            dd.all_reduce(sums)
            t1 = time.perf_counter()
            val = evaluate(net.module if dd.active else net, Xva, yva, cfg, dd)
            eval_time = time.perf_counter() - t1
            n = max(sums[3].item(), 1.0)
            rec = dict(epoch=epoch, train_loss=sums[0].item() / n,
                       train_reg=sums[1].item() / n, train_acc=sums[2].item() / n,
                       val_loss=val["loss"], val_acc=val["acc"],
                       val_rate_hz=val["mean_rate_hz"], epoch_time_s=epoch_time,
                       eval_time_s=eval_time)
            with sigterm_deferred():  # the epoch, its checkpoint and run.json land together
                history.append(rec)
                if writes:
                    save_checkpoint(cfg, model, opt, epoch, history, started, resumed)
                    write_json_atomic(os.path.join(cfg.out, RUN_JSON), record("running"))
            if show:
                tqdm.write(f"epoch {epoch:3d}/{cfg.epochs}  loss {rec['train_loss']:.4f}  "
                           f"reg {rec['train_reg']:.4f}  train acc {rec['train_acc']:.3f}  "
                           f"val acc {rec['val_acc']:.3f}  rate {rec['val_rate_hz']:.1f} Hz  "
                           f"time {epoch_time:.2f} s")
        test = evaluate(model, Xte, yte, cfg, dd)
    except (KeyboardInterrupt, Interrupted) as e:
        if writes:
            write_json_atomic(os.path.join(cfg.out, RUN_JSON), record(
                "interrupted", interrupted_in_epoch=epoch,
                reason="SIGTERM" if isinstance(e, Interrupted) else "KeyboardInterrupt"))
            if dd.main:
                print(f"interrupted in epoch {epoch}: {len(history)} epoch(s) saved in "
                      f"{os.path.abspath(cfg.out)} (continue with --resume)", file=sys.stderr,
                      flush=True)
        raise
    result = record("finished", test_acc=test["acc"], test_loss=test["loss"],
                    mean_hidden_rate_hz=test["mean_rate_hz"], hidden_rate_hz=test["rate_hz"])
    if show:
        med = result["median_epoch_time_s"]
        print(f"test acc {test['acc']:.4f}  mean hidden rate {test['mean_rate_hz']:.2f} Hz  "
              f"median epoch {med if med is None else f'{med:.2f}'} s  "
              f"(backend {cfg.backend}, {dd.world} process(es), device {dd.device})",
              flush=True)
    if writes:
        write_outputs(cfg, result, model, (Xte, yte), dd)
        if show:
            print(f"wrote {os.path.abspath(cfg.out)}", flush=True)
    dd.barrier()
    return result


def write_json_atomic(path, obj):
    """obj as JSON at path: a temporary file in the same folder, then os.replace (a reader
    sees the old file or the new one, never a partial one)."""
    _replace_atomic(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def _replace_atomic(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def fresh_out_dir(out, keep=()):
    """A fresh run in ``out``: remove the files an earlier run left there (so none of them
    passes for this run's), but those named in keep."""
    os.makedirs(out, exist_ok=True)
    for name in OUTPUT_FILES:
        if name in keep:
            continue
        try:
            os.remove(os.path.join(out, name))
        except FileNotFoundError:
            pass


def _rng_state():
    st = dict(torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def save_checkpoint(cfg, model, opt, epoch, history, started, resumed):
    ck = dict(epoch=epoch, model={k: v.detach().cpu() for k, v in model.state_dict().items()},
              optimizer=opt.state_dict(), rng=_rng_state(), history=history, started=started,
              resumed=resumed, config=vars(cfg).copy())
    _replace_atomic(os.path.join(cfg.out, CHECKPOINT), lambda f: torch.save(ck, f))


def load_checkpoint(cfg, model, opt, dd):
    """Restore model, optimizer and RNG state from cfg.out's checkpoint; return it. The
    options that shape training must equal the checkpoint's (ValueError otherwise)."""
    path = os.path.join(cfg.out, CHECKPOINT)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    old, new = ck["config"], vars(cfg)
    diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE
                  and old.get(k) != new.get(k))
    if diff:
        raise ValueError(f"--resume: {path} was made with other options: " + ", ".join(
            f"--{k.replace('_', '-')} {old.get(k)!r} (now {new.get(k)!r})" for k in diff))
    if ck["epoch"] > cfg.epochs:
        raise ValueError(f"--resume: {path} has {ck['epoch']} epochs, more than --epochs "
                         f"{cfg.epochs}")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    torch.set_rng_state(ck["rng"]["torch"])
    if "cuda" in ck["rng"] and dd.device.type == "cuda":
        torch.cuda.set_rng_state_all(ck["rng"]["cuda"])
    return ck


def write_outputs(cfg, result, model, test, dd):
    os.makedirs(cfg.out, exist_ok=True)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _replace_atomic(os.path.join(cfg.out, "model.pt"), lambda f: torch.save(sd, f))
    write_json_atomic(os.path.join(cfg.out, RUN_JSON), result)
    if not cfg.plots:
        return
    from . import plots

    X, y = test
    k = min(4, len(y))
    dtype = getattr(torch, cfg.dtype)
    with torch.no_grad():
        model.eval()
        U, S = model(X[:k].to(dd.device, dtype))
        model.train()
    plots.learning_curves(result, os.path.join(cfg.out, "learning_curves.png"))
    plots.raster(X[:k].float().cpu(), S.float().cpu(), U.float().cpu(), y[:k].cpu(),
                 os.path.join(cfg.out, "raster.png"), dt=cfg.dt)
    plots.firing_rates(result["hidden_rate_hz"], os.path.join(cfg.out, "firing_rates.png"))


_DEFERRED = {"depth": 0, "pending": None}


@contextlib.contextmanager
def sigterm_deferred():
    """A SIGTERM arriving inside the block raises Interrupted at its end instead of in the
    middle: an epoch's history entry, checkpoint and run.json are written together, so an
    interrupted run.json never counts an epoch its checkpoint lacks (or the reverse)."""
    _DEFERRED["depth"] += 1
    try:
        yield
    finally:
        _DEFERRED["depth"] -= 1
        if _DEFERRED["depth"] == 0 and _DEFERRED["pending"] is not None:
            signum, _DEFERRED["pending"] = _DEFERRED["pending"], None
            raise Interrupted(f"signal {signum}")


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM raises Interrupted inside the block (the main thread only; elsewhere signals
    cannot be handled and the block runs unchanged); the previous handler comes back after.
    Inside ``sigterm_deferred`` blocks it is held until the block ends."""
    def on_term(signum, frame):
        if _DEFERRED["depth"]:
            _DEFERRED["pending"] = signum
            return
        raise Interrupted(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    parser = build_parser()
    cfg = parser.parse_args(argv)
    check_args(parser, cfg, rank=int(os.environ.get("RANK", "0")))
    try:
        with sigterm_interrupts():
            result = train(cfg)
    except KeyboardInterrupt:
        return 130
    except Interrupted:
        return 128 + signal.SIGTERM
    except ValueError as e:
        if str(e).startswith("--resume"):
            parser.error(str(e))
        raise
    return 0 if result is not None else 1


if __name__ == "__main__":
    sys.exit(main())
