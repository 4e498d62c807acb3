"""PNG plots of the training commands (matplotlib, Agg backend: no display needed)."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curves(result, path):
    """Train loss, and train / validation accuracy per epoch, with the test accuracy."""
    h = result["history"]
    ep = [r["epoch"] for r in h]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(ep, [r["train_loss"] for r in h], "o-", ms=3, label="train loss (CE)")
    a1.plot(ep, [r["val_loss"] for r in h], "o-", ms=3, label="val loss (CE)")
    if any(r["train_reg"] > 0 for r in h):
        a1.plot(ep, [r["train_reg"] for r in h], "o-", ms=3, label="regularizer")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.set_yscale("log")
    a1.legend()
    a2.plot(ep, [r["train_acc"] for r in h], "o-", ms=3, label="train")
    a2.plot(ep, [r["val_acc"] for r in h], "o-", ms=3, label="validation")
    if result.get("test_acc") is not None and ep:
        a2.axhline(result["test_acc"], color="k", ls="--", lw=1,
                   label=f"test {result['test_acc']:.3f}")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.set_ylim(0, 1.02)
    a2.legend(loc="lower right")
    cfg = result["config"]
    title = result.get("title") or (
        f"Randman: {cfg['surrogate']} k={cfg['scale']:g}, backend {cfg['backend']}, "
        f"{'recurrent' if cfg['recurrent'] else 'feed-forward'}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def raster(X, S, U, y, path, dt=1.0):
    """Input and hidden spike rasters and the readout traces of a few samples.

    X (k, T, inputs), S (k, T, hidden), U (k, T, classes), y (k,): CPU tensors."""
    k = X.shape[0]
    fig, axes = plt.subplots(3, k, figsize=(3.2 * k, 7), sharex=True, squeeze=False)
    for j in range(k):
        t_in, n_in = X[j].nonzero(as_tuple=True)
        axes[0, j].scatter(t_in * dt, n_in, s=4, c="k", marker="|")
        axes[0, j].set_title(f"test sample {j}, class {int(y[j])}", fontsize=9)
        t_h, n_h = S[j].nonzero(as_tuple=True)
        axes[1, j].scatter(t_h * dt, n_h, s=2, c="tab:red", marker="|")
        t = [i * dt for i in range(U.shape[1])]
        for c in range(U.shape[2]):
            axes[2, j].plot(t, U[j, :, c], lw=2.0 if c == int(y[j]) else 0.7,
                            alpha=1.0 if c == int(y[j]) else 0.6)
        axes[2, j].set_xlabel("time (ms)")
        axes[0, j].set_ylim(-0.5, X.shape[2] - 0.5)
        axes[1, j].set_ylim(-0.5, S.shape[2] - 0.5)
    axes[0, 0].set_ylabel("input unit")
    axes[1, 0].set_ylabel("hidden neuron")
    axes[2, 0].set_ylabel("readout (thick: label)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def firing_rates(rates_hz, path):
    """Histogram of the hidden neurons' mean firing rates on the test set."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    rates = list(rates_hz)
    top = max(rates) if rates else 1.0
    bins = max(10, min(50, int(math.sqrt(len(rates))) * 3))
    ax.hist(rates, bins=bins, range=(0, max(top, 1e-9) * 1.05), color="tab:red", alpha=0.8)
    silent = sum(r == 0 for r in rates)
    mean = sum(rates) / max(len(rates), 1)
    ax.set_xlabel("hidden firing rate on the test set (Hz)")
    ax.set_ylabel("neurons")
    ax.set_title(f"mean {mean:.2f} Hz, {silent} of {len(rates)} silent", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
