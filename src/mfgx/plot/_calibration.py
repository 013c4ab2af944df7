"""Figures of calibration studies: observed vs fitted flows, parameter paths, losses, comparisons."""

from __future__ import annotations

import numpy as np

from ._save import save as _save


def plot_fits(observations, predictions: dict, *, state: int | None = None, n: int = 6, titles=None, path=None):
    """Observed (dots) and predicted (lines, one per model) flows of ``state`` (default: the first
    observed state) for the first ``n`` trajectories; ``predictions``: {model: μ̂[K, N, S]}."""
    import matplotlib.pyplot as plt

    y, m = np.asarray(observations.values), np.asarray(observations.mask)
    if state is None:
        state = int(np.flatnonzero(m.any((0, 1)))[0])
    t = np.arange(y.shape[1]) if observations.times is None else np.asarray(observations.times)
    k = min(n, y.shape[0])
    cols = min(3, k)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False, sharex=True)
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.set_visible(False)
            continue
        seen = m[i, :, state]
        ax.plot(t[seen], y[i, seen, state], "k.", ms=4, label="observed")
        for name, flows in predictions.items():
            ax.plot(t, np.asarray(flows)[i, :, state], lw=1.6, label=name)
        ax.set_title(titles[i] if titles is not None else f"trajectory {i}", fontsize=9)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axes.flat[0].legend(fontsize=8)
    label = observations.labels[state] if observations.labels else str(state)
    fig.supylabel(f"μ({label})")
    fig.supxlabel(observations.metadata.get("time_unit", "time"))
    fig.tight_layout()
    return _save(fig, path)


def plot_parameters(times, parameters: dict, *, covariate=None, covariate_label: str = "covariate", path=None):
    """Fitted parameter paths: {label: γ[K, N]} as the median over trajectories with a 10–90 %
    band; ``covariate`` [K, N] (e.g. school terms) is shaded behind by its mean."""
    import matplotlib.pyplot as plt

    t = np.asarray(times)
    fig, axes = plt.subplots(1, len(parameters), figsize=(4 * len(parameters), 3), squeeze=False)
    for ax, (label, g) in zip(axes.flat, parameters.items()):
        g = np.asarray(g)
        lo, mid, hi = np.percentile(g, [10, 50, 90], axis=0)
        ax.fill_between(t, lo, hi, alpha=0.3)
        ax.plot(t, mid, lw=1.8)
        ax.set_title(label, fontsize=10)
        if covariate is not None:
            twin = ax.twinx()
            twin.fill_between(t, 0, np.asarray(covariate).mean(0), color="grey", alpha=0.12, step="mid")
            twin.set_ylim(0, 1)
            twin.set_ylabel(f"mean {covariate_label}", fontsize=8, color="grey")
    fig.tight_layout()
    return _save(fig, path)


def plot_losses(histories: dict, *, path=None):
    """Training and validation loss by epoch for each model; ``histories``: {model: fit history}."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, (name, history) in enumerate(histories.items()):
        e = [r["epoch"] for r in history]
        ax.semilogy(e, [r["train_loss"] for r in history], color=f"C{i}", lw=1, alpha=0.6, label=f"{name} train (batch)")
        val = [(r["epoch"], r["val"]["loss"]) for r in history if r.get("val")]
        if val:
            ax.semilogy(*zip(*val), "o-", color=f"C{i}", ms=3, label=f"{name} validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("masked mean square")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_comparison(metrics: dict, *, metric: str = "rel_l2", path=None):
    """Bars of ``metric`` per split for each model; ``metrics``: {model: {split: {metric: value}}}."""
    import matplotlib.pyplot as plt

    models = list(metrics)
    splits = [s for s in next(iter(metrics.values()))]
    x = np.arange(len(splits))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(splits), 3.2))
    for i, name in enumerate(models):
        ax.bar(x + (i - (len(models) - 1) / 2) * width, [metrics[name][s][metric] for s in splits], width, label=name)
    ax.set_xticks(x, splits)
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["plot_comparison", "plot_fits", "plot_losses", "plot_parameters"]
