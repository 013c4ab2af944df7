"""Plots of a finite-state equilibrium: population flow, policy and convergence history.

Figures are built with the object-oriented `matplotlib.figure.Figure`, never through
`matplotlib.pyplot`: nothing is registered in pyplot's global figure list (so nothing leaks and
nothing needs closing), no GUI backend is touched, and saving always goes through Agg. This
works headless (CLI, CI) and leaves the user's own backend choice alone; in Jupyter a returned
figure displays as usual.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._save import save

_MASS_EPS = 1e-12  # states with less population than this are greyed out in the policy panel


def _as_history(history) -> dict[str, np.ndarray]:
    if history is None:
        return {}
    items = history.items() if isinstance(history, Mapping) else [("exploitability", history)]
    out = {}
    for label, values in items:
        h = np.asarray(values, dtype=float)
        if h.ndim != 1:
            raise ValueError(f"history {label!r} must be a 1-D array, got shape {h.shape}")
        out[str(label)] = h
    return out


def _default_title(eq) -> str | None:
    try:
        expl = float(np.asarray(eq.exploitability))
        steps = int(np.asarray(eq.steps))
        conv = bool(np.asarray(eq.converged))
    except (AttributeError, TypeError, ValueError):
        return None
    state = "converged" if conv else "not converged"
    return f"exploitability {expl:.3g} after {steps} steps ({state})"


def plot_equilibrium(
    eq: Any,
    *,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    history=None,
    policy: Literal["mean", "argmax"] = "mean",
    dpi: int = 120,
) -> Figure:
    r"""Plot an `mfgx.Equilibrium`: flow heatmap, policy heatmap and (optionally) convergence.

    **Arguments:**

    - `eq`: an `Equilibrium` of one game (``eq.flow`` of shape [T+1, S], ``eq.policy`` of shape
      [T+1, S, A]). For a vmapped batch, pick one first: ``jax.tree.map(lambda x: x[i], eq)``.
    - `path`: if given, the figure is saved there (format from the suffix; parent folders are
      created).
    - `title`: figure title; by default a summary (exploitability, steps, converged).
    - `history`: a 1-D array of per-iteration exploitability (or residual), or a mapping
      ``{label: 1-D array}`` for several curves; drawn on a log scale in a third panel.
    - `policy`: ``"mean"`` shows the expected action index E_π[a | t, x]; ``"argmax"`` the most
      likely action. States with (almost) no population are greyed out: their policy is arbitrary.
    - `dpi`: resolution used when saving.

    **Returns:** the `matplotlib.figure.Figure` (not registered with pyplot; nothing to close).
    """
    mu = np.asarray(eq.flow, dtype=float)
    pi = np.asarray(eq.policy, dtype=float)
    if mu.ndim != 2 or pi.ndim != 3 or pi.shape[:2] != mu.shape:
        raise ValueError(
            f"expected one equilibrium with flow [T+1, S] and policy [T+1, S, A], got shapes "
            f"{mu.shape} and {pi.shape}; for a batch use jax.tree.map(lambda x: x[i], eq)"
        )
    if policy not in ("mean", "argmax"):
        raise ValueError(f"policy must be 'mean' or 'argmax', got {policy!r}")
    hist = _as_history(history)

    T1, S = mu.shape
    A = pi.shape[-1]
    ncols = 3 if hist else 2
    fig = Figure(figsize=(4.8 * ncols, 4.0), layout="constrained")
    axes = fig.subplots(1, ncols)
    extent = (-0.5, T1 - 0.5, -0.5, S - 0.5)
    heat = dict(origin="lower", aspect="auto", interpolation="nearest", extent=extent)

    # (a) population flow μ[t, x]
    ax = axes[0]
    im = ax.imshow(mu.T, cmap="viridis", vmin=0.0, **heat)
    fig.colorbar(im, ax=ax, label="μ_t(x)")
    ax.set(title="population flow μ", xlabel="time t", ylabel="state x")

    # (b) policy: expected or most likely action, greyed where nobody is
    ax = axes[1]
    empty = mu < _MASS_EPS
    if policy == "mean":
        values = np.ma.masked_array(pi @ np.arange(A, dtype=float), empty)
        cmap = _with_bad("plasma")
        im = ax.imshow(values.T, cmap=cmap, vmin=0.0, vmax=max(A - 1, 1), **heat)
        label, panel = "E_π[a]", "policy: expected action"
    else:
        values = np.ma.masked_array(pi.argmax(-1), empty)
        cmap = _with_bad(ListedColormap(_discrete_colors(A)))
        norm = BoundaryNorm(np.arange(A + 1) - 0.5, A)
        im = ax.imshow(values.T, cmap=cmap, norm=norm, **heat)
        label, panel = "argmax_a π(a|x)", "policy: most likely action"
    cb = fig.colorbar(im, ax=ax, label=f"{label}  (action index)")
    if A <= 10:
        cb.set_ticks(np.arange(A))
    if empty.any():
        panel += "\n(grey: no population)"
    ax.set(title=panel, xlabel="time t", ylabel="state x")

    for ax in axes[:2]:
        _integer_ticks(ax)

    # (c) convergence history on a log scale
    if hist:
        ax = axes[2]
        for label, h in hist.items():
            marker = "." if h.size <= 50 else None
            ax.plot(np.arange(1, h.size + 1), np.where(h > 0, h, np.nan), marker=marker, label=label)
        ax.set_yscale("log")
        ax.set(title="convergence", xlabel="iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best")

    title = title if title is not None else _default_title(eq)
    if title:
        fig.suptitle(title)
    return save(fig, path, dpi)


def _with_bad(cmap):
    import matplotlib

    cmap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    cmap = cmap.copy()
    cmap.set_bad("lightgrey")
    return cmap


def _discrete_colors(n: int):
    import matplotlib

    base = matplotlib.colormaps["tab10" if n <= 10 else "viridis"]
    return [base(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _integer_ticks(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
