r"""Fit a baseline and an MFG the same way, compare them on held-out splits, write a report.

Metrics on the observed entries (mask M) of each trajectory, averaged over trajectories:

    L2     = Σ_{n,x} M (μ̂ − y)² / Σ M,
    rel L2 = Σ_{n,x} M (μ̂ − y)² / Σ M y²                 (``floor=None``: scale-free), or
    rel L2 = Σ_{n,x} M (μ̂ − y)² / (y² + floor) / Σ M      (the Citi Bike paper's, floor 1e-4),
    improvement % = 100 (baseline − mfg) / baseline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import numpy as np

from .. import _atomic
from ..calibrate import Calibration, fit
from ..calibrate._metrics import predict_batched
from ..data import Observations

SPLITS = ("train", "val", "test", "test_id", "test_ood")


def flow_metrics(predicted, observations: Observations, floor: float | None = None) -> dict[str, float]:
    """{"l2", "rel_l2", "n_trajectories"} of predicted flows μ̂[K, N, S] (module docstring)."""
    y, m = np.asarray(observations.values), np.asarray(observations.mask)
    y = np.where(m, y, 0.0)
    e2 = np.where(m, (np.asarray(predicted) - y) ** 2, 0.0)
    count = np.maximum(m.sum((1, 2)), 1)
    l2 = e2.sum((1, 2)) / count
    if floor is None:
        rel = e2.sum((1, 2)) / np.maximum((y**2).sum((1, 2)), 1e-300)
    else:
        rel = np.where(m, e2 / (y**2 + floor), 0.0).sum((1, 2)) / count
    return {"l2": float(l2.mean()), "rel_l2": float(rel.mean()), "n_trajectories": int(y.shape[0])}


def improvement(baseline: float, mfg: float) -> float:
    """Improvement % = 100 (baseline − mfg) / baseline (positive when the MFG has the lower error)."""
    return 100.0 * (baseline - mfg) / baseline


def predict(model, observations: Observations, batch_size: int = 16):
    """(flows μ̂[K, N, S], number of equilibrium solves that missed tol) for every trajectory."""
    model = getattr(model, "model", model)
    flows, conv, _ = predict_batched(model, observations.values, observations.mask, batch_size, observations.covariates)
    return flows, int((~conv).sum())


@dataclass
class StudyResult:
    """What `run_study` produced: the fits, the held-out comparison and the files written."""

    calibrations: dict[str, Calibration]
    metrics: dict[str, dict[str, dict[str, float]]]  # model → split → metric
    predictions: dict[str, dict[str, np.ndarray]]  # model → split → μ̂[K, N, S]
    wall_time: dict[str, float]
    out: Path
    files: list[Path] = field(default_factory=list)

    def improvement(self, split: str, metric: str = "rel_l2", baseline: str = "baseline", model: str = "mfg") -> float:
        """100 (baseline − model) / baseline on ``split``."""
        return improvement(self.metrics[baseline][split][metric], self.metrics[model][split][metric])


def run_study(
    models: dict[str, Any],
    splits: dict[str, Observations | None],
    out,
    *,
    fit_options: dict[str, Any] | None = None,
    floor: float | None = None,
    progress: bool = True,
    console=None,
) -> StudyResult:
    """Fit each model of ``models`` (e.g. {"baseline", "mfg"}) on ``splits["train"]`` with
    validation ``splits["val"]`` and the same ``fit_options`` (`calibrate.fit` keywords), with
    checkpoints in ``out/checkpoints/<model>`` (an interrupted run resumes); then predict every split
    and write ``out/metrics.json`` and the fitted models ``out/models/<model>.eqx``."""
    out = Path(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    options = dict(fit_options or {})
    cals, metrics, preds, wall, files = {}, {}, {}, {}, []
    present = {k: v for k, v in splits.items() if v is not None}
    for name, model in models.items():
        if console is not None:
            console.print(f"[bold]fitting {name}[/] on {present['train'].n_trajectories} trajectories")
        start = time.perf_counter()
        cal = fit(model, present["train"], val=present.get("val"), checkpoint_dir=out / "checkpoints" / name,
                  progress=progress, **options)
        wall[name] = time.perf_counter() - start
        cals[name] = cal
        with _atomic.atomic_open(out / "models" / f"{name}.eqx") as f:
            eqx.tree_serialise_leaves(f, cal.model)
        files.append(out / "models" / f"{name}.eqx")
        metrics[name], preds[name] = {}, {}
        for split, obs in present.items():
            flows, missed = predict(cal, obs, cal.batch_size)
            preds[name][split] = flows
            metrics[name][split] = {**flow_metrics(flows, obs, floor), "n_nonconverged": missed}
    result = StudyResult(cals, metrics, preds, wall, out, files)
    record = {
        "metrics": metrics,
        "wall_time_s": wall,
        "best_epoch": {k: c.best_epoch for k, c in cals.items()},
        "epochs_run": {k: c.epochs_run for k, c in cals.items()},
        "fit_options": {k: v for k, v in options.items() if isinstance(v, (int, float, str, bool, type(None)))},
    }
    if {"baseline", "mfg"} <= set(models):
        record["improvement_pct"] = {
            s: {m: result.improvement(s, m) for m in ("l2", "rel_l2")} for s in present
        }
    files.append(_atomic.write_text(out / "metrics.json", json.dumps(record, indent=2)))
    return result


def metrics_table(result: StudyResult) -> list[str]:
    """Markdown rows: split × model with L2, rel L2, and the MFG's improvement over the baseline."""
    lines = ["| split | model | trajectories | L2 | rel. L2 | improvement vs baseline (rel. L2) | not converged |",
             "|---|---|---:|---:|---:|---:|---:|"]
    splits = [s for s in SPLITS if any(s in m for m in result.metrics.values())]
    for split in splits:
        for name, per in result.metrics.items():
            if split not in per:
                continue
            m = per[split]
            imp = ""
            if name != "baseline" and "baseline" in result.metrics:
                imp = f"{result.improvement(split, 'rel_l2', model=name):+.1f} %"
            lines.append(f"| {split} | {name} | {m['n_trajectories']} | {m['l2']:.3e} | {m['rel_l2']:.4f} | {imp} | "
                         f"{m['n_nonconverged']} |")
    return lines
