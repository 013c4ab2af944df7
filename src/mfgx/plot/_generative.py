"""Figures of the generative lab: samples against data, density heatmaps, particle paths (the
characteristics of a flow, or reverse diffusions), their animation as a GIF, training curves.

Points are arrays [n, d]; paths are [k, n, d] (k times); the two coordinates ``dims`` are drawn.
"""

from __future__ import annotations

import numpy as np

from ._save import save as _save


def sample_limits(*clouds, dims=(0, 1), pad=0.05):
    """((x0, x1), (y0, y1)): the 0.5–99.5 % range of the points [..., d] of ``clouds`` in ``dims``, padded."""
    pts = np.concatenate([np.asarray(c, float).reshape(-1, np.shape(c)[-1])[:, list(dims)] for c in clouds])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
    span = np.maximum(hi - lo, 1e-9)
    return [(lo[i] - pad * span[i], hi[i] + pad * span[i]) for i in range(2)]


def _check_points(name, x, dims):
    x = np.asarray(x, float)
    if x.ndim != 2 or x.shape[1] <= max(dims):
        raise ValueError(f"{name} must have shape [n, d] with d > {max(dims)}, got {x.shape}")
    return x


def plot_samples(data, samples, *, labels=("data", "model"), dims=(0, 1), title=None, path=None):
    """Two panels on common axes: the ``data`` [n, d] and the model's ``samples`` [m, d]."""
    import matplotlib.pyplot as plt

    data, samples = _check_points("data", data, dims), _check_points("samples", samples, dims)
    (x0, x1), (y0, y1) = sample_limits(data, samples, dims=dims)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, pts, label, color in zip(axes, (data, samples), labels, ("k", "C0")):
        ax.scatter(pts[:, dims[0]], pts[:, dims[1]], s=2, alpha=0.4, color=color, rasterized=True)
        ax.set(title=f"{label} ({pts.shape[0]})", xlim=(x0, x1), ylim=(y0, y1), xlabel=f"x{dims[0]}",
               ylabel=f"x{dims[1]}", aspect="equal")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def density_grid(lims, n: int):
    """(xs [n], ys [n], points [n·n, 2]) of an n × n grid over ``lims`` ((x0, x1), (y0, y1))."""
    xs, ys = np.linspace(*lims[0], n), np.linspace(*lims[1], n)
    X, Y = np.meshgrid(xs, ys)
    return xs, ys, np.stack([X.ravel(), Y.ravel()], 1)


def histogram_density(points, lims, n: int, dims=(0, 1)):
    """(xs, ys, density [n, n]) of ``points`` by a 2-D histogram on an n × n grid (rows: y)."""
    p = np.asarray(points, float)
    H, ex, ey = np.histogram2d(p[:, dims[0]], p[:, dims[1]], bins=n, range=lims, density=True)
    return 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1]), H.T


def plot_density(panels: dict, *, log: bool = False, title=None, path=None):
    """Heatmaps {label: (xs [n], ys [m], values [m, n])}, one panel each (densities, or log-densities
    with ``log``)."""
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("plot_density needs at least one panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False)
    for ax, (label, (xs, ys, Z)) in zip(axes.flat, panels.items()):
        Z = np.asarray(Z, float)
        if log:
            finite = Z[np.isfinite(Z)]
            vmin = np.percentile(finite, 2) if finite.size else None
            im = ax.pcolormesh(xs, ys, Z, shading="auto", cmap="magma", vmin=vmin, rasterized=True)
        else:
            im = ax.pcolormesh(xs, ys, Z, shading="auto", cmap="magma", rasterized=True)
        fig.colorbar(im, ax=ax, shrink=0.8, label="log density" if log else "density")
        ax.set(title=label, aspect="equal", xlabel="x0", ylabel="x1")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _check_paths(paths, dims):
    p = np.asarray(paths, float)
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[2] <= max(dims):
        raise ValueError(f"paths must have shape [k >= 2, n, d] with d > {max(dims)}, got {p.shape}")
    return p


def plot_trajectories(ts, paths, *, dims=(0, 1), background=None, title=None, path=None):
    """Particle paths [k, n, d] at times ``ts`` [k]: lines from start (grey dot) to end (coloured
    dot), over ``background`` points [m, d] (e.g. the data) if given."""
    import matplotlib.pyplot as plt

    p = _check_paths(paths, dims)
    i, j = dims
    fig, ax = plt.subplots(figsize=(5, 5))
    if background is not None:
        b = np.asarray(background, float)
        ax.scatter(b[:, i], b[:, j], s=1, color="0.85", rasterized=True)
    ax.plot(p[:, :, i], p[:, :, j], lw=0.6, alpha=0.6, color="C0")
    ax.scatter(p[0, :, i], p[0, :, j], s=6, color="0.4", label=f"t = {float(ts[0]):.3g}", zorder=3)
    ax.scatter(p[-1, :, i], p[-1, :, j], s=6, color="C3", label=f"t = {float(ts[-1]):.3g}", zorder=3)
    (x0, x1), (y0, y1) = sample_limits(p, dims=dims)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal", xlabel=f"x{i}", ylabel=f"x{j}")
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def animate_flow(ts, paths, *, path, dims=(0, 1), fps: int = 6, title: str = "", dpi: int = 72):
    """A GIF (matplotlib's Pillow writer) of the particles [k, n, d] moving through the k frames at
    times ``ts``; returns the path written."""
    import os

    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    p = _check_paths(paths, dims)
    i, j = dims
    fig, ax = plt.subplots(figsize=(4, 4))
    (x0, x1), (y0, y1) = sample_limits(p, dims=dims)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal", xticks=[], yticks=[])
    dots = ax.scatter(p[0, :, i], p[0, :, j], s=3, color="C0")
    label = ax.set_title("")

    def frame(k):
        dots.set_offsets(p[k][:, [i, j]])
        label.set_text(f"{title} t = {float(ts[k]):.3f}".strip())
        return dots, label

    anim = FuncAnimation(fig, frame, frames=p.shape[0], blit=False)
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    anim.save(os.fspath(path), writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return path


def plot_training(history, *, title=None, path=None):
    """The training loss per step and the validation loss on evaluation steps of a fit's
    ``history`` (records with "step", "loss" and optionally "val": {"loss"})."""
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in history])
    loss = np.array([r["loss"] for r in history])
    val = [(r["step"], r["val"]["loss"]) for r in history if r.get("val")]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, lw=1, label="training (batch)")
    if val:
        ax.plot(*zip(*val), "o-", ms=3, label="validation")
    ax.set(xlabel="step", ylabel="objective")
    if np.all(loss > 0):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
