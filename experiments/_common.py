"""Helpers shared by the calibration experiment scripts: path errors, run metadata, result files."""

from __future__ import annotations

import json
import math
import warnings
import os
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mfgx import calibrate as cal

RESULTS = Path(__file__).parent / "results"


def path_errors(fitted, truth, observations) -> dict:
    """Errors of a fitted path against the truth, both evaluated on the observed flows (the paper's
    γ-error): ``gamma_mse`` = (1/N)Σ_n‖γ̂_n − γ_n‖² and ``gamma_mae`` = mean |γ̂ − γ| over times,
    components and trajectories, ``gamma_mae_last_quarter`` the same over the last quarter of the
    grid, and the per-component MAE ``gamma_mae_by_component``."""
    model = getattr(fitted, "model", fitted)
    g = np.asarray(cal.paths(model, observations))  # [K, N, p]
    y = jnp.where(observations.mask, observations.values, 0.0)
    true = np.asarray(eqx.filter_vmap(eqx.filter_vmap(truth))(jnp.broadcast_to(model.times, y.shape[:2]), y))
    true = true.reshape(g.shape)
    diff = g - true
    late = int(np.ceil(0.75 * diff.shape[1]))
    return {
        "gamma_mse": float((diff**2).sum(-1).mean()),
        "gamma_mae": float(np.abs(diff).mean()),
        "gamma_mae_last_quarter": float(np.abs(diff[:, late:]).mean()),
        "gamma_mae_by_component": np.abs(diff).mean((0, 1)).tolist(),
        "gamma_true_mean_abs": float(np.abs(true).mean()),
    }


def meta(command: str, seconds: float, settings: dict) -> dict:
    return {
        "command": command,
        "jax": jax.__version__,
        "platform": platform.platform(),
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "seconds": seconds,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.version.split()[0],
        "settings": settings,
    }


def mean_se(values, digits: int = 3) -> str:
    v = np.asarray(values, float)
    if v.size == 1:
        return f"{v[0]:.{digits}g}"
    return f"{v.mean():.{digits}g} ± {v.std(ddof=1) / math.sqrt(v.size):.2g}"


def write(stem: str, payload: dict, lines: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=1, default=_jsonable))
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {RESULTS / stem}.md and .json")


def _jsonable(x):
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def fmt_row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


_OPTIMISERS: dict = {}


def adam(lr: float):
    """One optax.adam per learning rate, so that repeated fits reuse the compiled training step."""
    import optax

    return _OPTIMISERS.setdefault(float(lr), optax.adam(float(lr)))


def fit_case(model, split, truth, *, kind: str, epochs: int, lr: float, batch: int, seed: int,
             lm_steps: int = 20, laplace: bool = True, progress: bool = False) -> dict:
    """Fit ``model`` on split = (train, val, test) and measure it against ``truth`` on the test set.

    ``kind="finite"`` (a Constant/PiecewiseConstant path): ``epochs`` Adam epochs (may be 0), then the
    Levenberg–Marquardt polish `calibrate.refine` on the training set, then Gauss–Newton (Laplace)
    standard errors and 95 % intervals on the training set (``laplace``). ``kind="network"``: Adam
    with model selection on the validation loss."""
    train, val, test = split
    t0 = time.perf_counter()
    row: dict = {"seed": seed, "train/val/test": [len(train), len(val), len(test)], "batch": batch}
    n_bad = 0
    final = model
    if epochs > 0:
        fit = cal.fit(model, train, val=val, optimizer=adam(lr), epochs=epochs, batch_size=batch, seed=seed,
                      eval_every=max(1, epochs // 10), eval_train=False, progress=progress, identify=False)
        n_bad += sum(r["n_nonconverged"] for r in fit.history)
        row.update(adam_epochs=fit.epochs_run, best_epoch=fit.best_epoch,
                   adam_steps=fit.epochs_run * math.ceil(len(train) / batch))
        final = fit.model
    else:
        row.update(adam_epochs=0, best_epoch=0, adam_steps=0)
    if kind == "finite":
        row["values_adam"] = np.asarray(final.path.values).ravel().tolist()
        final = cal.refine(final, train, steps=lm_steps)
        row["values_hat"] = np.asarray(final.path.values).ravel().tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cal.IdentifiabilityWarning)  # recorded in the row instead
            ident = cal.identifiability(final, train, max_trajectories=len(train))
        row.update(ident_rel_se=ident.rel_std_error.tolist(), ident_weak=list(ident.weak), ident_reason=ident.reason)
        if laplace:
            try:
                u = cal.laplace(final, train)
                row.update(std_error=u.std_error.ravel().tolist(), ci_lower=u.lower.ravel().tolist(),
                           ci_upper=u.upper.ravel().tolist(), jtj_condition=u.condition, jtj_rank=u.rank)
                sw = cal.laplace(final, train, kind="sandwich")  # trajectory-clustered: robust to correlated errors
                row.update(std_error_sandwich=sw.std_error.ravel().tolist(), ci_lower_sandwich=sw.lower.ravel().tolist(),
                           ci_upper_sandwich=sw.upper.ravel().tolist())
            except cal.CalibrationError as e:
                row["laplace_error"] = str(e)
    test_metrics = cal.evaluate(final, test, batch_size=batch)
    row.update(path_errors(final, truth, test))
    row.update(mu_error=test_metrics["mu_error"], test_loss=test_metrics["loss"],
               n_nonconverged=n_bad + test_metrics["n_nonconverged"], seconds=time.perf_counter() - t0)
    return row


def dirichlet_mu0(d: int, k: int, seed: int, alpha=1.0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(d, alpha), size=k)


def show(row: dict) -> str:
    """A compact one-line view of a result row (floats rounded)."""
    def r(v):
        if isinstance(v, float):
            return round(v, 6)
        if isinstance(v, list) and v and all(isinstance(x, float) for x in v):
            return [round(x, 5) for x in v]
        return v
    return str({k: r(v) for k, v in row.items()})
