"""Figures of neural MFGs: a learned correction read back against a known hidden term."""

from __future__ import annotations

import numpy as np

from ._save import save as _save


def plot_correction(learned, truth, clouds, ts, *, dim: int = 0, n_times: int = 4, labels=("learned", "true"), path=None):
    r"""A learned correction f (`mfgx.neural.AgentMLP`, …) against a known term h (or None: h = 0)
    on particle clouds [T, N, d] or [B, T, N, d] observed at ``ts`` (e.g. held-out data):

    - left: f(t, x, μ_t) and h(t, x, μ_t) against the state x (coordinate ``dim``, the others at
      the population mean) over the populated range (1st–99th percentile of the cloud) at
      ``n_times`` observation times, μ_t the first dataset's cloud, its particles as a rug;
    - middle: both at the 10 %, 50 % and 90 % quantiles of the population, over time;
    - right: f against h at every particle of every cloud, with R² (`correction_recovery`).
    """
    import matplotlib.pyplot as plt

    import mfgx.neural as nm

    c = np.asarray(clouds, dtype=float)
    c = c[None] if c.ndim == 3 else c
    ts = np.atleast_1d(np.asarray(ts, dtype=float))
    if c.ndim != 4 or c.shape[1] != ts.size:
        raise nm.NeuralError(f"clouds must have shape [T, N, d] or [B, T, N, d] with T = len(ts) = {ts.size}, got {np.shape(clouds)}")
    if not 0 <= dim < c.shape[-1]:
        raise nm.NeuralError(f"dim must index a state coordinate 0..{c.shape[-1] - 1}, got {dim}")
    true_fn = (lambda t, x, pop: np.zeros_like(x)) if truth is None else (lambda t, x, pop: np.asarray(truth.at(t, x, pop)))  # noqa: E731

    def grid_states(pop, values):
        x = np.broadcast_to(pop.mean(0), (values.size, pop.shape[1])).copy()
        x[:, dim] = values
        return x

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    pick = np.unique(np.linspace(0, ts.size - 1, min(n_times, ts.size)).round().astype(int))
    for j, k in enumerate(pick):
        pop = c[0, k]
        lo, hi = np.percentile(pop[:, dim], [1, 99])
        xs = grid_states(pop, np.linspace(lo, hi, 60))
        col = f"C{j}"
        axes[0].plot(xs[:, dim], np.asarray(learned.at(ts[k], xs, pop))[:, dim], color=col, lw=1.8, label=f"{labels[0]}, t = {ts[k]:g}")
        axes[0].plot(xs[:, dim], true_fn(ts[k], xs, pop)[:, dim], color=col, lw=1.2, ls="--", label=f"{labels[1]}, t = {ts[k]:g}")
        axes[0].plot(pop[:, dim], np.full(pop.shape[0], 0.0), "|", color=col, ms=8, alpha=0.5)
    axes[0].set(xlabel=f"state x[{dim}]", ylabel="drift correction", title="over the populated states")
    axes[0].legend(fontsize=7, ncol=2)

    qs = (10, 50, 90)
    f_q, h_q = np.zeros((ts.size, len(qs))), np.zeros((ts.size, len(qs)))
    for k in range(ts.size):
        pop = c[0, k]
        xs = grid_states(pop, np.percentile(pop[:, dim], qs))
        f_q[k] = np.asarray(learned.at(ts[k], xs, pop))[:, dim]
        h_q[k] = true_fn(ts[k], xs, pop)[:, dim]
    for j, q in enumerate(qs):
        axes[1].plot(ts, f_q[:, j], "o-", color=f"C{j}", lw=1.8, ms=3, label=f"{labels[0]}, {q} % quantile")
        axes[1].plot(ts, h_q[:, j], "--", color=f"C{j}", lw=1.2, label=f"{labels[1]}, {q} % quantile")
    axes[1].set(xlabel="t", ylabel="drift correction", title="over time")
    axes[1].legend(fontsize=7)

    rec = nm.correction_recovery(learned, truth, c, ts)
    f, h = rec["learned"][:, dim], rec["true"][:, dim]
    axes[2].plot(h, f, ".", ms=2, alpha=0.4)
    lim = [min(h.min(), f.min()), max(h.max(), f.max())]
    axes[2].plot(lim, lim, "k--", lw=1)
    r2 = "n/a (h = 0)" if np.isnan(rec["r2"]) else f"{rec['r2']:.3f}"
    axes[2].set(xlabel=labels[1], ylabel=labels[0], title=f"every particle: R² = {r2}, RMSE = {rec['rmse']:.3g}")
    fig.tight_layout()
    return _save(fig, path)
