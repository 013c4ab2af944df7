"""Plot of a counterfactual station closure: reactive (forward ODE) vs anticipatory (MFG) occupancy.

Built with `matplotlib.figure.Figure` (never pyplot), as the other mfgx plots.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ._save import save

_CURVES = (  # key, legend, style
    ("baseline", "forward ODE, open", {"color": "0.55", "ls": "--", "lw": 1.2}),
    ("reactive", "forward ODE, closed (reactive)", {"color": "C0", "lw": 1.8}),
    ("mfg", "MFG, open", {"color": "k", "ls": ":", "lw": 1.4}),
    ("anticipatory", "MFG, closed (anticipatory)", {"color": "C3", "lw": 1.8}),
)


def plot_counterfactual(
    result: dict,
    labels: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    *,
    states: Sequence[int] | None = None,
    times=None,
    time_label: str = "time",
    title: str | None = None,
    dpi: int = 120,
) -> Figure:
    r"""Occupancy over time of the closed station and the other states, for the reactive forward ODE,
    the anticipatory MFG and both unperturbed flows, with the closure window shaded.

    **Arguments:**

    - `result`: the dict of `mfgx.studies.closure` (flows "baseline", "reactive", "mfg",
      "anticipatory" [N, S]; "station"; "window" = (first, last) closed step; "times").
    - `labels`: S state names (default "state x"). `path`: save the figure there (parents created).
    - `states`: the panels, default the closed station then every other state.
    - `times`: N times for the x-axis (e.g. the observations' clock hours; default ``result["times"]``).
    - `time_label`, `title`, `dpi`: axis label, figure title (default names the closure), resolution.

    Step n moves μ_n to μ_{n+1}, so the shaded interval runs from t_{first} to t_{last + 1}.

    **Returns:** the `matplotlib.figure.Figure`.
    """
    flows = {key: np.asarray(result[key], dtype=float) for key, _, _ in _CURVES}
    N, S = flows["baseline"].shape
    if any(f.shape != (N, S) for f in flows.values()):
        raise ValueError(f"the four flows must share one shape [N, S], got {[f.shape for f in flows.values()]}")
    station = int(result["station"])
    first, last = (int(w) for w in result["window"])
    t = np.asarray(result["times"] if times is None else times, dtype=float)
    if t.shape != (N,):
        raise ValueError(f"times must have N = {N} entries, got shape {t.shape}")
    if labels is None:
        labels = [f"state {x}" for x in range(S)]
    if len(labels) != S:
        raise ValueError(f"labels must name the S = {S} states, got {len(labels)}")
    if states is None:
        states = [station] + [x for x in range(S) if x != station]
    states = [int(x) for x in states]
    if any(not 0 <= x < S for x in states):
        raise ValueError(f"states must be indices in [0, {S}), got {states}")

    cols = min(3, len(states))
    rows = -(-len(states) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    t_end = t[min(last + 1, N - 1)]
    for ax, x in zip(axes, states):
        ax.axvspan(t[first], t_end, color="C1", alpha=0.15, lw=0, label="closed")
        for key, name, style in _CURVES:
            ax.plot(t, flows[key][:, x], label=name, **style)
        closed = " (closed)" if x == station else ""
        ax.set_title(f"{labels[x]}{closed}", fontweight="bold" if x == station else None)
        ax.set(xlabel=time_label, ylabel="occupancy share")
        ax.grid(alpha=0.3)
    for ax in axes[len(states) :]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=5, fontsize="small", frameon=False)
    if title is None:
        title = f"{labels[station]} closed for steps {first}–{last} (t = {t[first]:.3g} to {t_end:.3g})"
        if "penalty" in result:
            title += f", penalty {result['penalty']:g}"
    fig.suptitle(title)
    return save(fig, path, dpi)
