r"""Aggregating a sweep's trials over seeds: one row per configuration, mean ± sd and a 95 % t-interval.

For a metric with values x_1..x_n over the n seeds of a configuration (trials that failed or did
not report it are left out, and n says how many remain):

    mean x̄,   sd s = √(Σ(x_i − x̄)²/(n − 1)),   95 % CI  x̄ ± t_{0.975, n−1} · s/√n

(no sd or interval from a single seed). Written as ``sweep.json`` (every trial and the table),
``sweep.md`` (the table) and ``figures/<metric>.png`` (the means with their intervals).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .. import _atomic
from ._spec import SEED_AXIS


def t_interval(values, level: float = 0.95) -> dict[str, float]:
    """{n, mean, sd, half, low, high} of ``values`` (NaN-free); sd/half/low/high NaN when n < 2."""
    x = np.asarray(values, float)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "sd": math.nan, "half": math.nan, "low": math.nan, "high": math.nan}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))
    return {"n": n, "mean": mean, "sd": sd, "half": half, "low": mean - half, "high": mean + half}


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def summarise(records: list[dict], axes: tuple[str, ...]) -> list[dict]:
    """One row per (grid, values of the axes other than the seed) with `t_interval` of every numeric
    metric over its seeds, and the trial counts (``n_trials``, ``n_failed``)."""
    group_axes = [a for a in axes if a != SEED_AXIS]
    groups: dict[str, dict] = {}
    for r in records:
        key = json.dumps([r["grid"], [r["values"].get(a) for a in group_axes]], default=str)
        g = groups.setdefault(key, {"grid": r["grid"], "values": {a: r["values"][a] for a in group_axes if a in r["values"]},
                                    "trials": []})
        g["trials"].append(r)
    rows = []
    for g in groups.values():
        done = [t for t in g["trials"] if t["status"] == "done"]
        names = sorted({k for t in done for k, v in t["metrics"].items() if _numeric(v)})
        metrics = {k: t_interval([t["metrics"][k] for t in done if _numeric(t["metrics"].get(k))]) for k in names}
        failed = sum(t["status"] == "failed" for t in g["trials"])
        rows.append({"grid": g["grid"], "values": g["values"], "n_trials": len(g["trials"]), "n_failed": failed,
                     "n_not_done": len(g["trials"]) - len(done) - failed, "metrics": metrics})
    return rows


def _fmt(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:.3g}"


def cell(stat: dict | None) -> str:
    """"mean ± sd [low, high]" (n < 2: the value alone)."""
    if stat is None or stat["n"] == 0:
        return "—"
    if stat["n"] < 2:
        return _fmt(stat["mean"])
    return f"{_fmt(stat['mean'])} ± {_fmt(stat['sd'])} [{_fmt(stat['low'])}, {_fmt(stat['high'])}]"


def markdown(rows: list[dict], axes: tuple[str, ...], metrics: list[str], title: str, notes: list[str] = ()) -> str:
    group_axes = [a for a in axes if a != SEED_AXIS]
    head = ["grid", *group_axes, "seeds done (failed, not run)", *metrics]
    lines = [f"# {title}", "", *notes, "" if notes else "",
             "Each cell: mean ± sd [95 % t-interval] over the seeds of that configuration.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        other = r.get("n_not_done", 0)
        missing = [f"{r['n_failed']} failed"] * bool(r["n_failed"]) + [f"{other} not run"] * bool(other)
        counts = f"{r['n_trials'] - r['n_failed'] - other}" + (f" ({', '.join(missing)})" if missing else "")
        cells = [r["grid"], *[str(r["values"].get(a, "")) for a in group_axes], counts,
                 *[cell(r["metrics"].get(m)) for m in metrics]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figures(rows: list[dict], axes: tuple[str, ...], metrics: list[str], folder: Path) -> list[Path]:
    """``folder/<metric>.png``: each configuration's mean with its 95 % interval (log scale when the
    means are positive and span more than two decades)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group_axes = [a for a in axes if a != SEED_AXIS]
    folder.mkdir(parents=True, exist_ok=True)
    labels = [", ".join([r["grid"], *[f"{a.rsplit('.', 1)[-1]}={r['values'].get(a)}" for a in group_axes if a in r["values"]]])
              for r in rows]
    files = []
    for m in metrics:
        stat = [r["metrics"].get(m) for r in rows]
        idx = [i for i, s in enumerate(stat) if s is not None and s["n"] > 0]
        if not idx:
            continue
        mean = np.array([stat[i]["mean"] for i in idx])
        if not np.any(mean):  # e.g. counts of non-converged solves that are all zero: nothing to show
            continue
        half = np.array([stat[i]["half"] if math.isfinite(stat[i]["half"]) else 0.0 for i in idx])
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(idx) + 2), 3.6))
        ax.errorbar(np.arange(len(idx)), mean, yerr=half, fmt="o", capsize=3)
        ax.set_xticks(np.arange(len(idx)), [labels[i] for i in idx], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(m)
        ax.set_title(f"{m}: mean and 95 % t-interval over seeds", fontsize=9)
        if np.all(mean > 0) and mean.max() / mean.min() > 100:
            ax.set_yscale("log")
        fig.tight_layout()
        path = folder / f"{m.replace('/', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    def default(x):
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, Path):
            return str(x)
        raise TypeError(f"not JSON serialisable: {type(x).__name__}")

    return _atomic.write_text(path, json.dumps(payload, indent=1, default=default, allow_nan=True))
